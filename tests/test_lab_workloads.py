"""The seed scenario's data path in Layer 2 mode: a pod behind a lab node serves HTTP, the Service
(externalTrafficPolicy Local, the seed's annotation) gets an IP, the node with the pod answers ARP for it, and
curl from the client reaches the server; when the pod moves to another node, the IP follows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterhelpers import Cluster, wait_until
from ironlb.operator.kube import KubeClient
from ironlb_lab.controlplane import ControlPlane
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
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[L2Lab, LabKubelet]]:
    workdir = tmp_path_factory.mktemp("workloads")
    with ControlPlane(with_controllers=True) as plane:
        plane.install_crds(REPO_ROOT / "crds")
        with L2Lab(plane, workdir) as l2:
            plane.announce_pool("addresspool-sample1", "203.0.113.1-203.0.113.16")
            kube = KubeClient.from_environment(str(plane.kubeconfig))
            proxy = LabProxy(l2.lab, kube).start()
            try:
                yield l2, LabKubelet(l2.lab, plane, workdir)
            finally:
                proxy.stop()


def _curl(l2: L2Lab, url: str) -> str:
    result = l2.lab.client.run("curl", "-s", "--max-time", "2", url)
    return result.stdout if result.returncode == 0 else ""


def test_curl_from_the_client_reaches_the_pod_and_the_ip_follows_the_pod(
    seeded: tuple[L2Lab, LabKubelet],
) -> None:
    l2, kubelet = seeded
    cluster = Cluster(l2.plane)
    namespace = cluster.new_namespace()
    wait_until(lambda: cluster.get("serviceaccount", "default", namespace), 30, "the default ServiceAccount")
    kubelet.run_pod(2, "fedora-nginx", namespace, {"metallb-service": "nginx"})
    l2.plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(SEED_SERVICE))
    ip = cluster.wait_ingress(namespace, "metallb-nginx-svc")[0]
    assert ip.startswith("203.0.113.")
    macs = {f"node{n}": l2.lab.node(n).mac() for n in (1, 2)}
    wait_until(lambda: l2.arp(ip) == macs["node2"], 30, "the node with the pod to answer for the IP")
    page = wait_until(lambda: _curl(l2, f"http://{ip}:5678/"), 30, "curl to reach the server")
    assert "served by fedora-nginx on node2" in page

    # the VM moves (live migration): its pod now runs behind node1, and the IP follows it
    l2.plane.kubectl("delete", "pod", "fedora-nginx", "-n", namespace, "--wait=false")
    kubelet.run_pod(1, "fedora-nginx-migrated", namespace, {"metallb-service": "nginx"})
    wait_until(lambda: l2.arp(ip) == macs["node1"], 30, "the IP to follow the pod to node1")
    moved = wait_until(lambda: "node1" in (p := _curl(l2, f"http://{ip}:5678/")) and p, 30, "curl via node1")
    assert "served by fedora-nginx-migrated on node1" in moved
