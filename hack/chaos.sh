#!/usr/bin/env bash
# The chaos run (hack/ironlb_lab/chaos.py): IronLB as pods in a 3-node lab, Services churning, a real fault
# every few seconds, invariants checked throughout. Bounded in time; lab namespaces and loopback only.
# Usage: bash hack/chaos.sh [--minutes 10] [--services 1000] [--seed N] [--report FILE]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/system-deps.sh
python=$(bash hack/python-env.sh)
export KUBEBUILDER_ASSETS=$(bash hack/build-control-plane.sh)
cd hack && exec "$python" -m ironlb_lab.chaos "$@"
