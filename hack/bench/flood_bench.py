"""Benchmark: a flood of ARP requests (or Neighbor Solicitations) at an owned IP must neither move the IP
nor slow its answers to other clients.

Run: hack/bench/run.sh flood_bench [family] [rate] [seconds]   (defaults 4, 50000, 30)

A real control plane, the operator, and the speaker DaemonSet on three lab nodes. The router floods the
owned IP at ``rate`` requests/s for ``seconds`` (one made-up source MAC, bench/l2flood) while the client
asks for it every 10 ms (bench/l2sample). Reported: the flood's achieved rate, the client's answer latency
(p50/p99/max) and unanswered queries, before and during the flood, which MACs answered, and the takeovers
each speaker counted (``ironlb_speaker_takeovers``): any during the flood is a false one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ironlb.speaker.l2.election import owner
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import HACK, L2Lab
from ironlb_lab.network import Host

from bench.services import web_service_ip
from bench.stats import percentile

REPO_ROOT = Path(__file__).resolve().parents[2]
NODES = ("node1", "node2", "node3")


def _start(host: Host, module: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", host.namespace, "env", f"PYTHONPATH={HACK}", sys.executable, "-m", module]
        + [str(a) for a in args],
        stdout=subprocess.PIPE,
        text=True,
    )


def _takeovers(lab: L2Lab) -> dict[str, float]:
    counts = {}
    for number, role in enumerate(NODES, start=1):
        node = lab.lab.node(number)
        metrics = node.run("curl", "-s", "-m", "2", f"http://{node.v4}:7473/metrics").stdout
        match = re.search(r"^ironlb_speaker_takeovers_total\{[^}]*\} (\S+)", metrics, re.M)
        counts[role] = float(match.group(1)) if match else 0.0
    return counts


def _sample(lab: L2Lab, ip: str, seconds: float) -> subprocess.Popen[str]:
    client = lab.lab.client
    sampler = _start(client, "bench.l2sample", ip, client.v6 if ":" in ip else client.v4, seconds, 0.01)
    assert sampler.stdout is not None
    if sampler.stdout.readline().strip() != "sampling":
        raise RuntimeError("the sampler did not start")
    return sampler


def flood_and_sample(lab: L2Lab, ip: str, rate: int, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The router floods ``ip`` while the client samples it, both for ``seconds``: (what the flooder sent,
    what the sampler saw)."""
    sampler = _sample(lab, ip, seconds)
    router = lab.lab.router
    source = router.v6 if ":" in ip else router.v4
    flooder = _start(router, "bench.l2flood", 6 if ":" in ip else 4, ip, source, rate, seconds)
    sent = json.loads(flooder.communicate(timeout=seconds + 60)[0])
    return sent, json.loads(sampler.communicate(timeout=seconds + 60)[0])


def _describe(what: str, result: dict[str, Any], macs: dict[str, str]) -> str:
    latencies = [seconds * 1000 for seconds in result["latencies"]]
    answered = {macs.get(mac, mac): count for mac, count in result["macs"].items()}
    return (
        f"{what}: {len(latencies)} answered, {result['lost']} unanswered (100 ms); latency p50 "
        f"{percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms, max "
        f"{max(latencies):.2f} ms; answered by {answered}"
    )


def main(family: int, rate: int, seconds: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-flood-"))
    with ControlPlane(with_controllers=True) as plane:
        plane.install_crds(REPO_ROOT / "crds")
        with L2Lab(plane, workdir, nodes=3) as lab:
            ip = web_service_ip(plane, family, "flood")
            elected = owner(ip, list(NODES))
            assert elected is not None
            macs = {lab.lab.node(n).mac(): role for n, role in enumerate(NODES, start=1)}
            owner_mac = lab.lab.node(NODES.index(elected) + 1).mac()
            while (lab.ndp(ip) if family == 6 else lab.arp(ip)) != owner_mac:
                time.sleep(0.2)
            time.sleep(2)  # every speaker has settled on the owner
            print(f"IPv{family} {ip} owned by {elected}; flooding from the router", flush=True)
            quiet = json.loads(_sample(lab, ip, 5).communicate(timeout=30)[0])
            print(_describe("before the flood", quiet, macs), flush=True)
            before = _takeovers(lab)
            sent, during = flood_and_sample(lab, ip, rate, seconds)
            time.sleep(1)
            after = _takeovers(lab)
            what = "ARP requests" if family == 4 else "Neighbor Solicitations"
            print(f"flood: {sent['sent']} {what} in {sent['seconds']} s = {sent['rate']}/s", flush=True)
            print(_describe("during the flood", during, macs), flush=True)
            moved = {role: after[role] - before[role] for role in NODES}
            print(f"takeovers during the flood: {moved} (total {sum(moved.values()):.0f})", flush=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(
        int(arguments[0]) if arguments else 4,
        int(arguments[1]) if len(arguments) > 1 else 50_000,
        float(arguments[2]) if len(arguments) > 2 else 30.0,
    )
