"""Which node answers ARP/NDP for an IP: rendezvous (highest-random-weight) hashing, pure and deterministic.

Every speaker computes the same owner from the same inputs (the eligible nodes from the published
configuration, the live nodes from heartbeats), with no coordination. IPs spread evenly over nodes, and
when a node dies only the IPs it owned move; a node joining takes over only the IPs it now wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(node: str, ip: str) -> bytes:
    """A node's weight for an IP. Never change it: speakers of two versions must elect the same owner."""
    return hashlib.sha256(f"{node}\0{ip}".encode()).digest()


def owner(ip: str, eligible: Iterable[str], alive: Iterable[str] | None = None) -> str | None:
    """The node that announces ``ip``: the highest weight among eligible nodes that are alive."""
    live = set(alive) if alive is not None else None
    candidates = [node for node in eligible if live is None or node in live]
    if not candidates:
        return None
    return max(candidates, key=lambda node: (weight(node, ip), node))
