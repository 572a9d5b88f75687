"""Pod Security, checked by the real API server's PodSecurity admission and by the kernel.

The operator's pod passes the restricted level; the speaker's needs privileged (host network, NET_RAW) and
nothing above it; IronLB's namespace is labelled for that. The speaker's only capability is NET_RAW: it
cannot answer without it (so the lab, which applies the securityContext with setpriv, really applies it),
and BGP passwords (TCP MD5) need nothing more (tests/test_bgp_mode.py runs MD5 sessions under it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterhelpers import wait_until
from ironlb.api.config import SpeakerSettings
from ironlb.operator.manifests import POD_SECURITY, namespace_manifest, operator_deployment, speaker_daemonset
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.network import LabNetwork
from ironlb_lab.podrunner import security_context

BIN = Path(sys.executable).parent


def pod_from(template: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        # the ServiceAccount is another admission's business (it would refuse first): the default one
        "spec": {**template["spec"], "nodeName": "nowhere", "serviceAccountName": "default"},
    }


@pytest.fixture(scope="module")
def levels(crds_installed: ControlPlane) -> Iterator[ControlPlane]:
    for level in ("restricted", "baseline", "privileged"):
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": f"pss-{level}", "labels": {"pod-security.kubernetes.io/enforce": level}},
        }
        crds_installed.kubectl("apply", "-f", "-", input=json.dumps(body))

    def accounts_exist() -> bool:  # the controller manager creates them
        return all(
            crds_installed.kubectl(
                "get", "serviceaccount", "default", "-n", f"pss-{level}", check=False
            ).returncode
            == 0
            for level in ("restricted", "baseline", "privileged")
        )

    wait_until(accounts_exist, 30, "the namespaces' default ServiceAccounts")
    yield crds_installed
    crds_installed.kubectl(
        "delete", "namespace", "pss-restricted", "pss-baseline", "pss-privileged", "--wait=false"
    )


def admitted(plane: ControlPlane, pod: dict[str, Any]) -> tuple[bool, str]:
    result = plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    return result.returncode == 0, result.stderr


def test_the_operator_passes_the_restricted_level(levels: ControlPlane) -> None:
    template = operator_deployment()["spec"]["template"]
    ok, why = admitted(levels, pod_from(template, "pss-restricted", "operator"))
    assert ok, why


def test_the_speaker_needs_privileged_and_the_namespace_says_so(levels: ControlPlane) -> None:
    template = speaker_daemonset(SpeakerSettings(), "example/speaker:1")["spec"]["template"]
    refused, why = admitted(levels, pod_from(template, "pss-baseline", "speaker"))
    assert not refused and "hostNetwork" in why
    ok, why = admitted(levels, pod_from(template, "pss-privileged", "speaker"))
    assert ok, why
    labels = namespace_manifest()["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert POD_SECURITY.items() <= labels.items()


def test_the_speaker_cannot_answer_without_net_raw_and_can_with_it_alone(tmp_path: Path) -> None:
    """The DaemonSet's capabilities, applied as the lab applies them, then without NET_RAW."""
    spec = speaker_daemonset(SpeakerSettings(), "example/speaker:1")["spec"]["template"]["spec"]
    prefix, uid = security_context(spec, spec["containers"][0])
    assert uid == 0 and "-all,+net_raw" in prefix
    without = [p.replace("-all,+net_raw", "-all") for p in prefix]
    with LabNetwork(nodes=1) as lab:
        node = lab.node(1)
        responder = [
            str(BIN / "ironlb-speaker"),
            "l2-responder",
            "--interface",
            "eth0",
            "--ip",
            "203.0.113.9",
        ]
        denied = node.run(*without, *responder, timeout=20)
        assert denied.returncode != 0 and "Operation not permitted" in denied.stdout + denied.stderr
        running = subprocess.Popen(
            ["ip", "netns", "exec", node.namespace, *prefix, *responder], stdout=subprocess.PIPE, text=True
        )
        try:
            assert running.stdout is not None
            assert "answering for 203.0.113.9" in running.stdout.readline()
            time.sleep(0.5)
            assert running.poll() is None, "the responder stopped with NET_RAW alone"
        finally:
            running.terminate()
            running.wait(timeout=10)
