"""Benchmark: cached start-up time of the lab control plane (etcd + kube-apiserver to /readyz, plus CRDs).

Run: hack/bench/run.sh controlplane_startup [runs]   (prints p50/p99/max and the peak RSS of the apiserver)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from ironlb_lab.controlplane import ControlPlane

from bench.stats import percentile, rss_mib

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(runs: int) -> None:
    ready, with_crds, rss = [], [], []
    for run in range(1, runs + 1):
        began = time.monotonic()
        with ControlPlane() as plane:
            ready.append(plane.startup_seconds)
            plane.install_crds(REPO_ROOT / "crds")
            with_crds.append(time.monotonic() - began)
            apiserver = next(c for c in plane.components if c.name == "kube-apiserver")
            rss.append(rss_mib(apiserver.process.pid))
        print(
            f"run {run}/{runs}: ready {ready[-1]:.2f} s, with CRDs established {with_crds[-1]:.2f} s",
            flush=True,
        )
    for label, values in (("ready (/readyz)", ready), ("ready + CRDs established", with_crds)):
        print(
            f"{label}: p50 {statistics.median(values):.2f} s, p99 {percentile(values, 0.99):.2f} s, "
            f"max {max(values):.2f} s over {runs} runs"
        )
    print(f"kube-apiserver RSS after CRDs: p50 {statistics.median(rss):.0f} MiB, max {max(rss):.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
