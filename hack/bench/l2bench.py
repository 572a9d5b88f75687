"""The host side of the Layer 2 benchmarks (arp_bench, ndp_bench): start the speaker's responder in a lab
node, run a probe in the client's namespace, and report what it measured in the benchmarks' shared wording.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ironlb_lab.network import LabNetwork

from bench.l2probe import ProbeResult
from bench.stats import percentile

HACK = Path(__file__).resolve().parents[1]
SPEAKER = str(Path(sys.executable).parent / "ironlb-speaker")


@dataclass(frozen=True)
class Wording:
    """How a protocol's report names things: e.g. "ARP request -> reply", "requests", "replies"."""

    exchange: str
    queries: str
    answers: str
    rate: str


def start_responder(lab: LabNetwork, ips: list[str], log: Path) -> int:
    """Start ``ironlb-speaker l2-responder`` for ``ips`` on node1's eth0; its PID once it answers. The probe
    is one requester asking for one IP as fast as it can: the per-requester limit is lifted so the data
    path's own capacity is measured (flood_bench measures the limit at work)."""
    argv = [SPEAKER, "l2-responder", "--interface", "eth0", "--answers-per-requester", "1e9"]
    process = lab.spawn(lab.node(1), [*argv, *[f"--ip={ip}" for ip in ips]], log)
    deadline = time.monotonic() + 30
    while "answering for" not in (log.read_text() if log.exists() else ""):
        if time.monotonic() > deadline:
            raise TimeoutError(log.read_text())
        time.sleep(0.05)
    return process.pid  # `ip netns exec` execs the speaker: same PID


def run_probe(
    lab: LabNetwork, module: str, target: str, our_ip: str, count: int, flood: float
) -> ProbeResult:
    """Run ``bench.<module>`` (a probe) in the client's namespace and read its JSON."""
    probe = lab.client.run(
        "env",
        f"PYTHONPATH={HACK}",
        sys.executable,
        "-m",
        f"bench.{module}",
        target,
        our_ip,
        str(count),
        str(flood),
        timeout=600,
        check=True,
    )
    return cast(ProbeResult, json.loads(probe.stdout))


def report(result: ProbeResult, wording: Wording) -> list[str]:
    """The two lines a Layer 2 benchmark prints: latency percentiles, then the flood's rate."""
    latencies = result["latencies"]
    rate = result["flood_received"] / result["flood_seconds"]
    return [
        f"{wording.exchange} at the client: p50 {percentile(latencies, 0.5) * 1e6:.0f} us, "
        f"p99 {percentile(latencies, 0.99) * 1e6:.0f} us, max {max(latencies) * 1e6:.0f} us "
        f"over {len(latencies)} {wording.queries} ({result['lost']} lost); "
        f"mean {statistics.mean(latencies) * 1e6:.0f} us",
        f"flood for {result['flood_seconds']:.0f} s: {result['flood_sent']} {wording.queries} sent, "
        f"{result['flood_received']} {wording.answers} = {rate:.0f} {wording.rate}",
    ]


def print_report(result: ProbeResult, wording: Wording) -> None:
    """Print ``report``, flushed (the benchmarks' output is read live)."""
    print("\n".join(report(result, wording)), flush=True)


def arguments(argv: list[str]) -> tuple[int, float]:
    """The Layer 2 benchmarks' command line: [requests] [flood_seconds], defaults 2000 and 3."""
    return int(argv[0]) if argv else 2000, float(argv[1]) if len(argv) > 1 else 3.0
