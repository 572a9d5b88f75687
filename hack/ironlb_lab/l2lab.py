"""Layer 2 mode assembled in the lab: Node objects for the lab nodes, the API bridge, a speaker process in
every node namespace and the operator on the host (tests, benchmarks and the demo share it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .apibridge import ApiBridge
from .controlplane import ControlPlane
from .network import Host, LabNetwork
from .operator import OperatorProcess

HACK = Path(__file__).resolve().parents[1]
SPEAKER = str(Path(sys.executable).parent / "ironlb-speaker")
HEARTBEAT_PORT = 17947


@dataclass
class L2Lab:
    plane: ControlPlane
    workdir: Path
    namespace: str = "ironlb-system"
    nodes: int = 2
    lab: LabNetwork = field(init=False)
    speakers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lab = LabNetwork(nodes=self.nodes)
        self.key = self.workdir / "heartbeat.key"

    def start(self) -> L2Lab:
        self.lab.create()
        try:
            self.plane.kubectl(
                "apply",
                "-f",
                "-",
                input=json.dumps(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
                ),
            )
            for number in range(1, self.nodes + 1):
                node = self.lab.node(number)
                self.plane.kubectl(
                    "apply",
                    "-f",
                    "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.role}}),
                )
                self.plane.kubectl(
                    "patch",
                    "node",
                    node.role,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    json.dumps({"status": {"addresses": [{"type": "InternalIP", "address": str(node.v4)}]}}),
                )
            self.bridge = ApiBridge(self.lab, self.plane, self.workdir).start()
            self.key.write_bytes(os.urandom(32).hex().encode())
            for number in range(1, self.nodes + 1):
                self.start_speaker(self.lab.node(number))
            # the pools' addresses are on the LAN: the client and the router reach them on-link
            for host in (self.lab.client, self.lab.router):
                host.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0", check=True)
            self.operator = OperatorProcess(self.plane, args=("--namespace", self.namespace, "--no-speakers"))
            self.operator.start()
        except BaseException:
            self.stop()
            raise
        return self

    def start_speaker(self, node: Host) -> subprocess.Popen[bytes]:
        process = self.lab.spawn(
            node,
            [
                SPEAKER,
                "run",
                "--node",
                node.role,
                "--namespace",
                self.namespace,
                "--interface",
                "eth0",
                "--heartbeat-key-file",
                str(self.key),
                "--heartbeat-port",
                str(HEARTBEAT_PORT),
            ],
            self.workdir / f"speaker-{node.role}.log",
            env={**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)},
        )
        self.speakers[node.role] = process
        return process

    def kill_speaker(self, role: str, graceful: bool = False) -> None:
        """SIGKILL (a crash) or SIGTERM (a rolling update) the speaker of one node."""
        process = self.speakers.pop(role)
        if graceful:
            process.terminate()
        else:
            process.kill()
        process.wait(timeout=15)

    def stop(self) -> None:
        if getattr(self, "operator", None) is not None:
            self.operator.stop()
        if getattr(self, "bridge", None) is not None:
            self.bridge.stop()
        self.lab.destroy()

    def __enter__(self) -> L2Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ probes
    def arp(self, ip: str) -> str:
        """The MAC that answers ``who has ip`` on the client's segment ('' when nobody does)."""
        result = self.lab.client.run("arping", "-c", "1", "-w", "1", "-I", "eth0", ip)
        match = re.search(r"from ([0-9a-f:]{17})", result.stdout.lower())
        return match.group(1) if match else ""

    def watch_arp(self, ip: str, seconds: float) -> subprocess.Popen[str]:
        """Start asking for ``ip`` every 10 ms from the client; read the JSON of MAC changes at the end."""
        watch = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.lab.client.namespace,
                "env",
                f"PYTHONPATH={HACK}",
                sys.executable,
                "-m",
                "bench.arp_watch",
                ip,
                str(self.lab.client.v4),
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert watch.stdout is not None
        if watch.stdout.readline().strip() != "watching":
            raise RuntimeError("the ARP watcher did not start")
        return watch

    def failover(self, ip: str, victim: str, survivor_mac: str, graceful: bool = False) -> float:
        """Stop the victim's speaker (kill -9, or SIGTERM when ``graceful``); seconds until the client first
        hears the survivor answer ARP."""
        watch = self.watch_arp(ip, 3)
        time.sleep(0.3)
        killed = time.time()
        self.kill_speaker(victim, graceful)
        changes = json.loads(watch.communicate(timeout=30)[0])
        return (
            float(next(moment for moment, mac in changes if mac == survivor_mac and moment > killed)) - killed
        )
