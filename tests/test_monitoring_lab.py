"""Monitoring for real: a Prometheus (built from its module) in the lab scrapes the operator's pods and every
speaker through the ServiceMonitors of deploy/monitoring.yaml, evaluates the shipped PrometheusRule, and
answers every query of the shipped dashboard.

Three faults are injected for real at the same moment: a pool is exhausted (one more Service asks for it),
the BGP router's cable is pulled, and node2's speaker is killed and kept down (the kubelet's back-off at its
cap). Each alert must be FIRING in Prometheus's /api/v1/alerts within its ``for:`` + 30 s of its fault, and
resolve once the fault is undone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from clusterhelpers import Cluster, remove_created_namespaces, wait_until
from ironlb.operator.alerts import ALERTS
from ironlb.operator.dashboard import queries
from ironlb.operator.monitoring import monitoring_objects
from ironlb_lab.bgplab import bgp_peer, start_router
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.prometheus import LabPrometheus, install_monitoring_crds
from ironlb_lab.routers import Bird

NAMESPACE = "mon-lab"  # short: exabgp's socket path in the lab's pod directory must fit AF_UNIX
PROMTOOL_CASES = Path(__file__).parent / "data" / "promtool" / "alerts_test.yaml"
METRIC = r"\b(?:ironlb|process)_[a-z0-9_]+"  # the metric names a query uses
FOR = {alert.name: alert.for_ for alert in ALERTS}
SLACK = 30.0
MINE = {"matchLabels": {"ironlb-test": "monitoring"}}
# the shared control plane keeps other labs' Nodes (node3, ...), which run no speaker of this lab
THIS_LAB = [
    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node1", "node2"]}]}
]


@dataclass
class MonitoredLab:
    l2: L2Lab
    router: Bird
    prometheus: LabPrometheus
    cluster: Cluster


def seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


@pytest.fixture(scope="module")
def monitored(
    crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MonitoredLab]:
    workdir = tmp_path_factory.mktemp("mon")
    install_monitoring_crds(crds_installed)
    cluster = Cluster(crds_installed, NAMESPACE)
    with L2Lab(
        crds_installed, workdir, namespace=NAMESPACE, nodes=2, operator_as_pod=True, pod_network=True
    ) as l2:
        router = start_router(l2, workdir / "bird")
        try:
            cluster.apply(*monitoring_objects(NAMESPACE))
            # only this test's namespaces: Services other tests left on the shared control plane may still
            # show addresses of these ranges, and would be adopted into the pools
            for name, addresses in (
                ("l2-pool", "203.0.113.0/29"),
                ("tiny", "203.0.113.8/32"),
                ("bgp-pool", "203.0.113.64/29"),
            ):
                cluster.pool(name, addresses, serviceAllocation={"namespaceSelectors": [MINE]})
            cluster.apply(
                {
                    "apiVersion": "ironlb.io/v1beta1",
                    "kind": "L2Advertisement",
                    "metadata": {"name": "l2", "namespace": NAMESPACE},
                    "spec": {"ipAddressPools": ["l2-pool", "tiny"], "nodeSelectors": THIS_LAB},
                },
                {
                    "apiVersion": "ironlb.io/v1beta1",
                    "kind": "BGPAdvertisement",
                    "metadata": {"name": "bgp", "namespace": NAMESPACE},
                    "spec": {"ipAddressPools": ["bgp-pool"], "nodeSelectors": THIS_LAB},
                },
                bgp_peer(l2, nodeSelectors=THIS_LAB),
            )
            namespace = cluster.new_namespace(labels=MINE["matchLabels"])
            for name, pool in (("web", "l2-pool"), ("only-one", "tiny"), ("routed", "bgp-pool")):
                cluster.service(
                    namespace, name, annotations={"ironlb.io/address-pool": pool}, ready_endpoint=True
                )
                cluster.wait_ingress(namespace, name, timeout=60)
            wait_until(
                lambda: "2/2" in l2.plane.kubectl("get", "bgppeers", "-n", NAMESPACE).stdout,
                60,
                "2/2 sessions",
            )
            prometheus = LabPrometheus(l2.lab, l2.plane, l2.bridge, workdir / "prometheus", NAMESPACE).start()
            yield MonitoredLab(l2, router, prometheus, cluster)
        finally:
            remove_created_namespaces(crds_installed)
            router.stop()


JOBS = {"ironlb-operator-metrics": 2, "ironlb-speaker-metrics": 2}


def test_prometheus_scrapes_both_operator_replicas_and_every_speaker(monitored: MonitoredLab) -> None:
    def healthy() -> dict[str, int] | None:
        targets = monitored.prometheus.targets()
        up = [t for t in targets if t["health"] == "up"]
        jobs = {job: sum(t["labels"]["job"] == job for t in up) for job in JOBS}
        return jobs if jobs == JOBS else None

    wait_until(healthy, 60, f"2 operator and 2 speaker targets up: {monitored.prometheus.targets()}")
    leaders = monitored.prometheus.query("ironlb_operator_leader")
    assert sorted(float(s["value"][1]) for s in leaders) == [0.0, 1.0]  # one leads, the standby says so
    pods = monitored.l2.plane.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name").stdout.split()
    operators = {name.removeprefix("pod/") for name in pods if "operator" in name}
    assert {series["metric"]["pod"] for series in leaders} == operators


def test_three_alerts_fire_within_their_for_and_resolve_when_the_faults_are_undone(
    monitored: MonitoredLab,
) -> None:
    lab, prometheus, cluster = monitored.l2, monitored.prometheus, monitored.cluster
    assert not prometheus.firing(), prometheus.firing()
    namespace = cluster.new_namespace(labels=MINE["matchLabels"])
    started: dict[str, float] = {}

    # 1. the pool "tiny" is full: one more Service asks for it
    cluster.service(namespace, "one-too-many", annotations={"ironlb.io/address-pool": "tiny"})
    started["IronLBAddressPoolExhausted"] = time.monotonic()
    # 2. the router's cable is pulled: every node's session ends after the 9 s hold time
    lab.lab.unplug("router")
    started["IronLBBGPSessionDown"] = time.monotonic()
    # 3. node2's speaker is killed and stays down (the kubelet's back-off at its cap)
    lab.runner.restart_delay = 3600
    lab.kill_speaker("node2")
    started["IronLBNodeWithoutReadySpeaker"] = time.monotonic()

    fired: dict[str, float] = {}
    deadline = max(started[name] + seconds(FOR[name]) + SLACK for name in started)
    while len(fired) < len(started) and time.monotonic() < deadline:
        firing = prometheus.firing()
        for name in started:
            if name in firing and name not in fired:
                fired[name] = time.monotonic() - started[name]
        time.sleep(1)
    print(f"\nfired after (s): { {name: round(took, 1) for name, took in fired.items()} }")
    assert set(fired) == set(started), f"not firing: {set(started) - set(fired)}; {prometheus.alerts()}"
    for name, took in fired.items():
        assert took <= seconds(FOR[name]) + SLACK, f"{name} fired {took:.0f} s after its fault"
    firing = prometheus.firing()
    assert {a["labels"]["node"] for a in firing["IronLBNodeWithoutReadySpeaker"]} == {"node2"}
    assert {a["labels"]["pool"] for a in firing["IronLBAddressPoolExhausted"]} == {"tiny"}
    assert {a["labels"]["node"] for a in firing["IronLBBGPSessionDown"]} >= {"node1"}

    # undo every fault: the alerts resolve (leave /api/v1/alerts)
    lab.plane.kubectl("delete", "service", "one-too-many", "-n", namespace)
    lab.lab.plug("router")
    lab.runner.restart_delay = 10
    lab.ensure_speakers()
    wait_until(lambda: not prometheus.alerts(), 90, "every alert resolved")


def test_every_dashboard_query_returns_series(monitored: MonitoredLab) -> None:
    empty = [expr for expr in queries() if not monitored.prometheus.query(expr)]
    assert not empty, f"queries without series: {empty}"


def test_every_metric_the_alerts_dashboard_and_promtool_cases_name_is_one_the_components_export(
    monitored: MonitoredLab,
) -> None:
    exported = set(monitored.prometheus.api("label/__name__/values"))
    cases = yaml.safe_load(PROMTOOL_CASES.read_text())["tests"]
    named = {
        *(name for alert in ALERTS for name in re.findall(r"ironlb_[a-z0-9_]+", alert.expr)),
        *(name for expr in queries() for name in re.findall(METRIC, expr)),
        *(series["series"].split("{")[0] for case in cases for series in case["input_series"]),
    }
    assert named - exported == set(), f"named but never exported: {sorted(named - exported)}"
