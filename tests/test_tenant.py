"""A hostile tenant, with its own ServiceAccount and ordinary namespace rights, against the real API server,
the real operator and the speakers in the lab: a pool restricted to team-a must stay team-a's on every path,
and nothing it tries may put an address on the wire.

Before: serviceAllocation was checked on automatic allocation only (the pool annotation, a requested IP and
a sharing key all got team-b an address from team-a's pool); a forged status.loadBalancer.ingress was
adopted after a leader change and announced; a ConfigMap `config` in a namespace called metallb-system
defined pools for anyone able to create that namespace.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clusterhelpers import Cluster, remove_created_namespaces, wait_until
from ironlb_lab.accounts import account_kubeconfig
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.endpoints import ready_endpoint_slice
from ironlb_lab.l2lab import L2Lab

NAMESPACE = "tenancy"
TEAM_A_POOL = ipaddress.ip_network("203.0.113.232/30")
GATEWAY = "198.51.100.126"  # the lab router's LAN address: the network's gateway


@dataclass
class Tenancy:
    lab: L2Lab
    cluster: Cluster
    team_a: str
    team_b: str
    tenant: Path  # team-b's kubeconfig

    def as_tenant(self, *argv: str, input: str | None = None, check: bool = True) -> str:
        result = self.lab.plane.kubectl(f"--kubeconfig={self.tenant}", *argv, input=input, check=check)
        return result.stdout

    def tenant_service(self, name: str, annotations: dict[str, str] | None = None, **spec: Any) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.team_b, "annotations": annotations or {}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": spec.pop("port", 80)}], **spec},
        }
        self.as_tenant("apply", "-f", "-", input=json.dumps(body))
        # a ready endpoint, so that only IronLB's refusals keep its IPs silent (a tenant's pods would do it)
        self.cluster.apply(ready_endpoint_slice(self.team_b, name))

    def forge(self, name: str, patch: dict[str, Any]) -> None:
        self.as_tenant(
            *("patch", "service", name, "-n", self.team_b, "--subresource=status", "--type=merge"),
            *("-p", json.dumps(patch)),
        )

    def wait_cleared(self, name: str) -> None:
        wait_until(lambda: self.cluster.ingress(self.team_b, name) == [], 20, f"{name}'s status cleared")

    def refused(self, name: str, reason: str = "PoolNotAllowed") -> str:
        """The Warning the tenant's Service gets; it never shows an IP meanwhile."""
        event = self.cluster.wait_event(self.team_b, name, reason)
        assert event["type"] == "Warning"
        time.sleep(1)
        assert self.cluster.ingress(self.team_b, name) == [], f"{name} got an IP"
        return str(event["message"])


