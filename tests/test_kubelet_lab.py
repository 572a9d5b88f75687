"""The speakers run by real kubelets: the release's kubelet with Debian's containerd and runc in each lab node
(hack/ironlb_lab/kubelets.py), the speaker's image, the DaemonSet the operator installs.

Before: every pod was run by the lab's pod runner. What a kubelet does (the securityContext as the container
runtime interface applies it, the projected ServiceAccount token, ``KUBERNETES_SERVICE_HOST`` taken from the
``kubernetes`` Service, probes, restarts) was the lab's imitation of it, never the kubelet's own code.
"""

from __future__ import annotations

import calendar
import contextlib
import ipaddress
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterhelpers import answered_service, remove_created_namespaces, wait_until
from ironlb.operator.manifests import OPERATOR_NAME
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.kubelets import KERNEL_TUNABLES, POD_SUBNET
from ironlb_lab.l2lab import L2Lab

NAMESPACE = "kubelet-lab"
POOL = ipaddress.ip_network("203.0.113.208/28")
CAP_NET_RAW = 1 << 13
# read before any kubelet starts: the kubelets must not change the machine's kernel settings
MACHINE_TUNABLES = {path: Path(f"/proc/sys/{path}").read_text() for path in KERNEL_TUNABLES}


@pytest.fixture(scope="module")
def lab(crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L2Lab]:
    workdir = tmp_path_factory.mktemp("kubeletlab")
    with L2Lab(crds_installed, workdir, namespace=NAMESPACE, operator_as_pod=True, kubelets=True) as running:
        crds_installed.announce_pool("kubelet-pool", str(POOL), namespace=NAMESPACE)
        yield running
        remove_created_namespaces(crds_installed)


def speaker_container(lab: L2Lab, role: str) -> dict[str, Any]:
    status: dict[str, Any] = lab.speaker_pods()[role]["status"]["containerStatuses"][0]
    return status


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines)


def test_each_node_is_registered_by_its_own_kubelet_and_the_machine_is_left_alone(lab: L2Lab) -> None:
    listed = json.loads(lab.plane.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    nodes = {item["metadata"]["name"]: item for item in listed}
    for number in range(1, lab.nodes + 1):
        host = lab.lab.node(number)
        info = nodes[host.role]["status"]["nodeInfo"]
        assert info["kubeletVersion"] == "v1.34.12"
        assert info["containerRuntimeVersion"].startswith("containerd://1.6")
        addresses = {a["type"]: a["address"] for a in nodes[host.role]["status"]["addresses"]}
        assert addresses["InternalIP"] == str(host.v4)
    assert {path: Path(f"/proc/sys/{path}").read_text() for path in KERNEL_TUNABLES} == MACHINE_TUNABLES


def test_the_kubelet_applies_the_daemonsets_security_context_and_in_cluster_configuration(lab: L2Lab) -> None:
    cluster_ip = lab.plane.kubectl(
        "get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"
    ).stdout.strip()
    pods = lab.speaker_pods(ready=True)
    assert set(pods) == {lab.lab.node(n).role for n in range(1, lab.nodes + 1)}
    for role in pods:
        pid = lab.kubelet_nodes.container_pid(role, speaker_container(lab, role)["containerID"])
        status = proc_status(pid)
        assert int(status["CapEff"], 16) == CAP_NET_RAW and status["Uid"].split()[0] == "0"
        assert status["NoNewPrivs"].strip() == "1"
        root = next(
            line.split()
            for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
            if line.split()[4] == "/"
        )
        assert "ro" in root[5].split(","), root  # readOnlyRootFilesystem
        environ = dict(
            entry.split("=", 1)
            for entry in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in entry
        )
        assert environ["KUBERNETES_SERVICE_HOST"] == cluster_ip and environ["NODE_NAME"] == role
        # /var/run is a link to /run in the image: seen from the host, the link would name the host's /run
        token = Path(f"/proc/{pid}/root/run/secrets/kubernetes.io/serviceaccount/token")
        assert token.read_text().count(".") == 2  # the projected, bound ServiceAccount token


def operator_pods(lab: L2Lab) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/name={OPERATOR_NAME}"
    listed = lab.plane.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json").stdout
    pods: list[dict[str, Any]] = json.loads(listed)["items"]
    return pods


def test_the_operator_replicas_run_on_the_pod_network_and_pass_their_liveness_probes(lab: L2Lab) -> None:
    """Non-root, no capability, a pod address on the node's bridge, the API server through the Service's
    ClusterIP; both replicas (the standby too) answer the kubelet's liveness probe for its whole window."""
    pods = operator_pods(lab)
    assert len(pods) == 2
    probe = pods[0]["spec"]["containers"][0]["livenessProbe"]
    window = probe.get("initialDelaySeconds", 0) + probe["periodSeconds"] * probe.get("failureThreshold", 3)
    for pod in pods:
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_SUBNET)
        container_id = pod["status"]["containerStatuses"][0]["containerID"]
        status = proc_status(lab.kubelet_nodes.container_pid(pod["spec"]["nodeName"], container_id))
        assert int(status["CapEff"], 16) == 0 and status["Uid"].split()[0] == "65532"
    started = min(
        calendar.timegm(time.strptime(p["status"]["startTime"], "%Y-%m-%dT%H:%M:%SZ")) for p in pods
    )
    time.sleep(max(0.0, started + window + 5 - time.time()))
    for pod in operator_pods(lab):
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, pod["metadata"]["name"]


def test_a_killed_speaker_fails_over_and_its_kubelet_restarts_it(lab: L2Lab) -> None:
    ip = answered_service(lab, "by-kubelet")
    assert ipaddress.ip_address(ip) in POOL
    roles = {lab.lab.node(n).mac(): lab.lab.node(n).role for n in range(1, lab.nodes + 1)}
    owner = roles[lab.arp(ip)]
    survivor_mac = next(mac for mac, role in roles.items() if role != owner)
    restarts = speaker_container(lab, owner)["restartCount"]
    # kill -9 through containerd (a crash); the client's ARP watch runs meanwhile: the kubelet restarts the
    # speaker at once, and the restarted owner takes its IP back within seconds, so polling could miss the
    # survivor's turn
    failover = lab.failover(ip, owner, survivor_mac)
    assert failover < 1.0, f"failover took {failover:.2f} s"
    wait_until(
        lambda: (
            speaker_container(lab, owner)["restartCount"] == restarts + 1
            and speaker_container(lab, owner).get("ready") is True
        ),
        60,
        f"the kubelet of {owner} to restart its speaker",
    )


def test_a_speaker_that_stops_answering_its_liveness_probe_is_restarted_by_its_kubelet(lab: L2Lab) -> None:
    role = lab.lab.node(lab.nodes).role
    container = speaker_container(lab, role)
    pid = lab.kubelet_nodes.container_pid(role, container["containerID"])
    os.kill(pid, signal.SIGSTOP)  # alive, but its health endpoint answers nothing
    try:
        # livenessProbe: every 10 s, 3 failures; then SIGTERM, SIGKILL after the grace period (10 s)
        wait_until(
            lambda: speaker_container(lab, role)["restartCount"] == container["restartCount"] + 1,
            90,
            f"the kubelet of {role} to restart its frozen speaker",
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    last = speaker_container(lab, role)["lastState"]["terminated"]
    assert last["exitCode"] == 137, last  # killed: the kubelet gave up on it
    lab.ensure_speakers(timeout=60)
