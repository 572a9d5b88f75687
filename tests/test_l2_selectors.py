"""Layer 2 mode beyond the defaults, in the lab with three nodes: IPv6 end to end (NDP answers, kill -9
failover, the client's neighbour entry moved by the unsolicited NA), L2Advertisement node selectors and
interfaces; and the NDP probe the benchmarks use, checked against the speaker's own frames."""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from bench.ndp_probe import advertised_mac, checksum, override, solicitation
from clusterhelpers import Cluster, remove_created_namespaces, wait_until
from hypothesis import given
from hypothesis import strategies as st
from ironlb.operator.speakerconfig import EXCLUDE_LABEL
from ironlb.speaker.l2.election import owner
from ironlb.speaker.l2.packets import neighbor_advertisement, parse_neighbor_solicitation
from ironlb.speaker.l2.report import status_name
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.endpoints import ready_endpoint_slice
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.network import Host, ip

NAMESPACE = "l2-selectors"
V6: dict[str, Any] = {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}
NODES = ["node1", "node2", "node3"]
V6_POOL = ipaddress.IPv6Network("2001:db8:300::100/120")
NODE2_POOL = ipaddress.IPv4Network("203.0.113.176/29")
SIDE_POOL = ipaddress.IPv4Network("203.0.113.184/29")
SIDE_LINK = ipaddress.IPv4Network("198.51.100.128/28")  # node1's eth1 .129, the side host .130
MAC = re.compile(r"([0-9a-f]{2}(?::[0-9a-f]{2}){5})")


