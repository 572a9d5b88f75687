"""Graceful restart (RFC 4724) against real restarts, while a host behind BIRD2 pings a Service IP the two
nodes announce (the speaker's exabgp supervisor per node, tests/test_bgp_lab.py's harness).

``enableGracefulRestart`` gives each node's exabgp the capability (BIRD lists it among the node's):
- BIRD shut down for a graceful restart and started in recovery (``bird -R``) keeps its forwarding table
  and waits for every graceful-restart peer's routes and End-of-RIB: the route never leaves the router's
  kernel, no ping is lost (two are allowed for a loaded host: 3 s without a route would lose 60), and the
  recovery ends within seconds, not at BIRD's 240 s wait timer;
- a node's speaker killed (kill -9: no NOTIFICATION, no withdrawal) and started again: BIRD, the helper,
  keeps the node's path as stale until the restarted speaker sends it again, so traffic keeps using the
  node, whose data plane never stopped. Without the capability the path goes at once (tested too). The
  restarted speaker's End-of-RIB follows its routes (BIRD's packet trace says so): BIRD drops the paths
  still stale at End-of-RIB, so one sent before the route would drop the node's path for a moment.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ironlb.speaker.bgp.routes import Route
from ironlb_lab.bgpspeakers import LabSpeaker, session_to_router
from ironlb_lab.network import LabNetwork
from ironlb_lab.routers import Bird, Neighbor
from test_bfd_bird import wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("bird") is None, reason="no BIRD2"),
]

ROUTER_ASN, NODE_ASN = 64500, 64512
SERVICE = "203.0.113.10"
PREFIX = f"{SERVICE}/32"
DOWN_SECONDS = 3.0  # BIRD stays down this long: well past a ping's interval, far below any timer


@pytest.fixture
def lab() -> Iterator[LabNetwork]:
    with LabNetwork(nodes=2) as network:
        yield network


def _kernel_hops(router: Bird) -> int:
    """Next hops of the Service's route in the router's forwarding table (0: no route)."""
    text = router.host.run("ip", "-4", "route", "show", PREFIX).stdout
    if not text.strip():
        return 0
    return max(1, text.count("nexthop via"))


def _announcing(
    lab: LabNetwork, tmp_path: Path, graceful: bool
) -> tuple[Bird, list[Neighbor], list[LabSpeaker]]:
    """BIRD (able to restart gracefully) and both nodes announcing the Service IP, which each answers."""
    for number in (1, 2):  # each node answers for the Service IP, as its pods would behind kube-proxy
        lab.node(number).run("ip", "addr", "add", PREFIX, "dev", "lo", check=True)
    neighbors = [Neighbor(str(lab.node(n).v4), NODE_ASN) for n in (1, 2)]
    router = Bird(
        lab, tmp_path / "bird", ROUTER_ASN, neighbors, graceful_restart=True, trace_packets=True
    ).start()
    speakers = [_speaker(lab, tmp_path, number, graceful) for number in (1, 2)]
    wait_for(
        lambda: _kernel_hops(router) == 2, 30, "the Service's route via both nodes in the router's kernel"
    )
    for neighbor in neighbors:  # the capability was negotiated, or not: BIRD lists the node's
        shown = router.show(neighbor)
        theirs = shown.partition("Neighbor capabilities")[2].partition("Session:")[0]
        assert ("Graceful restart" in theirs) == graceful, shown
    return router, neighbors, speakers


def _speaker(lab: LabNetwork, tmp_path: Path, number: int, graceful: bool) -> LabSpeaker:
    session = session_to_router(lab, "router", NODE_ASN, ROUTER_ASN).model_copy(
        update={"graceful_restart": graceful}
    )
    speaker = LabSpeaker(lab, lab.node(number), tmp_path / f"node{number}", (session,))
    return speaker.start({"router": [Route(PREFIX)]})


class _Watch:
    """Pings from the remote host every 50 ms, and samples the router's kernel route every 20 ms."""

    def __init__(self, lab: LabNetwork, router: Bird, seconds: float) -> None:
        self.router, self.pings = router, int(seconds / 0.05)
        self.hops: list[int] = []
        self._stop = threading.Event()
        ping = ["ping", "-n", "-q", "-i", "0.05", "-W", "1", "-c", str(self.pings), SERVICE]
        argv = ["ip", "netns", "exec", lab.remote.namespace, *ping]
        self._ping = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.hops.append(_kernel_hops(self.router))
            time.sleep(0.02)

    def answered(self) -> int:
        """Stop sampling once every ping was sent; how many were answered."""
        try:
            out, _ = self._ping.communicate(timeout=self.pings * 0.05 + 30)
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
            if self._ping.poll() is None:
                self._ping.kill()
        match = re.search(r"(\d+) received", out)
        return int(match.group(1)) if match else 0


