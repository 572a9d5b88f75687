"""Benchmark: Service created -> IP in its status, with the real operator and control plane.

Run: hack/bench/run.sh operator_bench [singles] [burst] [total]   (defaults 50, 5000, 10000)

Measures (1) one Service at a time, (2) a burst created at once (latency per Service and until the last),
(3) the operator's RSS once ``total`` Services hold an IP. The lab's service CIDR is IPv6-first here: the
documentation IPv4 ranges are /24s, too small for 10,000 ClusterIPs, so the Services are IPv6.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from ironlb.api.informer import Informer
from ironlb.api.kube import KubeClient
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.operator import OperatorProcess

from bench.services import create_service, create_services
from bench.stats import percentile, rss_mib

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bench"


class IngressWatcher:
    """Records when each Service of the namespace first shows an IP (a watch, not polling)."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()
        self.stop = threading.Event()  # set when its control plane goes away
        Informer(kube, f"/api/v1/namespaces/{NAMESPACE}/services", self._on_service).start(self.stop)

    def _on_service(self, _: str, service: dict[str, Any]) -> None:
        ingress = (service.get("status", {}).get("loadBalancer", {}) or {}).get("ingress")
        name = service["metadata"]["name"]
        if ingress and name not in self.seen:
            with self.changed:
                self.seen[name] = time.perf_counter()
                self.changed.notify_all()

    def wait(self, names: list[str], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        with self.changed:
            while not all(name in self.seen for name in names):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    missing = [n for n in names if n not in self.seen]
                    raise TimeoutError(f"{len(missing)} Services got no IP in {timeout} s")
                self.changed.wait(remaining)


def report(label: str, latencies: list[float]) -> None:
    print(
        f"{label}: p50 {percentile(latencies, 0.5) * 1e3:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1e3:.0f} ms, "
        f"max {max(latencies) * 1e3:.0f} ms over {len(latencies)} Services",
        flush=True,
    )


def main(singles: int, burst: int, total: int) -> None:
    with ControlPlane(
        service_cidrs="2001:db8:5e::/108,192.0.2.0/24", extra_apiserver_args=("--max-requests-inflight=800",)
    ) as plane:
        plane.install_crds(REPO_ROOT / "crds")
        kube = KubeClient.from_environment(str(plane.kubeconfig))
        for namespace in ("ironlb-system", NAMESPACE):
            kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        plane.announce_pool("bench", "2001:db8:1000::/112")
        watcher = IngressWatcher(kube)
        with OperatorProcess(plane) as operator:
            assert operator.process is not None
            print(f"operator RSS idle: {rss_mib(operator.process.pid):.0f} MiB", flush=True)
            one_at_a_time = []
            for number in range(singles):
                name = f"single-{number}"
                started = time.perf_counter()
                create_service(kube, NAMESPACE, name)
                watcher.wait([name], 30)
                one_at_a_time.append(watcher.seen[name] - started)
            report("one Service at a time, create -> IP in status", one_at_a_time)

            names = [f"burst-{n:05d}" for n in range(burst)]
            began = time.perf_counter()
            posted = create_services(kube, NAMESPACE, names, 16)
            created = time.perf_counter() - began
            watcher.wait(names, 600)
            everything = max(watcher.seen[n] for n in names) - began
            print(
                f"{burst} Services created at once: API accepted them in {created:.1f} s "
                f"({burst / created:.0f}/s); all had an IP {everything:.1f} s after the first was sent",
                flush=True,
            )
            report(f"burst of {burst}, create -> IP in status", [watcher.seen[n] - posted[n] for n in names])

            rest = [f"fill-{n:05d}" for n in range(total - burst - singles)]
            create_services(kube, NAMESPACE, rest, 16)
            watcher.wait(rest, 900)
            time.sleep(2)
            print(
                f"operator RSS with {total} Services holding an IP: {rss_mib(operator.process.pid):.0f} MiB",
                flush=True,
            )


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:]]
    main(*(arguments + [50, 5000, 10000][len(arguments) :]))
