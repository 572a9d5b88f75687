"""The lab's stand-ins for a kubelet and kube-proxy, so LoadBalancer traffic reaches a real server.

``LabKubelet.run_pod`` creates a Pod bound to a lab node, gives it a network namespace behind that node (a
veth pair, an address from the node's pod range), starts a real HTTP server in it, and writes the Pod's
status back (Running, Ready, podIP) so the real EndpointSlice controller publishes its endpoint.

``LabProxy`` plays kube-proxy's part for LoadBalancer IPs with nftables inside each node namespace:
traffic to IP:port is DNATed to the Service's endpoints — for externalTrafficPolicy Local only to the
node's own pods (replies return through the node, nothing else needed); for Cluster to any pod, masqueraded
so replies come back through the node that received the request.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ironlb.operator.kube import ApiError, KubeClient

from .controlplane import ControlPlane
from .network import Host, LabNetwork, ip

POD_V4 = ipaddress.IPv4Network("198.51.100.128/26")  # 8 addresses per node: .128+8(n-1) ...
POD_V6 = ipaddress.IPv6Network("2001:db8:400::/48")  # 2001:db8:400:<node>::/64


def pod_range(node_number: int) -> ipaddress.IPv4Network:
    return list(POD_V4.subnets(new_prefix=29))[node_number - 1]


@dataclass
class Pod:
    name: str
    namespace: str
    node: Host
    host: Host
    v4: ipaddress.IPv4Address


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
                if other is not node and role != "remote":
                    ip("-n", other.namespace, "route", "replace", str(pod_range(number)), "via", str(node.v4))
            self._routed.add(number)

    def run_pod(
        self, node_number: int, name: str, namespace: str, labels: dict[str, str], port: int = 80
    ) -> Pod:
        self._route_pod_ranges()
        node = self.lab.node(node_number)
        taken = sum(1 for pod in self.pods if pod.node is node)
        address = pod_range(node_number)[2 + taken]
        gateway = pod_range(node_number)[1]
        role = f"pod{node_number}{taken}"
        namespace_name = self.lab._namespace(role)
        device = f"p{node_number}{taken}"
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
        root = self.workdir / role
        root.mkdir(parents=True, exist_ok=True)
        (root / "index.html").write_text(f"<h1>served by {name} on {node.role}</h1>\n")
        self.lab.spawn(
            host,
            [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0", "--directory", str(root)],
            self.workdir / f"{role}.log",
        )
        self.kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {
                    "nodeName": node.role,
                    "containers": [
                        {"name": "server", "image": "lab/http-server", "ports": [{"containerPort": port}]}
                    ],
                },
            },
        )
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
                    "podIP": str(address),
                    "podIPs": [{"ip": str(address)}],
                    "hostIP": str(node.v4),
                    "conditions": conditions,
                    "startTime": now,
                    "containerStatuses": [
                        {
                            "name": "server",
                            "ready": True,
                            "restartCount": 0,
                            "image": "lab/http-server",
                            "imageID": "",
                            "started": True,
                            "state": {"running": {"startedAt": now}},
                        }
                    ],
                }
            },
        )
        pod = Pod(name, namespace, node, host, address)
        self.pods.append(pod)
        return pod


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
            except (ApiError, OSError) as error:
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
