"""Benchmark, side by side: IronLB's operator and MetalLB's controller on the same workload.

Run: hack/bench/run.sh controllers_bench [singles] [burst] [total] [churn] [systems]
(defaults 50, 5000, 10000, 10, IronLB,MetalLB; ``systems`` IronLB or MetalLB runs one side only)

Each system gets a fresh lab control plane (same flags, same 2 cores) and one IPv6 pool (2001:db8:1000::/112),
then: ``singles`` Services one at a time (create -> IP in status); a burst of ``burst`` created at once (per
Service, and until the last); with ``burst`` present, ``churn`` times: delete one Service, then create one
(create -> IP); the same once ``total`` are present; RSS at ``total``, the CPU time the process used over the
whole run, and its idle CPU over 30 s at the end. MetalLB (``hack/build-metallb.sh``, v0.15.2 by default)
is built for this comparison only: ``controller --webhook-mode=disabled --disable-cert-rotation`` with the
admin's kubeconfig, its CRDs from its module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ironlb.api.kube import KubeClient
from ironlb_lab.controlplane import ControlPlane, _die_with_parent
from ironlb_lab.metallb import controller_argv, install_metallb_crds, metallb_build
from ironlb_lab.operator import OperatorProcess

from bench.operator_bench import NAMESPACE, IngressWatcher
from bench.services import create_service, create_services
from bench.stats import cpu_seconds, percentile, rss_mib

REPO_ROOT = Path(__file__).resolve().parents[2]
POOL = "2001:db8:1000::/112"
IDLE_SECONDS = 30.0
Results = dict[str, float]


@contextmanager
def ironlb(plane: ControlPlane, kube: KubeClient) -> Iterator[int]:
    plane.install_crds(REPO_ROOT / "crds")
    kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": "ironlb-system"}})
    plane.announce_pool("bench", POOL)
    with OperatorProcess(plane) as operator:
        assert operator.process is not None
        yield operator.process.pid


@contextmanager
def metallb(plane: ControlPlane, kube: KubeClient) -> Iterator[int]:
    build = metallb_build()
    install_metallb_crds(plane, build)
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "bench", "namespace": "metallb-system"},
        "spec": {"addresses": [POOL]},
    }
    plane.kubectl("apply", "-f", "-", input=json.dumps(pool))
    assert plane.workdir is not None
    log = (plane.workdir / "metallb-controller.log").open("wb")
    process = subprocess.Popen(
        controller_argv(build, plane.kubeconfig),
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    try:
        time.sleep(3)  # its informers list before the first Service
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # busy rewriting statuses: it does not stop at once
            process.kill()
            process.wait()
        log.close()


def churn(kube: KubeClient, watcher: IngressWatcher, victims: list[str], prefix: str) -> list[float]:
    """Delete one Service, then create one: create -> IP, once per victim."""
    latencies = []
    for number, victim in enumerate(victims):
        kube.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/services/{victim}")
        name = f"{prefix}-{number}"
        started = time.perf_counter()
        create_service(kube, NAMESPACE, name)
        watcher.wait([name], 1800)  # MetalLB 0.15.2 rewrites every Service's status at 20 QPS first
        latencies.append(watcher.seen[name] - started)
    return latencies


def run(system: str, singles: int, burst: int, total: int, repeats: int) -> Results:
    results: Results = {}
    with ControlPlane(
        service_cidrs="2001:db8:5e::/108,192.0.2.0/24", extra_apiserver_args=("--max-requests-inflight=800",)
    ) as plane:
        kube = KubeClient.from_environment(str(plane.kubeconfig))
        kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        watcher = IngressWatcher(kube)
        start = ironlb if system == "IronLB" else metallb
        with start(plane, kube) as pid:
            cpu_before = cpu_seconds(pid)
            one_at_a_time = []
            for number in range(singles):
                name = f"single-{number}"
                started = time.perf_counter()
                create_service(kube, NAMESPACE, name)
                watcher.wait([name], 60)
                one_at_a_time.append(watcher.seen[name] - started)
            results["single p50 ms"] = percentile(one_at_a_time, 0.5) * 1e3
            results["single p99 ms"] = percentile(one_at_a_time, 0.99) * 1e3

            names = [f"burst-{n:05d}" for n in range(burst)]
            began = time.perf_counter()
            posted = create_services(kube, NAMESPACE, names, 16)
            watcher.wait(names, 1800)
            per_service = [watcher.seen[n] - posted[n] for n in names]
            results["burst p50 ms"] = percentile(per_service, 0.5) * 1e3
            results["burst p99 ms"] = percentile(per_service, 0.99) * 1e3
            results["burst all s"] = max(watcher.seen[n] for n in names) - began

            present = singles + burst
            latencies = churn(kube, watcher, names[:repeats], "churn-a")
            results[f"delete+create at {present} p50 ms"] = percentile(latencies, 0.5) * 1e3

            rest = [f"fill-{n:05d}" for n in range(total - present)]
            create_services(kube, NAMESPACE, rest, 16)
            watcher.wait(rest, 1800)
            latencies = churn(kube, watcher, rest[:repeats], "churn-b")
            results[f"delete+create at {total} p50 ms"] = percentile(latencies, 0.5) * 1e3

            time.sleep(2)
            results[f"RSS at {total} MiB"] = rss_mib(pid)
            results["CPU s, whole run"] = cpu_seconds(pid) - cpu_before
            idle_before = cpu_seconds(pid)
            time.sleep(IDLE_SECONDS)
            results[f"idle CPU % at {total}"] = (cpu_seconds(pid) - idle_before) / IDLE_SECONDS * 100
        watcher.stop.set()
    for key, value in results.items():
        print(f"{system}: {key} {value:.1f}", flush=True)
    return results


def main(singles: int, burst: int, total: int, repeats: int, systems: str = "IronLB,MetalLB") -> None:
    measured = {system: run(system, singles, burst, total, repeats) for system in systems.split(",")}
    if len(measured) < 2:
        return
    print("\n| measurement | IronLB | MetalLB | IronLB / MetalLB |\n| --- | --- | --- | --- |")
    for key in measured["IronLB"]:
        ours, theirs = measured["IronLB"][key], measured["MetalLB"][key]
        ratio = f"{ours / theirs:.3f}" if theirs else "-"
        print(f"| {key} | {ours:.1f} | {theirs:.1f} | {ratio} |")


if __name__ == "__main__":
    given = [int(a) for a in sys.argv[1:5]]
    singles, burst, total, repeats = given + [50, 5000, 10000, 10][len(given) :]
    main(singles, burst, total, repeats, *sys.argv[5:6])
