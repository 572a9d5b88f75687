"""Pure translation between Service objects and the allocator: what a Service asks for, what it should show.

A Service body is parsed once, where it enters the operator, into a ``ServiceRequest``; nothing after that
reads the body. The rules (annotations, MetalLB compatibility, dual stack, sharing) are unit-testable
without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ironlb.api.events import ObjectRef

from .allocator import Address, AllocationRequest, Family, SharingClaim, format_address, parse_address

PREFIX = "ironlb.io/"
LEGACY_PREFIXES = ("metallb.universe.tf/", "metallb.io/")
POOL_ANNOTATION = "address-pool"
IPS_ANNOTATION = "loadBalancerIPs"
SHARING_ANNOTATION = "allow-shared-ip"
ALLOCATED_FROM_ANNOTATION = PREFIX + "ip-allocated-from-pool"
DEFAULT_CLASS = "ironlb.io/ironlb"

Body = Mapping[str, Any]


@dataclass(frozen=True)
class ServiceFilter:
    """Which Services this operator handles (``loadBalancerClass``)."""

    load_balancer_class: str = DEFAULT_CLASS
    handle_services_without_class: bool = True

    def handles(self, service: Body) -> bool:
        spec = service.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            return False
        wanted = spec.get("loadBalancerClass")
        if wanted is None:
            return self.handle_services_without_class
        return bool(wanted == self.load_balancer_class)


@dataclass(frozen=True)
class InvalidRequest:
    """The Service asks for something malformed; the message names the field and the value."""

    message: str


@dataclass(frozen=True)
class ParsedRequest:
    request: AllocationRequest
    legacy_annotations: tuple[tuple[str, str], ...]  # (MetalLB name used, IronLB name to use instead)


@dataclass(frozen=True)
class ServiceRequest:
    """A Service as the operator sees it: what it asks for and what it shows now, read once from its body."""

    key: str  # namespace/name
    ref: ObjectRef  # what its events point at
    handled: bool  # a LoadBalancer Service of this operator's class
    created: str  # creationTimestamp: older Services keep contested IPs on restart
    shown: tuple[Address, ...]  # status.loadBalancer.ingress
    allocated_from: str | None  # the ironlb.io/ip-allocated-from-pool annotation
    local_traffic: bool  # externalTrafficPolicy Local
    parsed: ParsedRequest | InvalidRequest  # without namespace labels: added when it is assigned

    @property
    def namespace(self) -> str:
        return self.ref.namespace

    @property
    def sharing(self) -> SharingClaim:
        return SharingClaim() if isinstance(self.parsed, InvalidRequest) else self.parsed.request.sharing


def parse_service(body: Body, service_filter: ServiceFilter) -> ServiceRequest:
    """The one place a Service's body is read."""
    spec = body.get("spec") or {}
    return ServiceRequest(
        key=service_key(body),
        ref=ObjectRef.of({**body, "kind": "Service", "apiVersion": "v1"}),
        handled=service_filter.handles(body),
        created=str(body["metadata"].get("creationTimestamp", "")),
        shown=shown_addresses(body),
        allocated_from=allocated_from(body),
        local_traffic=spec.get("externalTrafficPolicy") == "Local",
        parsed=parse_request(body, {}),
    )


def service_key(service: Body) -> str:
    metadata = service["metadata"]
    return f"{metadata['namespace']}/{metadata['name']}"


def _annotation(annotations: Mapping[str, str], name: str, legacy: list[tuple[str, str]]) -> str | None:
    if PREFIX + name in annotations:
        return annotations[PREFIX + name]
    for prefix in LEGACY_PREFIXES:
        if prefix + name in annotations:
            legacy.append((prefix + name, PREFIX + name))
            return annotations[prefix + name]
    return None


def _families(spec: Mapping[str, Any]) -> tuple[tuple[Family, ...], bool]:
    names = spec.get("ipFamilies") or ["IPv4"]
    families = tuple(4 if name == "IPv4" else 6 for name in names)
    policy = spec.get("ipFamilyPolicy") or "SingleStack"
    if policy == "SingleStack":
        return families[:1], True  # type: ignore[return-value]
    if policy == "RequireDualStack":
        return (families + tuple(f for f in (4, 6) if f not in families))[:2], True  # type: ignore[return-value]
    return families, False  # type: ignore[return-value]


def _requested(spec: Mapping[str, Any], annotation: str | None) -> tuple[Address, ...] | InvalidRequest:
    if annotation is not None:
        source, texts = "annotation loadBalancerIPs", [t for t in annotation.split(",") if t.strip()]
    elif spec.get("loadBalancerIP"):
        source, texts = "spec.loadBalancerIP", [spec["loadBalancerIP"]]
    else:
        return ()
    addresses: list[Address] = []
    for text in texts:
        try:
            addresses.append(parse_address(text))
        except ValueError:
            return InvalidRequest(f"{source}: {text.strip()!r} is not an IP address")
    if len({family for family, _ in addresses}) != len(addresses):
        return InvalidRequest(
            f"{source}: at most one IP per family, got {', '.join(t.strip() for t in texts)}"
        )
    return tuple(addresses)


def parse_request(service: Body, namespace_labels: Mapping[str, str]) -> ParsedRequest | InvalidRequest:
    """What the Service asks the allocator for."""
    metadata, spec = service["metadata"], service.get("spec") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    legacy: list[tuple[str, str]] = []
    pool = _annotation(annotations, POOL_ANNOTATION, legacy)
    requested = _requested(spec, _annotation(annotations, IPS_ANNOTATION, legacy))
    if isinstance(requested, InvalidRequest):
        return requested
    sharing_key = _annotation(annotations, SHARING_ANNOTATION, legacy)
    families, require_all = _families(spec)
    for family, value in requested:
        if family not in families:
            wanted = "/".join(f"IPv{f}" for f in families)
            return InvalidRequest(
                f"requested IP {format_address((family, value))} is IPv{family}, but the Service's "
                f"spec.ipFamilies allow {wanted}"
            )
    ports = frozenset(
        (str(port.get("protocol") or "TCP"), int(port["port"])) for port in spec.get("ports") or ()
    )
    claim = SharingClaim(
        key=sharing_key or None,
        ports=ports,
        local_traffic=spec.get("externalTrafficPolicy") == "Local",
        selector=frozenset((spec.get("selector") or {}).items()),
    )
    request = AllocationRequest(
        service=service_key(service),
        families=families,
        require_all_families=require_all,
        requested=requested,
        pool=pool or None,
        namespace_labels=dict(namespace_labels),
        labels=dict(metadata.get("labels") or {}),
        sharing=claim,
    )
    return ParsedRequest(request, tuple(legacy))


def ingress_ips(service: Body) -> list[str]:
    """The IPs the Service's status shows now."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry["ip"] for entry in ingress if entry.get("ip")]


def shown_addresses(service: Body) -> tuple[Address, ...]:
    addresses = []
    for text in ingress_ips(service):
        try:
            addresses.append(parse_address(text))
        except ValueError:
            continue
    return tuple(addresses)


def status_patch(addresses: tuple[Address, ...]) -> dict[str, Any]:
    return {"status": {"loadBalancer": {"ingress": [{"ip": format_address(a)} for a in addresses]}}}


def allocated_from(service: Body) -> str | None:
    return ((service.get("metadata") or {}).get("annotations") or {}).get(ALLOCATED_FROM_ANNOTATION)
