"""Benchmark: NDP reply latency and sustained answers per second of the Layer 2 responder (the IPv6 twin of
arp_bench). Run: hack/bench/run.sh ndp_bench [requests] [flood_seconds]   (defaults 2000, 3)
The probe in the client's namespace sends Neighbor Solicitations to the target's solicited-node group over
the lab's bridge (documentation addresses only) and times the Neighbor Advertisements.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from ironlb_lab.network import LabNetwork

from bench.arp_bench import HACK, start_responder
from bench.stats import percentile

TARGET = "2001:db8:300::10"


def main(count: int, flood_seconds: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-ndp-bench-"))
    with LabNetwork(nodes=1) as lab:
        lab.client.run("ip", "-6", "route", "add", "2001:db8:300::/64", "dev", "eth0", check=True)
        start_responder(lab, [TARGET], workdir / "responder.log")
        probe = lab.client.run(
            "env",
            f"PYTHONPATH={HACK}",
            sys.executable,
            "-m",
            "bench.ndp_probe",
            TARGET,
            str(lab.client.v6),
            str(count),
            str(flood_seconds),
            timeout=600,
            check=True,
        )
        result = json.loads(probe.stdout)
        latencies = result["latencies"]
        print(
            f"NS -> NA at the client: p50 {percentile(latencies, 0.5) * 1e6:.0f} us, "
            f"p99 {percentile(latencies, 0.99) * 1e6:.0f} us, max {max(latencies) * 1e6:.0f} us "
            f"over {len(latencies)} solicitations ({result['lost']} lost); "
            f"mean {statistics.mean(latencies) * 1e6:.0f} us"
        )
        rate = result["flood_received"] / result["flood_seconds"]
        print(
            f"flood for {flood_seconds:.0f} s: {result['flood_sent']} solicitations sent, "
            f"{result['flood_received']} advertisements = {rate:.0f} answers/s",
            flush=True,
        )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(int(arguments[0]) if arguments else 2000, float(arguments[1]) if len(arguments) > 1 else 3.0)
