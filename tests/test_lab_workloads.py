"""The seed scenario's data path in Layer 2 mode: the seed's VirtualMachine runs as a virt-launcher pod behind
a lab node serving nginx, the Service (externalTrafficPolicy Local, the seed's annotation) gets an IP, the
node with the pod answers ARP for it, and curl from the client reaches nginx; when the VM live-migrates to
another node, the IP follows it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterhelpers import Cluster, wait_until
from ironlb.api.kube import KubeClient
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.kubevirt import LabKubeVirt
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.workloads import LabKubelet, LabProxy

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "metallb-nginx-svc",
        "annotations": {"metallb.universe.tf/address-pool": "addresspool-sample1"},
    },
    "spec": {
        "externalTrafficPolicy": "Local",
        "ipFamilies": ["IPv4"],
        "type": "LoadBalancer",
        "ports": [{"name": "tcp-5678", "protocol": "TCP", "port": 5678, "targetPort": 80}],
        "selector": {"metallb-service": "nginx"},
    },
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[L2Lab, LabKubeVirt]]:
    workdir = tmp_path_factory.mktemp("workloads")
    with ControlPlane(with_controllers=True) as plane:
        plane.install_crds(REPO_ROOT / "crds")
        with L2Lab(plane, workdir) as l2:
            plane.announce_pool("addresspool-sample1", "203.0.113.1-203.0.113.16")
            kube = KubeClient.from_environment(str(plane.kubeconfig))
            proxy = LabProxy(l2.lab, kube).start()
            virt = LabKubeVirt(LabKubelet(l2.lab, plane, workdir), nodes=[2])
            virt.install()
            virt.start()
            try:
                yield l2, virt
            finally:
                virt.stop()
                proxy.stop()


def _curl(l2: L2Lab, url: str) -> str:
    result = l2.lab.client.run("curl", "-s", "--max-time", "2", url)
    return result.stdout if result.returncode == 0 else ""


def test_curl_from_the_client_reaches_the_vm_and_the_ip_follows_a_live_migration(
    seeded: tuple[L2Lab, LabKubeVirt],
) -> None:
    l2, virt = seeded
    cluster = Cluster(l2.plane)
    wait_until(lambda: cluster.get("serviceaccount", "default", "default"), 30, "the default ServiceAccount")
    l2.plane.kubectl("apply", "-f", str(REPO_ROOT / "docs" / "examples" / "seed" / "vm.yaml"))
    wait_until(lambda: virt.pod_of("default", "fedora-nginx"), 30, "the VM's virt-launcher pod")
    l2.plane.kubectl("apply", "-n", "default", "-f", "-", input=json.dumps(SEED_SERVICE))
    ip = cluster.wait_ingress("default", "metallb-nginx-svc")[0]
    assert ip.startswith("203.0.113.")
    macs = {f"node{n}": l2.lab.node(n).mac() for n in (1, 2)}
    wait_until(lambda: l2.arp(ip) == macs["node2"], 30, "the node with the VM to answer for the IP")
    page = wait_until(lambda: _curl(l2, f"http://{ip}:5678/"), 30, "curl to reach nginx in the VM")
    assert "Welcome to nginx!" in page and "fedora-nginx on node node2" in page

    # live migration: the VM's new pod starts behind node1 and is Ready before the old one goes
    virt.migrate("default", "fedora-nginx", 1)
    wait_until(lambda: l2.arp(ip) == macs["node1"], 30, "the IP to follow the VM to node1")
    moved = wait_until(
        lambda: "on node node1" in (p := _curl(l2, f"http://{ip}:5678/")) and p, 30, "curl via node1"
    )
    assert "Welcome to nginx!" in moved
