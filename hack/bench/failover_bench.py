"""Benchmark: Layer 2 failover, from kill -9 of the owning speaker to the first ARP reply from the new owner.

Run: hack/bench/run.sh failover_bench [trials] [family] [system]   (defaults 20, 4, ironlb)
Real control plane, operator, two speakers in lab node namespaces, ARP (family 4) or NDP (family 6, an IPv6
single-stack Service) asked every 10 ms from the client. ``system`` metallb runs MetalLB's controller and
speakers instead (``ironlb_lab.metallb``, IPv4 only), for the side-by-side figure.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from ironlb.speaker.l2.election import owner
from ironlb_lab import probes
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.metallb import MetalLBLab

from bench.services import web_service_ip
from bench.stats import percentile

REPO_ROOT = Path(__file__).resolve().parents[2]


def metallb_trials(trials: int) -> list[float]:
    """MetalLB's speakers: kill -9 the one answering, time until the other answers; restart it and let
    memberlist settle before the next trial."""
    workdir = Path(tempfile.mkdtemp(prefix="metallb-failover-"))
    ip = "203.0.113.1"
    with ControlPlane() as plane, MetalLBLab(plane, workdir, "203.0.113.0/28") as metallb:
        client = metallb.lab.client
        client.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0", check=True)
        plane.kubectl("create", "namespace", "bench")
        metallb.service_with_endpoint("bench", "web", "node1", ip)
        roles = {metallb.lab.node(n).mac(): f"node{n}" for n in (1, 2)}
        results = []
        for trial in range(1, trials + 1):
            waiting = time.monotonic() + 120
            while (current := roles.get(probes.arp(client, ip))) is None:
                if time.monotonic() > waiting:
                    raise TimeoutError(f"no MetalLB speaker answers for {ip} (logs in {workdir})")
                time.sleep(0.5)
            survivor = "node2" if current == "node1" else "node1"
            watch = probes.watch_answers(client, ip, 20)
            time.sleep(0.3)
            killed = time.time()
            metallb.kill_speaker(current)
            changes = json.loads(watch.communicate(timeout=60)[0])
            moments = [m for m, mac in changes if roles.get(mac) == survivor and m > killed]
            if not moments:
                raise TimeoutError(f"{survivor} did not answer within 20 s of the kill")
            results.append(float(moments[0]) - killed)
            print(f"MetalLB trial {trial}/{trials}: {results[-1] * 1000:.0f} ms", flush=True)
            metallb.start_speaker(current)
            time.sleep(15)  # it rejoins memberlist; ownership settles before the next trial
        return results


def main(trials: int, family: int = 4, system: str = "ironlb") -> None:
    if system == "metallb":
        if family != 4:
            raise SystemExit("the MetalLB side is measured over IPv4 only")
        results = metallb_trials(trials)
        print(
            f"MetalLB IPv4 failover over {trials} trials: p50 {percentile(results, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(results, 0.99) * 1000:.0f} ms, max {max(results) * 1000:.0f} ms",
            flush=True,
        )
        return
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
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 20,
        int(sys.argv[2]) if len(sys.argv) > 2 else 4,
        sys.argv[3] if len(sys.argv) > 3 else "ironlb",
    )
