#!/usr/bin/env bash
# Measure the cached start-up time of the lab control plane. Usage: hack/bench/controlplane-startup.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
python=$(bash hack/python-env.sh)
export KUBEBUILDER_ASSETS=$(bash hack/build-control-plane.sh)
cd hack && exec "$python" -m bench.controlplane_startup "$@"
