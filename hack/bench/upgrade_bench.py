"""Benchmark: IronLB upgraded by the real OLM under traffic, ``upgrades`` times in a row (0.1.0 -> 0.1.1 ->
0.1.2 ...), each bundle version replacing the one before (``ironlb_lab.upgrade``).

The lab: a control plane with controllers, 2 nodes, every pod from its image (podman), OLM's ``olm``
operator installing the bundle; 100 LoadBalancer Services; the seed's VM behind node2 with a Layer 2 Service
(curled from the LAN) and a BGP Service (curled from behind the BIRD2 router), every 50 ms. Per upgrade:
seconds until the operator's Deployment and every speaker run the new version, and each client's longest
outage; at the end, how many of the 100 Services' IPs changed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from ironlb_lab import containers
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.network import exit_on_sigterm
from ironlb_lab.upgrade import Traffic, installed_csv, upgrade

from .stats import percentile

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "ironlb-system"
SERVICES = "bench-upgrade"


def ips(plane: ControlPlane) -> dict[str, str]:
    listed = json.loads(plane.kubectl("get", "services", "-n", SERVICES, "-o", "json").stdout)["items"]
    return {
        s["metadata"]["name"]: ((s.get("status") or {}).get("loadBalancer", {}).get("ingress") or [{}])[
            0
        ].get("ip", "")
        for s in listed
        if s["metadata"]["name"].startswith("s")
    }


def main(upgrades: int = 5) -> None:
    exit_on_sigterm()
    sizes = containers.build_images()
    print("images:", ", ".join(f"{name} {size / 1e6:.0f} MB" for name, size in sizes.items()), flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="ironlb-upgrade-bench-") as scratch,
        ControlPlane(with_controllers=True) as plane,
    ):
        plane.install_crds(REPO_ROOT / "crds")
        with L2Lab(
            plane, Path(scratch), namespace=NAMESPACE, operator_as_pod=True, real_images=True, via_olm=True
        ) as lab:
            plane.announce_pool("olm-pool", "203.0.113.0/25", namespace=NAMESPACE)
            plane.kubectl("create", "namespace", SERVICES)
            for number in range(100):
                service = {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": f"s{number:03}", "namespace": SERVICES},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "none"}},
                }
                plane.kubectl("apply", "-f", "-", input=json.dumps(service))
            traffic = Traffic(lab, SERVICES).start()
            before = ips(plane)
            rolled, layer2, bgp = [], [], []
            try:
                current = installed_csv()
                for number in range(1, upgrades + 1):
                    result = upgrade(lab, traffic, current, f"0.1.{number}")
                    current = result.csv
                    rolled.append(result.rolled)
                    layer2.append(result.layer2[0])
                    bgp.append(result.bgp[0])
                    print(
                        f"upgrade {number}/{upgrades} to {current['spec']['version']}: rolled in "
                        f"{result.rolled:.1f} s; longest outage Layer 2 {result.layer2[0] * 1000:.0f} ms "
                        f"({result.layer2[1]} of {result.layer2[2]} requests failed), BGP "
                        f"{result.bgp[0] * 1000:.0f} ms ({result.bgp[1]} of {result.bgp[2]} failed)",
                        flush=True,
                    )
            finally:
                traffic.stop()
            changed = sum(1 for name, ip in ips(plane).items() if before.get(name) != ip)
    print(f"rolled: p50 {percentile(rolled, 0.5):.1f} s, max {max(rolled):.1f} s over {upgrades} upgrades")
    for where, outages in (("Layer 2 client", layer2), ("behind the BGP router", bgp)):
        p50, worst = percentile(outages, 0.5) * 1000, max(outages) * 1000
        print(f"longest outage, {where}: p50 {p50:.0f} ms, max {worst:.0f} ms")
    print(f"Service IPs changed: {changed} of {len(before)}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
