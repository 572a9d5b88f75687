"""Micro-benchmark of the pure allocator on a /8 IPv4 and a /64 IPv6 pool.

Run: hack/bench/run.sh allocator_bench [services]   (prints p50/p99 per allocation and the process RSS)
"""

from __future__ import annotations

import resource
import sys
import time

from ironlb.api import IPAddressPoolSpec
from ironlb.operator.allocator import AllocationRequest, Allocator, PoolConfig

from bench.stats import percentile


def bench(label: str, addresses: list[str], family: int, count: int, avoid_buggy: bool = False) -> None:
    allocator = Allocator()
    spec = IPAddressPoolSpec.model_validate({"addresses": addresses, "avoidBuggyIPs": avoid_buggy})
    began = time.perf_counter()
    allocator.upsert_pool(PoolConfig.from_spec("bench", spec))
    setup = time.perf_counter() - began
    durations = []
    for number in range(count):
        request = AllocationRequest(f"ns/svc-{number}", families=(family,))  # type: ignore[arg-type]
        started = time.perf_counter()
        allocator.assign(request)
        durations.append(time.perf_counter() - started)
    # churn: release every other Service, then allocate again (exercises run splitting and merging)
    churn = []
    for number in range(0, count, 2):
        allocator.release(f"ns/svc-{number}")
    for number in range(0, count, 2):
        started = time.perf_counter()
        allocator.assign(AllocationRequest(f"ns/new-{number}", families=(family,)))  # type: ignore[arg-type]
        churn.append(time.perf_counter() - started)
    usage = allocator.usage("bench")
    print(
        f"{label}: {count} allocations, pool set-up {setup * 1e3:.2f} ms, "
        f"assign p50 {percentile(durations, 0.5) * 1e6:.1f} us "
        f"p99 {percentile(durations, 0.99) * 1e6:.1f} us, "
        f"after churn p50 {percentile(churn, 0.5) * 1e6:.1f} us p99 {percentile(churn, 0.99) * 1e6:.1f} us, "
        f"in use {usage.assigned[family]} of {usage.total[family]}"  # type: ignore[index]
    )


def main(count: int) -> None:
    # In memory only, no packet is sent: a /8 cannot come from the documentation ranges, so the reserved
    # 240.0.0.0/8 (never routed) stands in.
    bench("IPv4 /8", ["240.0.0.0/8"], 4, count)
    bench("IPv4 /8 avoidBuggyIPs", ["240.0.0.0/8"], 4, count, avoid_buggy=True)
    bench("IPv6 /64", ["2001:db8:1::/64"], 6, count)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the benchmark process: {rss:.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
