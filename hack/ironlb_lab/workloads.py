"""The lab's stand-ins for a kubelet and kube-proxy, so LoadBalancer traffic reaches a real server.

``LabKubelet.run_pod`` creates a Pod bound to a lab node, gives it a network namespace behind that node (a
veth pair, an address from the node's pod range), starts a real server in it (Python's http.server, or
whatever argv a ``ServerCommand`` prepares, e.g. nginx), waits until it listens, and writes the Pod's status
back (Running, Ready, podIP) so the real EndpointSlice controller publishes its endpoint.
``LabKubelet.delete_pod`` undoes all of it: the API object (at once, as no kubelet confirms), the server (by
PID), the namespace and its veth pair.

``LabProxy`` plays kube-proxy's part for LoadBalancer IPs with nftables inside each node namespace:
traffic to IP:port is DNATed to the Service's endpoints — for externalTrafficPolicy Local only to the
node's own pods (replies return through the node, nothing else needed); for Cluster to any pod, masqueraded
so replies come back through the node that received the request.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ironlb.api.kube import ApiError, KubeClient

from .controlplane import ControlPlane
from .network import Host, LabNetwork, ip

POD_V4 = ipaddress.IPv4Network("198.51.100.128/26")  # 8 addresses per node: .128+8(n-1) ...
POD_V6 = ipaddress.IPv6Network("2001:db8:400::/48")  # 2001:db8:400:<node>::/64
SLOTS = 6  # per node: a /29 less its network address and the gateway (.1)

ServerCommand = Callable[[Path, int], list[str]]
"""Prepares a pod's files in its directory and returns the argv serving ``port`` (run in the pod's netns)."""


def pod_range(node_number: int) -> ipaddress.IPv4Network:
    return list(POD_V4.subnets(new_prefix=29))[node_number - 1]


def free_slot(taken: set[int]) -> int:
    """The lowest pod slot of a node not in use, so a deleted pod's address and namespace name are reused."""
    slot = next((n for n in range(SLOTS) if n not in taken), None)
    if slot is None:
        raise RuntimeError(f"a lab node runs at most {SLOTS} pods")
    return slot


