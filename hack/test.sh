#!/usr/bin/env bash
# The README's test command: installs what is missing, builds (or reuses) the control-plane binaries, then
# runs the linters, the type checker and the whole pytest suite against a real kube-apiserver.
# Extra arguments go to pytest (for example: hack/test.sh -k crd -x).
set -euo pipefail
cd "$(dirname "$0")/.."

bash hack/system-deps.sh
python=$(bash hack/python-env.sh)
venv_bin=$(dirname "$python")
KUBEBUILDER_ASSETS=$(bash hack/build-control-plane.sh)
export KUBEBUILDER_ASSETS
bash hack/build-prometheus.sh >/dev/null  # the lab's Prometheus and promtool (cached)
bash hack/build-images.sh >/dev/null  # the operator and speaker images the lab's pods run (cached)
bash hack/build-olm.sh >/dev/null  # OLM's olm operator and CRDs: the lab installs the bundle with it (cached)

echo "[test] ruff" >&2
"$venv_bin/ruff" check .
"$venv_bin/ruff" format --check .
echo "[test] mypy (strict)" >&2
"$venv_bin/mypy" common/ironlb operator/ironlb speaker/ironlb hack/ironlb_lab hack/bench tests
echo "[test] OLM bundle (operator-framework validator)" >&2
bash hack/validate-bundle.sh >/dev/null
echo "[test] pytest" >&2
exec "$python" -m pytest "$@"
