"""The main job: the seed scenario, run for real in the local lab, in Layer 2 and in BGP mode.

A real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and three lab nodes.
IronLB is installed the way a user installs it: its CRDs and deploy/ironlb.yaml (generated from the same
source as the OLM bundle: namespace, RBAC, the operator Deployment); the operator pods then install the
speaker DaemonSet, whose pods run in the node namespaces, each from its image (built from the Dockerfiles,
run by podman with the securityContext of its Deployment or DaemonSet). Then the seed, as written: MetalLB's
legacy ``config`` ConfigMap with the pool (a documentation range instead of 172.18.1.x), the
``VirtualMachine`` (run by the lab's KubeVirt stand-in as a virt-launcher pod serving nginx) and the
LoadBalancer Service with the MetalLB annotation. ``curl`` from a client outside the cluster: "URL exists".
Then a Layer 2 failover, and the same Service in BGP mode through a BIRD2 router, with a failover measured
from behind the router.
Steps print as they run; a failed step tears everything down and exits non-zero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import yaml
from ironlb.api.kube import KubeClient
from ironlb.operator.manifests import OPERATOR_IMAGE, SPEAKER_IMAGE
from ironlb.operator.migrate import migrate
from ironlb.speaker.l2.election import owner

from . import containers
from .bgplab import bgp_peer, start_router
from .controlplane import ControlPlane
from .kubevirt import LabKubeVirt
from .l2lab import L2Lab
from .network import Host, exit_on_sigterm
from .workloads import LabKubelet, LabProxy

REPO_ROOT = Path(__file__).resolve().parents[2]
# The seed's ConfigMap, as written, with a documentation range instead of 172.18.1.1-172.18.1.16.
SEED_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: addresspool-sample1
      protocol: layer2
      addresses:
      - 203.0.113.1-203.0.113.16
"""
SEED_VM = REPO_ROOT / "docs" / "examples" / "seed" / "vm.yaml"
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


CLUSTER_SERVICE = """\
kind: Service
apiVersion: v1
metadata:
  name: nginx-any-node
  namespace: default
  annotations:
    metallb.universe.tf/address-pool: addresspool-sample1
spec:
  externalTrafficPolicy: Cluster
  ports:
  - port: 5678
    targetPort: 80
  type: LoadBalancer
  selector:
    metallb-service: nginx
"""
BGP_OBJECTS = """\
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: addresspool-bgp
  namespace: ironlb-system
spec:
  addresses:
  - 203.0.113.64/28
---
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: to-the-router
  namespace: ironlb-system
spec:
  ipAddressPools:
  - addresspool-bgp
  communities:
  - 64512:100
---
kind: Service
apiVersion: v1
metadata:
  name: metallb-nginx-bgp
  namespace: default
  annotations:
    metallb.universe.tf/address-pool: addresspool-bgp
spec:
  externalTrafficPolicy: Cluster
  ports:
  - port: 5678
    targetPort: 80
  type: LoadBalancer
  selector:
    metallb-service: nginx
"""


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def external_ip(plane: ControlPlane, service: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ip = plane.kubectl(
            "get", "service", "-n", "default", service, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"
        ).stdout.strip()
        if ip:
            return ip
        time.sleep(0.2)
    raise RuntimeError(f"{service} got no external IP in {timeout} s")


def show(plane: ControlPlane, *args: str) -> None:
    step("kubectl " + " ".join(args))
    print(plane.kubectl(*args).stdout, end="")


def curl_until_it_works(host: Host, url: str, timeout: float = 30) -> None:
    step(f'from {host.role}, outside the cluster: curl -s -o /dev/null {url} && echo "URL exists"')
    deadline = time.monotonic() + timeout
    while True:
        result = host.run("sh", "-c", f'curl -s -m 2 -o /dev/null {url} && echo "URL exists"')
        if "URL exists" in result.stdout:
            print(result.stdout, end="")
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"curl {url} failed from {host.role}: {result.stderr.strip()}")
        time.sleep(0.5)


