"""The Services the benchmarks create (operator_bench, speaker_rss_bench; the Layer 2 ones' one Service).

Those a speaker must announce get a ready endpoint each (an EndpointSlice of their own).

IPv6 single-stack: the documentation IPv4 ranges are /24s, too small for thousands of ClusterIPs or
load-balancer IPs. No NodePorts: the default range (2,768 ports) cannot serve 10,000 LoadBalancer Services.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ironlb.api.kube import KubeClient
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.endpoints import post_ready_endpoint, ready_endpoint_slice


def lb_service(name: str, namespace: str, selector: bool = True) -> dict[str, object]:
    """A LoadBalancer Service ``name`` selecting the pods labelled ``app: name`` (or none: selector-less)."""
    spec: dict[str, object] = {
        "type": "LoadBalancer",
        "ipFamilies": ["IPv6"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [{"port": 80}],
        "allocateLoadBalancerNodePorts": False,
    }
    if selector:
        spec["selector"] = {"app": name}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def create_service(
    kube: KubeClient, namespace: str, name: str, ready_endpoint: bool = False, selector: bool = True
) -> None:
    """POST ``lb_service(name, namespace)``; with ``ready_endpoint``, then an EndpointSlice giving it one
    (speakers announce only Services with a ready endpoint; the operator's benchmarks need none). Without
    ``selector`` the EndpointSlice controller leaves the Service alone: for a Service with a selector and no
    pods it writes a placeholder slice, at its own pace (20 writes/s), long after the Services exist."""
    kube.request("POST", f"/api/v1/namespaces/{namespace}/services", lb_service(name, namespace, selector))
    if ready_endpoint:
        post_ready_endpoint(kube, namespace, name, family=6)


def create_services(
    kube: KubeClient,
    namespace: str,
    names: list[str],
    threads: int,
    ready_endpoints: bool = False,
    selector: bool = True,
) -> dict[str, float]:
    """Create the Services ``names`` from ``threads`` threads at once; when each was sent (perf_counter)."""
    posted: dict[str, float] = {}

    def create(name: str) -> None:
        posted[name] = time.perf_counter()
        create_service(kube, namespace, name, ready_endpoint=ready_endpoints, selector=selector)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, names))
    return posted


def web_service_ip(plane: ControlPlane, family: int, pool: str) -> str:
    """Announce ``pool`` (a /29 or /125 of the lab's LAN), create the LoadBalancer Service default/web of
    that family, and return its IP once allocated (the Layer 2 benchmarks' one Service)."""
    plane.announce_pool(pool, "203.0.113.200/29" if family == 4 else "2001:db8:300::200/125")
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    if family == 6:
        service["spec"] |= {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}
    endpoint = ready_endpoint_slice("default", "web", family=family)
    both = {"apiVersion": "v1", "kind": "List", "items": [service, endpoint]}
    plane.kubectl("apply", "-f", "-", input=json.dumps(both))
    kube = KubeClient.from_environment(str(plane.kubeconfig))
    while True:
        status = kube.get("/api/v1/namespaces/default/services/web").get("status", {})
        ip = ((status.get("loadBalancer") or {}).get("ingress") or [{}])[0].get("ip", "")
        if ip:
            return str(ip)
        time.sleep(0.1)
