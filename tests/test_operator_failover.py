"""Restart safety and leader election of the real operator process (kill -9, two replicas)."""

from __future__ import annotations

import ipaddress
import time

import yaml
from clusterhelpers import Cluster, wait_until
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.operator import OperatorProcess


def _services(namespace: str, count: int) -> str:
    return yaml.safe_dump_all(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"burst-{n:03d}", "namespace": namespace},
            "spec": {"type": "LoadBalancer", "selector": {"app": "burst"}, "ports": [{"port": 80 + n}]},
        }
        for n in range(count)
    )


def _cluster(plane: ControlPlane, namespace: str) -> Cluster:
    """Pools, Lease and operator in a namespace of this module's own, apart from other modules' pools."""
    cluster = Cluster(plane, namespace=namespace)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    return cluster


def _ips(cluster: Cluster, namespace: str) -> dict[str, list[str]]:
    listed = yaml.safe_load(cluster.plane.kubectl("get", "services", "-n", namespace, "-o", "yaml").stdout)
    return {
        item["metadata"]["name"]: [
            e["ip"] for e in (item.get("status", {}).get("loadBalancer", {}).get("ingress") or [])
        ]
        for item in listed["items"]
    }


def test_kill_9_mid_burst_changes_no_ip_and_never_double_assigns(crds_installed: ControlPlane) -> None:
    cluster = _cluster(crds_installed, "failover-burst")
    namespace = cluster.new_namespace()
    cluster.pool("burst", "203.0.113.128/25", serviceAllocation={"namespaces": [namespace]})
    count = 120
    first = OperatorProcess(crds_installed, args=("--namespace", cluster.namespace)).start()
    try:
        crds_installed.kubectl("apply", "-f", "-", input=_services(namespace, count))
        wait_until(lambda: sum(1 for ips in _ips(cluster, namespace).values() if ips) >= 20, 60, "some IPs")
    finally:
        first.kill()
    before = {name: ips for name, ips in _ips(cluster, namespace).items() if ips}
    assert len(before) >= 20, before
    with OperatorProcess(crds_installed, args=("--namespace", cluster.namespace)):
        after = wait_until(
            lambda: (ips := _ips(cluster, namespace)) and all(ips.values()) and len(ips) == count and ips,
            90,
            "every Service to have an IP after the restart",
        )
    for name, ips in before.items():
        assert after[name] == ips, f"{name} moved from {ips} to {after[name]}"
    every_ip = [ip for ips in after.values() for ip in ips]
    assert len(every_ip) == len(set(every_ip)) == count
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("203.0.113.128/25") for ip in every_ip)


def test_only_the_lease_holder_allocates_and_a_standby_takes_over(crds_installed: ControlPlane) -> None:
    cluster = _cluster(crds_installed, "failover-leader")
    namespace = cluster.new_namespace()
    cluster.pool("leader", "203.0.113.120/30", serviceAllocation={"namespaces": [namespace]})
    args = ("--namespace", cluster.namespace)
    leader = OperatorProcess(crds_installed, args=args).start()
    standby = OperatorProcess(crds_installed, args=args).start(wait_for="waiting for lease")
    try:
        cluster.service(namespace, "one")
        assert cluster.wait_ingress(namespace, "one") == ["203.0.113.120"]
        time.sleep(1)
        assert "rebuilt state" not in standby.log_text(), "the standby started allocating"
        killed_at = time.monotonic()
        leader.kill()
        standby.wait_for_log("rebuilt state", timeout=30)
        takeover = time.monotonic() - killed_at
        assert takeover < 6 + 5, f"standby took {takeover:.1f} s"
        cluster.service(namespace, "two")
        assert cluster.wait_ingress(namespace, "two") == ["203.0.113.121"]
        assert cluster.ingress(namespace, "one") == ["203.0.113.120"]
    finally:
        leader.kill()
        standby.stop()


def test_a_graceful_stop_hands_the_lease_over_at_once(crds_installed: ControlPlane) -> None:
    args = ("--namespace", _cluster(crds_installed, "failover-graceful").namespace)
    first = OperatorProcess(crds_installed, args=args).start()
    second = OperatorProcess(crds_installed, args=args).start(wait_for="waiting for lease")
    try:
        began = time.monotonic()
        first.stop()
        stopped_at = time.monotonic()
        assert "released lease" in first.log_text()
        second.wait_for_log("rebuilt state", timeout=15)
        print(f"stop took {stopped_at - began:.1f} s, takeover {time.monotonic() - stopped_at:.1f} s after")
        assert time.monotonic() - stopped_at < 3
    finally:
        first.stop()
        second.stop()
