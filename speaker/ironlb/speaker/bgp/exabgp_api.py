"""exabgp's text API, pure: the command lines for routes, the changes between two route sets, its events.

Commands follow exabgp 5 (``reactor/api/command/announce.py``): ``neighbor <peer> announce route <prefix>
next-hop self [community [..]] [large-community [..]] [local-preference N]``, ``neighbor <peer> withdraw
route <prefix>`` and ``neighbor <peer> announce eor <afi> <safi>``. A changed route is simply announced
again: BGP replaces a prefix's attributes in place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .routes import Route

# exabgp's neighbor-change words, written as the BGP FSM states users know from other routers.
EXABGP_STATES: Mapping[str, str] = {"connected": "Connect", "up": "Established", "down": "Idle"}


def announce_command(peer_address: str, route: Route) -> str:
    parts = [f"neighbor {peer_address} announce route {route.prefix} next-hop self"]
    if route.communities:
        parts.append(f"community [ {' '.join(route.communities)} ]")
    if route.large_communities:
        parts.append(f"large-community [ {' '.join(route.large_communities)} ]")
    if route.local_pref is not None:
        parts.append(f"local-preference {route.local_pref}")
    return " ".join(parts)


def withdraw_command(peer_address: str, route: Route) -> str:
    return f"neighbor {peer_address} withdraw route {route.prefix}"


def end_of_rib_commands(peer_address: str, families: Iterable[str]) -> list[str]:
    """End-of-RIB for each family (``ipv4 unicast``): sent once this node's routes are, never before (exabgp
    runs with ``manual-eor``), so a router keeping this node's paths stale after its restart (graceful
    restart, RFC 4724) drops none of them in between."""
    return [f"neighbor {peer_address} announce eor {family}" for family in families]


@dataclass(frozen=True)
class Change:
    session: str
    action: Literal["announce", "withdraw"]
    route: Route


def diff_routes(
    announced: Mapping[str, frozenset[Route]], wanted: Mapping[str, frozenset[Route]]
) -> list[Change]:
    """What to send so that ``announced`` becomes ``wanted``: withdrawals first, then announcements.

    A prefix whose attributes changed is announced again, not withdrawn (no flap at the router).
    """
    withdrawals: list[Change] = []
    announcements: list[Change] = []
    for session in sorted(set(announced) | set(wanted)):
        old, new = announced.get(session, frozenset()), wanted.get(session, frozenset())
        kept_prefixes = {route.prefix for route in new}
        withdrawals += [
            Change(session, "withdraw", r) for r in sorted(old - new) if r.prefix not in kept_prefixes
        ]
        announcements += [Change(session, "announce", r) for r in sorted(new - old)]
    return withdrawals + announcements


def resend_routes(
    announced: Mapping[str, frozenset[Route]], wanted: Mapping[str, frozenset[Route]], sessions: Iterable[str]
) -> list[Change]:
    """Announce again what a session was sent and still wants (what exabgp may have lost as the session came
    up). Never a withdrawal, and never touching what ``diff_routes`` changes: resending is always safe."""
    return [
        Change(session, "announce", route)
        for session in sorted(set(sessions))
        for route in sorted(announced.get(session, frozenset()) & wanted.get(session, frozenset()))
    ]


def command_for(change: Change, peer_address: str) -> str:
    if change.action == "announce":
        return announce_command(peer_address, change.route)
    return withdraw_command(peer_address, change.route)


@dataclass(frozen=True)
class NeighborEvent:
    peer_address: str
    state: str
    reason: str = ""


@dataclass(frozen=True)
class Negotiated:
    """The families a session carries, as its OPEN messages settled them (``ipv4 unicast``, ...)."""

    peer_address: str
    families: tuple[str, ...]


def _message(line: str, kind: str) -> dict[str, Any] | None:
    """The ``neighbor`` part of one of exabgp's JSON messages of type ``kind``; None for anything else."""
    if not line.startswith("{"):
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("type") != kind:
        return None
    neighbor = message.get("neighbor", {})
    return neighbor if isinstance(neighbor, dict) else None


def parse_negotiated(line: str) -> Negotiated | None:
    """What a session negotiated (exabgp says so before the session is up); None for anything else."""
    neighbor = _message(line, "negotiated")
    if neighbor is None:
        return None
    peer = neighbor.get("address", {}).get("peer")
    families = neighbor.get("negotiated", {}).get("families")
    if not isinstance(peer, str) or not isinstance(families, list):
        return None
    return Negotiated(peer, tuple(str(family) for family in families))


def parse_event(line: str) -> NeighborEvent | None:
    """A neighbor state change from exabgp's JSON encoder; None for anything else (acks, updates)."""
    neighbor = _message(line, "state")
    if neighbor is None:
        return None
    state = neighbor.get("state")
    peer = neighbor.get("address", {}).get("peer")
    if not isinstance(state, str) or not isinstance(peer, str):
        return None
    return NeighborEvent(peer, EXABGP_STATES.get(state, state), str(neighbor.get("reason", "")))
