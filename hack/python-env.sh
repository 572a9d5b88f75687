#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv from the hash-pinned lock file, then install IronLB
# itself in editable mode. Idempotent and quiet when nothing changed; prints the venv's python path last.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${IRONLB_VENV:-$root/.venv}
python=${PYTHON:-python3}
stamp=$venv/.lock-sha256
want=$(sha256sum "$root/requirements.lock" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ]; then
  echo "[python-env] creating $venv" >&2
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[python-env] installing pinned dependencies from requirements.lock" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$root/requirements.lock" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root" >&2
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
