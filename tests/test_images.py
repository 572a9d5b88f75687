"""IronLB's two images, built from operator/Dockerfile and speaker/Dockerfile (hack/build-images.sh), run the
way a cluster runs them: from the image, under a container runtime (podman, runc), with the securityContext
of their Deployment and DaemonSet, their probes, and the in-cluster ServiceAccount configuration.

Before: the images had never been built; the lab ran the local entry points as root processes, so the image's
contents, its USER, the read-only root filesystem and the in-cluster configuration were never exercised.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterhelpers import answered_service, remove_created_namespaces, wait_until
from ironlb.api.config import SpeakerSettings
from ironlb.operator.manifests import OPERATOR_NAME, SPEAKER_NAME, speaker_daemonset
from ironlb_lab import containers
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.network import LabNetwork
from ironlb_lab.podrunner import RunningPod

NAMESPACE = "image-lab"
POOL = ipaddress.ip_network("203.0.113.224/28")
CAP_NET_RAW = 1 << 13
IMAGE_SIZE_LIMIT = 300 * 1024 * 1024  # Debian's Python and the runtime lock; the base alone is ~130 MB


@pytest.fixture(scope="module")
def images() -> dict[str, int]:
    return containers.build_images()


def test_a_security_context_becomes_runtime_flags_and_contradictions_are_refused() -> None:
    spec: dict[str, Any] = {"securityContext": {"runAsNonRoot": True}}
    container = {
        "securityContext": {
            "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]},
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsUser": 1000,
        }
    }
    flags = containers.security_flags(spec, container, "")
    assert flags == [
        "--cap-drop=all",
        "--cap-add=net_raw",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--read-only-tmpfs=false",
        "--user=1000:1000",
    ]
    assert containers.security_flags(spec, {}, "65532:65532") == []  # the image's USER is not root
    for user in ("", "0", "root:root"):  # a kubelet refuses these: CreateContainerConfigError
        with pytest.raises(containers.ContainerConfigError, match="runAsNonRoot"):
            containers.security_flags(spec, {}, user)
    with pytest.raises(containers.ContainerConfigError, match="runAsNonRoot"):
        containers.security_flags(spec, {"securityContext": {"runAsUser": 0}}, "")
    with pytest.raises(containers.ContainerConfigError, match="privileged"):
        containers.security_flags({}, {"securityContext": {"privileged": True}}, "")


def test_a_container_mounts_its_volumes_where_the_spec_says_and_keeps_its_args() -> None:
    argv = containers.run_argv(
        name="c1",
        image="quay.io/ironlb/speaker:v1",
        netns="lab-node1",
        spec={},
        container={"args": ["run", "--settings=/etc/ironlb/settings.json"]},
        mounts=[containers.Mount(Path("/tmp/v/settings"), "/etc/ironlb", True)],
        env={"NODE_NAME": "node1"},
        image_user_name="",
    )
    assert argv[-3:] == ["quay.io/ironlb/speaker:v1", "run", "--settings=/etc/ironlb/settings.json"]
    assert "--network=ns:/run/netns/lab-node1" in argv and "--pull=never" in argv
    assert argv[argv.index("--volume") + 1] == "/tmp/v/settings:/etc/ironlb:ro"
    assert argv[argv.index("--env") + 1] == "NODE_NAME=node1"


def in_image(image: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *containers.PODMAN,
            "run",
            "--rm",
            "--pull=never",
            "--network=none",
            *containers.ULIMITS,
            "--entrypoint",
            argv[0],
            image,
            *argv[1:],
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_each_image_holds_its_component_and_no_test_dependency(images: dict[str, int]) -> None:
    assert set(images) == {"operator", "speaker", "pause"}  # pause: the lab kubelets' pod sandbox
    check = (
        "import importlib.util as u, ironlb.operator.main, ironlb.speaker.main, exabgp, kopf; "
        "print([m for m in ('scapy', 'pytest', 'hypothesis', 'mypy', 'pip') if u.find_spec(m)])"
    )
    for name in ("operator", "speaker"):
        image, size = f"quay.io/ironlb/{name}:v0.1.0", images[name]
        assert size < IMAGE_SIZE_LIMIT, f"{image} is {size / 2**20:.0f} MiB"
        imported = in_image(image, "/venv/bin/python", "-c", check)
        assert imported.returncode == 0 and imported.stdout.strip() == "[]", imported.stdout + imported.stderr
        entry = in_image(image, f"/venv/bin/ironlb-{name}", "--help")
        assert entry.returncode == 0, entry.stderr
    exabgp = in_image("quay.io/ironlb/speaker:v0.1.0", "/venv/bin/exabgp", "version")
    assert exabgp.returncode == 0 and "ExaBGP : 5." in exabgp.stdout, exabgp.stderr
    # the operator's Deployment says runAsNonRoot without a user: the image's USER decides
    assert not containers.runs_as_root(containers.image_user("quay.io/ironlb/operator:v0.1.0"))


def test_the_speaker_image_answers_with_net_raw_alone_and_not_without_it(images: dict[str, int]) -> None:
    """The DaemonSet's securityContext as the container runtime applies it, then without NET_RAW."""
    spec = speaker_daemonset(SpeakerSettings(), "quay.io/ironlb/speaker:v0.1.0")["spec"]["template"]["spec"]
    flags = containers.security_flags(spec, spec["containers"][0], "")
    assert "--cap-drop=all" in flags and "--cap-add=net_raw" in flags and "--read-only" in flags
    responder = [
        "quay.io/ironlb/speaker:v0.1.0",
        "l2-responder",
        "--interface",
        "eth0",
        "--ip",
        "203.0.113.9",
    ]
    with LabNetwork(nodes=1) as lab:
        node = lab.node(1)
        run = [*containers.PODMAN, "run", "--rm", "--pull=never", f"--network=ns:/run/netns/{node.namespace}"]
        run += containers.ULIMITS
        without = [flag for flag in flags if flag != "--cap-add=net_raw"]
        denied = subprocess.run([*run, *without, *responder], capture_output=True, text=True, timeout=60)
        assert denied.returncode != 0 and "Operation not permitted" in denied.stdout + denied.stderr
        name = f"ironlb-test-responder-{node.namespace}"
        running = subprocess.Popen(
            [*run, f"--name={name}", *flags, *responder], stdout=subprocess.PIPE, text=True
        )
        try:
            assert running.stdout is not None
            assert "answering for 203.0.113.9" in running.stdout.readline()
            assert lab.client.run("arping", "-c", "1", "-w", "2", "203.0.113.9").returncode == 0
            assert running.poll() is None, "the responder stopped with NET_RAW alone"
        finally:
            containers.stop(name, 5)
            running.wait(timeout=30)


