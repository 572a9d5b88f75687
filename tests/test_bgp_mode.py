"""BGP mode end to end: the operator's DaemonSet speakers (exabgp) peer with BIRD2 in the lab's router
namespace; the router's RIB shows what MetalLB's rules say it should, and a client behind it reaches the
Service through the ECMP routes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from clusterhelpers import Cluster, wait_until
from ironlb.operator.kube import KubeClient
from ironlb_lab.bgplab import bgp_peer, start_router
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.routers import Bird
from ironlb_lab.workloads import LabKubelet, LabProxy

NAMESPACE = "bgp-lab"
SELECTED = {"matchLabels": {"ironlb-test": "bgp-mode"}}


@dataclass
class BGPLab:
    l2: L2Lab
    router: Bird
    kubelet: LabKubelet
    cluster: Cluster

    def node_ips(self, *numbers: int) -> frozenset[str]:
        return frozenset(str(self.l2.lab.node(n).v4) for n in numbers)

    def next_hops(self, ip: str) -> frozenset[str]:
        route = self.router.routes().get(f"{ip}/32")
        return route.next_hops if route else frozenset()


@pytest.fixture(scope="module")
def bgp(crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BGPLab]:
    workdir = tmp_path_factory.mktemp("bgp")
    with L2Lab(crds_installed, workdir, namespace=NAMESPACE, nodes=3) as l2:
        router = start_router(l2, workdir / "bird")
        proxy = LabProxy(l2.lab, KubeClient.from_environment(str(crds_installed.kubeconfig))).start()
        try:
            cluster = Cluster(crds_installed, namespace=NAMESPACE)
            cluster.pool("bgp-pool", "203.0.113.64/28", serviceAllocation={"namespaceSelectors": [SELECTED]})
            cluster.apply(
                bgp_peer(l2),
                {
                    "apiVersion": "ironlb.io/v1beta1",
                    "kind": "BGPAdvertisement",
                    "metadata": {"name": "to-router", "namespace": NAMESPACE},
                    "spec": {
                        "ipAddressPools": ["bgp-pool"],
                        "communities": ["64512:100", "no-export", "large:64512:1:2"],
                    },
                },
            )
            yield BGPLab(l2, router, LabKubelet(l2.lab, crds_installed, workdir), cluster)
        finally:
            proxy.stop()
            router.stop()


def _service(bgp: BGPLab, name: str, node: int, **spec: Any) -> tuple[str, str]:
    """A LoadBalancer Service with one ready pod behind ``node``; returns (namespace, IP)."""
    namespace = bgp.cluster.new_namespace(labels=SELECTED["matchLabels"])
    bgp.kubelet.run_pod(node, f"{name}-pod", namespace, {"app": name})
    bgp.cluster.service(namespace, name, **spec)
    return namespace, bgp.cluster.wait_ingress(namespace, name)[0]


def _curl_from_behind_the_router(bgp: BGPLab, ip: str, expected: str) -> None:
    """curl from the remote host (its traffic crosses the router); the lab proxy syncs twice a second."""
    wait_until(
        lambda: expected in bgp.l2.lab.remote.run("curl", "-s", "-m", "2", f"http://{ip}/").stdout,
        15,
        f"curl http://{ip}/ from behind the router",
    )


def test_every_node_announces_with_ecmp_and_the_client_behind_the_router_reaches_the_service(
    bgp: BGPLab,
) -> None:
    wait_until(
        lambda: set(bgp.router.sessions().values()) == {"Established"}, 30, "BGP sessions to all nodes"
    )
    namespace, ip = _service(bgp, "web", 1)
    started = time.monotonic()
    wait_until(lambda: bgp.next_hops(ip) == bgp.node_ips(1, 2, 3), 30, f"{ip}/32 via all three nodes")
    print(f"IP assigned -> route with 3 next hops in BIRD's RIB: {time.monotonic() - started:.2f} s")
    route = bgp.router.routes()[f"{ip}/32"]
    assert {"64512:100", "65535:65281"} <= route.communities
    assert "64512:1:2" in route.large_communities
    assert bgp.router.kernel_routes().count("nexthop via") == 3, bgp.router.kernel_routes()

    _curl_from_behind_the_router(bgp, ip, "served by web-pod")

    # kubectl get bgppeers: every selected node's session is up, and each node's entry says so
    def peer_status() -> dict[str, Any]:
        peer = bgp.cluster.get("bgppeers", "router") or {}
        return dict(peer.get("status") or {})

    wait_until(lambda: peer_status().get("sessions") == "3/3", 30, "BGPPeer status 3/3")
    nodes = {entry["node"]: entry for entry in peer_status()["nodes"]}
    assert {entry["state"] for entry in nodes.values()} == {"Established"}
    table = bgp.l2.plane.kubectl("get", "bgppeers", "-n", NAMESPACE).stdout
    assert "3/3" in table, table

    bgp.l2.plane.kubectl("delete", "service", "web", "-n", namespace)
    wait_until(lambda: not bgp.next_hops(ip), 10, "the route withdrawn after the Service is deleted")


def test_local_traffic_policy_announces_only_from_the_pods_node(bgp: BGPLab) -> None:
    _, ip = _service(bgp, "local", 2, externalTrafficPolicy="Local")
    wait_until(lambda: bgp.next_hops(ip) == bgp.node_ips(2), 30, f"{ip}/32 only via node2")
    time.sleep(1.0)  # nobody else joins later
    assert bgp.next_hops(ip) == bgp.node_ips(2)
    _curl_from_behind_the_router(bgp, ip, "served by local-pod")


def test_a_graceful_speaker_stop_removes_its_next_hop_at_once(bgp: BGPLab) -> None:
    bgp.l2.ensure_speakers()
    _, ip = _service(bgp, "rolling", 3)
    wait_until(lambda: bgp.next_hops(ip) == bgp.node_ips(1, 2, 3), 30, f"{ip}/32 via all three nodes")
    stopped = time.monotonic()
    bgp.l2.kill_speaker("node3", graceful=True)
    wait_until(lambda: bgp.next_hops(ip) == bgp.node_ips(1, 2), 5, "node3's next hop to go")
    print(f"graceful stop -> next hop gone: {time.monotonic() - stopped:.2f} s")
    assert time.monotonic() - stopped < 2.0
    bgp.l2.ensure_speakers()
    wait_until(lambda: bgp.next_hops(ip) == bgp.node_ips(1, 2, 3), 30, "node3 back after its restart")
