"""The status an IPAddressPool should show, computed from the allocator (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ironlb.api.common import INT64_MAX

from .allocator import Allocator, format_count
from .conditions import condition


def pool_status(
    allocator: Allocator,
    name: str,
    previous_conditions: Sequence[Mapping[str, Any]],
    generation: int | None,
    now: str,
) -> dict[str, Any]:
    """Counts per family (IPv6 saturated at 2^63-1, the ``available`` string exact) and conditions."""
    usage = allocator.usage(name)
    previous = {condition["type"]: condition for condition in previous_conditions}
    overlaps = allocator.overlaps(name)
    blocked = allocator.is_blocked(name)
    outside = allocator.services_outside_pool(name)
    exhausted = [f"IPv{f}" for f in (4, 6) if usage.total[f] and not usage.available[f]]
    overlap_text = ", ".join(f"{other} ({where})" for other, where in sorted(overlaps.items()))

    def make(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
        return condition(kind, ok, reason, message, previous, now, generation)

    conditions = [
        make(
            "Ready",
            not blocked,
            "Overlapping" if blocked else "Allocating",
            f"hands out no new addresses: overlaps older pool(s) {overlap_text}"
            if blocked
            else "hands out addresses",
        ),
        make(
            "Overlapping",
            bool(overlaps),
            "Overlapping" if overlaps else "NoOverlap",
            f"overlaps {overlap_text}" if overlaps else "no other pool shares an address",
        ),
        make(
            "Exhausted",
            bool(exhausted),
            "Exhausted" if exhausted else "AddressesFree",
            f"no free {' or '.join(exhausted)} address" if exhausted else "addresses are free",
        ),
        make(
            "ServicesOutsidePool",
            bool(outside),
            "PoolShrunk" if outside else "AllInside",
            (
                f"{len(outside)} Service(s) keep IPs this pool no longer contains: {', '.join(outside[:10])}"
                + (" ..." if len(outside) > 10 else "")
            )
            if outside
            else "every Service allocated from this pool holds an address inside it",
        ),
    ]
    return {
        "assignedIPv4": usage.assigned[4],
        "assignedIPv6": usage.assigned[6],
        "availableIPv4": usage.available[4],
        "availableIPv6": min(usage.available[6], INT64_MAX),
        "assigned": usage.assigned[4] + usage.assigned[6],
        "available": format_count(usage.available[4] + usage.available[6]),
        "conditions": conditions,
        "observedGeneration": generation,
    }


def advertisement_status(
    missing_pools: Sequence[str],
    previous_conditions: Sequence[Mapping[str, Any]],
    generation: int | None,
    now: str,
    unknown_aliases: Sequence[str] = (),
) -> dict[str, Any]:
    """Ready unless the advertisement names IPAddressPools that do not exist (a typo CEL cannot see), or
    community aliases no Community defines (then it is not in force at all)."""
    previous = {c["type"]: c for c in previous_conditions}
    if unknown_aliases:
        reason = "CommunityNotFound"
        message = (
            "communities names alias(es) no Community in this namespace defines: "
            f"{', '.join(unknown_aliases)}; nothing is announced by this advertisement until they are defined"
        )
    elif missing_pools:
        reason = "PoolsMissing"
        message = f"ipAddressPools names pool(s) that do not exist: {', '.join(missing_pools)}"
    else:
        reason, message = "Announcing", "every pool it names exists"
    ready = condition("Ready", reason == "Announcing", reason, message, previous, now, generation)
    return {"conditions": [ready], "observedGeneration": generation}
