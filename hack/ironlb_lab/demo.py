"""The main job: the seed scenario, run for real in the local lab, in Layer 2 mode.

A real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), IronLB's CRDs, the real
``ironlb-operator`` process, a speaker in every lab node's network namespace, the seed's pool, a pod standing
in for the seed's VM (labelled ``metallb-service: nginx``, serving HTTP on port 80 behind a node), and the
seed's LoadBalancer Service (with the MetalLB annotation, exactly as the seed writes it). Then ``curl`` from a
client on the same segment, outside the cluster: "URL exists". Steps print as they run; a failed step tears
everything down and exits non-zero. Still to come: the VirtualMachine manifest itself, BGP mode and a
failover in the demo.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ironlb.operator.kube import KubeClient

from .controlplane import ControlPlane
from .l2lab import L2Lab
from .workloads import LabKubelet, LabProxy

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
    step("install IronLB: CRDs; then the lab's nodes, a speaker in each, and the operator")
    print(plane.install_crds(REPO_ROOT / "crds"), end="")
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-demo-"))
    with L2Lab(plane, workdir) as l2:
        nodes = ", ".join(
            f"{host.role} {host.v4}" for role, host in l2.lab.hosts.items() if role.startswith("node")
        )
        print(f"lab nodes: {nodes}; client {l2.lab.client.v4} (outside the cluster, on the same segment)")
        proxy = LabProxy(l2.lab, KubeClient.from_environment(str(plane.kubeconfig))).start()
        try:
            run_seed(plane, l2, LabKubelet(l2.lab, plane, workdir))
        finally:
            proxy.stop()


def run_seed(plane: ControlPlane, l2: L2Lab, kubelet: LabKubelet) -> None:
    step("apply the seed's address pool (a documentation range, not 172.18.1.x) and an L2Advertisement")
    print(plane.kubectl("apply", "-f", "-", input=SEED_POOL).stdout, end="")

    step("start the VM's stand-in: a pod labelled metallb-service=nginx serving HTTP on port 80 behind node2")
    wait_for(
        lambda: plane.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        30,
        "the default ServiceAccount",
    )
    pod = kubelet.run_pod(2, "virt-launcher-fedora-nginx", "default", {"metallb-service": "nginx"})
    print(f"pod virt-launcher-fedora-nginx: {pod.v4} on {pod.node.role}")

    step("expose the VM with the seed's LoadBalancer Service (annotation metallb.universe.tf/address-pool)")
    print(plane.kubectl("apply", "-f", "-", input=SEED_SERVICE).stdout, end="")
    ip = wait_for_external_ip(plane)
    if not ip.startswith("203.0.113."):
        raise RuntimeError(f"external IP {ip} is not from addresspool-sample1")

    step("kubectl get service -n default metallb-nginx-svc")
    print(plane.kubectl("get", "service", "-n", "default", "metallb-nginx-svc").stdout, end="")

    time.sleep(1)  # the pool status writer runs twice a second
    step("kubectl get ipaddresspools -n ironlb-system")
    print(plane.kubectl("get", "ipaddresspools", "-n", "ironlb-system").stdout, end="")

    step(f'from the client, outside the cluster: curl -s -o /dev/null {ip}:5678 && echo "URL exists"')
    wait_for(lambda: l2.arp(ip) != "", 30, f"a node to answer ARP for {ip}")
    started = time.monotonic()
    while True:
        result = l2.lab.client.run("sh", "-c", f'curl -s -o /dev/null {ip}:5678 && echo "URL exists"')
        if "URL exists" in result.stdout:
            print(result.stdout, end="")
            break
        if time.monotonic() - started > 30:
            raise RuntimeError(f"curl {ip}:5678 failed from the client: {result.stderr.strip()}")
        time.sleep(0.5)
    print(f"(ARP for {ip} is answered by {l2.arp(ip)}, node2's MAC is {l2.lab.node(2).mac()})")

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


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def main() -> int:
    began = time.monotonic()
    step("start a real control plane on loopback (building the binaries first if they are not cached)")
    try:
        with ControlPlane(with_controllers=True) as plane:
            run_demo(plane)
    except Exception as error:  # the demo's contract is a message and a non-zero exit, not a traceback
        print(f"\nDEMO FAILED: {error}", file=sys.stderr)
        return 1
    print(f"\nDemo finished in {time.monotonic() - began:.1f} s; everything it started has been stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
