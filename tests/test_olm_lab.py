"""The OLM bundle installed by the real OLM (``olm`` built from operator-lifecycle-manager v0.28.0): the CSV
reaches Succeeded, OLM creates the operator's Deployment from it, the operator (its real image) installs the
speakers (theirs), and a Service gets its IP and is answered. A broken CSV fails where the test sees it.

Before: the bundle passed operator-framework's validator, but OLM itself had never processed it.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterhelpers import Cluster, answered_service, remove_created_namespaces, wait_until
from ironlb.operator.manifests import OPERATOR_NAME
from ironlb_lab import containers
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import BUNDLE, L2Lab
from ironlb_lab.olm import bundle_objects, install_plan_steps
from ironlb_lab.upgrade import Traffic, installed_csv, upgrade

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "olm-lab"
DENIED_ON_PURPOSE = "olm-broken-rbac"  # test_rbac leaves out what its operator was refused
POOL = ipaddress.ip_network("203.0.113.0/25")  # 100 Services and more


def test_install_plan_steps_grant_each_account_its_rules() -> None:
    csv, _ = bundle_objects(BUNDLE)
    steps = install_plan_steps(csv, "x")
    kinds = [(s["kind"], s["metadata"]["name"]) for s in steps]
    assert ("ServiceAccount", "ironlb-operator") in kinds and ("ServiceAccount", "ironlb-speaker") in kinds
    strategy = csv["spec"]["install"]["spec"]
    roles = [s for s in steps if s["kind"] in ("Role", "ClusterRole")]
    assert len(roles) == len(strategy["permissions"]) + len(strategy["clusterPermissions"])
    bindings = [s for s in steps if s["kind"].endswith("Binding")]
    assert all(b["subjects"][0]["namespace"] == "x" for b in bindings)


@pytest.fixture(scope="module")
def lab(crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L2Lab]:
    containers.build_images()
    workdir = tmp_path_factory.mktemp("olmlab")
    with L2Lab(
        crds_installed, workdir, namespace=NAMESPACE, operator_as_pod=True, real_images=True, via_olm=True
    ) as running:
        crds_installed.announce_pool("olm-pool", str(POOL), namespace=NAMESPACE)
        yield running
        remove_created_namespaces(crds_installed)  # (its own stays: test_rbac asks can-i in it at the end)


def test_olm_installs_the_bundle_and_a_service_is_answered(lab: L2Lab) -> None:
    assert lab.olm.phase(NAMESPACE, lab.csv)[0] == "Succeeded"
    owner = lab.plane.kubectl(
        *("get", "deployment", OPERATOR_NAME, "-n", NAMESPACE),
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.labels.olm\\.owner}",
    ).stdout
    assert owner == f"ClusterServiceVersion/{lab.csv}", owner  # OLM made it, from the CSV
    ip = answered_service(lab, "via-olm")
    assert ipaddress.ip_address(ip) in POOL


def broken(csv: dict[str, Any], suffix: str) -> dict[str, Any]:
    copied = copy.deepcopy(csv)
    copied["metadata"]["name"] = f"{csv['metadata']['name']}-{suffix}"
    return copied


def test_a_csv_owning_a_crd_that_is_not_there_stays_pending_naming_it(lab: L2Lab) -> None:
    csv, _ = bundle_objects(BUNDLE)
    missing = broken(csv, "missing-crd")
    missing["spec"]["customresourcedefinitions"]["owned"].append(
        {"name": "widgets.ironlb.io", "version": "v1beta1", "kind": "Widget", "displayName": "Widget"}
    )
    namespace = "olm-broken-crd"
    name = lab.olm.install(BUNDLE, namespace, csv=missing)
    wait_until(
        lambda: lab.olm.phase(namespace, name)[:2] == ("Pending", "RequirementsNotMet"),
        120,
        "OLM to find the CSV's requirements not met",
    )
    status = lab.plane.kubectl("get", "csv", name, "-n", namespace, "-o", "json").stdout
    assert "widgets.ironlb.io" in status
    lab.plane.kubectl("delete", "namespace", namespace, "--wait=false")


def test_an_operator_denied_a_permission_it_needs_reports_itself_degraded(lab: L2Lab) -> None:
    """The CSV grants daemonsets read-only: OLM installs it, and the operator says what it cannot do."""
    csv, _ = bundle_objects(BUNDLE)
    denied = broken(csv, "no-daemonset-writes")
    for permission in denied["spec"]["install"]["spec"]["permissions"]:
        for rule in permission["rules"]:
            if "daemonsets" in rule.get("resources", []):
                rule["verbs"] = ["get", "list", "watch"]
    cluster = Cluster(lab.plane, namespace=NAMESPACE)
    before = cluster.new_namespace()
    cluster.service(before, "kept")
    kept = cluster.wait_ingress(before, "kept", timeout=60)[0]
    namespace = DENIED_ON_PURPOSE
    lab.runner.namespaces = lab.runner.namespaces | {namespace}  # the lab runs its pods too
    try:
        name = lab.olm.install(BUNDLE, namespace, csv=denied)
        lab.olm.wait_phase(namespace, name, "Succeeded")  # OLM cannot know what the operator needs

        def degraded() -> str:
            return lab.plane.kubectl(
                *("get", "ironlbconfig", "ironlb", "-n", namespace, "-o"),
                "jsonpath={.status.conditions[?(@.type=='Degraded')].status} "
                "{.status.conditions[?(@.type=='Degraded')].message}",
                check=False,
            ).stdout

        wait_until(lambda: degraded().startswith("True "), 120, "the operator to report itself Degraded")
        assert "forbidden" in degraded() and "daemonsets" in degraded(), degraded()
    finally:
        lab.plane.kubectl("delete", "namespace", namespace, "--wait=false")
    # the broken install next to it changed nothing IronLB had allocated
    assert cluster.wait_ingress(before, "kept", timeout=10)[0] == kept


def test_an_upgrade_by_olm_rolls_everything_and_keeps_every_ip_and_the_traffic(lab: L2Lab) -> None:
    """Version N+1 over a running N with 100 Services: OLM rolls the operator, the operator the speakers;
    no IP changes, and neither a client on the LAN (Layer 2) nor one behind the router (BGP) sees an
    outage over 1 s. (Before the speaker's readiness waited for its BGP sessions, the client behind the
    router lost 4.8 s: the DaemonSet took the next node down before the restarted one announced again.)"""
    cluster = Cluster(lab.plane, namespace=NAMESPACE)
    namespace = cluster.new_namespace()
    for number in range(100):
        cluster.service(namespace, f"s{number:03}")
    before = {n: cluster.wait_ingress(namespace, f"s{n:03}", timeout=60)[0] for n in range(100)}
    traffic = Traffic(lab, namespace).start()
    try:
        result = upgrade(lab, traffic, installed_csv(), "0.1.1")
    finally:
        traffic.stop()
    print(
        f"\nupgrade 0.1.0 -> 0.1.1 by OLM rolled in {result.rolled:.1f} s; longest outage: Layer 2 "
        f"{result.layer2[0] * 1000:.0f} ms ({result.layer2[1]} of {result.layer2[2]} requests failed), "
        f"behind the BGP router {result.bgp[0] * 1000:.0f} ms ({result.bgp[1]} of {result.bgp[2]} failed)"
    )
    assert result.layer2[0] < 1.0 and result.bgp[0] < 1.0, (result.layer2, result.bgp)
    after = {n: cluster.wait_ingress(namespace, f"s{n:03}", timeout=10)[0] for n in range(100)}
    assert after == before
