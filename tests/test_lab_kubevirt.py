"""The lab's KubeVirt stand-in: the seed's VirtualMachine manifest, as written, becomes a virt-launcher pod
serving real nginx behind a lab node, reached by curl from the lab's client; the seed's Service selects it,
a live migration moves it (and the Service's EndpointSlice with it), and stopping or deleting the VM removes
the pod, its processes and its network namespace."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterhelpers import Cluster, wait_until
from hypothesis import given
from hypothesis import strategies as st
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.kubevirt import (
    NAME_ALPHABET,
    LabKubeVirt,
    eligible_nodes,
    launcher_labels,
    launcher_name,
    nginx_config,
    random_suffix,
    should_run,
    virtual_machine_crd,
    virtual_machine_instance_crd,
    vm_status,
)
from ironlb_lab.network import LabNetwork, ip
from ironlb_lab.nodes import register_node
from ironlb_lab.workloads import LabKubelet, Pod, free_slot

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_VM = (REPO_ROOT / "docs" / "examples" / "seed" / "vm.yaml").read_text()
SEED_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "metallb-nginx-svc",
        "namespace": "default",
        "annotations": {"metallb.universe.tf/address-pool": "addresspool-sample1"},
    },
    "spec": {
        "externalTrafficPolicy": "Local",
        "ipFamilies": ["IPv4"],
        "ports": [{"name": "tcp-5678", "protocol": "TCP", "port": 5678, "targetPort": 80}],
        "type": "LoadBalancer",
        "selector": {"metallb-service": "nginx"},
    },
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# ------------------------------------------------------------------------------------------ pure parts
@pytest.mark.parametrize(
    ("spec", "runs"),
    [
        ({"running": True}, True),
        ({"running": False}, False),
        ({}, False),
        ({"runStrategy": "Always"}, True),
        ({"runStrategy": "RerunOnFailure"}, True),
        ({"runStrategy": "Halted"}, False),
        ({"runStrategy": "Manual"}, False),
        ({"runStrategy": "Halted", "running": True}, False),  # runStrategy wins when both are present
    ],
)
def test_should_run_follows_kubevirts_rule(spec: dict[str, Any], runs: bool) -> None:
    assert should_run({"spec": spec}) is runs


@given(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,120}[a-z0-9])?", fullmatch=True), st.integers(0, 2**32))
def test_launcher_names_are_dns_labels_named_after_the_vm(vm: str, seed: int) -> None:
    suffix = random_suffix(random.Random(seed))
    name = launcher_name(vm, suffix)
    assert len(suffix) == 5 and set(suffix) <= set(NAME_ALPHABET)
    assert DNS_LABEL.match(name) and len(name) <= 63, name
    assert name.endswith(f"-{suffix}")
    if len(vm) <= 63 - len("virt-launcher--") - 5:
        assert name == f"virt-launcher-{vm}-{suffix}"


def test_launcher_labels_carry_the_template_labels_and_kubevirts() -> None:
    vm = yaml.safe_load(SEED_VM)
    assert launcher_labels(vm, "uid-1") == {
        "metallb-service": "nginx",
        "kubevirt.io": "virt-launcher",
        "kubevirt.io/created-by": "uid-1",
        "kubevirt.io/domain": "fedora-nginx",
        "vm.kubevirt.io/name": "fedora-nginx",
    }


labels = st.dictionaries(st.sampled_from(["zone", "rack", "gpu"]), st.sampled_from(["a", "b"]), max_size=3)


@given(st.dictionaries(st.sampled_from(["node1", "node2", "node3"]), labels, min_size=1), labels)
def test_eligible_nodes_match_every_selector_label(
    nodes: dict[str, dict[str, str]], selector: dict[str, str]
) -> None:
    chosen = eligible_nodes(selector, nodes)
    assert chosen == sorted(chosen)
    for name, node_labels in nodes.items():
        assert (name in chosen) == all(node_labels.get(k) == v for k, v in selector.items())
    assert eligible_nodes({}, nodes) == sorted(nodes)
    first = sorted(nodes)[0]
    assert eligible_nodes({"kubernetes.io/hostname": first}, nodes) == [first]


def test_free_slot_reuses_the_lowest_free_one() -> None:
    assert free_slot(set()) == 0
    assert free_slot({0, 1, 3}) == 2
    with pytest.raises(RuntimeError):
        free_slot(set(range(6)))


@given(st.sampled_from(["/tmp/a", "/var/tmp/lab x/pod", '/tmp/a;b "c"']), st.integers(1, 65535))
def test_nginx_config_keeps_every_file_in_the_pods_directory(root: str, port: int) -> None:
    config = nginx_config(Path(root), port, "root")
    paths = [json.loads(quoted) for quoted in re.findall(r'\s("(?:[^"\\]|\\.)*")[ ;]', config)]
    assert len(paths) >= 8  # pid, error and access logs, five temp paths, the document root
    assert all(path.startswith(f"{root}/") for path in paths), paths
    assert f"listen {port} default_server;" in config
    assert "daemon" not in config  # given on the command line (-g 'daemon off;'); twice is an error


def test_crds_have_kubevirts_columns_and_status_subresource() -> None:
    vm, vmi = virtual_machine_crd(), virtual_machine_instance_crd()
    assert vm["metadata"]["name"] == "virtualmachines.kubevirt.io"
    version = vm["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Age", "Status", "Ready"]
    assert version["subresources"] == {"status": {}}
    columns = vmi["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["Age", "Phase", "IP", "NodeName", "Ready"]
    assert vm_status(True)["printableStatus"] == "Running"
    assert vm_status(False)["conditions"][0]["reason"] == "VMINotExists"


# ---------------------------------------------------------------------------------------------- the lab
@dataclass
class KubeVirtLab:
    plane: ControlPlane
    lab: LabNetwork
    kubelet: LabKubelet
    virt: LabKubeVirt
    cluster: Cluster


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeVirtLab]:
    """Two lab nodes and a client, a control plane with controllers (EndpointSlices), the lab kubelet and
    the KubeVirt stand-in. IronLB itself is not needed here: the LoadBalancer path is the L2 tests' part."""
    workdir = tmp_path_factory.mktemp("kubevirt")
    with ControlPlane(with_controllers=True) as plane, LabNetwork(nodes=2) as network:
        for number in (1, 2):
            register_node(plane, network.node(number).role, str(network.node(number).v4))
        kubelet = LabKubelet(network, plane, workdir)
        with LabKubeVirt(kubelet) as virt:
            yield KubeVirtLab(plane, network, kubelet, virt, Cluster(plane))


