"""Benchmark: ARP reply latency and sustained replies per second of the Layer 2 responder, and its RSS.

Run: hack/bench/run.sh arp_bench [requests] [flood_seconds]   (defaults 2000, 3)
Everything happens inside the lab's network namespaces (documentation addresses only).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ironlb_lab.network import LabNetwork

from bench.stats import percentile, rss_mib

HACK = Path(__file__).resolve().parents[1]
SPEAKER = str(Path(sys.executable).parent / "ironlb-speaker")


def start_responder(lab: LabNetwork, ips: list[str], log: Path) -> int:
    process = lab.spawn(
        lab.node(1), [SPEAKER, "l2-responder", "--interface", "eth0", *[f"--ip={ip}" for ip in ips]], log
    )
    deadline = time.monotonic() + 30
    while "answering for" not in (log.read_text() if log.exists() else ""):
        if time.monotonic() > deadline:
            raise TimeoutError(log.read_text())
        time.sleep(0.05)
    return process.pid  # `ip netns exec` execs the speaker: same PID


def main(count: int, flood_seconds: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-arp-bench-"))
    with LabNetwork(nodes=1) as lab:
        pid = start_responder(lab, ["203.0.113.10"], workdir / "one.log")
        time.sleep(0.5)
        print(f"responder RSS with 1 owned IP: {rss_mib(pid):.0f} MiB", flush=True)
        probe = lab.client.run(
            "env",
            f"PYTHONPATH={HACK}",
            sys.executable,
            "-m",
            "bench.arp_probe",
            "203.0.113.10",
            str(lab.client.v4),
            str(count),
            str(flood_seconds),
            timeout=600,
            check=True,
        )
        result = json.loads(probe.stdout)
        latencies = result["latencies"]
        print(
            f"ARP request -> reply at the client: p50 {percentile(latencies, 0.5) * 1e6:.0f} us, "
            f"p99 {percentile(latencies, 0.99) * 1e6:.0f} us, max {max(latencies) * 1e6:.0f} us "
            f"over {len(latencies)} requests ({result['lost']} lost); "
            f"mean {statistics.mean(latencies) * 1e6:.0f} us"
        )
        rate = result["flood_received"] / result["flood_seconds"]
        print(
            f"flood for {flood_seconds:.0f} s: {result['flood_sent']} requests sent, "
            f"{result['flood_received']} replies = {rate:.0f} replies/s",
            flush=True,
        )
        many = [f"203.0.113.{n % 250 + 1}" for n in range(250)] + [
            f"2001:db8:300::{n:x}" for n in range(1, 751)
        ]
        pid_many = start_responder(lab, many, workdir / "many.log")
        time.sleep(0.5)
        print(f"responder RSS with {len(many)} owned IPs: {rss_mib(pid_many):.0f} MiB", flush=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(int(arguments[0]) if arguments else 2000, float(arguments[1]) if len(arguments) > 1 else 3.0)
