"""The real ironlb-operator process against the real control plane, one behaviour per test."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from clusterhelpers import Cluster, wait_until
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.operator import OperatorProcess


@pytest.fixture(scope="module")
def cluster(crds_installed: ControlPlane) -> Iterator[Cluster]:
    # a namespace of its own: other test modules' pools (docs/examples) must not overlap these
    cluster = Cluster(crds_installed, namespace="operator-tests")
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.namespace}})
    cluster.apply(
        {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "announced-pools", "namespace": cluster.namespace},
            "spec": {"ipAddressPoolSelectors": [{"matchLabels": {"announce": "yes"}}]},
        }
    )
    with OperatorProcess(crds_installed, args=("--namespace", cluster.namespace)) as operator:
        cluster.operator = operator  # type: ignore[attr-defined]
        yield cluster


def only_for(namespace: str) -> dict[str, Any]:
    return {"serviceAllocation": {"namespaces": [namespace]}}


def test_seed_service_gets_an_ip_from_the_annotated_pool(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("addresspool-sample1", "203.0.113.1-203.0.113.16", autoAssign=False)
    cluster.service(
        namespace,
        "metallb-nginx-svc",
        ports=(5678,),
        externalTrafficPolicy="Local",
        annotations={"metallb.universe.tf/address-pool": "addresspool-sample1"},
    )
    assert cluster.wait_ingress(namespace, "metallb-nginx-svc") == ["203.0.113.1"]
    service = cluster.get("service", "metallb-nginx-svc", namespace)
    assert service is not None
    annotations = service["metadata"]["annotations"]
    assert annotations["ironlb.io/ip-allocated-from-pool"] == "addresspool-sample1"
    assert not [key for key in annotations if "kopf" in key], annotations
    assert not service["metadata"].get("finalizers")
    allocated = cluster.wait_event(namespace, "metallb-nginx-svc", "IPAllocated")
    assert "203.0.113.1 from IPAddressPool addresspool-sample1" in allocated["message"]
    legacy = cluster.wait_event(namespace, "metallb-nginx-svc", "LegacyAnnotation")
    assert "use ironlb.io/address-pool" in legacy["message"] and legacy["type"] == "Warning"
    wait_until(lambda: cluster.pool_status("addresspool-sample1").get("assigned") == 1, what="pool count")
    status = cluster.pool_status("addresspool-sample1")
    assert (status["assignedIPv4"], status["availableIPv4"], status["available"]) == (1, 15, "15")


def test_ip_is_released_on_delete_and_when_no_longer_a_load_balancer(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("release", "203.0.113.32/30", **only_for(namespace))
    cluster.service(namespace, "a")
    cluster.service(namespace, "b")
    assert sorted(cluster.wait_ingress(namespace, "a") + cluster.wait_ingress(namespace, "b")) == [
        "203.0.113.32",
        "203.0.113.33",
    ]
    cluster.plane.kubectl(
        "patch", "service", "a", "-n", namespace, "--type=merge", "-p", '{"spec": {"type": "ClusterIP"}}'
    )
    wait_until(lambda: cluster.ingress(namespace, "a") == [], what="status cleared")
    cluster.wait_event(namespace, "a", "IPReleased")
    cluster.plane.kubectl("delete", "service", "b", "-n", namespace)
    wait_until(lambda: cluster.pool_status("release").get("assigned") == 0, what="pool back to 0")


def test_requested_ips_by_field_and_annotation_and_conflicts(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("requested", "203.0.113.40/29", **only_for(namespace))
    cluster.service(namespace, "by-field", loadBalancerIP="203.0.113.45")
    cluster.service(namespace, "by-annotation", annotations={"ironlb.io/loadBalancerIPs": "203.0.113.46"})
    assert cluster.wait_ingress(namespace, "by-field") == ["203.0.113.45"]
    assert cluster.wait_ingress(namespace, "by-annotation") == ["203.0.113.46"]
    cluster.service(namespace, "taken", annotations={"ironlb.io/loadBalancerIPs": "203.0.113.46"})
    event = cluster.wait_event(namespace, "taken", "RequestedIPInUse")
    assert f"{namespace}/by-annotation" in event["message"]
    cluster.service(namespace, "outside", annotations={"ironlb.io/loadBalancerIPs": "198.51.100.77"})
    outside = cluster.wait_event(namespace, "outside", "RequestedIPNotInPool")
    assert "198.51.100.77" in outside["message"]
    cluster.service(namespace, "garbled", annotations={"ironlb.io/loadBalancerIPs": "203.0.113.300"})
    garbled = cluster.wait_event(namespace, "garbled", "InvalidRequest")
    assert "'203.0.113.300' is not an IP address" in garbled["message"]
    assert cluster.ingress(namespace, "taken") == cluster.ingress(namespace, "outside") == []


def test_pending_services_say_why(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.service(namespace, "no-pool", annotations={"ironlb.io/address-pool": "does-not-exist"})
    assert (
        "'does-not-exist' does not exist"
        in cluster.wait_event(namespace, "no-pool", "PoolNotFound")["message"]
    )
    cluster.service(namespace, "no-match")
    matched = cluster.wait_event(namespace, "no-match", "NoMatchingPool")
    assert f"namespace '{namespace}'" in matched["message"]
    cluster.pool("one-address", "203.0.113.50/32", autoAssign=False)
    cluster.service(namespace, "first", annotations={"ironlb.io/address-pool": "one-address"})
    cluster.wait_ingress(namespace, "first")
    cluster.service(namespace, "second", annotations={"ironlb.io/address-pool": "one-address"})
    exhausted = cluster.wait_event(namespace, "second", "PoolExhausted")
    assert "(1 of 1 in use)" in exhausted["message"]
    wait_until(
        lambda: cluster.condition("one-address", "Exhausted").get("status") == "True", what="Exhausted"
    )


def test_a_pending_service_gets_its_ip_when_a_pool_appears(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.service(namespace, "early")
    cluster.wait_event(namespace, "early", "NoMatchingPool")
    cluster.pool("late", "203.0.113.56/30", **only_for(namespace))
    assert cluster.wait_ingress(namespace, "early") == ["203.0.113.56"]


def test_pool_nobody_announces_is_reported(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("silent", "203.0.113.60/30", labels={}, **only_for(namespace))
    cluster.service(namespace, "quiet")
    cluster.wait_ingress(namespace, "quiet")
    event = cluster.wait_event(namespace, "quiet", "NotAnnounced")
    assert "selected by no L2Advertisement or BGPAdvertisement" in event["message"]


def test_sharing_one_ip_and_a_port_conflict(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("shared", "203.0.113.64/30", **only_for(namespace))
    key = {"ironlb.io/allow-shared-ip": "web"}
    cluster.service(namespace, "http", ports=(80,), annotations=key)
    cluster.service(namespace, "https", ports=(443,), annotations=key)
    assert (
        cluster.wait_ingress(namespace, "http")
        == cluster.wait_ingress(namespace, "https")
        == ["203.0.113.64"]
    )
    cluster.service(
        namespace, "clash", ports=(80,), annotations={**key, "ironlb.io/loadBalancerIPs": "203.0.113.64"}
    )
    event = cluster.wait_event(namespace, "clash", "SharingConflict")
    assert "port TCP/80" in event["message"]


def test_dual_stack_require_and_prefer(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("dual", "203.0.113.68/30", "2001:db8:10::/126", **only_for(namespace))
    cluster.service(namespace, "both", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"])
    assert cluster.wait_ingress(namespace, "both", count=2) == ["2001:db8:10::", "203.0.113.68"]
    other = cluster.new_namespace()
    cluster.pool("v4-first", "203.0.113.72/30", **only_for(other))
    cluster.service(other, "prefer", ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"])
    assert cluster.wait_ingress(other, "prefer") == ["203.0.113.72"]
    cluster.wait_event(other, "prefer", "DualStackIncomplete")
    cluster.pool("v4-first", "203.0.113.72/30", "2001:db8:11::/126", **only_for(other))
    assert cluster.wait_ingress(other, "prefer", count=2) == ["203.0.113.72", "2001:db8:11::"]


def test_services_of_another_load_balancer_class_are_left_alone(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("classy", "203.0.113.76/30", **only_for(namespace))
    cluster.service(namespace, "theirs", loadBalancerClass="example.com/other")
    cluster.service(namespace, "ours", loadBalancerClass="ironlb.io/ironlb")
    cluster.wait_ingress(namespace, "ours")
    assert cluster.ingress(namespace, "theirs") == [] and cluster.events(namespace, "theirs") == []


def test_overlapping_pools_are_reported_and_existing_ips_keep_working(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("older", "203.0.113.80/29", **only_for(namespace))
    cluster.service(namespace, "kept")
    kept = cluster.wait_ingress(namespace, "kept")
    time.sleep(1.1)  # creationTimestamp has one-second resolution; within a second the name decides
    cluster.pool("newer", "203.0.113.84-203.0.113.90", **only_for(namespace))
    wait_until(lambda: cluster.condition("newer", "Ready").get("status") == "False", what="newer not Ready")
    assert "older (203.0.113.84-203.0.113.87)" in cluster.condition("newer", "Overlapping")["message"]
    assert cluster.condition("older", "Overlapping")["status"] == "True"
    assert cluster.condition("older", "Ready")["status"] == "True"
    assert cluster.ingress(namespace, "kept") == kept
    event = cluster.wait_event(cluster.namespace, "newer", "Overlapping")
    assert event["type"] == "Warning" and "older (203.0.113.84-203.0.113.87)" in event["message"]


def test_a_shrunk_pool_reports_services_it_no_longer_contains(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("shrinking", "203.0.113.96/29", **only_for(namespace))
    for name in ("s0", "s1", "s2"):
        cluster.service(namespace, name)
        cluster.wait_ingress(namespace, name)
    cluster.pool("shrinking", "203.0.113.96/31", **only_for(namespace))
    wait_until(
        lambda: cluster.condition("shrinking", "ServicesOutsidePool").get("status") == "True",
        what="ServicesOutsidePool",
    )
    assert f"{namespace}/s2" in cluster.condition("shrinking", "ServicesOutsidePool")["message"]
    assert cluster.ingress(namespace, "s2") == ["203.0.113.98"]
    assert (
        "no longer in IPAddressPool shrinking"
        in cluster.wait_event(namespace, "s2", "IPOutsidePool")["message"]
    )


def test_metrics_show_pools_and_failures(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    cluster.pool("metered", "203.0.113.104/30", **only_for(namespace))
    cluster.service(namespace, "m")
    cluster.wait_ingress(namespace, "m")
    operator: OperatorProcess = cluster.operator  # type: ignore[attr-defined]

    def scrape() -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5
        ) as response:
            return str(response.read().decode())

    in_use = r'ironlb_address_pool_addresses_in_use\{family="IPv4",pool="metered"\} 1\.0'
    text = wait_until(lambda: (t := scrape()) and re.search(in_use, t) and t, what="pool metrics")
    assert re.search(r'ironlb_address_pool_addresses_total\{family="IPv4",pool="metered"\} 4\.0', text)
    assert re.search(r'ironlb_allocation_failures_total\{reason="PoolNotFound"\} [1-9]', text)


def test_pending_services_are_counted_by_reason_until_they_get_an_ip(cluster: Cluster) -> None:
    operator: OperatorProcess = cluster.operator  # type: ignore[attr-defined]

    def sample(pattern: str) -> float:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5
        ) as response:
            found = re.search(pattern + r" ([0-9.e+]+)", response.read().decode())
        return float(found.group(1)) if found else 0.0

    pending = r'ironlb_services_pending\{reason="PoolNotFound"\}'
    before = sample(pending)
    namespace = cluster.new_namespace()
    cluster.service(namespace, "early", annotations={"ironlb.io/address-pool": "later"})
    wait_until(lambda: sample(pending) == before + 1, what="one more pending for PoolNotFound")
    cluster.pool("later", "203.0.113.124/31", **only_for(namespace))
    cluster.wait_ingress(namespace, "early")
    wait_until(lambda: sample(pending) == before, what="no longer pending")
    assert sample("ironlb_operator_leader") == 1.0

    # every published ConfigMap says when it was written, and the operator exports its latest write
    def newest_stamp() -> float:
        published = json.loads(
            cluster.plane.kubectl(
                "get", "configmaps", "-n", cluster.namespace, "-l", "ironlb.io/speaker-config", "-o", "json"
            ).stdout
        )["items"]
        return max(float(c["metadata"]["annotations"]["ironlb.io/published-at"]) for c in published)

    latest = sample("ironlb_operator_config_published_timestamp_seconds")
    assert time.time() - 600 < latest <= time.time()
    wait_until(
        lambda: abs(newest_stamp() - sample("ironlb_operator_config_published_timestamp_seconds")) < 0.001,
        what="the newest published-at is the operator's latest write",
    )


def test_an_advertisement_naming_a_missing_pool_says_so(cluster: Cluster) -> None:
    cluster.apply(
        {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "typo", "namespace": cluster.namespace},
            "spec": {"ipAddressPools": ["prodution"]},
        }
    )

    def ready() -> dict[str, Any]:
        status = (cluster.get("l2advertisement", "typo") or {}).get("status", {})
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})

    missing = wait_until(lambda: ready().get("status") == "False" and ready(), what="Ready=False")
    assert missing["reason"] == "PoolsMissing" and "prodution" in missing["message"]
    cluster.wait_event(cluster.namespace, "typo", "PoolsMissing")
    cluster.pool("prodution", "203.0.113.108/30", autoAssign=False)
    wait_until(lambda: ready().get("status") == "True", what="Ready=True once the pool exists")


def test_speaker_configuration_is_published_in_stable_shards(cluster: Cluster) -> None:
    for name, role in (("lab-node-1", "edge"), ("lab-node-2", "core")):
        cluster.apply(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"role": role}}}
        )
    cluster.apply(
        {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "edge-only", "namespace": cluster.namespace},
            "spec": {"ipAddressPools": ["published"], "nodeSelectors": [{"matchLabels": {"role": "edge"}}]},
        }
    )
    namespace = cluster.new_namespace()
    cluster.pool("published", "203.0.113.112/29", **only_for(namespace))
    cluster.service(namespace, "first", externalTrafficPolicy="Local")
    cluster.service(namespace, "second")
    first_ip = cluster.wait_ingress(namespace, "first")
    cluster.wait_ingress(namespace, "second")

    def global_config() -> dict[str, Any]:
        data = (cluster.get("configmap", "ironlb-speaker-config") or {}).get("data", {})
        return dict(json.loads(data.get("config.json", "{}")))

    config = wait_until(
        lambda: (c := global_config()) and any(a["name"] == "edge-only" for a in c["l2"]) and c,
        what="the global speaker config",
    )
    edge = next(a for a in config["l2"] if a["name"] == "edge-only")
    assert edge["nodes"] == ["lab-node-1"]

    def shards() -> dict[str, dict[str, Any]]:
        listed = json.loads(
            cluster.plane.kubectl(
                "get",
                "configmaps",
                "-n",
                cluster.namespace,
                "-l",
                "ironlb.io/speaker-config=announcements",
                "-o",
                "json",
            ).stdout
        )
        return {item["metadata"]["name"]: item for item in listed["items"]}

    def announced(service: str) -> dict[str, Any] | None:
        for item in shards().values():
            for entry in json.loads(item["data"]["announcements.json"])["services"]:
                if entry["service"] == service:
                    return dict(entry)
        return None

    entry = wait_until(lambda: announced(f"{namespace}/first"), what="the Service in a shard")
    assert entry["ips"] == first_ip and entry["local_traffic"] is True
    assert "edge-only" in entry["l2"] and "announced-pools" in entry["l2"]
    wait_until(lambda: announced(f"{namespace}/second"), what="the second Service in a shard")
    before = {name: item["metadata"]["resourceVersion"] for name, item in shards().items()}
    cluster.plane.kubectl("delete", "service", "second", "-n", namespace)
    wait_until(
        lambda: announced(f"{namespace}/second") is None, what="the deleted Service to leave its shard"
    )
    after = {name: item["metadata"]["resourceVersion"] for name, item in shards().items()}
    changed = [name for name in before if before[name] != after.get(name)]
    assert len(changed) == 1, f"one Service change rewrote {changed}"
    # a pool change is re-published: without its label the label-selecting advertisement drops it
    cluster.pool("published", "203.0.113.112/29", labels={}, **only_for(namespace))
    wait_until(
        lambda: (e := announced(f"{namespace}/first")) and "announced-pools" not in e["l2"],
        what="the pool change in the shard",
    )