def python_http_server(text: str) -> ServerCommand:
    """The default server: Python's http.server with an index page saying ``text``."""

    def prepare(root: Path, port: int) -> list[str]:
        (root / "index.html").write_text(f"<h1>{text}</h1>\n")
        return [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0", "--directory", str(root)]

    return prepare


@dataclass
class Pod:
    name: str
    namespace: str
    node: Host
    host: Host
    v4: ipaddress.IPv4Address
    slot: int = 0
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None


@dataclass
class LabKubelet:
    lab: LabNetwork
    plane: ControlPlane
    workdir: Path
    pods: list[Pod] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kube = KubeClient.from_environment(str(self.plane.kubeconfig))
        self._routed: set[int] = set()

    def _route_pod_ranges(self) -> None:
        """Every lab host reaches every node's pod range through that node (a flat, routed pod network)."""
        for number in range(1, self.lab.nodes + 1):
            if number in self._routed:
                continue
            node = self.lab.node(number)
            node.run("sysctl", "-qw", "net.ipv4.ip_forward=1", check=True)
            for role, other in self.lab.hosts.items():
                on_lan = role in ("client", "router") or role.startswith("node")  # not pods, not remote
                if other is not node and on_lan:
                    ip("-n", other.namespace, "route", "replace", str(pod_range(number)), "via", str(node.v4))
            self._routed.add(number)

    def _plumb(self, node_number: int, slot: int) -> Host:
        """The pod's namespace: eth0 with a /32 from the node's range, its peer in the node as the gateway."""
        node = self.lab.node(node_number)
        address = pod_range(node_number)[2 + slot]
        gateway = pod_range(node_number)[1]
        role = f"pod{node_number}{slot}"
        namespace_name = self.lab._namespace(role)
        device = f"p{node_number}{slot}"
        ip(
            "link",
            "add",
            "eth0",
            "netns",
            namespace_name,
            "type",
            "veth",
            "peer",
            "name",
            device,
            "netns",
            node.namespace,
        )
        ip("-n", node.namespace, "addr", "add", f"{gateway}/32", "dev", device)
        ip("-n", node.namespace, "link", "set", device, "up")
        ip("-n", node.namespace, "route", "add", f"{address}/32", "dev", device)
        ip("-n", namespace_name, "addr", "add", f"{address}/32", "dev", "eth0")
        ip("-n", namespace_name, "link", "set", "eth0", "up")
        ip("-n", namespace_name, "route", "add", f"{gateway}/32", "dev", "eth0")
        ip("-n", namespace_name, "route", "add", "default", "via", str(gateway), "dev", "eth0")
        host = Host(role, namespace_name, address, POD_V6[0])
        self.lab.hosts[role] = host
        return host

    def run_pod(
        self,
        node_number: int,
        name: str,
        namespace: str,
        labels: dict[str, str],
        port: int = 80,
        *,
        server: ServerCommand | None = None,
        container: str = "server",
        image: str = "lab/http-server",
        annotations: dict[str, str] | None = None,
    ) -> Pod:
        """Create the Pod on the node, start its server, and report it Ready once the server listens."""
        self._route_pod_ranges()
        node = self.lab.node(node_number)
        slot = free_slot({pod.slot for pod in self.pods if pod.node is node})
        host = self._plumb(node_number, slot)
        root = self.workdir / "pods" / f"{namespace}_{name}"
        root.mkdir(parents=True, exist_ok=True)
        argv = (server or python_http_server(f"served by {name} on {node.role}"))(root, port)
        process = self.lab.spawn(host, argv, root / "server.log")
        pod = Pod(name, namespace, node, host, host.v4, slot, root, process)
        self.pods.append(pod)
        metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
        if annotations:
            metadata["annotations"] = annotations
        self.kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": metadata,
                "spec": {
                    "nodeName": node.role,
                    "containers": [{"name": container, "image": image, "ports": [{"containerPort": port}]}],
                },
            },
        )
        self._wait_listening(pod, port)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        self.kube.merge_patch(
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {
                "status": {
                    "phase": "Running",
                    "podIP": str(host.v4),
                    "podIPs": [{"ip": str(host.v4)}],
                    "hostIP": str(node.v4),
                    "conditions": conditions,
                    "startTime": now,
                    "containerStatuses": [
                        {
                            "name": container,
                            "ready": True,
                            "restartCount": 0,
                            "image": image,
                            "imageID": "",
                            "started": True,
                            "state": {"running": {"startedAt": now}},
                        }
                    ],
                }
            },
        )
        return pod

    def _wait_listening(self, pod: Pod, port: int, timeout: float = 15) -> None:
        """The readiness probe: Ready is written only once the server accepts connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pod.host.run("ss", "-Hltn", f"sport = :{port}").stdout.strip():
                return
            if pod.process is not None and pod.process.poll() is not None:
                break
            time.sleep(0.05)
        log = (pod.root / "server.log").read_text(errors="replace")[-2000:] if pod.root else ""
        raise RuntimeError(f"pod {pod.namespace}/{pod.name} does not listen on port {port}:\n{log}")

    def delete_pod(self, pod: Pod) -> None:
        """What deleting a pod ends in: the object gone (grace 0: no kubelet will confirm it), its server
        stopped by PID, its namespace (and with it the veth pair and the node's route) removed."""
        try:
            self.kube.request(
                "DELETE",
                f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}",
                {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
            )
        except ApiError as error:
            if error.status != 404:
                raise
        if pod.process is not None:
            stop_process(pod.process)
            if pod.process in self.lab.processes:
                self.lab.processes.remove(pod.process)
        ip("netns", "delete", pod.host.namespace, check=False)
        self.lab.hosts.pop(pod.host.role, None)
        if pod in self.pods:
            self.pods.remove(pod)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5) -> None:
    """SIGTERM the process group the lab started, SIGKILL it if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class LabProxy:
    """Programs every lab node's nftables from the Services and EndpointSlices, twice a second."""

    lab: LabNetwork
    kube: KubeClient
    _applied: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> LabProxy:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as error:  # nothing ends the proxy's loop: the next round tries again
                print(f"lab proxy: {error}", file=sys.stderr)
            self._stop.wait(0.5)

    def sync(self) -> None:
        services = self.kube.get("/api/v1/services").get("items", [])
        slices = self.kube.get("/apis/discovery.k8s.io/v1/endpointslices").get("items", [])
        for number in range(1, self.lab.nodes + 1):
            node = self.lab.node(number)
            rules = ruleset(node.role, services, slices)
            if self._applied.get(node.role) != rules:
                subprocess.run(
                    ["ip", "netns", "exec", node.namespace, "nft", "-f", "-"],
                    input=rules,
                    text=True,
                    check=True,
                    capture_output=True,
                )
                self._applied[node.role] = rules


