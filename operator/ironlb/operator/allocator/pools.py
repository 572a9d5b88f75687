"""A pool as the allocator sees it: merged segments and the rules deciding which Services may use it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ironlb.api.common import LabelSelector
from ironlb.api.ipaddresspool import IPAddressPoolSpec

from .addresses import Family, Segment, parse_segment
from .selectors import any_selector_matches


def merge_segments(segments: list[Segment]) -> tuple[Segment, ...]:
    """Union of overlapping or adjacent segments, ascending, so no address is counted twice."""
    merged: list[Segment] = []
    for segment in sorted(segments, key=lambda s: (s.family, s.first)):
        previous = merged[-1] if merged else None
        if previous and previous.family == segment.family and segment.first <= previous.last + 1:
            merged[-1] = Segment(
                previous.family, previous.first, max(previous.last, segment.last), previous.avoid_buggy
            )
        else:
            merged.append(segment)
    return tuple(merged)


@dataclass(frozen=True)
class PoolConfig:
    """One IPAddressPool, reduced to what allocation needs."""

    name: str
    segments: tuple[Segment, ...]
    auto_assign: bool = True
    priority: int | None = None
    namespaces: frozenset[str] = frozenset()
    namespace_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    seniority: tuple[str, str] = ("", "")  # (creationTimestamp, name): the older pool wins an overlap

    @classmethod
    def from_spec(
        cls,
        name: str,
        spec: IPAddressPoolSpec,
        labels: Mapping[str, str] | None = None,
        created: str = "",
    ) -> PoolConfig:
        allocation = spec.service_allocation
        return cls(
            name=name,
            segments=merge_segments([parse_segment(entry, spec.avoid_buggy_ips) for entry in spec.addresses]),
            auto_assign=spec.auto_assign,
            priority=allocation.priority if allocation else None,
            namespaces=frozenset(allocation.namespaces or ()) if allocation else frozenset(),
            namespace_selectors=tuple(allocation.namespace_selectors or ()) if allocation else (),
            service_selectors=tuple(allocation.service_selectors or ()) if allocation else (),
            labels=dict(labels or {}),
            seniority=(created, name),
        )

    @property
    def families(self) -> frozenset[Family]:
        return frozenset(segment.family for segment in self.segments)

    def accepts(self, namespace: str, namespace_labels: Mapping[str, str], labels: Mapping[str, str]) -> bool:
        """Whether ``serviceAllocation`` lets this Service use the pool (on every path to it)."""
        return self.refusal(namespace, namespace_labels, labels) is None

    def refusal(
        self, namespace: str, namespace_labels: Mapping[str, str], labels: Mapping[str, str]
    ) -> str | None:
        """Which rule of ``serviceAllocation`` keeps this Service out of the pool, in words (None: none)."""
        if self.namespaces and namespace not in self.namespaces:
            allowed = ", ".join(sorted(self.namespaces))
            rule = f"serviceAllocation.namespaces of IPAddressPool {self.name!r} ({allowed})"
            return f"{rule} excludes {namespace!r}"
        if not any_selector_matches(self.namespace_selectors, namespace_labels):
            return (
                f"serviceAllocation.namespaceSelectors of IPAddressPool {self.name!r} do not match the "
                f"labels of namespace {namespace!r}"
            )
        if not any_selector_matches(self.service_selectors, labels):
            return (
                f"serviceAllocation.serviceSelectors of IPAddressPool {self.name!r} do not match the Service"
            )
        return None

    @property
    def order_key(self) -> tuple[int, int, str]:
        """MetalLB's order: pools with a priority (lower first), then pools without one (0 or unset)."""
        if self.priority:
            return (0, self.priority, self.name)
        return (1, 0, self.name)
