"""Benchmark: ARP reply latency and sustained replies per second of the Layer 2 responder, and its RSS.

Run: hack/bench/run.sh arp_bench [requests] [flood_seconds]   (defaults 2000, 3)
Everything happens inside the lab's network namespaces (documentation addresses only).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ironlb_lab.network import LabNetwork

from bench.l2bench import Wording, arguments, print_report, run_probe, start_responder
from bench.stats import rss_mib

WORDING = Wording("ARP request -> reply", "requests", "replies", "replies/s")


def main(count: int, flood_seconds: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-arp-bench-"))
    with LabNetwork(nodes=1) as lab:
        pid = start_responder(lab, ["203.0.113.10"], workdir / "one.log")
        time.sleep(0.5)
        print(f"responder RSS with 1 owned IP: {rss_mib(pid):.0f} MiB", flush=True)
        result = run_probe(lab, "arp_probe", "203.0.113.10", str(lab.client.v4), count, flood_seconds)
        print_report(result, WORDING)
        many = [f"203.0.113.{n % 250 + 1}" for n in range(250)] + [
            f"2001:db8:300::{n:x}" for n in range(1, 751)
        ]
        pid_many = start_responder(lab, many, workdir / "many.log")
        time.sleep(0.5)
        print(f"responder RSS with {len(many)} owned IPs: {rss_mib(pid_many):.0f} MiB", flush=True)


if __name__ == "__main__":
    main(*arguments(sys.argv[1:]))