def _ready_endpoints(slices: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Service key -> [(IPv4 address, node)] of its ready endpoints."""
    endpoints: dict[str, list[tuple[str, str]]] = {}
    for endpoint_slice in slices:
        labels = endpoint_slice["metadata"].get("labels") or {}
        key = f"{endpoint_slice['metadata']['namespace']}/{labels.get('kubernetes.io/service-name')}"
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True):
                for address in endpoint.get("addresses") or []:
                    if ":" not in address:
                        endpoints.setdefault(key, []).append((address, endpoint.get("nodeName", "")))
    return endpoints


def ruleset(node: str, services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> str:
    """The node's nftables table for LoadBalancer IPs (pure), shaped like kube-proxy's nftables mode: one
    chain per Service port picking an endpoint chain at random, one chain per endpoint doing the DNAT."""
    endpoints = _ready_endpoints(slices)
    chains: list[str] = []
    entry_rules: list[str] = []
    masquerade: set[str] = set()
    for service in services:
        spec, metadata = service.get("spec") or {}, service["metadata"]
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if spec.get("type") != "LoadBalancer" or not ingress:
            continue
        local = spec.get("externalTrafficPolicy") == "Local"
        key = f"{metadata['namespace']}/{metadata['name']}"
        targets = sorted(a for a, on in endpoints.get(key, []) if not local or on == node)
        if not targets:
            continue
        if not local:
            masquerade.update(targets)
        for port in spec.get("ports") or []:
            protocol = (port.get("protocol") or "TCP").lower()
            target_port = port.get("targetPort", port["port"])
            service_chain = f"svc_{len(chains)}"
            endpoint_chains = [f"{service_chain}_ep{n}" for n in range(len(targets))]
            for chain, target in zip(endpoint_chains, targets, strict=True):
                chains.append(
                    f"  chain {chain} {{ meta l4proto {protocol} dnat to {target}:{target_port}; }}"
                )
            picks = ", ".join(f"{n} : jump {chain}" for n, chain in enumerate(endpoint_chains))
            chains.append(
                f"  chain {service_chain} {{ numgen random mod {len(targets)} vmap {{ {picks} }}; }}"
            )
            for entry in ingress:
                if ":" not in entry.get("ip", ":"):
                    entry_rules.append(
                        f"    ip daddr {entry['ip']} {protocol} dport {port['port']} jump {service_chain}"
                    )
    lines = [
        "table ip ironlb_lab",
        "delete table ip ironlb_lab",
        "table ip ironlb_lab {",
        *chains,
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        *entry_rules,
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
    ]
    if masquerade:
        lines.append(f"    ct status dnat ip daddr {{ {', '.join(sorted(masquerade))} }} masquerade")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"
