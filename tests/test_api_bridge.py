"""The API server reached from inside a lab node's namespace through the Unix-socket bridge."""

from __future__ import annotations

import json
from pathlib import Path

from ironlb_lab.apibridge import ApiBridge
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.network import LabNetwork


def test_kubectl_inside_a_node_namespace_talks_to_the_lab_api_server(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with LabNetwork(nodes=2) as lab:
        kubectl = [str(control_plane.kubectl_path), f"--kubeconfig={control_plane.kubeconfig}"]
        before = lab.node(1).run(*kubectl, "get", "--raw", "/version", timeout=20)
        assert before.returncode != 0, "a node namespace must not reach the host's loopback by itself"
        bridge = ApiBridge(lab, control_plane, tmp_path).start()
        try:
            for number in (1, 2):
                result = lab.node(number).run(*kubectl, "get", "--raw", "/version", timeout=20)
                assert result.returncode == 0, result.stderr
                assert json.loads(result.stdout)["gitVersion"] == "v1.34.12"
        finally:
            bridge.stop()
