"""Node objects for the lab, as a kubelet registers them: labels, InternalIP, capacity, Ready.

The scheduler needs capacity to place pods, the EndpointSlice controller needs the Node to publish a pod on
it, and the DaemonSet controller matches the ``kubernetes.io/os`` label.
"""

from __future__ import annotations

import json
import time

from .controlplane import ControlPlane

RESOURCES = {"cpu": "4", "memory": "8Gi", "pods": "110"}


def register_node(
    plane: ControlPlane, name: str, address: str | None = None, labels: dict[str, str] | None = None
) -> None:
    plane.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": name, **(labels or {})},
                },
            }
        ),
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {
        "capacity": RESOURCES,
        "allocatable": RESOURCES,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "lab node",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ],
    }
    if address is not None:
        status["addresses"] = [{"type": "InternalIP", "address": address}]
    plane.kubectl(
        "patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
    )
