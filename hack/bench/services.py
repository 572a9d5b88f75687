"""The Services the control-plane benchmarks create (operator_bench, speaker_rss_bench).

IPv6 single-stack: the documentation IPv4 ranges are /24s, too small for thousands of ClusterIPs or
load-balancer IPs. No NodePorts: the default range (2,768 ports) cannot serve 10,000 LoadBalancer Services.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ironlb.api.kube import KubeClient


def lb_service(name: str, namespace: str) -> dict[str, object]:
    """A LoadBalancer Service ``name`` selecting the pods labelled ``app: name``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv6"],
            "ipFamilyPolicy": "SingleStack",
            "selector": {"app": name},
            "ports": [{"port": 80}],
            "allocateLoadBalancerNodePorts": False,
        },
    }


def create_service(kube: KubeClient, namespace: str, name: str) -> None:
    """POST ``lb_service(name, namespace)``."""
    kube.request("POST", f"/api/v1/namespaces/{namespace}/services", lb_service(name, namespace))


def create_services(kube: KubeClient, namespace: str, names: list[str], threads: int) -> dict[str, float]:
    """Create the Services ``names`` from ``threads`` threads at once; when each was sent (perf_counter)."""
    posted: dict[str, float] = {}

    def create(name: str) -> None:
        posted[name] = time.perf_counter()
        create_service(kube, namespace, name)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, names))
    return posted
