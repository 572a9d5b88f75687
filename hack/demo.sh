#!/usr/bin/env bash
# The README's main-job command: runs the seed scenario in the local lab (see hack/ironlb_lab/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/system-deps.sh
python=$(bash hack/python-env.sh)
export KUBEBUILDER_ASSETS=$(bash hack/build-control-plane.sh)
cd hack && exec "$python" -m ironlb_lab.demo
