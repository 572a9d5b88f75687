"""BGP mode end to end: the operator's DaemonSet speakers (exabgp) peer with BIRD2 in the lab's router
namespace; the router's RIB shows what MetalLB's rules say it should, and a client behind it reaches the
Service through the ECMP routes.

The router peers with every node over IPv4 (BGPPeer ``router``) and IPv6 (``router-v6``) from the start,
and has one more protocol for node1 on a second address and port with an MD5 password (used by the
password test only). Each test uses its own pool and namespaces, and restores what it changes."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from clusterhelpers import Cluster, remove_created_namespaces, wait_until
from hypothesis import given
from hypothesis import strategies as st
from ironlb.api.kube import KubeClient
from ironlb.operator.speakerconfig import EXCLUDE_LABEL
from ironlb.speaker.bgp.exabgp_process import no_connection_reason, redact
from ironlb_lab.bgplab import NODE_ASN, add_lan_address, bgp_peer, node_neighbors, start_router
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.routers import Bird, Neighbor, same_moment
from ironlb_lab.workloads import LabKubelet, LabProxy

NAMESPACE = "bgp-lab"
SELECTED = {"matchLabels": {"ironlb-test": "bgp-mode"}}
# The MD5 session runs between second LAN addresses of the router and of node1 (BIRD keeps one protocol per
# neighbor address; the speaker tells its sessions apart by peer address), on a port of its own.
MD5_ADDRESS = "198.51.100.125"
MD5_SOURCE = "198.51.100.21"
MD5_PORT = 1179
ROUTER_PASSWORD = "lab-router-md5-secret"
WRONG_PASSWORD = "not-the-router-password"


@dataclass
class BGPLab:
    l2: L2Lab
    router: Bird
    kubelet: LabKubelet
    cluster: Cluster

    @property
    def v4(self) -> list[Neighbor]:
        return node_neighbors(self.l2, 4)

    @property
    def v6(self) -> list[Neighbor]:
        return node_neighbors(self.l2, 6)

    def node_ips(self, *numbers: int, family: int = 4) -> frozenset[str]:
        nodes = [self.l2.lab.node(n) for n in numbers]
        return frozenset(str(node.v6 if family == 6 else node.v4) for node in nodes)

    def next_hops(self, ip: str) -> frozenset[str]:
        route = self.router.routes().get(f"{ip}/{128 if ':' in ip else 32}")
        return route.next_hops if route else frozenset()

    def wait_hops(self, ip: str, expected: frozenset[str], timeout: float, what: str) -> None:
        """Wait for the router's next hops of ``ip``; on timeout say what the router and the peers show."""
        try:
            wait_until(lambda: self.next_hops(ip) == expected, timeout, what)
        except AssertionError:
            peers = self.l2.plane.kubectl("get", "bgppeers", "-n", NAMESPACE, "-o", "yaml", check=False)
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}: next hops {sorted(self.next_hops(ip))}, "
                f"router sessions {self.router.sessions()}\n{peers.stdout[-4000:]}\n{self.l2.speaker_logs()}"
            ) from None

    def established(self, neighbors: list[Neighbor]) -> bool:
        return all(self.router.state(neighbor) == "Established" for neighbor in neighbors)

    def peer_status(self, name: str) -> dict[str, Any]:
        return dict((self.cluster.get("bgppeers", name) or {}).get("status") or {})

    def node_entry(self, peer: str, node: str) -> dict[str, Any]:
        entries = self.peer_status(peer).get("nodes") or []
        return next((dict(entry) for entry in entries if entry["node"] == node), {})

    def patch_peer(self, name: str, spec: dict[str, Any]) -> None:
        patch = json.dumps({"spec": spec})
        self.l2.plane.kubectl("patch", "bgppeer", name, "-n", NAMESPACE, "--type", "merge", "-p", patch)

    def pool(self, name: str, *cidrs: str, **advertisement: Any) -> dict[str, dict[str, str]]:
        """A pool for one test (Services of namespaces labelled ``ironlb-test=<name>``) and its
        BGPAdvertisement; returns the namespace selector (its labels) to use."""
        selected = {"matchLabels": {"ironlb-test": name}}
        self.cluster.pool(name, *cidrs, serviceAllocation={"namespaceSelectors": [selected]})
        self.cluster.apply(
            {
                "apiVersion": "ironlb.io/v1beta1",
                "kind": "BGPAdvertisement",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"ipAddressPools": [name], **advertisement},
            }
        )
        return selected


