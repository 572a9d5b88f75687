"""The operator honours MetalLB's legacy ``config`` ConfigMap: the real operator against the real API server.

The tests run in order on one operator: the ConfigMap is a singleton per namespace, and each test starts
from what the previous one left (noted at the top of each).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from clusterhelpers import Cluster, remove_created_namespaces, wait_until
from ironlb.operator.legacy import LegacyObjects, carried_over, legacy_objects
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.operator import OperatorProcess

NAMESPACE = "legacy-op"
POOL = "addresspool-sample1"
# The seed's ConfigMap, with a documentation range. Other modules leave Services holding IPs all over
# 203.0.113.0/24 in the shared control plane (test_operator_failover's bursts land anywhere in
# 203.0.113.128/25), and this operator adopts them; no operator test allocates from 198.51.100.64/27, so
# the exact IPs below are known. auto-assign is off so that Services left pending cannot take them.
SEED = f"""\
address-pools:
- name: {POOL}
  protocol: layer2
  auto-assign: false
  addresses:
  - 198.51.100.64-198.51.100.67
"""
POLL = 20.0  # the operator polls every 5 s; a change must show well within this
HOME: dict[str, str] = {}  # Service name -> the test namespace it was made in, for later tests


def configmap(namespace: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": namespace},
        "data": {"config": text},
    }


@pytest.fixture(scope="module")
def cluster(crds_installed: ControlPlane) -> Iterator[Cluster]:
    cluster = Cluster(crds_installed, namespace=NAMESPACE)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    cluster.apply(configmap(NAMESPACE, SEED))  # before the operator starts: read at start-up
    try:
        with OperatorProcess(crds_installed, args=("--namespace", NAMESPACE, "--no-speakers")) as operator:
            cluster.operator = operator  # type: ignore[attr-defined]
            yield cluster
    finally:  # other modules' operators read metallb-system too, and would serve these Services' pool names
        remove_created_namespaces(crds_installed)
        crds_installed.kubectl("delete", "configmap", "config", "-n", "metallb-system", "--ignore-not-found")
        crds_installed.kubectl("delete", "configmap", "config", "-n", NAMESPACE, "--ignore-not-found")


def legacy_event(cluster: Cluster, namespace: str, check: Callable[[str], bool]) -> dict[str, Any]:
    """The Warning LegacyConfigMap event on the ConfigMap whose message passes ``check``."""

    def find() -> dict[str, Any] | None:
        return next(
            (
                e
                for e in cluster.events(namespace, "config")
                if e["reason"] == "LegacyConfigMap" and check(e["message"])
            ),
            None,
        )

    event: dict[str, Any] = wait_until(find, POLL, f"a LegacyConfigMap event in {namespace}")
    assert event["type"] == "Warning" and event["involvedObject"]["kind"] == "ConfigMap"
    return event


def annotated(cluster: Cluster, namespace: str, name: str, pool: str = POOL) -> None:
    HOME[name] = namespace
    cluster.service(namespace, name, annotations={"metallb.universe.tf/address-pool": pool})


def ip(cluster: Cluster, namespace: str, name: str) -> str:
    try:
        return cluster.wait_ingress(namespace, name, timeout=POLL)[0]
    except AssertionError as error:  # say why: the Service's events name the reason
        said = [f"{e['reason']}: {e['message']}" for e in cluster.events(namespace, name)]
        raise AssertionError(f"{error}; events: {said}") from None


def speaker_l2(cluster: Cluster) -> set[str]:
    """The L2Advertisements the operator publishes to the speakers."""
    data = (cluster.get("configmap", "ironlb-speaker-config") or {}).get("data", {})
    return {a["name"] for a in json.loads(data.get("config.json", "{}")).get("l2", [])}


def pool_metric_present(cluster: Cluster, pool: str) -> bool:
    """Whether the operator exports addresses of this pool (CRD pools only: a deletion removes them)."""
    port = cluster.operator.metrics_port  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return f'pool="{pool}"' in response.read().decode()


def reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    return [event["reason"] for event in cluster.events(namespace, name)]


# ------------------------------------------------------------------------------ the real operator, in order
def test_the_seed_configmap_gives_the_annotated_service_an_ip_and_a_warning(cluster: Cluster) -> None:
    namespace = cluster.new_namespace()
    annotated(cluster, namespace, "metallb-nginx-svc")
    assert ip(cluster, namespace, "metallb-nginx-svc") == "198.51.100.64"
    service = cluster.get("service", "metallb-nginx-svc", namespace) or {}
    assert service["metadata"]["annotations"]["ironlb.io/ip-allocated-from-pool"] == POOL
    event = legacy_event(cluster, NAMESPACE, lambda m: "ironlb migrate" in m)
    assert f"{NAMESPACE}/config is honoured (1 pools, 1 advertisements, 0 peers)" in event["message"]
    assert "not used" not in event["message"]

    wait_until(  # the legacy L2Advertisement reaches the speakers like a CRD one
        lambda: f"{POOL}-l2" in speaker_l2(cluster), what="the legacy advertisement for the speakers"
    )
    cluster.wait_event(namespace, "metallb-nginx-svc", "IPAllocated")
    assert "NotAnnounced" not in reasons(cluster, namespace, "metallb-nginx-svc")


def test_an_ipaddresspool_of_the_same_name_wins_and_ips_outside_it_are_reported(cluster: Cluster) -> None:
    # from before: metallb-nginx-svc holds 198.51.100.64 from the legacy pool
    namespace = cluster.new_namespace()
    annotated(cluster, namespace, "inside")
    assert ip(cluster, namespace, "inside") == "198.51.100.65"
    cluster.pool(POOL, "198.51.100.65/32", "198.51.100.68/32", autoAssign=False)  # not .64
    first = HOME["metallb-nginx-svc"]
    outside = cluster.wait_event(first, "metallb-nginx-svc", "IPOutsidePool")
    assert f"198.51.100.64 is no longer in IPAddressPool {POOL}" in outside["message"]
    assert cluster.ingress(first, "metallb-nginx-svc") == ["198.51.100.64"]  # kept, never moved
    wait_until(
        lambda: cluster.condition(POOL, "ServicesOutsidePool").get("status") == "True",
        what="ServicesOutsidePool on the CRD pool",
    )
    annotated(cluster, namespace, "new-range")
    assert ip(cluster, namespace, "new-range") == "198.51.100.68"  # the CRD's range, .65 being taken
    assert cluster.ingress(namespace, "inside") == ["198.51.100.65"]
    assert "IPOutsidePool" not in reasons(cluster, namespace, "inside")


def test_deleting_the_ipaddresspool_brings_the_legacy_pool_back(cluster: Cluster) -> None:
    # from before: the CRD pool wins; .64 (outside it), .65 and .68 are held
    assert pool_metric_present(cluster, POOL)
    cluster.plane.kubectl("delete", "ipaddresspool", POOL, "-n", NAMESPACE)
    wait_until(lambda: not pool_metric_present(cluster, POOL), what="the deletion seen by the operator")
    namespace = cluster.new_namespace()
    annotated(cluster, namespace, "legacy-again")
    assert ip(cluster, namespace, "legacy-again") == "198.51.100.66"  # .64-.67 again, first free


def test_deleting_the_configmap_removes_the_legacy_pool(cluster: Cluster) -> None:
    cluster.plane.kubectl("delete", "configmap", "config", "-n", NAMESPACE)
    wait_until(lambda: f"{POOL}-l2" not in speaker_l2(cluster), POLL, "the legacy advertisement gone")
    namespace = cluster.new_namespace()
    annotated(cluster, namespace, "too-late")
    event = cluster.wait_event(namespace, "too-late", "PoolNotFound", timeout=POLL)
    assert f"'{POOL}' does not exist" in event["message"]
    assert cluster.ingress(namespace, "too-late") == []
    first = HOME["legacy-again"]
    assert cluster.ingress(first, "legacy-again") == ["198.51.100.66"]  # kept, and reported:
    outside = cluster.wait_event(first, "legacy-again", "IPOutsidePool")
    assert f"198.51.100.66 is no longer in IPAddressPool {POOL}" in outside["message"]


def test_a_broken_configmap_is_reported_and_disturbs_no_allocation(cluster: Cluster) -> None:
    good = (
        "address-pools: [{name: legacy-two, protocol: layer2, auto-assign: false,"
        " addresses: [198.51.100.72-198.51.100.74]}]\n"
    )
    cluster.apply(configmap(NAMESPACE, good))
    namespace = cluster.new_namespace()
    annotated(cluster, namespace, "before", "legacy-two")
    assert ip(cluster, namespace, "before") == "198.51.100.72"

    reversed_range = good.replace("198.51.100.72-198.51.100.74", "198.51.100.74-198.51.100.72")
    cluster.apply(configmap(NAMESPACE, reversed_range))
    event = legacy_event(cluster, NAMESPACE, lambda m: "'198.51.100.74-198.51.100.72' is reversed" in m)
    assert "address-pools[0].addresses" in event["message"]
    assert "pool legacy-two: its entry is rejected; its last good version stays in force" in event["message"]
    annotated(cluster, namespace, "during", "legacy-two")
    assert ip(cluster, namespace, "during") == "198.51.100.73"  # the last good version still allocates

    cluster.apply(configmap(NAMESPACE, "address-pools: [{"))
    unreadable = legacy_event(cluster, NAMESPACE, lambda m: "config: not YAML" in m)
    assert "the last readable version stays in force" in unreadable["message"]
    annotated(cluster, namespace, "still", "legacy-two")
    assert ip(cluster, namespace, "still") == "198.51.100.74"
    assert cluster.ingress(namespace, "before") == ["198.51.100.72"]
    assert "IPOutsidePool" not in reasons(cluster, namespace, "before")
    assert "IPOutsidePool" not in reasons(cluster, namespace, "during")


def test_the_operators_namespace_wins_over_metallb_system(cluster: Cluster) -> None:
    # from before: legacy-op/config is unreadable, its last good reading (legacy-two) in force
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}})
    other = (
        "address-pools: [{name: from-metallb, protocol: layer2, auto-assign: false,"
        " addresses: [198.51.100.76/30]}]\n"
    )
    cluster.apply(configmap("metallb-system", other))
    time.sleep(POLL / 2)
    assert not [e for e in cluster.events("metallb-system", "config") if e["reason"] == "LegacyConfigMap"], (
        "read before the admin opted metallb-system in"
    )
    cluster.apply(
        {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "IronLBConfig",
            "metadata": {"name": "ironlb", "namespace": NAMESPACE},
            "spec": {"legacyConfigNamespaces": ["metallb-system"]},
        }
    )
    ignored = legacy_event(cluster, "metallb-system", lambda m: "not used" in m)
    assert f"{NAMESPACE}/config is in force" in ignored["message"]
    namespace = cluster.new_namespace()
    cluster.plane.kubectl("delete", "configmap", "config", "-n", NAMESPACE)
    wait_until(lambda: "from-metallb-l2" in speaker_l2(cluster), POLL, "metallb-system/config in force")
    annotated(cluster, namespace, "from-metallb-system", "from-metallb")
    assert ip(cluster, namespace, "from-metallb-system") == "198.51.100.76"
    legacy_event(cluster, "metallb-system", lambda m: "metallb-system/config is honoured" in m)


# --------------------------------------------------------------------------- what a broken edit keeps (pure)
def reading(text: str) -> LegacyObjects:
    return legacy_objects(configmap(NAMESPACE, text))


TWO = (
    "address-pools:\n"
    "- {name: a, protocol: layer2, addresses: [192.0.2.0/28]}\n"
    "- {name: b, protocol: bgp, addresses: [192.0.2.16/28]}\n"
)


def test_a_clean_edit_is_applied_as_read_removals_included() -> None:
    edited = reading(yaml.safe_dump({"address-pools": [yaml.safe_load(TWO)["address-pools"][0]]}))
    assert carried_over(reading(TWO), edited) == edited
    assert set(edited.pools) == {"a"}


def test_a_rejected_pool_keeps_its_last_good_version_and_advertisements() -> None:
    broken = reading(TWO.replace("192.0.2.16/28", "192.0.2.31-192.0.2.16"))
    assert broken.rejected_pools == {"b"} and set(broken.pools) == {"a"}
    applied = carried_over(reading(TWO), broken)
    assert applied.pools["b"].addresses == ["192.0.2.16/28"]
    assert ("BGPAdvertisement", "b-bgp-1") in applied.advertisements
    assert any("192.0.2.31-192.0.2.16" in str(p) for p in applied.problems)
    assert carried_over(LegacyObjects(), broken) == broken  # nothing good to keep: nothing is kept


@pytest.mark.parametrize("text", ["address-pools: [{", "[1, 2]"])
def test_an_unreadable_configmap_keeps_the_whole_last_reading(text: str) -> None:
    previous = reading(TWO)
    applied = carried_over(previous, reading(text))
    assert (applied.pools, applied.advertisements) == (previous.pools, previous.advertisements)
    assert "the last readable version stays in force" in str(applied.problems[-1])
    assert not applied.readable
    assert carried_over(LegacyObjects(), reading(text)).pools == {}
