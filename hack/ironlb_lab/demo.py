"""The main job, as far as IronLB goes today: a real control plane with IronLB's CRDs and the seed's pool.

Steps print as they run; any failed step ends the demo with a non-zero exit after tearing everything down.
Later issues grow this into the whole seed scenario (VM, Service, ARP/BGP, curl from outside).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .controlplane import ControlPlane

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_POOL = """\
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: addresspool-sample1
  namespace: ironlb-system
spec:
  addresses:
  - 203.0.113.1-203.0.113.16
"""
BAD_POOL = SEED_POOL.replace("addresspool-sample1", "reversed").replace(
    "203.0.113.1-203.0.113.16", "203.0.113.16-203.0.113.1"
)


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run_demo(plane: ControlPlane) -> None:
    step("install IronLB's CRDs")
    print(plane.install_crds(REPO_ROOT / "crds"), end="")
    plane.kubectl("create", "namespace", "ironlb-system")

    step("apply the seed's address pool (documentation range instead of 172.18.1.x)")
    print(plane.kubectl("apply", "-f", "-", input=SEED_POOL).stdout, end="")
    print(plane.kubectl("apply", "-f", str(REPO_ROOT / "docs" / "examples")).stdout, end="")

    step("kubectl get ipaddresspools -n ironlb-system")
    print(plane.kubectl("get", "ipaddresspools", "-n", "ironlb-system").stdout, end="")

    step("kubectl get ironlb -n ironlb-system (every IronLB object)")
    print(plane.kubectl("get", "ironlb", "-n", "ironlb-system").stdout, end="")

    step("a reversed range is rejected by the API server itself, naming the field and the value")
    rejected = plane.kubectl("apply", "-f", "-", input=BAD_POOL, check=False)
    print(rejected.stderr, end="")
    if rejected.returncode == 0 or "is reversed" not in rejected.stderr:
        raise RuntimeError("the reversed range was not rejected as expected")


def main() -> int:
    began = time.monotonic()
    step("start a real etcd + kube-apiserver on loopback (building them first if they are not cached)")
    try:
        with ControlPlane() as plane:
            run_demo(plane)
    except Exception as error:  # the demo's contract is a message and a non-zero exit, not a traceback
        print(f"\nDEMO FAILED: {error}", file=sys.stderr)
        return 1
    print(f"\nDemo finished in {time.monotonic() - began:.1f} s; everything it started has been stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