@pytest.fixture(scope="module")
def bgp(crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BGPLab]:
    workdir = tmp_path_factory.mktemp("bgp")
    with L2Lab(crds_installed, workdir, namespace=NAMESPACE, nodes=3, real_images=True) as l2:
        add_lan_address(l2.lab.router, MD5_ADDRESS)
        add_lan_address(l2.lab.node(1), MD5_SOURCE)
        md5 = Neighbor(MD5_SOURCE, NODE_ASN, ROUTER_PASSWORD, MD5_ADDRESS, MD5_PORT)
        router = start_router(l2, workdir / "bird", ipv6=True, extra=[md5])
        proxy = LabProxy(l2.lab, KubeClient.from_environment(str(crds_installed.kubeconfig))).start()
        try:
            cluster = Cluster(crds_installed, namespace=NAMESPACE)
            cluster.pool("bgp-pool", "203.0.113.64/28", serviceAllocation={"namespaceSelectors": [SELECTED]})
            cluster.apply(
                bgp_peer(l2),
                bgp_peer(l2, "router-v6", peerAddress=str(l2.lab.router.v6)),
                {
                    "apiVersion": "ironlb.io/v1beta1",
                    "kind": "Community",
                    "metadata": {"name": "aliases", "namespace": NAMESPACE},
                    "spec": {"communities": [{"name": "lab-only", "value": "64512:200"}]},
                },
                {
                    "apiVersion": "ironlb.io/v1beta1",
                    "kind": "BGPAdvertisement",
                    "metadata": {"name": "to-router", "namespace": NAMESPACE},
                    "spec": {
                        "ipAddressPools": ["bgp-pool"],
                        "communities": ["64512:100", "no-export", "large:64512:1:2", "lab-only"],
                    },
                },
            )
            yield BGPLab(l2, router, LabKubelet(l2.lab, crds_installed, workdir), cluster)
        finally:
            remove_created_namespaces(crds_installed)
            proxy.stop()
            router.stop()


def _service(
    bgp: BGPLab, name: str, node: int, labels: dict[str, dict[str, str]] = SELECTED, **spec: Any
) -> tuple[str, str]:
    """A LoadBalancer Service with one ready pod behind ``node``; returns (namespace, IP)."""
    namespace = bgp.cluster.new_namespace(labels=labels["matchLabels"])
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


def _hostname_selector(*nodes: str) -> list[dict[str, Any]]:
    return [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": list(nodes)}]}
    ]


def test_every_node_announces_with_ecmp_and_the_client_behind_the_router_reaches_the_service(
    bgp: BGPLab,
) -> None:
    wait_until(lambda: bgp.established(bgp.v4 + bgp.v6), 30, "BGP sessions to all nodes, IPv4 and IPv6")
    namespace, ip = _service(bgp, "web", 1)
    started = time.monotonic()
    bgp.wait_hops(ip, bgp.node_ips(1, 2, 3), 30, f"{ip}/32 via all three nodes")
    print(f"IP assigned -> route with 3 next hops in BIRD's RIB: {time.monotonic() - started:.2f} s")
    route = bgp.router.routes()[f"{ip}/32"]
    assert {"64512:100", "65535:65281", "64512:200"} <= route.communities  # the last by its alias
    assert "64512:1:2" in route.large_communities
    assert bgp.router.kernel_routes().count("nexthop via") == 3, bgp.router.kernel_routes()

    _curl_from_behind_the_router(bgp, ip, "served by web-pod")

    # kubectl get bgppeers: every selected node's session is up, and each node's entry says so
    wait_until(lambda: bgp.peer_status("router").get("sessions") == "3/3", 30, "BGPPeer status 3/3")
    nodes = {entry["node"]: entry for entry in bgp.peer_status("router")["nodes"]}
    assert {entry["state"] for entry in nodes.values()} == {"Established"}
    table = bgp.l2.plane.kubectl("get", "bgppeers", "-n", NAMESPACE).stdout
    assert "3/3" in table, table

    bgp.l2.plane.kubectl("delete", "service", "web", "-n", namespace)
    wait_until(lambda: not bgp.next_hops(ip), 10, "the route withdrawn after the Service is deleted")


