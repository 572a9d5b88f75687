"""The main job, as far as IronLB goes today: the seed scenario up to the Service's external IP.

A real control plane, IronLB's CRDs, the real ``ironlb-operator`` process, then the seed's pool and its
LoadBalancer Service (with the MetalLB annotation, exactly as the seed writes it). Steps print as they run;
a failed step tears everything down and exits non-zero. Later issues add the speakers, the VM stand-in and
the ``curl`` from outside the cluster.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .controlplane import ControlPlane
from .operator import OperatorProcess

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
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata:
  name: addresspool-sample1
  namespace: ironlb-system
spec:
  ipAddressPools:
  - addresspool-sample1
"""
SEED_SERVICE = """\
kind: Service
apiVersion: v1
metadata:
  name: metallb-nginx-svc
  namespace: default
  annotations:
    metallb.universe.tf/address-pool: addresspool-sample1
spec:
  externalTrafficPolicy: Local
  ipFamilies:
  - IPv4
  ports:
  - name: tcp-5678
    protocol: TCP
    port: 5678
    targetPort: 80
  type: LoadBalancer
  selector:
    metallb-service: nginx
"""
BAD_POOL = """\
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: reversed
  namespace: ironlb-system
spec:
  addresses:
  - 203.0.113.16-203.0.113.1
"""


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def wait_for_external_ip(plane: ControlPlane, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ip = plane.kubectl(
            "get",
            "service",
            "-n",
            "default",
            "metallb-nginx-svc",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ).stdout.strip()
        if ip:
            return ip
        time.sleep(0.2)
    raise RuntimeError(f"metallb-nginx-svc got no external IP in {timeout} s")


def run_demo(plane: ControlPlane) -> None:
    step("install IronLB: CRDs, namespace, the operator")
    print(plane.install_crds(REPO_ROOT / "crds"), end="")
    plane.kubectl("create", "namespace", "ironlb-system")
    with OperatorProcess(plane) as operator:
        print(
            f"ironlb-operator running (pid {operator.process.pid if operator.process else '?'}), "
            f"metrics on 127.0.0.1:{operator.metrics_port}"
        )

        step("apply the seed's address pool (a documentation range, not 172.18.1.x) and an L2Advertisement")
        print(plane.kubectl("apply", "-f", "-", input=SEED_POOL).stdout, end="")

        step(
            "expose the VM with the seed's LoadBalancer Service (annotation metallb.universe.tf/address-pool)"
        )
        print(plane.kubectl("apply", "-f", "-", input=SEED_SERVICE).stdout, end="")
        ip = wait_for_external_ip(plane)
        if not ip.startswith("203.0.113."):
            raise RuntimeError(f"external IP {ip} is not from addresspool-sample1")

        step("kubectl get service -n default metallb-nginx-svc")
        print(plane.kubectl("get", "service", "-n", "default", "metallb-nginx-svc").stdout, end="")

        time.sleep(1)  # the pool status writer runs twice a second
        step("kubectl get ipaddresspools -n ironlb-system")
        print(plane.kubectl("get", "ipaddresspools", "-n", "ironlb-system").stdout, end="")

        step("events on the Service (kubectl get events -n default)")
        print(
            plane.kubectl(
                "get", "events", "-n", "default", "--field-selector", "involvedObject.name=metallb-nginx-svc"
            ).stdout,
            end="",
        )

        step("a reversed range is rejected by the API server itself, naming the field and the value")
        rejected = plane.kubectl("apply", "-f", "-", input=BAD_POOL, check=False)
        print(rejected.stderr, end="")
        if rejected.returncode == 0 or "is reversed" not in rejected.stderr:
            raise RuntimeError("the reversed range was not rejected as expected")
        print(
            "\n(not yet: the VM stand-in, the speakers announcing the IP, and curl from outside the cluster)"
        )


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
