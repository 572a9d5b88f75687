"""Benchmark: Layer 2 failover, from kill -9 of the owning speaker to the first ARP reply from the new owner.

Run: hack/bench/run.sh failover_bench [trials] [family]   (defaults 20, 4)
Real control plane, operator, two speakers in lab node namespaces, ARP (family 4) or NDP (family 6, an IPv6
single-stack Service) asked every 10 ms from the client.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ironlb.speaker.l2.election import owner
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab

from bench.services import web_service_ip
from bench.stats import percentile

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(trials: int, family: int = 4) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-failover-"))
    with ControlPlane(with_controllers=True) as plane:
        plane.install_crds(REPO_ROOT / "crds")
        with L2Lab(plane, workdir) as lab:
            ip = web_service_ip(plane, family, "bench")
            macs = {f"node{n}": lab.lab.node(n).mac() for n in (1, 2)}
            results = []
            for trial in range(1, trials + 1):
                current = owner(ip, ["node1", "node2"])
                assert current is not None
                survivor = "node2" if current == "node1" else "node1"
                # both speakers up, the elected owner answering
                waiting = time.monotonic() + 60
                while (lab.ndp(ip) if family == 6 else lab.arp(ip)) != macs[current]:
                    if time.monotonic() > waiting:
                        raise TimeoutError(f"{current} does not answer for {ip}\n{lab.speaker_logs()}")
                    time.sleep(0.1)
                seconds = lab.failover(ip, current, macs[survivor])
                results.append(seconds)
                print(f"trial {trial}/{trials}: {seconds * 1000:.0f} ms", flush=True)
                lab.ensure_speakers()  # the kubelet stand-in restarts the killed speaker's container
                time.sleep(1.0)  # the restarted owner takes its IP back (it wins the election again)
            print(
                f"IPv{family} failover over {trials} trials: p50 {percentile(results, 0.5) * 1000:.0f} ms, "
                f"p99 {percentile(results, 0.99) * 1000:.0f} ms, max {max(results) * 1000:.0f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, int(sys.argv[2]) if len(sys.argv) > 2 else 4)