def test_local_traffic_policy_announces_only_from_the_pods_node(bgp: BGPLab) -> None:
    _, ip = _service(bgp, "local", 2, externalTrafficPolicy="Local")
    bgp.wait_hops(ip, bgp.node_ips(2), 30, f"{ip}/32 only via node2")
    time.sleep(1.0)  # nobody else joins later
    assert bgp.next_hops(ip) == bgp.node_ips(2)
    _curl_from_behind_the_router(bgp, ip, "served by local-pod")


def test_a_node_excluded_from_external_load_balancers_withdraws_its_routes(bgp: BGPLab) -> None:
    _, ip = _service(bgp, "excluded", 3)
    wait_until(lambda: bgp.next_hops(ip) == bgp.node_ips(1, 2, 3), 30, f"{ip}/32 via 3 nodes")
    bgp.l2.plane.kubectl("label", "node", "node3", f"{EXCLUDE_LABEL}=true")
    try:
        wait_until(lambda: bgp.next_hops(ip) == bgp.node_ips(1, 2), 15, "node3 no longer a next hop")
    finally:
        bgp.l2.plane.kubectl("label", "node", "node3", f"{EXCLUDE_LABEL}-")
    wait_until(lambda: bgp.next_hops(ip) == bgp.node_ips(1, 2, 3), 15, "node3 a next hop again")


def test_node_selectors_of_advertisements_and_peers_are_respected(bgp: BGPLab) -> None:
    labels = bgp.pool("bgp-node1", "203.0.113.80/28", nodeSelectors=_hostname_selector("node1"))
    _, only_node1 = _service(bgp, "picky", 2, labels)
    _, everywhere = _service(bgp, "broad", 3)
    wait_until(lambda: bgp.next_hops(everywhere) == bgp.node_ips(1, 2, 3), 30, "the reference via 3 nodes")
    wait_until(lambda: bgp.next_hops(only_node1) == bgp.node_ips(1), 30, f"{only_node1}/32 only via node1")
    time.sleep(1.0)  # nobody else joins later
    assert bgp.next_hops(only_node1) == bgp.node_ips(1)

    node3_v4, node3_v6 = bgp.v4[2], bgp.v6[2]
    v6_since = bgp.router.since(node3_v6)
    bgp.patch_peer("router", {"nodeSelectors": _hostname_selector("node1", "node2")})
    try:
        wait_until(lambda: bgp.router.state(node3_v4) != "Established", 15, "node3's IPv4 session down")
        wait_until(lambda: bgp.next_hops(everywhere) == bgp.node_ips(1, 2), 10, "node3 no longer a next hop")
        wait_until(lambda: bgp.peer_status("router").get("sessions") == "2/2", 15, "BGPPeer status 2/2")
        wait_until(lambda: not bgp.node_entry("router", "node3"), 10, "node3's entry gone from the status")
        assert bgp.established(bgp.v4[:2])
        # node3's exabgp was reloaded without its IPv4 neighbor: its IPv6 session was not touched
        assert bgp.router.state(node3_v6) == "Established"
        assert same_moment(bgp.router.since(node3_v6), v6_since)
        time.sleep(1.0)  # node3 does not come back on its own
        assert bgp.router.state(node3_v4) != "Established"
    finally:
        bgp.patch_peer("router", {"nodeSelectors": None})
    wait_until(lambda: bgp.established(bgp.v4), 20, "node3's IPv4 session back")
    wait_until(lambda: bgp.next_hops(everywhere) == bgp.node_ips(1, 2, 3), 15, "node3 a next hop again")
    assert bgp.next_hops(only_node1) == bgp.node_ips(1)


