"""BFD under the BGP sessions, against BIRD2's BFD, in the exabgp lab (tests/test_bgp_lab.py's harness: the
speaker's ExabgpSupervisor and BfdLink per node namespace, driven by a file instead of the API server).

BIRD runs ``bfd on`` for each node's session with 300 ms x 3, as the nodes' profile (MetalLB's default): a
node whose link is cut must leave BIRD's RIB within the detection time (900 ms) + 100 ms, not after the 9 s
hold time; and a router that stops (SIGSTOP: no interface event, no TCP reset) must see our side close its
session within the detection time, and keep it closed until BFD is Up again.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ironlb.api.contract import BfdSettings
from ironlb.speaker.bgp.routes import Route
from ironlb_lab.bgpspeakers import LabSpeaker, session_to_router
from ironlb_lab.network import LabNetwork
from ironlb_lab.routers import Bird, Neighbor
from test_bfd_bird import wait_for  # polls every 20 ms unless told

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("bird") is None, reason="no BIRD2"),
]

ROUTER_ASN, NODE_ASN = 64500, 64512
PREFIX = "203.0.113.10/32"
PROFILE = BfdSettings(receive_interval=300, transmit_interval=300, detect_multiplier=3)
DETECTION, INTERVAL, SLACK = 0.9, 0.3, 0.1


@pytest.fixture
def lab() -> Iterator[LabNetwork]:
    with LabNetwork(nodes=2) as network:
        yield network


def hops(router: Bird) -> frozenset[str]:
    info = router.routes().get(PREFIX)
    return info.next_hops if info else frozenset()


def with_bfd(lab: LabNetwork, tmp_path: Path, multihop: bool = False) -> tuple[Bird, list[LabSpeaker]]:
    """BIRD with BFD for both nodes' sessions, both speakers announcing PREFIX, BFD Up on both ends."""
    local = str(lab.router.v4) if multihop else None  # BIRD needs it for multihop BFD
    neighbors = [
        Neighbor(str(lab.node(n).v4), NODE_ASN, local_address=local, bfd=True, multihop=multihop)
        for n in (1, 2)
    ]
    router = Bird(lab, tmp_path / "bird", ROUTER_ASN, neighbors).start()
    # BIRD sends multihop BFD with the kernel's default TTL (64), below MetalLB's default minimumTtl (254)
    profile = PROFILE.model_copy(update={"minimum_ttl": 64}) if multihop else PROFILE
    session = session_to_router(lab, "router", NODE_ASN, ROUTER_ASN, bfd=profile, multihop=multihop)
    speakers = [
        LabSpeaker(lab, lab.node(n), tmp_path / f"node{n}", (session,)).start({"router": [Route(PREFIX)]})
        for n in (1, 2)
    ]
    nodes = {str(lab.node(n).v4) for n in (1, 2)}
    wait_for(lambda: hops(router) == nodes, 30, "both next hops in BIRD's RIB")
    wait_for(
        lambda: (
            all(router.bfd_sessions().get(node) == "Up" for node in nodes)
            and all(s.status().get("bfd", {}).get("router") == "Up" for s in speakers)
        ),
        20,
        "BFD Up on both ends",
    )
    return router, speakers


def exabgp_neighbors(speaker: LabSpeaker) -> int:
    return sum(line.startswith("neighbor ") for line in (speaker.workdir / "run" / "exabgp.conf").open())


@pytest.mark.parametrize("multihop", [False, True], ids=["single-hop", "multihop"])
def test_a_node_s_link_cut_takes_its_next_hop_out_of_bird_within_the_bfd_detection_time(
    lab: LabNetwork, tmp_path: Path, multihop: bool
) -> None:
    router, (node1, node2) = with_bfd(lab, tmp_path, multihop)
    gone = str(lab.node(1).v4)
    start = time.monotonic()
    lab.unplug("node1")
    wait_for(lambda: gone not in hops(router), 5, "node1's next hop gone from BIRD", every=0.002)
    took = time.monotonic() - start
    kind = "multihop" if multihop else "single hop"
    print(f"\nlink cut -> next hop gone from BIRD ({kind}): {took * 1000:.0f} ms")
    assert took < DETECTION + SLACK, f"{took * 1000:.0f} ms"
    assert hops(router) == {str(lab.node(2).v4)} and router.bfd_sessions()[str(lab.node(2).v4)] == "Up"

    # node1 lost BIRD too: its side closed the session and keeps it closed (not in exabgp's neighbors)
    wait_for(
        lambda: "BFD to" in node1.status().get("closed", {}).get("router", ""), 5, "node1 holds it closed"
    )
    assert exabgp_neighbors(node1) == 0 and exabgp_neighbors(node2) == 1

    lab.plug("node1")  # BFD comes Up again, and only then the session and the route
    wait_for(lambda: hops(router) == {gone, str(lab.node(2).v4)}, 30, "node1's next hop back")
    assert node1.status()["bfd"] == {"router": "Up"} and exabgp_neighbors(node1) == 1


def test_our_side_closes_its_session_within_the_detection_time_when_the_router_stops(
    lab: LabNetwork, tmp_path: Path
) -> None:
    router, (node1, _) = with_bfd(lab, tmp_path)
    assert router.process is not None
    comm = Path(f"/proc/{router.process.pid}/comm")
    wait_for(lambda: comm.read_text().strip() == "bird", 5, "bird in place of ip netns exec")
    stopped = time.time()  # the harness stamps its states with the wall clock
    os.kill(router.process.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: node1.status()["sessions"]["router"] != "Established", 5, "our session closed")
        status = node1.status()
        took = status["since"]["router"] - stopped
        print(f"\nrouter stopped -> our session closed: {took * 1000:.0f} ms (hold time 9 s)")
        assert DETECTION - INTERVAL - SLACK / 2 <= took <= DETECTION + SLACK
        assert status["bfd"] == {"router": "Down"}
        assert status["closed"]["router"].endswith("closed until BFD is Up again")
        time.sleep(2)  # exabgp would re-connect (the router's kernel still accepts TCP): held closed instead
        assert node1.status()["sessions"]["router"] == "Idle" and exabgp_neighbors(node1) == 0
    finally:
        os.kill(router.process.pid, signal.SIGCONT)
    wait_for(
        lambda: node1.status().get("bfd", {}).get("router") == "Up", 20, "BFD Up after the router resumed"
    )
    node1.wait_established(timeout=30)
    wait_for(lambda: str(lab.node(1).v4) in hops(router), 30, "node1's next hop back in BIRD")