def tenant_rbac(team_b: str) -> list[dict[str, Any]]:
    """What an ordinary tenant has: its Services (status included, a common over-grant), and the right to
    create namespaces and ConfigMaps in them."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "tenant", "namespace": team_b}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"tenant-{team_b}"},
            "rules": [
                {"apiGroups": [""], "resources": ["services", "services/status"], "verbs": ["*"]},
                {"apiGroups": [""], "resources": ["namespaces", "configmaps"], "verbs": ["create", "get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"tenant-{team_b}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"tenant-{team_b}",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": team_b}],
        },
    ]


@pytest.fixture(scope="module")
def tenancy(crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenancy]:
    workdir = tmp_path_factory.mktemp("tenancy")
    with L2Lab(crds_installed, workdir, namespace=NAMESPACE) as lab:
        cluster = Cluster(crds_installed, namespace=NAMESPACE)
        team_a, team_b = cluster.new_namespace(), cluster.new_namespace()
        cluster.pool("team-a-pool", str(TEAM_A_POOL), labels={}, serviceAllocation={"namespaces": [team_a]})
        cluster.apply(
            {
                "apiVersion": "ironlb.io/v1beta1",
                "kind": "L2Advertisement",
                "metadata": {"name": "every-pool", "namespace": NAMESPACE},
                "spec": {},
            }
        )
        cluster.apply(*tenant_rbac(team_b))
        kubeconfig = account_kubeconfig(crds_installed, team_b, "tenant", workdir / "tenant.kubeconfig")
        cluster.service(
            team_a,
            "web",
            ports=(80,),
            annotations={"ironlb.io/allow-shared-ip": "team-a"},
            ready_endpoint=True,
        )
        yield Tenancy(lab, cluster, team_a, team_b, kubeconfig)
        crds_installed.kubectl("delete", "namespace", "metallb-system", "--ignore-not-found", "--wait=false")
        remove_created_namespaces(crds_installed)


def team_a_ip(tenancy: Tenancy) -> str:
    return tenancy.cluster.wait_ingress(tenancy.team_a, "web")[0]


def owner_mac(tenancy: Tenancy, ip: str) -> str:
    return wait_until(lambda: tenancy.lab.arp(ip), 20, f"an answer for {ip}")  # type: ignore[no-any-return]


def test_the_pool_annotation_cannot_reach_a_pool_of_another_team(tenancy: Tenancy) -> None:
    tenancy.tenant_service("by-pool-name", {"ironlb.io/address-pool": "team-a-pool"})
    message = tenancy.refused("by-pool-name")
    assert (
        "team-a-pool" in message and "serviceAllocation.namespaces" in message and tenancy.team_b in message
    )


def test_a_requested_ip_cannot_come_from_a_pool_of_another_team(tenancy: Tenancy) -> None:
    free = str(TEAM_A_POOL[3])
    tenancy.tenant_service("by-annotation", {"ironlb.io/loadBalancerIPs": free})
    tenancy.tenant_service("by-field", loadBalancerIP=free)
    for name in ("by-annotation", "by-field"):
        assert "team-a-pool" in tenancy.refused(name)
    assert tenancy.lab.arp(free) == ""


def test_a_sharing_key_cannot_join_an_ip_of_another_team(tenancy: Tenancy) -> None:
    ip = team_a_ip(tenancy)
    before = owner_mac(tenancy, ip)
    annotations = {"ironlb.io/allow-shared-ip": "team-a", "ironlb.io/loadBalancerIPs": ip}
    tenancy.tenant_service("joins-web", annotations, port=443)
    assert "team-a-pool" in tenancy.refused("joins-web")
    assert owner_mac(tenancy, ip) == before


def test_a_forged_status_is_taken_back_never_adopted_and_never_announced(tenancy: Tenancy) -> None:
    gateway_mac = owner_mac(tenancy, GATEWAY)
    tenancy.tenant_service("forger")
    tenancy.cluster.wait_event(tenancy.team_b, "forger", "NoMatchingPool")
    forged = {"status": {"loadBalancer": {"ingress": [{"ip": GATEWAY}, {"ip": str(TEAM_A_POOL[2])}]}}}

    def forge() -> None:
        """The tenant writes the status itself (it may patch services/status in its namespace)."""
        patch = ("--subresource=status", "--type=merge", "-p", json.dumps(forged))
        tenancy.as_tenant("patch", "service", "forger", "-n", tenancy.team_b, *patch)

    forge()
    message = str(tenancy.cluster.wait_event(tenancy.team_b, "forger", "ForeignIP")["message"])
    assert GATEWAY in message
    wait_until(
        lambda: tenancy.cluster.ingress(tenancy.team_b, "forger") == [], 20, "the forged status cleared"
    )
    # the leader changes while the forgery stands: the new one must not adopt it
    operator = tenancy.lab.operator
    operator.stop()
    forge()
    operator.start()
    wait_until(
        lambda: tenancy.cluster.ingress(tenancy.team_b, "forger") == [], 20, "the forged status cleared"
    )
    for _ in range(5):
        assert tenancy.lab.arp(GATEWAY) == gateway_mac, "a node answered for the gateway"
        assert tenancy.lab.arp(str(TEAM_A_POOL[2])) == ""
        time.sleep(0.5)


def test_a_tenant_made_metallb_system_config_map_defines_nothing(tenancy: Tenancy) -> None:
    tenancy.as_tenant("create", "namespace", "metallb-system", check=False)
    legacy = "address-pools:\n- name: tenant-pool\n  protocol: layer2\n  addresses:\n  - 203.0.113.236/30\n"
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": "metallb-system"},
        "data": {"config": legacy},
    }
    tenancy.as_tenant("apply", "-f", "-", input=json.dumps(configmap))
    tenancy.tenant_service("legacy-pool", {"metallb.universe.tf/address-pool": "tenant-pool"})
    assert "tenant-pool" in tenancy.refused("legacy-pool", reason="PoolNotFound")
    assert tenancy.lab.arp("203.0.113.236") == ""