def test_bird_restarted_gracefully_keeps_forwarding_to_the_service(lab: LabNetwork, tmp_path: Path) -> None:
    router, _, _ = _announcing(lab, tmp_path, graceful=True)
    watch = _Watch(lab, router, DOWN_SECONDS + 12)
    time.sleep(1)
    router.shut_down_for_graceful_restart()
    down = time.monotonic()
    assert _kernel_hops(router) == 2, "BIRD left its routes in the kernel"
    time.sleep(DOWN_SECONDS)
    router.start(recovering=True)
    wait_for(lambda: "Graceful restart recovery" not in router.birdc("show", "status"), 20, "recovery", 0.1)
    recovered = time.monotonic() - down
    nodes = {str(lab.node(n).v4) for n in (1, 2)}
    wait_for(lambda: getattr(router.routes().get(PREFIX), "next_hops", None) == nodes, 10, "both paths again")
    answered = watch.answered()
    print(f"\nBIRD down {DOWN_SECONDS:.0f} s; recovery over {recovered:.1f} s after the shutdown; "
          f"{answered}/{watch.pings} pings answered")  # fmt: skip
    assert 0 not in watch.hops, "the route left the router's kernel"
    assert answered >= watch.pings - 2, f"{watch.pings - answered} pings lost"  # a loaded host may drop one
    assert recovered < DOWN_SECONDS + 10, "BIRD waited for End-of-RIB instead of getting it"


def _received(router: Bird, offset: int, protocol: str) -> list[str]:
    """What BIRD logged receiving from ``protocol`` after ``offset`` bytes: ``UPDATE``, ``END-OF-RIB``..."""
    with router.log.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return re.findall(rf" {protocol}: Got (\S+)", text)


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful-restart", "without"])
def test_a_killed_speaker_s_path_is_kept_stale_until_it_is_back(
    lab: LabNetwork, tmp_path: Path, graceful: bool
) -> None:
    router, neighbors, speakers = _announcing(lab, tmp_path, graceful)
    watch = _Watch(lab, router, DOWN_SECONDS + 8)
    time.sleep(1)
    assert speakers[0].process is not None
    os.killpg(speakers[0].process.pid, signal.SIGKILL)  # the harness and its exabgp
    wait_for(lambda: router.state(neighbors[0]) != "Established", 15, "BIRD to see node1's session end")
    time.sleep(DOWN_SECONDS)
    restarted_at = router.log.stat().st_size
    _speaker(lab, tmp_path, 1, graceful)
    wait_for(lambda: router.state(neighbors[0]) == "Established", 20, "node1's session again")
    wait_for(lambda: _kernel_hops(router) == 2, 10, "both next hops again")
    protocol = router.protocol(neighbors[0])
    wait_for(lambda: "END-OF-RIB" in _received(router, restarted_at, protocol), 10, "node1's End-of-RIB")
    received = [m for m in _received(router, restarted_at, protocol) if m in ("UPDATE", "END-OF-RIB")]
    # an End-of-RIB is an empty UPDATE (BIRD logs both): the route's UPDATE must come before that one
    first_end = received.index("END-OF-RIB")
    assert "UPDATE" in received[: first_end - 1], f"End-of-RIB before the route: {received}"
    answered = watch.answered()
    mode = "with" if graceful else "without"
    print(f"\nnode1's speaker killed, back after {DOWN_SECONDS:.0f} s ({mode} graceful restart): next hops "
          f"sampled {sorted(set(watch.hops))}, {answered}/{watch.pings} pings answered")  # fmt: skip
    assert answered >= watch.pings - 2, f"{watch.pings - answered} pings lost"  # a loaded host may drop one
    if graceful:
        assert min(watch.hops) == 2, "node1's path was dropped, not kept stale"
    else:
        assert min(watch.hops) == 1, "without graceful restart the path goes with the session"
