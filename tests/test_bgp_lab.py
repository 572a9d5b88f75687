"""BGP mode against real routers: exabgp supervised per node namespace, BIRD2 and GoBGP in the router's."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from ironlb.speaker.bgp.routes import Route
from ironlb_lab.bgpspeakers import LabSpeaker, session_to_router
from ironlb_lab.network import LabNetwork
from ironlb_lab.routers import Bird, GoBGP, Neighbor, RouteInfo

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

ROUTER_ASN, NODE_ASN = 64500, 64512
PREFIX = "203.0.113.10/32"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float = 15, what: str = "condition") -> tuple[T, float]:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        value = check()
        if value:
            return value, time.monotonic() - start
        time.sleep(0.005)
    raise TimeoutError(f"{what} not met within {timeout} s")


@pytest.fixture
def lab() -> Iterator[LabNetwork]:
    with LabNetwork(nodes=3) as network:
        yield network


def speakers(
    lab: LabNetwork, tmp_path: Path, peer_asn: int = ROUTER_ASN, password: str | None = None
) -> list[LabSpeaker]:
    result = []
    for number in (1, 2, 3):
        session = session_to_router(lab, "router", NODE_ASN, peer_asn, password=password is not None)
        passwords = {"router": password} if password else {}
        result.append(LabSpeaker(lab, lab.node(number), tmp_path / f"node{number}", (session,), passwords))
    return result


def neighbors(lab: LabNetwork, asn: int = NODE_ASN, password: str | None = None) -> list[Neighbor]:
    return [Neighbor(str(lab.node(n).v4), asn, password) for n in (1, 2, 3)]


def hops(router: Bird | GoBGP, prefix: str = PREFIX) -> frozenset[str]:
    info = router.routes().get(prefix)
    return info.next_hops if info else frozenset()


def ecmp_from_all_nodes(router: Bird | GoBGP, lab: LabNetwork, nodes: list[LabSpeaker]) -> None:
    route = Route(PREFIX, ("64512:100", "65535:65281"), ("64512:1:2",))
    for speaker in nodes:
        speaker.start({"router": [route]})
    for speaker in nodes:
        speaker.wait_established()
    all_nodes = frozenset(str(lab.node(n).v4) for n in (1, 2, 3))
    wait_for(lambda: hops(router) == all_nodes, what="ECMP next hops")
    info = router.routes()[PREFIX]
    assert info.communities == {"64512:100", "65535:65281"}
    assert info.large_communities == {"64512:1:2"}


def test_bird_learns_the_prefix_from_every_node_with_ecmp_and_forwards(
    lab: LabNetwork, tmp_path: Path
) -> None:
    router = Bird(lab, tmp_path / "bird", ROUTER_ASN, neighbors(lab)).start()
    nodes = speakers(lab, tmp_path)
    ecmp_from_all_nodes(router, lab, nodes)
    kernel = router.kernel_routes()
    assert "203.0.113.10" in kernel and kernel.count("nexthop via") == 3, kernel

    # announce -> RIB latency with the sessions up
    later = Route("203.0.113.11/32")
    start = time.monotonic()
    nodes[0].write_state({"router": [Route(PREFIX, ("64512:100", "65535:65281"), ("64512:1:2",)), later]})
    wait_for(lambda: later.prefix in router.routes(), what="new prefix")
    print(f"\nannounce -> BIRD RIB: {(time.monotonic() - start) * 1000:.0f} ms")

    # route removal withdraws it; the other prefix stays
    nodes[0].write_state({"router": []})
    wait_for(
        lambda: str(lab.node(1).v4) not in hops(router) and later.prefix not in router.routes(),
        what="withdraw",
    )
    assert hops(router) == {str(lab.node(2).v4), str(lab.node(3).v4)}

    # graceful stop removes that node's next hop quickly
    start = time.monotonic()
    nodes[1].stop(signal.SIGTERM)
    _, gone = wait_for(lambda: str(lab.node(2).v4) not in hops(router), timeout=5, what="next hop gone")
    gone = time.monotonic() - start
    print(f"graceful stop -> next hop gone from BIRD: {gone * 1000:.0f} ms")
    assert gone < 2
    assert hops(router) == {str(lab.node(3).v4)}


def test_ibgp_carries_local_pref(lab: LabNetwork, tmp_path: Path) -> None:
    router = Bird(lab, tmp_path / "bird", NODE_ASN, neighbors(lab)).start()
    speaker = speakers(lab, tmp_path, peer_asn=NODE_ASN)[0]
    speaker.start({"router": [Route(PREFIX, ("64512:7",), (), 150)]})
    speaker.wait_established()
    info, _ = wait_for(lambda: router.routes().get(PREFIX), what="iBGP route")
    assert info == RouteInfo(frozenset({str(lab.node(1).v4)}), frozenset({"64512:7"}), frozenset(), 150)


def test_a_wrong_md5_password_keeps_the_session_down(lab: LabNetwork, tmp_path: Path) -> None:
    router = Bird(lab, tmp_path / "bird", ROUTER_ASN, neighbors(lab, password="right-one")).start()
    good, bad = speakers(lab, tmp_path, password="right-one")[0], speakers(lab, tmp_path, password="wrong")[1]
    for speaker in (good, bad):
        speaker.start({"router": [Route(PREFIX)]})
    good.wait_established()
    wait_for(
        lambda: hops(router) == {str(lab.node(1).v4)}, what="route from the node with the right password"
    )
    time.sleep(3)
    assert bad.status()["sessions"] == {"router": "Idle"}
    assert router.sessions()[str(lab.node(2).v4)] != "Established"
    assert hops(router) == {str(lab.node(1).v4)}
    assert "wrong" not in (tmp_path / "node2" / "speaker.log").read_text()


def test_any_password_byte_works_and_an_unusable_password_closes_only_its_own_session(
    lab: LabNetwork, tmp_path: Path
) -> None:
    """Characters of exabgp's grammar in one peer's password, and another peer's password too long for
    the kernel: the first session comes up, the second stays closed and says why, without the password."""
    password = "a;b{c} d\\e'f#g}"  # BIRD's strings can hold all but the double quote
    too_long = "x" * 81  # TCP_MD5SIG_MAXKEYLEN is 80
    node = lab.node(1)
    router = Bird(
        lab,
        tmp_path / "bird",
        ROUTER_ASN,
        [Neighbor(str(node.v4), NODE_ASN, password), Neighbor(str(node.v6), NODE_ASN, "other")],
    ).start()
    sessions = (
        session_to_router(lab, "router", NODE_ASN, ROUTER_ASN, password=True),
        session_to_router(lab, "router-v6", NODE_ASN, ROUTER_ASN, family=6, password=True),
    )
    speaker = LabSpeaker(lab, node, tmp_path / "node1", sessions, {"router": password, "router-v6": too_long})
    speaker.start({"router": [Route(PREFIX)]})
    wait_for(lambda: hops(router) == {str(node.v4)}, what="the route over the session with the odd password")
    status, _ = wait_for(lambda: speaker.status().get("closed"), what="the closed session's reason")
    assert list(status) == ["router-v6"]
    assert "at most 80" in status["router-v6"] and too_long not in status["router-v6"]
    wait_for(lambda: speaker.status().get("sessions", {}).get("router") == "Established", what="Established")
    assert password not in (tmp_path / "node1" / "speaker.log").read_text()


def node1_announcing_to_bird(lab: LabNetwork, tmp_path: Path) -> tuple[Bird, LabSpeaker]:
    """BIRD and node1's speaker with its route in BIRD's RIB: the start of the supervisor-failure tests."""
    router = Bird(lab, tmp_path / "bird", ROUTER_ASN, neighbors(lab)).start()
    speaker = speakers(lab, tmp_path)[0]
    speaker.start({"router": [Route(PREFIX)]})
    speaker.wait_established()
    wait_for(lambda: hops(router), what="route")
    return router, speaker


def test_exabgp_dying_is_restarted_and_reannounces(lab: LabNetwork, tmp_path: Path) -> None:
    router, speaker = node1_announcing_to_bird(lab, tmp_path)
    os.kill(speaker.status()["pid"], signal.SIGKILL)
    wait_for(lambda: speaker.status().get("restarts") == 1, what="restart")
    speaker.wait_established()
    wait_for(lambda: hops(router) == {str(lab.node(1).v4)}, what="route after restart")


def test_kill_9_of_the_supervisor_ends_exabgp_and_its_routes(lab: LabNetwork, tmp_path: Path) -> None:
    router, speaker = node1_announcing_to_bird(lab, tmp_path)
    exabgp = speaker.status()["pid"]
    speaker.stop(signal.SIGKILL)
    _, gone = wait_for(lambda: not hops(router), timeout=5, what="route gone")
    print(f"\nkill -9 of the supervisor -> next hop gone from BIRD: {gone * 1000:.0f} ms")
    wait_for(lambda: not Path(f"/proc/{exabgp}").exists(), timeout=5, what="exabgp gone")


def test_gobgp_learns_the_prefix_from_every_node_with_ecmp(lab: LabNetwork, tmp_path: Path) -> None:
    router = GoBGP(lab, tmp_path / "gobgp", ROUTER_ASN, neighbors(lab)).start()
    ecmp_from_all_nodes(router, lab, speakers(lab, tmp_path))
    assert set(router.sessions().values()) == {"Established"}
