#!/usr/bin/env bash
# Run one benchmark module from hack/bench with the project's venv and control-plane binaries.
# Usage: hack/bench/run.sh MODULE [ARGS...]   e.g. hack/bench/run.sh allocator_bench 100000
set -euo pipefail
cd "$(dirname "$0")/../.."
python=$(bash hack/python-env.sh)
KUBEBUILDER_ASSETS=$(bash hack/build-control-plane.sh)
export KUBEBUILDER_ASSETS
module=$1; shift
cd hack && exec "$python" -m "bench.$module" "$@"