def _launchers(lab: KubeVirtLab, namespace: str, selector: str) -> list[dict[str, Any]]:
    result = lab.plane.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    return list(json.loads(result.stdout)["items"])


def _launchers_with_addresses(lab: KubeVirtLab, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The launchers once every one has its podIP: the kubelet reports status a moment after creation."""
    pods = _launchers(lab, namespace, selector)
    return pods if all(pod.get("status", {}).get("podIP") for pod in pods) else []


def _curl(lab: KubeVirtLab, url: str) -> str:
    result = lab.lab.client.run("curl", "-s", "--max-time", "2", url)
    return result.stdout if result.returncode == 0 else ""


def _endpoints(lab: KubeVirtLab, namespace: str, service: str) -> set[tuple[str, str]]:
    """(address, node) of the Service's ready endpoints, as its EndpointSlices list them."""
    result = lab.plane.kubectl(
        "get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}", "-o", "json"
    )
    return {
        (address, endpoint.get("nodeName", ""))
        for item in json.loads(result.stdout)["items"]
        for endpoint in item.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint.get("addresses") or []
    }


def _gone(lab: KubeVirtLab, pod: Pod) -> bool:
    """The pod's object, its server process and its network namespace are all gone."""
    objects = lab.plane.kubectl(
        "get", "pod", pod.name, "-n", pod.namespace, "--ignore-not-found", "-o", "name"
    )
    namespaces = ip("netns", "list").stdout
    return (
        objects.stdout.strip() == ""
        and pod.process is not None
        and pod.process.poll() is not None
        and pod.host.namespace not in namespaces
    )


def _vm_row(lab: KubeVirtLab, namespace: str, name: str) -> list[str]:
    table = lab.plane.kubectl("get", "vm", name, "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "STATUS", "READY"], table
    return table[1].split()


def test_the_seeds_vm_serves_nginx_and_its_service_follows_a_live_migration(lab: KubeVirtLab) -> None:
    plane = lab.plane
    wait_until(
        lambda: lab.cluster.get("serviceaccount", "default", "default"), 30, "the default ServiceAccount"
    )
    plane.kubectl("apply", "-f", "-", input=SEED_VM)

    pods = wait_until(
        lambda: _launchers_with_addresses(lab, "default", "metallb-service=nginx"),
        30,
        "the virt-launcher pod and its podIP",
    )
    assert len(pods) == 1
    metadata = pods[0]["metadata"]
    assert re.fullmatch(rf"virt-launcher-fedora-nginx-[{NAME_ALPHABET}]{{5}}", metadata["name"])
    assert metadata["labels"]["vm.kubevirt.io/name"] == "fedora-nginx"
    assert metadata["labels"]["kubevirt.io/domain"] == "fedora-nginx"
    pod = lab.virt.pod_of("default", "fedora-nginx")
    assert pod is not None and pod.name == metadata["name"]
    assert pods[0]["status"]["podIP"] == str(pod.v4) and pods[0]["status"]["phase"] == "Running"
    assert wait_until(
        lambda: _vm_row(lab, "default", "fedora-nginx")[2:] == ["Running", "True"], 10, "VM Running"
    )

    page = _curl(lab, f"http://{pod.v4}:80/")
    assert "Welcome to nginx!" in page and f"on node {pod.node.role}" in page
    assert (
        pod.root is not None and '"GET / HTTP/1.1" 200' in (pod.root / "access.log").read_text()
    )  # nginx's log

    # the seed's Service (type LoadBalancer, externalTrafficPolicy Local) selects the VM's pod
    plane.kubectl("apply", "-f", "-", input=json.dumps(SEED_SERVICE))
    endpoints = wait_until(
        lambda: _endpoints(lab, "default", "metallb-nginx-svc"), 30, "the Service's endpoint"
    )
    assert endpoints == {(str(pod.v4), pod.node.role)}

    # live migration to the other node: new pod Ready first, then the old one goes; the endpoint follows
    target = 1 if pod.node.role == "node2" else 2
    moved = lab.virt.migrate("default", "fedora-nginx", target)
    assert moved.node.role == f"node{target}" != pod.node.role and moved.name != pod.name
    assert _gone(lab, pod)
    names = [p["metadata"]["name"] for p in _launchers(lab, "default", "metallb-service=nginx")]
    assert names == [moved.name]
    wait_until(
        lambda: _endpoints(lab, "default", "metallb-nginx-svc") == {(str(moved.v4), moved.node.role)},
        30,
        "the EndpointSlice to list only the pod on the new node",
    )
    vmi = lab.cluster.get("vmi", "fedora-nginx", "default") or {}
    assert vmi["status"]["nodeName"] == moved.node.role
    assert vmi["status"]["migrationState"]["sourceNode"] == pod.node.role
    assert f"on node {moved.node.role}" in _curl(lab, f"http://{moved.v4}/")
    assert _curl(lab, f"http://{pod.v4}/") == ""  # nothing answers at the source any more


def test_stopping_starting_and_deleting_a_vm_honours_its_node_selector(lab: KubeVirtLab) -> None:
    namespace = lab.cluster.new_namespace()
    wait_until(
        lambda: lab.cluster.get("serviceaccount", "default", namespace), 30, "the default ServiceAccount"
    )
    vm = yaml.safe_load(SEED_VM)
    vm["metadata"] = {"name": "pinned", "namespace": namespace}
    vm["spec"]["template"]["metadata"]["labels"] = {"app": "pinned"}
    vm["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "node1"}
    lab.plane.kubectl("apply", "-f", "-", input=json.dumps(vm))
    first = wait_until(lambda: lab.virt.pod_of(namespace, "pinned"), 30, "the pinned VM's pod")
    assert first.node.role == "node1"
    assert wait_until(lambda: _vm_row(lab, namespace, "pinned")[2:] == ["Running", "True"], 10, "Running")

    patch = ["patch", "vm", "pinned", "-n", namespace, "--type=merge", "-p"]
    lab.plane.kubectl(*patch, json.dumps({"spec": {"running": False}}))
    wait_until(lambda: _gone(lab, first), 30, "the stopped VM's pod, process and namespace to go")
    assert wait_until(lambda: _vm_row(lab, namespace, "pinned")[2:] == ["Stopped", "False"], 10, "Stopped")
    assert lab.cluster.get("vmi", "pinned", namespace) is None

    # started again: round-robin would alternate nodes, the nodeSelector keeps it on node1
    lab.plane.kubectl(*patch, json.dumps({"spec": {"running": True}}))
    second = wait_until(lambda: lab.virt.pod_of(namespace, "pinned"), 30, "the restarted VM's pod")
    assert second.node.role == "node1" and second.name != first.name
    assert "Welcome to nginx!" in _curl(lab, f"http://{second.v4}/")

    lab.plane.kubectl("delete", "vm", "pinned", "-n", namespace)
    wait_until(lambda: _gone(lab, second), 30, "the deleted VM's pod, process and namespace to go")
    assert _launchers(lab, namespace, "vm.kubevirt.io/name=pinned") == []
    assert lab.virt.errors == []


def test_plain_run_pod_still_serves_http_and_delete_pod_frees_its_slot(lab: KubeVirtLab) -> None:
    """run_pod's first callers (the L2 workload test, the demo) keep Python's http.server by default."""
    namespace = lab.cluster.new_namespace()
    wait_until(
        lambda: lab.cluster.get("serviceaccount", "default", namespace), 30, "the default ServiceAccount"
    )
    first = lab.kubelet.run_pod(2, "plain", namespace, {"app": "plain"})
    assert "served by plain on node2" in _curl(lab, f"http://{first.v4}/")
    assert (lab.cluster.get("pod", "plain", namespace) or {})["status"]["phase"] == "Running"
    lab.kubelet.delete_pod(first)
    assert _gone(lab, first)
    again = lab.kubelet.run_pod(2, "plain-again", namespace, {"app": "plain"})
    assert (again.slot, again.v4) == (first.slot, first.v4)  # the freed address is reused
    assert "served by plain-again on node2" in _curl(lab, f"http://{again.v4}/")
    lab.kubelet.delete_pod(again)