class OutageMeter:
    """curl (0.3 s timeout) every 50 ms from a host outside the cluster; the longest failing stretch is the
    outage."""

    def __init__(self, host: Host, url: str) -> None:
        self.host, self.url = host, url
        self.results: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            ok = self.host.run("curl", "-s", "-m", "0.3", "-o", "/dev/null", self.url).returncode == 0
            self.results.append((at, ok))
            self._stop.wait(max(0.0, 0.05 - (time.monotonic() - at)))

    def __enter__(self) -> OutageMeter:
        self._thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def outage(self) -> tuple[float, int, int]:
        """(seconds from the first failed request to the next successful one, failures, requests)."""
        longest, started = 0.0, None
        for at, ok in self.results:
            if not ok and started is None:
                started = at
            elif ok and started is not None:
                longest, started = max(longest, at - started), None
        if started is not None:
            raise RuntimeError(f"{self.url} still failed when the measurement ended")
        return longest, sum(1 for _, ok in self.results if not ok), len(self.results)


def run_demo(plane: ControlPlane) -> None:
    step("install IronLB as a user does: the CRDs, then deploy/ironlb.yaml (namespace, RBAC, operator)")
    print(plane.install_crds(REPO_ROOT / "crds"), end="")
    sizes = containers.build_images()  # from operator/Dockerfile and speaker/Dockerfile (cached)
    built = {"operator": OPERATOR_IMAGE, "speaker": SPEAKER_IMAGE}
    listed = (f"{image} ({sizes[name] / 1e6:.0f} MB)" for name, image in built.items())
    print("images built:", ", ".join(listed))
    with (
        tempfile.TemporaryDirectory(prefix="ironlb-demo-") as scratch,
        L2Lab(plane, Path(scratch), nodes=3, operator_as_pod=True, real_images=True) as l2,
    ):
        workdir = Path(scratch)
        nodes = ", ".join(f"{l2.lab.node(n).role} {l2.lab.node(n).v4}" for n in range(1, 4))
        print(f"lab nodes: {nodes}; client {l2.lab.client.v4} (outside the cluster, on the same segment)")
        show(plane, "get", "pods", "-n", "ironlb-system", "-o", "wide")
        show(plane, "get", "ironlbconfigs", "-n", "ironlb-system")
        proxy = LabProxy(l2.lab, KubeClient.from_environment(str(plane.kubeconfig))).start()
        virt = LabKubeVirt(LabKubelet(l2.lab, plane, workdir), nodes=[2])
        try:
            run_seed(plane, l2, virt)
            run_layer2_failover(plane, l2)
            run_bgp(plane, l2, workdir)
        finally:
            virt.stop()
            proxy.stop()


