"""Benchmark: NDP reply latency and sustained answers per second of the Layer 2 responder (the IPv6 twin of
arp_bench). Run: hack/bench/run.sh ndp_bench [requests] [flood_seconds]   (defaults 2000, 3)
The probe in the client's namespace sends Neighbor Solicitations to the target's solicited-node group over
the lab's bridge (documentation addresses only) and times the Neighbor Advertisements.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ironlb_lab.network import LabNetwork

from bench.l2bench import Wording, arguments, print_report, run_probe, start_responder

TARGET = "2001:db8:300::10"
WORDING = Wording("NS -> NA", "solicitations", "advertisements", "answers/s")


def main(count: int, flood_seconds: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-ndp-bench-"))
    with LabNetwork(nodes=1) as lab:
        lab.client.run("ip", "-6", "route", "add", "2001:db8:300::/64", "dev", "eth0", check=True)
        start_responder(lab, [TARGET], workdir / "responder.log")
        result = run_probe(lab, "ndp_probe", TARGET, str(lab.client.v6), count, flood_seconds)
        print_report(result, WORDING)


if __name__ == "__main__":
    main(*arguments(sys.argv[1:]))
