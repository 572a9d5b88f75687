"""A ready endpoint for a lab Service that has no pods behind it.

Speakers answer only for Services with a ready endpoint (MetalLB's rule), and most lab Services exist to be
announced, not served: each gets an EndpointSlice of its own, as a selector-less Service's owner would write
it. The EndpointSlice controller leaves it alone (it manages only slices labelled as its own).
"""

from __future__ import annotations

from typing import Any

from ironlb.api.kube import KubeClient

Json = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
ADDRESSES = {4: "192.0.2.200", 6: "2001:db8:ffff::200"}


def ready_endpoint_slice(namespace: str, service: str, *, family: int = 4, node: str | None = None) -> Json:
    """An EndpointSlice giving ``namespace/service`` one ready endpoint, on ``node`` or on no node."""
    endpoint: Json = {"addresses": [ADDRESSES[family]], "conditions": {"ready": True}}
    if node is not None:
        endpoint["nodeName"] = node
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-lab",
            "namespace": namespace,
            "labels": {SERVICE_NAME_LABEL: service, MANAGED_BY_LABEL: "ironlb-lab"},
        },
        "addressType": f"IPv{family}",
        "endpoints": [endpoint],
        "ports": [{"port": 80, "protocol": "TCP"}],
    }


def family_of(service: Json) -> int:
    """The family of a Service manifest's first (or only) IP family: its endpoint's."""
    families = (service.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    return 6 if families[0] == "IPv6" else 4


def post_ready_endpoint(kube: KubeClient, namespace: str, service: str, family: int = 4) -> None:
    """Create ``ready_endpoint_slice`` for a Service through the API (an ApiError if it exists)."""
    slice_of = ready_endpoint_slice(namespace, service, family=family)
    kube.request("POST", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", slice_of)
