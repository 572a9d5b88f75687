"""When two Services may share one IP (MetalLB's rules for ``allow-shared-ip``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SharingClaim:
    """What a Service brings to an IP: its sharing key, ports, and (for ETP Local) its pod selector."""

    key: str | None = None
    ports: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    local_traffic: bool = False
    selector: frozenset[tuple[str, str]] = field(default_factory=frozenset)


def sharing_conflict(new: SharingClaim, existing: SharingClaim, existing_service: str) -> str | None:
    """Why ``new`` cannot share an IP with ``existing`` (None when it can)."""
    if new.key is None or existing.key is None:
        return f"the IP is used by {existing_service} and the two Services do not both set allow-shared-ip"
    if new.key != existing.key:
        return f"the IP is used by {existing_service} with sharing key {existing.key!r}, not {new.key!r}"
    clash = sorted(new.ports & existing.ports)
    if clash:
        protocol, port = clash[0]
        return f"sharing conflict on port {protocol}/{port} with {existing_service}"
    if new.local_traffic or existing.local_traffic:
        if not (new.local_traffic and existing.local_traffic):
            return (
                f"{existing_service} has a different externalTrafficPolicy; Services sharing an IP with "
                "policy Local must all use Local"
            )
        if new.selector != existing.selector:
            return (
                f"{existing_service} selects other pods; Services sharing an IP with externalTrafficPolicy "
                "Local must have the same selector"
            )
    return None