def run_seed(plane: ControlPlane, l2: L2Lab, virt: LabKubeVirt) -> None:
    opt_in = '{"spec": {"legacyConfigNamespaces": ["metallb-system"]}}'
    step(
        "the admin honours MetalLB's ConfigMap in metallb-system while migrating (opt-in: a namespace "
        f"anyone could create must not define addresses)\n$ kubectl patch ironlbconfig ironlb -n "
        f"ironlb-system --type merge -p '{opt_in}'"
    )
    print(
        plane.kubectl(
            "patch", "ironlbconfig", "ironlb", "-n", "ironlb-system", "--type", "merge", "-p", opt_in
        ).stdout,
        end="",
    )
    step("apply the seed's MetalLB ConfigMap (namespace metallb-system; a documentation range)")
    plane.kubectl("create", "namespace", "metallb-system")
    print(plane.kubectl("apply", "-f", "-", input=SEED_CONFIGMAP).stdout, end="")
    wait_for(
        lambda: "LegacyConfigMap" in plane.kubectl("get", "events", "-n", "metallb-system").stdout,
        30,
        "the operator to read the ConfigMap (it looks every few seconds)",
    )
    show(plane, "get", "events", "-n", "metallb-system", "--field-selector", "involvedObject.name=config")

    step("install the lab's KubeVirt stand-in and apply the seed's VirtualMachine as written")
    virt.install()
    virt.start()
    wait_for(
        lambda: plane.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        30,
        "the default ServiceAccount",
    )
    print(plane.kubectl("apply", "-f", str(SEED_VM)).stdout, end="")
    wait_for(lambda: virt.pod_of("default", "fedora-nginx") is not None, 60, "the VM's virt-launcher pod")
    show(plane, "get", "vm,vmi,pods", "-n", "default", "-o", "wide")

    step("expose the VM with the seed's LoadBalancer Service (annotation metallb.universe.tf/address-pool)")
    print(plane.kubectl("apply", "-f", "-", input=SEED_SERVICE).stdout, end="")
    ip = external_ip(plane, "metallb-nginx-svc")
    if not ip.startswith("203.0.113."):
        raise RuntimeError(f"external IP {ip} is not from addresspool-sample1")
    show(plane, "get", "service", "-n", "default", "metallb-nginx-svc")

    curl_until_it_works(l2.lab.client, f"{ip}:5678")
    print(f"(ARP for {ip} is answered by {l2.arp(ip)}; node2, where the VM runs, has {l2.lab.node(2).mac()})")
    show(plane, "get", "events", "-n", "default", "--field-selector", "involvedObject.name=metallb-nginx-svc")

    step(
        "convert the legacy ConfigMap into IronLB's CRDs: ironlb migrate -f config.yaml | kubectl apply -f -"
    )
    converted = migrate(yaml.safe_load_all(SEED_CONFIGMAP), "ironlb-system")
    for problem in converted.problems:
        print(f"problem: {problem}")
    manifests = "---\n".join(yaml.safe_dump(m, sort_keys=False) for m in converted.manifests)
    print(manifests, end="")
    print(plane.kubectl("apply", "-f", "-", input=manifests).stdout, end="")
    time.sleep(1.5)  # pool status is written twice a second
    show(plane, "get", "ipaddresspools", "-n", "ironlb-system")
    if external_ip(plane, "metallb-nginx-svc") != ip:
        raise RuntimeError("the Service's IP changed when the ConfigMap's pool became a CRD")

    step("a reversed range is rejected by the API server itself, naming the field and the value")
    rejected = plane.kubectl("apply", "-f", "-", input=BAD_POOL, check=False)
    print(rejected.stderr, end="")
    if rejected.returncode == 0 or "is reversed" not in rejected.stderr:
        raise RuntimeError("the reversed range was not rejected as expected")


def run_layer2_failover(plane: ControlPlane, l2: L2Lab) -> None:
    # a node the VM is not behind answers for this IP (every speaker computes the same election)
    nodes = [l2.lab.node(n).role for n in range(1, 4)]
    ip = next(
        f"203.0.113.{last}"
        for last in range(16, 2, -1)
        if owner(f"203.0.113.{last}", nodes) not in (None, "node2")
    )
    victim = owner(ip, nodes)
    step(f"Layer 2 failover: a Service for the VM, externalTrafficPolicy Cluster, on {ip} ({victim} answers)")
    pool = "    metallb.universe.tf/address-pool: addresspool-sample1\n"
    service = CLUSTER_SERVICE.replace(pool, f"{pool}    metallb.universe.tf/loadBalancerIPs: {ip}\n")
    print(plane.kubectl("apply", "-f", "-", input=service).stdout, end="")
    if external_ip(plane, "nginx-any-node") != ip:
        raise RuntimeError(f"nginx-any-node did not get {ip}")
    curl_until_it_works(l2.lab.client, f"{ip}:5678")
    macs = {l2.lab.node(n).mac(): l2.lab.node(n).role for n in range(1, 4)}
    step(f"unplug {victim} (its link goes down: the node is gone for the network); curl every 50 ms")
    with OutageMeter(l2.lab.client, f"http://{ip}:5678/") as meter:
        l2.lab.unplug(str(victim))
        time.sleep(3)
    outage, failures, requests = meter.outage()
    survivor = macs.get(l2.arp(ip), "nobody")
    print(
        f"{survivor} answers for {ip} now (its gratuitous ARP updated the client's neighbour entry); "
        f"outage {outage * 1000:.0f} ms ({failures} of {requests} requests failed)"
    )
    l2.lab.plug(str(victim))
    if survivor in (victim, "nobody"):
        raise RuntimeError(f"no other node took over {ip}")
    wait_for(lambda: macs.get(l2.arp(ip)) == victim, 30, f"{victim} to take {ip} back once plugged in")
    print(f"{victim} is back and answers for {ip} again")


