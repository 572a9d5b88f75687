"""BFD in the lab against BIRD2: a node's link cut -> its next hop gone from the router's RIB, with BFD
(300 ms x 3, MetalLB's default profile) and without (hold time 9 s), and link restored -> next hop back.

Run: bash hack/bench/run.sh bfd_bench [TRIALS] [TRIALS_WITHOUT_BFD]   (defaults 20 and 3; needs root)

Two nodes run the speaker's exabgp supervisor and BfdLink (the exabgp lab harness); BIRD has ``bfd on`` for
node1's session only, so node2 is the comparison without BFD. A cut pulls the node's cable at the lab switch
(the node keeps its addresses: no interface event on either end). BIRD's RIB is read through its control
socket about every millisecond, not through ``birdc``, so the figure is BIRD's, not a process start's.
Ends with a ``key: value`` summary block.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ironlb.api.contract import BfdSettings
from ironlb.speaker.bgp.routes import Route
from ironlb_lab.bgpspeakers import LabSpeaker, session_to_router
from ironlb_lab.network import LabNetwork, exit_on_sigterm
from ironlb_lab.routers import BFD_INTERVAL_MS, BFD_MULTIPLIER, Bird, Neighbor

from .stats import percentile

ROUTER_ASN, NODE_ASN = 64500, 64512
PREFIX = "203.0.113.10/32"
PROFILE = BfdSettings(
    receive_interval=BFD_INTERVAL_MS,
    transmit_interval=BFD_INTERVAL_MS,
    detect_multiplier=BFD_MULTIPLIER,
)


class BirdControl:
    """BIRD's control socket spoken directly: a command, then reply lines up to the final ``NNNN `` one."""

    def __init__(self, path: Path) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(path))
        self._stream = self._sock.makefile("rwb")
        self._reply()  # the greeting: 0001 BIRD ... ready.

    def _reply(self) -> str:
        lines = []
        while True:
            line = self._stream.readline().decode()
            if not line:
                raise ConnectionError("BIRD closed its control socket")
            lines.append(line)
            if len(line) > 4 and line[:4].isdigit() and line[4] == " ":
                return "".join(lines)

    def ask(self, command: str) -> str:
        self._stream.write(command.encode() + b"\n")
        self._stream.flush()
        return self._reply()

    def close(self) -> None:
        self._stream.close()
        self._sock.close()


def _until(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not within {timeout} s")
        time.sleep(0.001)
    return time.monotonic() - start


def cut_and_restore(lab: LabNetwork, role: str, hop_present: Callable[[], bool]) -> tuple[float, float]:
    """One trial: (link cut -> next hop gone, link restored -> next hop back), in seconds."""
    _until(hop_present, 60, f"{role}'s next hop in BIRD")
    time.sleep(0.5)  # let BFD settle at its Up intervals; a cut then lands anywhere between two packets
    cut = time.monotonic()
    lab.unplug(role)
    try:
        _until(lambda: not hop_present(), 30, f"{role}'s next hop gone")
        gone = time.monotonic() - cut
    finally:
        lab.plug(role)
    return gone, _until(hop_present, 60, f"{role}'s next hop back")


def summarise(key: str, label: str, seconds: list[float]) -> dict[str, str]:
    """Print one figure and return its ``key: value`` lines (milliseconds)."""
    ms = [value * 1000 for value in seconds]
    p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
    print(f"{label}: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(ms):.0f} ms over {len(ms)} trials")
    return {
        f"{key}_p50_ms": f"{p50:.0f}",
        f"{key}_p99_ms": f"{p99:.0f}",
        f"{key}_max_ms": f"{max(ms):.0f}",
        f"{key}_trials": str(len(ms)),
    }


def main(trials: int = 20, trials_without_bfd: int = 3) -> None:
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="ironlb-bfd-bench-") as scratch, LabNetwork(nodes=2) as lab:
        work = Path(scratch)
        fast, slow = lab.node(1), lab.node(2)
        neighbors = [Neighbor(str(fast.v4), NODE_ASN, bfd=True), Neighbor(str(slow.v4), NODE_ASN)]
        router = Bird(lab, work / "bird", ROUTER_ASN, neighbors).start()
        speakers = [
            LabSpeaker(
                lab,
                host,
                work / host.role,
                (session_to_router(lab, "router", NODE_ASN, ROUTER_ASN, bfd=bfd),),
            ).start({"router": [Route(PREFIX)]})
            for host, bfd in ((fast, PROFILE), (slow, None))
        ]
        control = BirdControl(router.socket)

        def present(address: str) -> Callable[[], bool]:
            return lambda: f"via {address} " in control.ask(f"show route for {PREFIX}")

        _until(lambda: router.bfd_sessions().get(str(fast.v4)) == "Up", 60, "BFD Up between BIRD and node1")
        results: dict[str, list[float]] = {"bfd": [], "bfd_back": [], "hold": [], "hold_back": []}
        for name, host, count in (("bfd", fast, trials), ("hold", slow, trials_without_bfd)):
            for trial in range(1, count + 1):
                gone, back = cut_and_restore(lab, host.role, present(str(host.v4)))
                results[name].append(gone)
                results[f"{name}_back"].append(back)
                print(
                    f"{name} trial {trial}/{count}: gone {gone * 1000:.0f} ms, back {back:.2f} s", flush=True
                )
        control.close()
        for speaker in speakers:
            speaker.stop()
    profile = f"{BFD_INTERVAL_MS} ms x {BFD_MULTIPLIER}"
    summary = {
        "bfd_profile": profile,
        "bfd_budget_ms": str(BFD_INTERVAL_MS * BFD_MULTIPLIER + 100),
        **summarise("bfd_cut_to_gone", f"BFD {profile}: link cut -> next hop gone", results["bfd"]),
        **summarise(
            "bfd_restored_to_back", f"BFD {profile}: link restored -> next hop back", results["bfd_back"]
        ),
        "hold_time_s": "9",
        **summarise("hold_cut_to_gone", "no BFD, hold time 9 s: link cut -> next hop gone", results["hold"]),
        **summarise("hold_restored_to_back", "no BFD: link restored -> next hop back", results["hold_back"]),
    }
    print("summary:")
    for key, value in summary.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main(*(int(argument) for argument in sys.argv[1:3]))
