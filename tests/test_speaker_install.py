"""The operator installs and keeps the speaker DaemonSet (real KCM DaemonSet controller and scheduler)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterhelpers import Cluster, wait_until
from ironlb.api.config import SpeakerSettings
from ironlb.operator.manifests import (
    CONFIG_HASH_ANNOTATION,
    rbac,
    settings_hash,
    speaker_daemonset,
)
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.nodes import register_node
from ironlb_lab.operator import OperatorProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "ironlb-system"
NODES = ("node-a", "node-b", "node-c")


def test_rbac_has_no_wildcards_and_no_escalation_verbs() -> None:
    rules = [rule for role in rbac() if "rules" in role for rule in role["rules"]]
    assert len(rules) >= 10
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    speaker_secrets = [
        r
        for role in rbac()
        if role["kind"] == "ClusterRole"
        for r in role["rules"]
        if "secrets" in r["resources"]
    ]
    assert speaker_secrets == [], "secrets are readable in IronLB's namespace only, never cluster-wide"


def test_speaker_pods_are_host_network_with_net_raw_only() -> None:
    spec = speaker_daemonset(SpeakerSettings(), "example/speaker:1")["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    security = spec["containers"][0]["securityContext"]
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    container = spec["containers"][0]
    assert container["livenessProbe"] and container["readinessProbe"] and container["resources"]["requests"]


def test_the_speaker_settings_shape_the_daemonset() -> None:
    """IronLBConfig's spec.speaker fields, as the DaemonSet's pod template carries them."""
    settings = SpeakerSettings.model_validate(
        {
            "nodeSelector": {"ironlb.io/speaker": "yes"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "lb", "effect": "NoSchedule"}],
            "cpuRequest": "250m",
            "memoryRequest": "96Mi",
            "memoryLimit": "300Mi",
            "metricsPort": 9473,
        }
    )
    spec = speaker_daemonset(settings, "example/speaker:1")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "ironlb.io/speaker": "yes"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "lb", "effect": "NoSchedule"}
    ]
    container = spec["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "96Mi"},
        "limits": {"memory": "300Mi"},
    }
    assert {"name": "metrics", "containerPort": 9473, "protocol": "TCP"} in container["ports"]
    default = speaker_daemonset(SpeakerSettings(), "example/speaker:1")["spec"]["template"]["spec"]
    assert [t["key"] for t in default["tolerations"]] == [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ], "without tolerations: the control-plane taints only"
    assert default["containers"][0]["resources"]["requests"]["cpu"] != "250m"


def test_only_settings_bound_at_start_change_the_hash() -> None:
    base = SpeakerSettings()
    assert settings_hash(base) == settings_hash(base.model_copy(update={"log_level": "debug"}))
    assert settings_hash(base) == settings_hash(base.model_copy(update={"gratuitous_refresh_seconds": 5}))
    assert settings_hash(base) != settings_hash(base.model_copy(update={"heartbeat_port": 8000}))


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    with ControlPlane(with_controllers=True) as plane:
        plane.install_crds(REPO_ROOT / "crds")
        plane.kubectl("create", "namespace", NAMESPACE)
        for name in NODES:
            register_node(plane, name, labels={"edge": "yes" if name != "node-c" else "no"})
        yield plane


def _set_speaker(plane: ControlPlane, settings: str) -> None:
    """Merge ``settings`` (JSON) into IronLBConfig's spec.speaker."""
    plane.kubectl(
        "patch",
        "ironlbconfig",
        "ironlb",
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        f'{{"spec": {{"speaker": {settings}}}}}',
    )


def _speaker_pods(plane: ControlPlane) -> list[dict[str, Any]]:
    listed = json.loads(
        plane.kubectl(
            "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=ironlb-speaker", "-o", "json"
        ).stdout
    )
    return list(listed["items"])


def _daemonset(plane: ControlPlane) -> dict[str, Any] | None:
    return Cluster(plane).get("daemonset", "ironlb-speaker")


def _config_status(plane: ControlPlane) -> dict[str, Any]:
    return dict((Cluster(plane).get("ironlbconfig", "ironlb") or {}).get("status", {}))


def test_operator_installs_keeps_and_rolls_the_speakers(plane: ControlPlane) -> None:
    cluster = Cluster(plane)
    with OperatorProcess(plane, args=("--speaker-image", "example.org/ironlb/speaker:v1"), speakers=True):
        # one pod per node, bound by the real scheduler
        pods = wait_until(
            lambda: (
                (p := _speaker_pods(plane))
                and len(p) == 3
                and all(x["spec"].get("nodeName") for x in p)
                and p
            ),
            60,
            "a speaker pod per node",
        )
        assert sorted(p["spec"]["nodeName"] for p in pods) == list(NODES)
        status = wait_until(
            lambda: (s := _config_status(plane)).get("speakersDesired") == 3 and s, 30, "status"
        )
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Available"]["status"] == "False"  # no kubelet runs them in this test
        assert conditions["Available"]["reason"] == "SpeakersNotReady"
        assert conditions["Degraded"]["status"] == "False"
        assert status["speakers"] == "0/3" and status["speakerImage"] == "example.org/ironlb/speaker:v1"
        table = plane.kubectl("get", "ironlbconfigs", "-n", NAMESPACE).stdout
        assert "SPEAKERS" in table and "0/3" in table

        # a setting picked up live changes the ConfigMap but not the pod template
        before = _daemonset(plane)
        assert before is not None
        hash_before = before["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        _set_speaker(plane, '{"logLevel": "debug"}')
        wait_until(
            lambda: (
                '"logLevel": "debug"'
                in (cluster.get("configmap", "ironlb-speaker-settings") or {})
                .get("data", {})
                .get("settings.json", "")
            ),
            30,
            "live setting in the ConfigMap",
        )
        current = _daemonset(plane)
        assert current is not None
        assert current["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == hash_before

        # a setting bound at start rolls the speakers through the hash
        _set_speaker(plane, '{"heartbeatPort": 7999}')
        wait_until(
            lambda: (
                (d := _daemonset(plane))
                and d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] != hash_before
            ),
            30,
            "a new settings hash",
        )

        # the node selector of IronLBConfig limits the speakers
        _set_speaker(plane, '{"nodeSelector": {"edge": "yes"}}')
        wait_until(lambda: _config_status(plane).get("speakersDesired") == 2, 60, "2 speakers for edge nodes")

        # a deleted DaemonSet comes back
        plane.kubectl("delete", "daemonset", "ironlb-speaker", "-n", NAMESPACE, "--wait=true")
        wait_until(lambda: _daemonset(plane), 30, "the DaemonSet to be re-created")
        cluster.wait_event(NAMESPACE, "ironlb", "SpeakerDaemonSetCreated")

    # a new operator version brings a new speaker image (RELATED_IMAGE_SPEAKER) and rolls the pods
    with OperatorProcess(plane, args=("--speaker-image", "example.org/ironlb/speaker:v2"), speakers=True):
        wait_until(
            lambda: (
                (d := _daemonset(plane))
                and d["spec"]["template"]["spec"]["containers"][0]["image"] == "example.org/ironlb/speaker:v2"
            ),
            30,
            "the new image in the DaemonSet",
        )
        wait_until(
            lambda: any(
                p["spec"]["containers"][0]["image"] == "example.org/ironlb/speaker:v2"
                for p in _speaker_pods(plane)
            ),
            60,
            "a speaker pod with the new image",
        )
        wait_until(
            lambda: _config_status(plane).get("speakerImage") == "example.org/ironlb/speaker:v2",
            30,
            "the image in the status",
        )