def run_bgp(plane: ControlPlane, l2: L2Lab, workdir: Path) -> None:
    step("BGP mode: BIRD2 in the router namespace (AS 64512); a BGPPeer, a pool and a BGPAdvertisement")
    router = start_router(l2, workdir / "bird")
    try:
        peer = json.dumps(bgp_peer(l2, "lab-router"))
        print(plane.kubectl("apply", "-f", "-", input=peer).stdout, end="")
        print(plane.kubectl("apply", "-f", "-", input=BGP_OBJECTS).stdout, end="")
        ip = external_ip(plane, "metallb-nginx-bgp")
        nodes = {str(l2.lab.node(n).v4) for n in range(1, 4)}
        wait_for(lambda: (router.routes().get(f"{ip}/32") or _NO_ROUTE).next_hops == nodes, 60, "ECMP routes")
        wait_for(
            lambda: "3/3" in plane.kubectl("get", "bgppeers", "-n", "ironlb-system").stdout,
            30,
            "3/3 sessions",
        )
        show(plane, "get", "bgppeers", "-n", "ironlb-system")
        step(f"the router's view: birdc show route {ip}/32 (one path per node: ECMP)")
        print(router.birdc("show", "route", f"{ip}/32"), end="")
        curl_until_it_works(l2.lab.remote, f"{ip}:5678")

        victim = "node1"
        step(f"kill -9 the speaker of {victim}; curl every 50 ms from behind the router")
        with OutageMeter(l2.lab.remote, f"http://{ip}:5678/") as meter:
            killed = time.monotonic()
            l2.kill_speaker(victim)
            wait_for(
                lambda: str(l2.lab.node(1).v4) not in router.routes()[f"{ip}/32"].next_hops,
                30,
                "the withdrawal",
            )
            withdrawn = time.monotonic() - killed
            time.sleep(2)
        outage, failures, requests = meter.outage()
        print(
            f"the router dropped {victim}'s next hop {withdrawn * 1000:.0f} ms after the kill "
            f"(the kernel closed the BGP session); outage at the client {outage * 1000:.0f} ms "
            f"({failures} of {requests} requests failed)"
        )
        print(router.birdc("show", "route", f"{ip}/32"), end="")
        l2.ensure_speakers()
        wait_for(
            lambda: "3/3" in plane.kubectl("get", "bgppeers", "-n", "ironlb-system").stdout,
            30,
            "3/3 sessions again",
        )
        show_status(plane)
    finally:
        router.stop()


def show_status(plane: ControlPlane) -> None:
    step("ironlb status: the whole installation on one screen (instead of five kubectl get)")
    status = subprocess.run(
        [sys.executable, "-m", "ironlb.operator.cli", "status", "-n", "ironlb-system"],
        env=plane.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    print(status.stdout, end="")


class _NoRoute:
    next_hops: frozenset[str] = frozenset()


_NO_ROUTE = _NoRoute()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def main() -> int:
    exit_on_sigterm()
    began = time.monotonic()
    step("start a real control plane on loopback (building the binaries first if they are not cached)")
    try:
        with ControlPlane(with_controllers=True) as plane:
            run_demo(plane)
    except Exception as error:  # the demo's contract is a message and a non-zero exit
        if os.environ.get("IRONLB_DEMO_TRACEBACK"):
            traceback.print_exc()
        print(f"\nDEMO FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"\nDemo finished in {time.monotonic() - began:.1f} s; everything it started has been stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