def test_a_session_that_never_connects_is_explained() -> None:
    with_password = no_connection_reason("198.51.100.125", 1179, 5.2, password=True)
    assert with_password.startswith("no TCP connection to 198.51.100.125:1179 after 5 s")
    assert "MD5 password does not match" in with_password
    assert "MD5 password does not match" not in no_connection_reason("2001:db8::1", 179, 30, password=False)


@given(st.text().filter(lambda t: "md5-password" not in t), st.text())
def test_exabgps_output_never_carries_the_md5_password(before: str, secret: str) -> None:
    line = f"{before}md5-password     | '{secret}'"
    assert redact(line) == f"{before}md5-password <redacted>"
    assert redact(before) == before


def _secret(name: str, password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


def test_a_wrong_md5_password_keeps_the_session_down_and_says_why(bgp: BGPLab) -> None:
    md5 = bgp.router.neighbors[-1]
    _, ip = _service(bgp, "signed", 2)
    bgp.wait_hops(ip, bgp.node_ips(1, 2, 3), 30, f"{ip}/32 via all three nodes")
    bgp.cluster.apply(_secret("md5-wrong", WRONG_PASSWORD), _secret("md5-right", ROUTER_PASSWORD))
    bgp.cluster.apply(
        bgp_peer(
            bgp.l2,
            "router-md5",
            peerAddress=MD5_ADDRESS,
            peerPort=MD5_PORT,
            sourceAddress=MD5_SOURCE,
            passwordSecret={"name": "md5-wrong"},
            nodeSelectors=_hostname_selector("node1"),
        )
    )
    try:
        entry = wait_until(
            lambda: (e := bgp.node_entry("router-md5", "node1")) and "MD5" in e.get("message", "") and e,
            30,
            "node1's status entry saying why the session is down",
        )
        print(f"status.nodes[node1] with the wrong password: {entry}")
        assert entry["state"] != "Established" and entry["announcedPrefixes"] == 0
        assert bgp.router.state(md5) != "Established"
        assert bgp.peer_status("router-md5").get("sessions") == "0/1"
        assert bgp.established(bgp.v4), "the other sessions of node1 are not disturbed"

        # the password appears nowhere a user or a log collector reads
        status = json.dumps(bgp.cluster.get("bgppeers", "router-md5"))
        events = bgp.l2.plane.kubectl("get", "events", "-A", "-o", "json").stdout
        logs = "".join(bgp.l2.speaker_log(f"node{number}") for number in (1, 2, 3))
        assert "MD5 password does not match" in logs, "the speaker's log says why too"
        for text in (status, events, logs):
            assert WRONG_PASSWORD not in text and ROUTER_PASSWORD not in text

        # the same peer with the router's password comes up: the password was the only thing wrong
        bgp.patch_peer("router-md5", {"passwordSecret": {"name": "md5-right"}})
        wait_until(lambda: bgp.router.state(md5) == "Established", 20, "the session with the right password")
        over_md5 = bgp.node_ips(1, 2, 3) | {MD5_SOURCE}
        wait_until(lambda: bgp.next_hops(ip) == over_md5, 10, f"{ip}/32 learned over the MD5 session too")
        wait_until(
            lambda: bgp.node_entry("router-md5", "node1").get("announcedPrefixes", 0) > 0,
            15,
            "node1's status entry Established, announcing",
        )
        assert bgp.node_entry("router-md5", "node1")["state"] == "Established"
    finally:
        bgp.l2.plane.kubectl("delete", "bgppeer", "router-md5", "-n", NAMESPACE, "--ignore-not-found")
        bgp.l2.plane.kubectl(
            "delete", "secret", "md5-wrong", "md5-right", "-n", NAMESPACE, "--ignore-not-found"
        )
    wait_until(lambda: bgp.router.state(md5) != "Established", 15, "the MD5 session closed with its BGPPeer")
    bgp.wait_hops(ip, bgp.node_ips(1, 2, 3), 10, "its next hop gone with it")


def test_ipv6_peers_learn_the_service_prefix_with_ecmp(bgp: BGPLab) -> None:
    """A dual-stack Service (the lab's pods have IPv4 endpoints only, which is all the rule asks for: a
    ready endpoint): its IPv6 address goes to the IPv6 sessions, its IPv4 address to the IPv4 ones."""
    labels = bgp.pool("bgp-dual", "203.0.113.96/28", "2001:db8:301::/120")
    namespace = bgp.cluster.new_namespace(labels=labels["matchLabels"])
    bgp.kubelet.run_pod(1, "six-pod", namespace, {"app": "six"})
    bgp.cluster.service(namespace, "six", ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack")
    ips = bgp.cluster.wait_ingress(namespace, "six", count=2)
    v4, v6 = sorted(ips, key=lambda ip: ":" in ip)
    assert v6.startswith("2001:db8:301:"), ips
    started = time.monotonic()
    bgp.wait_hops(v6, bgp.node_ips(1, 2, 3, family=6), 30, f"{v6}/128 via all three nodes")
    print(f"IPv6 IP assigned -> /128 with 3 next hops in BIRD's RIB: {time.monotonic() - started:.2f} s")
    bgp.wait_hops(v4, bgp.node_ips(1, 2, 3), 15, f"{v4}/32 via all three nodes")
    kernel = bgp.router.kernel_routes(6)
    assert v6 in kernel and kernel.count("nexthop via") >= 3, kernel
    wait_until(lambda: bgp.peer_status("router-v6").get("sessions") == "3/3", 30, "BGPPeer router-v6 3/3")
    # each family on its own sessions: no IPv6 prefix has an IPv4 next hop, nor the other way round
    for prefix, route in bgp.router.routes().items():
        assert all((":" in hop) == (":" in prefix) for hop in route.next_hops), (prefix, route)

    bgp.l2.plane.kubectl("delete", "service", "six", "-n", namespace)
    wait_until(lambda: not bgp.next_hops(v6), 10, "the /128 withdrawn after the Service is deleted")


def test_a_peer_change_reloads_only_its_sessions_and_the_routes_come_back(bgp: BGPLab) -> None:
    _, ip = _service(bgp, "reload", 1)
    bgp.wait_hops(ip, bgp.node_ips(1, 2, 3), 30, f"{ip}/32 via all three nodes")
    assert {bgp.router.hold_time(n) for n in bgp.v4} == {9}
    v6_since = {n.address: bgp.router.since(n) for n in bgp.v6}
    changed = time.monotonic()
    bgp.patch_peer("router", {"holdTime": "6s"})
    try:
        wait_until(
            lambda: {bgp.router.hold_time(n) for n in bgp.v4} == {6}, 20, "hold timer 6 s on all nodes"
        )
        bgp.wait_hops(ip, bgp.node_ips(1, 2, 3), 15, "the route back via all nodes")
        print(f"holdTime changed -> sessions re-established, routes back: {time.monotonic() - changed:.2f} s")
        assert bgp.established(bgp.v6)
        assert all(same_moment(bgp.router.since(n), v6_since[n.address]) for n in bgp.v6), (
            "IPv6 sessions were reset"
        )
    finally:
        bgp.patch_peer("router", {"holdTime": "9s"})
    wait_until(lambda: {bgp.router.hold_time(n) for n in bgp.v4} == {9}, 20, "hold timer back to 9 s")
    bgp.wait_hops(ip, bgp.node_ips(1, 2, 3), 15, "the route back again")


def test_a_graceful_speaker_stop_removes_its_next_hop_at_once(bgp: BGPLab) -> None:
    bgp.l2.ensure_speakers()
    _, ip = _service(bgp, "rolling", 3)
    bgp.wait_hops(ip, bgp.node_ips(1, 2, 3), 30, f"{ip}/32 via all three nodes")
    stopped = time.monotonic()
    bgp.l2.kill_speaker("node3", graceful=True)
    bgp.wait_hops(ip, bgp.node_ips(1, 2), 5, "node3's next hop to go")
    print(f"graceful stop -> next hop gone: {time.monotonic() - stopped:.2f} s")
    assert time.monotonic() - stopped < 2.0
    bgp.l2.ensure_speakers()
    bgp.wait_hops(ip, bgp.node_ips(1, 2, 3), 30, "node3 back after its restart")
