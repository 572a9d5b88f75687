"""MetalLB in IronLB's lab, for side-by-side benchmarks only (none of it is part of IronLB).

The controller runs on the host with the admin's kubeconfig; one speaker per lab node runs in the node's
namespace, reaching the API server through the lab's bridge. What a kubelet and the controllers would
provide is written by hand, as ../shared/notes/metallb-in-the-lab.md found necessary: a speaker Pod object
per node whose status says Running and Ready on the node's IP (memberlist finds its peers by listing them),
and an EndpointSlice with one ready endpoint for the Service (MetalLB announces only Services with one).
The control plane runs without controllers, so nothing else touches those objects.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .apibridge import ApiBridge
from .buildscripts import built
from .controlplane import ControlPlane, _die_with_parent
from .endpoints import ready_endpoint_slice
from .network import Host, LabNetwork
from .nodes import register_node

NAMESPACE = "metallb-system"
SPEAKER_LABELS = {"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "speaker"}


def metallb_build() -> Path:
    """The directory with MetalLB's controller, speaker and crds/ (``hack/build-metallb.sh``, cached)."""
    return built("build-metallb.sh")


def controller_argv(build: Path, kubeconfig: Path) -> list[str]:
    """MetalLB's controller with the admin's kubeconfig, without its webhook and certificate rotation."""
    return [
        str(build / "controller"),
        f"--kubeconfig={kubeconfig}",
        f"--namespace={NAMESPACE}",
        "--webhook-mode=disabled",
        "--disable-cert-rotation",
    ]


def install_metallb_crds(plane: ControlPlane, build: Path) -> None:
    for crd in sorted((build / "crds").glob("*.yaml")):
        plane.kubectl("apply", "--server-side", "-f", str(crd))
    plane.kubectl("wait", "--for=condition=Established", "crd/ipaddresspools.metallb.io")
    plane.kubectl("create", "namespace", NAMESPACE, check=False)
    # without kube-controller-manager nobody creates it, and pods need it to pass admission
    plane.kubectl("create", "serviceaccount", "default", "-n", NAMESPACE, check=False)


@dataclass
class MetalLBLab:
    """MetalLB's controller and Layer 2 speakers on the lab's nodes, announcing one pool."""

    plane: ControlPlane
    workdir: Path
    pool: str
    nodes: int = 2
    lab: LabNetwork = field(init=False)
    speakers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lab = LabNetwork(nodes=self.nodes)

    def start(self) -> MetalLBLab:
        self.build = metallb_build()
        self.lab.create()
        try:
            install_metallb_crds(self.plane, self.build)
            self._apply(
                {
                    "apiVersion": "metallb.io/v1beta1",
                    "kind": "IPAddressPool",
                    "metadata": {"name": "bench", "namespace": NAMESPACE},
                    "spec": {"addresses": [self.pool]},
                },
                {
                    "apiVersion": "metallb.io/v1beta1",
                    "kind": "L2Advertisement",
                    "metadata": {"name": "bench", "namespace": NAMESPACE},
                    "spec": {"ipAddressPools": ["bench"]},
                },
            )
            key = self.workdir / "memberlist"
            key.mkdir(parents=True, exist_ok=True)
            (key / "secretkey").write_text(os.urandom(16).hex())
            self.bridge = ApiBridge(self.lab, self.plane, self.workdir).start()
            self.controller = self._spawn_host(
                controller_argv(self.build, self.plane.kubeconfig), "controller"
            )
            for number in range(1, self.nodes + 1):
                node = self.lab.node(number)
                register_node(self.plane, node.role, str(node.v4))
                self._speaker_pod(node)
                self.bridge.forward_into(node)
                self.start_speaker(node.role)
        except BaseException:
            self.stop()
            raise
        return self

    def _apply(self, *documents: dict[str, Any]) -> None:
        self.plane.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in documents))

    def _spawn_host(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / f"metallb-{name}.log").open("ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def _speaker_pod(self, node: Host) -> None:
        """The speaker Pod object memberlist lists to find its peers, shown Running and Ready."""
        name = f"speaker-{node.role}"
        self._apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": SPEAKER_LABELS},
                "spec": {
                    "nodeName": node.role,
                    "hostNetwork": True,
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "speaker", "image": "quay.io/metallb/speaker:v0.15.2"}],
                },
            }
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "status": {
                "phase": "Running",
                "hostIP": str(node.v4),
                "hostIPs": [{"ip": str(node.v4)}],
                "podIP": str(node.v4),
                "podIPs": [{"ip": str(node.v4)}],
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            }
        }
        self.plane.kubectl(
            "patch",
            "pod",
            name,
            "-n",
            NAMESPACE,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(status),
        )

    def start_speaker(self, role: str) -> None:
        node = self.lab.hosts[role]
        kubeconfig = self.plane.kubeconfig_via(self.plane.port, f"metallb-{role}")
        self.speakers[role] = self.lab.spawn(
            node,
            [
                str(self.build / "speaker"),
                f"--kubeconfig={kubeconfig}",
                f"--node-name={role}",
                f"--pod-name=speaker-{role}",
                f"--namespace={NAMESPACE}",
                f"--host={node.v4}",
                "--port=7472",
                f"--ml-bindaddr={node.v4}",
                "--ml-labels=" + ",".join(f"{k}={v}" for k, v in SPEAKER_LABELS.items()),
                f"--ml-secret-key-path={self.workdir / 'memberlist'}",
            ],
            self.workdir / f"metallb-speaker-{role}.log",
        )

    def kill_speaker(self, role: str) -> None:
        process = self.speakers[role]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)

    def service_with_endpoint(self, namespace: str, name: str, node: str, ip: str) -> None:
        """A selector-less LoadBalancer Service asking for ``ip``, and an EndpointSlice with one ready
        endpoint on ``node`` (MetalLB announces nothing without one)."""
        self._apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": {"metallb.universe.tf/loadBalancerIPs": ip},
                },
                "spec": {
                    "type": "LoadBalancer",
                    "ports": [{"port": 80}],
                    "allocateLoadBalancerNodePorts": False,
                },
            },
            ready_endpoint_slice(namespace, name, node=node),
        )

    def stop(self) -> None:
        for process in [*self.speakers.values(), getattr(self, "controller", None)]:
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
        if getattr(self, "bridge", None) is not None:
            self.bridge.stop()
        self.lab.destroy()

    def __enter__(self) -> MetalLBLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
