"""BGP mode figures in the lab against BIRD2: announce -> route in the RIB, graceful stop -> next hop gone,
kill -9 -> gone after the hold time, and supervisor + exabgp memory with 1,000 announced prefixes.

Run: bash hack/bench/run.sh bgp_bench [TRIALS]   (needs root for network namespaces)
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ironlb.speaker.bgp.routes import Route
from ironlb_lab.bgpspeakers import LabSpeaker, session_to_router
from ironlb_lab.network import LabNetwork
from ironlb_lab.routers import Bird, Neighbor

from .stats import percentile, rss_mib

ROUTER_ASN, NODE_ASN = 64500, 64512


def _until(check: Callable[[], bool], timeout: float = 30) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not met")
        time.sleep(0.002)
    return time.monotonic() - start


def _report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{name}: p50 {percentile(ms, 0.5):.0f} ms, p99 {percentile(ms, 0.99):.0f} ms over {len(ms)} trials"
    )


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory(prefix="ironlb-bgp-bench-") as scratch, LabNetwork(nodes=2) as lab:
        work = Path(scratch)
        node = lab.node(1)
        router = Bird(lab, work / "bird", ROUTER_ASN, [Neighbor(str(node.v4), NODE_ASN)]).start()
        session = session_to_router(lab, "router", NODE_ASN, ROUTER_ASN)

        def hop_present(prefix: str) -> bool:
            info = router.routes().get(prefix)
            return info is not None and str(node.v4) in info.next_hops

        speaker = LabSpeaker(lab, node, work / "speaker", (session,)).start({"router": []})
        speaker.wait_established()
        present: list[float] = []
        for trial in range(trials):
            prefix = f"203.0.113.{trial + 1}/32"
            start = time.monotonic()
            speaker.write_state({"router": [Route(prefix)]})
            _until(lambda prefix=prefix: hop_present(prefix))  # type: ignore[misc]
            present.append(time.monotonic() - start)
        _report("announce -> route in BIRD's RIB", present)

        graceful: list[float] = []
        prefix = "203.0.113.200/32"
        for trial in range(trials):
            speaker.stop()
            speaker = LabSpeaker(lab, node, work / f"speaker{trial}", (session,)).start(
                {"router": [Route(prefix)]}
            )
            speaker.wait_established()
            _until(lambda: hop_present(prefix))
            start = time.monotonic()
            speaker.stop(signal.SIGTERM)
            _until(lambda: not hop_present(prefix))
            graceful.append(time.monotonic() - start)
        _report("graceful stop -> next hop gone", graceful)

        speaker = LabSpeaker(lab, node, work / "killed", (session,)).start({"router": [Route(prefix)]})
        speaker.wait_established()
        _until(lambda: hop_present(prefix))
        exabgp_pid = speaker.status()["pid"]
        assert speaker.process is not None
        speaker.process.send_signal(signal.SIGKILL)  # the supervisor only; exabgp follows when its relay dies
        speaker.process.wait()
        killed = _until(lambda: not hop_present(prefix))
        print(
            f"kill -9 of the supervisor -> next hop gone: {killed * 1000:.0f} ms "
            f"(hold time {session.hold_time_seconds} s; the relay ends exabgp, which sends a Cease)"
        )
        _until(lambda: rss_mib(exabgp_pid) == 0, timeout=10)

        speaker = LabSpeaker(lab, node, work / "node-died", (session,)).start({"router": [Route(prefix)]})
        speaker.wait_established()
        _until(lambda: hop_present(prefix))
        assert speaker.process is not None
        # A process kill lets the kernel close the TCP session (the router notices at once); a node that
        # vanishes (power, link) is only noticed when the hold time expires: cut the node's link.
        lab.unplug(node.role)
        died = _until(lambda: not hop_present(prefix))
        print(
            f"node link cut -> next hop gone: {died:.1f} s (hold time {session.hold_time_seconds} s, no BFD)"
        )
        lab.plug(node.role)
        os.killpg(speaker.process.pid, signal.SIGKILL)
        speaker.process.wait()

        # 1,000 prefixes from documentation ranges (not the lab's LAN): every subnet /25../32 of two /24s
        routes = frozenset(
            Route(str(subnet))
            for block in ("192.0.2.0/24", "203.0.113.0/24")
            for length in range(25, 33)
            for subnet in ipaddress.ip_network(block).subnets(new_prefix=length)
        )
        routes = frozenset(sorted(routes)[:1000])
        assert len(routes) == 1000, len(routes)
        speaker = LabSpeaker(lab, node, work / "thousand", (session,)).start({"router": list(routes)})
        speaker.wait_established()
        start = time.monotonic()
        _until(lambda: len(router.routes()) >= 1000, timeout=60)
        print(f"1,000 prefixes in BIRD's RIB {time.monotonic() - start:.2f} s after the session came up")
        assert speaker.process is not None
        supervisor, exabgp = rss_mib(speaker.process.pid), rss_mib(speaker.status()["pid"])
        print(f"RSS with 1,000 prefixes: supervisor {supervisor:.1f} MiB + exabgp {exabgp:.1f} MiB")
        speaker.stop()


if __name__ == "__main__":
    main()
