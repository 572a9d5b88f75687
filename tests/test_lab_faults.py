"""The lab and IronLB under real faults: a frozen API server, an operator that is down, a node cut off from
the API server while a Service is deleted.

Before: the pod runner's loop thread died on a urllib3 ReadTimeoutError during a 40 s freeze (node leases
stopped, every node went NotReady, no speaker came back); a Service deleted while no operator ran stayed
announced until the operator returned; a speaker's re-list after a watch gap never removed anything.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clusterhelpers import Cluster, remove_created_namespaces, wait_until
from ironlb.operator.manifests import OPERATOR_NAME
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab

NAMESPACE = "fault-lab"
POOL = ipaddress.ip_network("2001:db8:300:fa::/120")  # on the lab's LAN (the client reaches it on-link)
V6: dict[str, Any] = {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}


@pytest.fixture(scope="module")
def lab(crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L2Lab]:
    workdir = tmp_path_factory.mktemp("faultlab")
    with L2Lab(crds_installed, workdir, namespace=NAMESPACE, operator_as_pod=True, faults=True) as running:
        crds_installed.announce_pool("fault-pool", str(POOL), namespace=NAMESPACE)
        yield running
        remove_created_namespaces(crds_installed)


def announced(lab: L2Lab, name: str, timeout: float = 30) -> tuple[Cluster, str, str]:
    """A new IPv6 Service answered on the wire: (cluster, its namespace, its IP)."""
    cluster = Cluster(lab.plane, namespace=NAMESPACE)
    namespace = cluster.new_namespace()
    cluster.service(namespace, name, ready_endpoint=True, **V6)
    ip = cluster.wait_ingress(namespace, name, timeout=timeout)[0]
    assert ipaddress.ip_address(ip) in POOL
    wait_until(lambda: lab.ndp(ip) != "", 20, f"a node to answer for {ip}")
    return cluster, namespace, ip


def owner_of(lab: L2Lab, ip: str) -> str:
    macs = {lab.lab.node(n).mac(): lab.lab.node(n).role for n in range(1, lab.nodes + 1)}
    return macs[lab.ndp(ip)]


def test_the_lab_and_the_speakers_outlive_a_frozen_api_server(lab: L2Lab) -> None:
    _, _, ip = announced(lab, "frozen")
    lab.plane.freeze("kube-apiserver")
    silent = []
    try:
        for second in range(40):
            time.sleep(1)
            if lab.ndp(ip) == "":
                silent.append(second)
    finally:
        lab.plane.thaw("kube-apiserver")
    assert len(silent) <= 1, f"{ip} unanswered during the freeze at seconds {silent}"
    nodes = [lab.lab.node(n).role for n in range(1, lab.nodes + 1)]

    def ready_nodes() -> list[str]:
        lines = lab.plane.kubectl("get", "nodes", *nodes, "--no-headers", check=False).stdout.splitlines()
        return [line.split()[0] for line in lines if " Ready " in f" {line} "]

    wait_until(lambda: sorted(ready_nodes()) == nodes, 90, "every lab node Ready again")
    lab.ensure_speakers(timeout=90)
    # the leader could not renew its lease for 40 s: it stopped, and a replica (restarted) leads again
    _, _, after = announced(lab, "after-the-freeze", timeout=90)
    assert after != ip


def test_a_service_deleted_while_no_operator_runs_stops_being_announced_within_5_s(lab: L2Lab) -> None:
    cluster, namespace, ip = announced(lab, "orphan")
    scale = ("scale", "deployment", OPERATOR_NAME, "-n", NAMESPACE)
    lab.plane.kubectl(*scale, "--replicas=0")
    try:
        wait_until(
            lambda: lab.runner.process_of_any(f"{NAMESPACE}/{OPERATOR_NAME}-") is None, 60, "no operator"
        )
        deleted = time.monotonic()
        lab.plane.kubectl("delete", "service", "orphan", "-n", namespace, "--wait=false")
        wait_until(lambda: lab.ndp(ip) == "", 10, f"{ip} to fall silent without an operator")
        silent_after = time.monotonic() - deleted
        print(f"deleted with no operator running: {ip} unanswered {silent_after:.2f} s later")
        assert silent_after < 5
    finally:
        lab.plane.kubectl(*scale, "--replicas=2")
    assert cluster.get("service", "orphan", namespace) is None
    announced(lab, "with-the-operator-back", timeout=60)


def test_a_speaker_cut_off_while_its_service_is_deleted_stops_once_it_is_back(lab: L2Lab) -> None:
    """The owner's node loses the API server (connections reset, new ones refused); the Service is deleted
    and etcd compacted meanwhile. Once it is back, its informers catch up and it falls silent."""
    _, namespace, ip = announced(lab, "gap")
    proxy = lab.bridge.proxy(owner_of(lab, ip))
    proxy.refuse()
    proxy.reset()
    try:
        lab.plane.kubectl("delete", "service", "gap", "-n", namespace)
        lab.plane.compact()
        time.sleep(2)
        assert lab.ndp(ip) != "", "cut off, the owner cannot know yet"
    finally:
        proxy.heal()
    healed = time.monotonic()
    wait_until(lambda: lab.ndp(ip) == "", 30, f"{ip} to fall silent after the partition")
    print(f"the partitioned owner fell silent {time.monotonic() - healed:.1f} s after it could reach the API")