def _advertisement(name: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "ironlb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def _on(node: str) -> list[dict[str, object]]:
    return [{"matchLabels": {"kubernetes.io/hostname": node}}]


@pytest.fixture(scope="module")
def l2lab(crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L2Lab]:
    with L2Lab(crds_installed, tmp_path_factory.mktemp("l2sel"), namespace=NAMESPACE, nodes=3) as lab:
        cluster = Cluster(crds_installed, namespace=NAMESPACE)
        cluster.pool("v6-pool", str(V6_POOL), labels={})
        cluster.pool("node2-pool", str(NODE2_POOL), labels={})
        cluster.pool("side-pool", str(SIDE_POOL), labels={})
        cluster.apply(
            _advertisement("v6-everywhere", ipAddressPools=["v6-pool"]),
            _advertisement("only-node2", ipAddressPools=["node2-pool"], nodeSelectors=_on("node2")),
            _advertisement(
                "side-link", ipAddressPools=["side-pool"], interfaces=["eth1"], nodeSelectors=_on("node1")
            ),
        )
        yield lab
        remove_created_namespaces(crds_installed)
        # node3 exists for this module only; later labs on the shared plane have two nodes
        crds_installed.kubectl("delete", "node", "node3", "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture(scope="module")
def side(l2lab: L2Lab) -> Iterator[Host]:
    """A second link of node1 (its eth1) to a host of its own: a segment only node1 is on."""
    node1 = l2lab.lab.node(1)
    host = Host("side", l2lab.lab.name("side"), SIDE_LINK[2], ipaddress.IPv6Address("2001:db8:400::2"))
    ip("netns", "add", host.namespace)
    try:
        ip("link", "add", "eth1", "netns", node1.namespace, "type", "veth", "peer", "name", "eth0", "netns",
           host.namespace)  # fmt: skip
        for namespace, device, address in ((node1.namespace, "eth1", 1), (host.namespace, "eth0", 2)):
            ip("-n", namespace, "addr", "add", f"{SIDE_LINK[address]}/{SIDE_LINK.prefixlen}", "dev", device)
            ip("-n", namespace, "link", "set", device, "up")
        ip("-n", host.namespace, "route", "add", str(SIDE_POOL), "dev", "eth0")
        yield host
    finally:
        ip("netns", "delete", host.namespace, check=False)  # takes node1's eth1 with it


def _macs(host: Host, target: str, count: int = 3) -> set[str]:
    """Every MAC that answers ARP for ``target`` on the host's eth0 during ``count`` requests."""
    result = host.run("arping", "-c", str(count), "-W", "0.2", "-w", "2", "-I", "eth0", target)
    return set(MAC.findall(result.stdout.lower()))


def _neighbour(client: Host, address: str) -> str:
    match = re.search(r"lladdr (\S+)", client.run("ip", "neigh", "show", address, "dev", "eth0").stdout)
    return match.group(1).lower() if match else ""


def _service(
    l2lab: L2Lab, name: str, requested: str | None = None, ready_endpoint: bool = True, **spec: Any
) -> tuple[str, str]:
    """A new LoadBalancer Service (in a namespace of its own); returns (namespace, its IP)."""
    cluster = Cluster(l2lab.plane, namespace=NAMESPACE)
    namespace = cluster.new_namespace()
    annotations = {"ironlb.io/loadBalancerIPs": requested} if requested else None
    cluster.service(namespace, name, annotations=annotations, ready_endpoint=ready_endpoint, **spec)
    address = cluster.wait_ingress(namespace, name)[0]
    assert requested is None or address == requested
    l2lab.ensure_speakers()  # an earlier test may have stopped one
    return namespace, address


# ------------------------------------------------------------------------------------------- in the lab
def test_a_service_without_a_ready_endpoint_is_answered_by_nobody(l2lab: L2Lab) -> None:
    """As MetalLB: an IP that would lead to no pod is not announced (externalTrafficPolicy Cluster too).
    One ready endpoint, even on no node, makes its owner answer; the endpoint no longer ready, it falls
    silent within seconds; an endpoint on a node not announcing it is enough for Cluster."""
    namespace, address = _service(l2lab, "empty", ready_endpoint=False, **V6)
    expected = owner(address, NODES)
    macs = {node: l2lab.lab.node(int(node[-1])).mac() for node in NODES}
    time.sleep(3)  # the speakers have had the Service for long enough to answer if they would
    for _ in range(5):
        assert l2lab.ndp(address) == "", "an IP without a ready endpoint got an answer"
        time.sleep(0.2)
    endpoint = ready_endpoint_slice(namespace, "empty", family=6)
    l2lab.plane.kubectl("apply", "-f", "-", input=json.dumps(endpoint))
    wait_until(lambda: l2lab.ndp(address) == macs[str(expected)], 10, f"{expected} to answer once ready")
    endpoint["endpoints"][0]["conditions"]["ready"] = False
    l2lab.plane.kubectl("apply", "-f", "-", input=json.dumps(endpoint))
    wait_until(lambda: l2lab.ndp(address) == "", 5, f"{address} to fall silent, its endpoint not ready")
    endpoint["endpoints"][0] |= {"conditions": {"ready": True}, "nodeName": "elsewhere"}
    l2lab.plane.kubectl("apply", "-f", "-", input=json.dumps(endpoint))
    wait_until(lambda: l2lab.ndp(address) == macs[str(expected)], 10, "an answer, an endpoint elsewhere")


def test_ipv6_owner_answers_ndp_and_a_killed_owner_is_replaced_within_a_second(l2lab: L2Lab) -> None:
    cluster = Cluster(l2lab.plane, namespace=NAMESPACE)
    namespace, address = _service(l2lab, "web6", ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack")
    assert ipaddress.ip_address(address) in V6_POOL
    expected = owner(address, NODES)
    assert expected is not None
    survivor = owner(address, NODES, [n for n in NODES if n != expected])
    assert survivor is not None
    macs = {node: l2lab.lab.node(int(node[-1])).mac() for node in NODES}
    wait_until(lambda: l2lab.ndp(address) == macs[expected], 30, f"{address} answered by {expected}")
    assert l2lab.ndp(str(V6_POOL[-1])) == "", "an IPv6 address nobody owns gets no answer"
    client = l2lab.lab.client
    client.run("ping", "-6", "-c", "1", "-W", "1", address)  # the kernel resolves and keeps an entry
    assert _neighbour(client, address) == macs[expected]

    failover = l2lab.failover(address, expected, macs[survivor])
    print(f"IPv6 failover: {failover * 1000:.0f} ms from kill -9 to the first NA from {survivor}")
    assert failover < 1.0, f"failover took {failover:.2f} s"
    # the unsolicited NA (override flag) moved the client's entry without waiting for it to expire
    wait_until(lambda: _neighbour(client, address) == macs[survivor], 2, "the client's entry to follow")
    # who answers is reported in a ServiceL2Status (the speakers never write the Service itself)
    report = status_name(f"{namespace}/web6", address)

    def reported_node() -> str:
        found = l2lab.plane.kubectl(
            *("get", "servicel2status", report, "-n", NAMESPACE, "-o", "jsonpath={.status.node}"), check=False
        )
        return found.stdout.strip()

    wait_until(lambda: reported_node() == survivor, 10, "the ServiceL2Status to name the new owner")
    listing = l2lab.plane.kubectl("get", "servicel2statuses", "-n", NAMESPACE).stdout
    assert "web6" in listing and address in listing and survivor in listing and "Layer2" in listing, listing
    service = cluster.get("service", "web6", namespace) or {}
    assert not [k for k in service["metadata"].get("annotations") or {} if "announcing" in k]


def test_a_node_selector_lets_only_the_selected_node_answer(l2lab: L2Lab) -> None:
    # an IP node2 would lose to another node if the advertisement selected every node
    requested = next(str(a) for a in NODE2_POOL if owner(str(a), NODES) != "node2")
    namespace, address = _service(l2lab, "node2-only", requested)
    macs = {node: l2lab.lab.node(int(node[-1])).mac() for node in NODES}
    wait_until(lambda: l2lab.arp(address) == macs["node2"], 30, f"node2 to answer for {address}")
    assert _macs(l2lab.lab.client, address) == {macs["node2"]}
    Cluster(l2lab.plane, namespace=NAMESPACE).wait_event(namespace, "node2-only", "Announcing")

    l2lab.kill_speaker("node2")
    time.sleep(1.0)  # three times the heartbeat timeout: another node would have taken over by now
    try:
        for _ in range(3):
            assert _macs(l2lab.lab.client, address) == set(), "a node the selector excludes answered"
    finally:
        l2lab.ensure_speakers()
    wait_until(lambda: l2lab.arp(address) == macs["node2"], 30, "node2 to answer again once restarted")


def test_a_node_excluded_from_external_load_balancers_stops_answering(l2lab: L2Lab) -> None:
    """Kubernetes' well-known label: its presence alone takes the node out of every advertisement."""
    requested = next(str(a) for a in V6_POOL if owner(str(a), NODES) == "node3")
    _, address = _service(l2lab, "excluded", requested, ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack")
    macs = {node: l2lab.lab.node(int(node[-1])).mac() for node in NODES}
    wait_until(lambda: l2lab.ndp(address) == macs["node3"], 30, f"node3 to answer for {address}")
    label = f"{EXCLUDE_LABEL}="
    l2lab.plane.kubectl("label", "node", "node3", label)
    try:
        survivor = owner(address, NODES, ["node1", "node2"])
        assert survivor is not None
        wait_until(lambda: l2lab.ndp(address) == macs[survivor], 15, f"{survivor} to take {address} over")
    finally:
        l2lab.plane.kubectl("label", "node", "node3", f"{EXCLUDE_LABEL}-")
    wait_until(lambda: l2lab.ndp(address) == macs["node3"], 15, "node3 to answer again once unlabelled")


def test_an_interfaces_list_answers_on_that_interface_and_not_on_the_primary(
    l2lab: L2Lab, side: Host
) -> None:
    _, address = _service(l2lab, "side", str(SIDE_POOL[0]))
    eth1 = l2lab.lab.node(1).mac("eth1")
    wait_until(lambda: _macs(side, address, 1) == {eth1}, 30, f"node1's eth1 to answer for {address}")
    assert _macs(side, address) == {eth1}
    assert _macs(l2lab.lab.client, address) == set(), "answered on the LAN, which the advertisement excludes"


# ---------------------------------------------------------------------------------- the probe's frames
def _icmpv6_valid(frame: bytes) -> bool:
    """Whether an Ethernet/IPv6/ICMPv6 frame's checksum is right (it sums to zero with the pseudo-header)."""
    length = int.from_bytes(frame[18:20], "big")
    pseudo = frame[22:38] + frame[38:54] + length.to_bytes(4, "big") + b"\0\0\0\x3a"
    return checksum(pseudo + frame[54 : 54 + length]) == 0


macs = st.binary(min_size=6, max_size=6).map(lambda raw: bytes([raw[0] & 0xFE]) + raw[1:])  # unicast
v6 = st.integers(min_value=1, max_value=2**128 - 1).map(ipaddress.IPv6Address)


@given(ours=macs, source=v6, target=v6)
def test_the_probes_solicitation_is_one_the_speaker_understands(
    ours: bytes, source: ipaddress.IPv6Address, target: ipaddress.IPv6Address
) -> None:
    frame = solicitation(ours, str(source), str(target))
    assert _icmpv6_valid(frame)
    parsed = parse_neighbor_solicitation(frame)
    assert parsed is not None
    assert (parsed.source_mac, parsed.source_ip, parsed.target) == (ours, source, target)
    assert frame[:3] == b"\x33\x33\xff" and frame[3:6] == target.packed[-3:]


@given(theirs=macs, ours=macs, source=v6, target=v6, solicited=st.booleans())
def test_the_probe_reads_the_speakers_advertisements(
    theirs: bytes, ours: bytes, source: ipaddress.IPv6Address, target: ipaddress.IPv6Address, solicited: bool
) -> None:
    answer = (
        neighbor_advertisement(theirs, target, ours, source)
        if solicited
        else neighbor_advertisement(theirs, target)
    )
    assert _icmpv6_valid(answer)
    assert advertised_mac(answer, target.packed) == ":".join(f"{b:02x}" for b in theirs)
    assert override(answer)
    other = ipaddress.IPv6Address((int(target) + 1) % 2**128)
    assert advertised_mac(answer, other.packed) is None
    assert advertised_mac(solicitation(ours, str(source), str(target)), target.packed) is None