# ----------------------------------------------------------------------------------- the lab, from images
@pytest.fixture(scope="module")
def lab(
    images: dict[str, int], crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[L2Lab]:
    workdir = tmp_path_factory.mktemp("imagelab")
    with L2Lab(
        crds_installed, workdir, namespace=NAMESPACE, operator_as_pod=True, real_images=True
    ) as running:
        crds_installed.announce_pool("image-pool", str(POOL), namespace=NAMESPACE)
        yield running
        remove_created_namespaces(crds_installed)


def pods(lab: L2Lab, prefix: str) -> list[RunningPod]:
    with lab.runner.lock:
        return [p for p in lab.runner.pods.values() if p.key.startswith(f"{NAMESPACE}/{prefix}")]


def process_status(pod: RunningPod) -> dict[str, str]:
    """/proc/PID/status of the container's main process, as the kernel applies the runtime's settings."""
    assert pod.container_name is not None
    inspected = subprocess.run(
        [
            *containers.PODMAN,
            "inspect",
            "--format",
            "{{.State.Pid}} {{.HostConfig.ReadonlyRootfs}}",
            pod.container_name,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    lines = Path(f"/proc/{inspected[0]}/status").read_text().splitlines()
    fields = dict(line.split(":\t", 1) for line in lines)
    fields["ReadonlyRootfs"] = inspected[1]
    return fields


def test_every_pod_runs_its_image_with_its_security_context(lab: L2Lab) -> None:
    speakers, operators = pods(lab, SPEAKER_NAME), pods(lab, OPERATOR_NAME)
    assert len(speakers) == lab.nodes and len(operators) == 2
    for pod in speakers:
        status = process_status(pod)
        assert int(status["CapEff"], 16) == CAP_NET_RAW and status["Uid"].split()[0] == "0"
        assert status["NoNewPrivs"].strip() == "1" and status["ReadonlyRootfs"] == "true"
    for pod in operators:
        status = process_status(pod)
        assert int(status["CapEff"], 16) == 0 and status["Uid"].split()[0] == "65532"
        assert status["ReadonlyRootfs"] == "true"


def test_a_service_is_answered_by_a_speaker_container_and_fails_over(lab: L2Lab) -> None:
    ip = answered_service(lab, "from-images")
    assert ipaddress.ip_address(ip) in POOL
    macs = {lab.lab.node(n).mac(): lab.lab.node(n).role for n in range(1, lab.nodes + 1)}
    owner = macs[lab.arp(ip)]
    lab.kill_speaker(owner)  # SIGKILL to the container's process
    started = time.monotonic()
    wait_until(lambda: macs.get(lab.arp(ip)) not in (None, owner), 5, f"another node to answer for {ip}")
    assert time.monotonic() - started < 3
    lab.ensure_speakers(timeout=90)


def test_both_operator_replicas_pass_their_liveness_probe(lab: L2Lab) -> None:
    """The standby replica serves its liveness port too: a kubelet would otherwise restart it forever."""
    probe: dict[str, Any] = json.loads(
        lab.plane.kubectl(
            *("get", "deployment", OPERATOR_NAME, "-n", NAMESPACE),
            "-o",
            "jsonpath={.spec.template.spec.containers[0].livenessProbe}",
        ).stdout
    )
    window = probe.get("initialDelaySeconds", 0) + probe["periodSeconds"] * probe.get("failureThreshold", 3)
    operators = pods(lab, OPERATOR_NAME)
    oldest = min(pod.started_at for pod in operators)
    time.sleep(max(0.0, oldest + window + 5 - time.monotonic()))
    for pod in pods(lab, OPERATOR_NAME):
        assert pod.restarts == 0 and pod.process is not None and pod.process.poll() is None, pod.key
