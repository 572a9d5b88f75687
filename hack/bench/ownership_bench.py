"""Benchmark: Layer 2 ownership kept incrementally (``OwnerIndex``) against a full election of every IP.

Run: hack/bench/run.sh ownership_bench [nodes ...]   (default 10 100 1000; for 1,000 and 10,000 IPs each)

Pure code, in memory; every node is eligible for every IP (the worst case for the ranking). Reported per
(N nodes, M IPs): the first ranking of every IP, a full election (what every 50 ms tick cost before), a
membership check with nothing changed (a tick with neither the snapshot nor the membership changed does not
even do that), a configuration republished with the same IPs (a diff), one node's death (and the IPs it
moved), the node's return, and one Service added.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from ironlb.speaker.l2.election import owner
from ironlb.speaker.l2.owners import OwnerIndex


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(nodes: int, ips: int) -> str:
    names = [f"node-{n:04d}" for n in range(nodes)]
    everyone = frozenset(names)
    eligible = {("ns/svc", f"2001:db8:300::{n:x}"): everyone for n in range(ips)}
    index = OwnerIndex()
    index.set_alive(everyone)
    build = _timed(lambda: index.set_eligible(eligible))
    sample = list(eligible)[: min(ips, 200_000 // nodes)]  # a full election, timed on a sample
    full = _timed(lambda: [owner(ip, everyone, everyone) for _, ip in sample]) * ips / len(sample)
    idle = _timed(lambda: index.set_alive(everyone))
    republished = _timed(lambda: index.set_eligible(dict(eligible)))
    victim = names[0]
    owned = len(index.owned_by(victim))
    death = _timed(lambda: index.set_alive(everyone - {victim}))
    back = _timed(lambda: index.set_alive(everyone))
    grown = dict(eligible) | {("ns/new", "2001:db8:301::1"): everyone}
    added = _timed(lambda: index.set_eligible(grown))
    return (
        f"| {nodes:,} | {ips:,} | {build * 1000:,.0f} ms | {full * 1000:,.0f} ms | {idle * 1e6:,.1f} µs | "
        f"{republished * 1000:.1f} ms | "
        f"{death * 1000:.2f} ms ({owned} IPs) | {back * 1000:.2f} ms | {added * 1000:.1f} ms |"
    )


def main(*nodes: int) -> None:
    print(
        "| nodes | IPs | first ranking | full election (every tick before) | membership unchanged | "
        "configuration republished, same IPs | one death (IPs moved) | its return | one Service added |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for count in nodes or (10, 100, 1000):
        for ips in (1000, 10_000):
            print(measure(count, ips), flush=True)


if __name__ == "__main__":
    main(*(int(argument) for argument in sys.argv[1:]))
