"""Which BGP routes one node announces to each of its sessions (pure; MetalLB's rules).

A node announces a Service IP to a session when a BGPAdvertisement that the Service names selects the node,
the advertisement's ``peers`` (if any) name the session, the session is opened by this node, the route's
family is the session's family, and the Service has a ready endpoint: anywhere for externalTrafficPolicy
Cluster, on this node for Local. Next hop is always the node itself (``next-hop self``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ironlb.api.contract import BGPAdvertising, BGPSession, ServiceAnnouncement, SpeakerGlobalConfig

# Well-known communities (RFC 1997, 7999, 8326, 7611, 9494) written as ASN:VALUE, so that every router and
# exabgp (which only knows a few of these names) read them the same way.
WELL_KNOWN_COMMUNITIES: Mapping[str, str] = {
    "graceful-shutdown": "65535:0",
    "accept-own": "65535:1",
    "llgr-stale": "65535:6",
    "no-llgr": "65535:7",
    "blackhole": "65535:666",
    "no-export": "65535:65281",
    "no-advertise": "65535:65282",
    "no-export-subconfed": "65535:65283",
    "no-peer": "65535:65284",
}


@dataclass(frozen=True, order=True)
class Route:
    """One prefix as announced to one session; the next hop is always this node (``next-hop self``)."""

    prefix: str
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    local_pref: int | None = None

    @property
    def family(self) -> int:
        return 6 if ":" in self.prefix else 4


def _numeric_key(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in value.split(":"))


def normalise_community(value: str) -> str:
    """A standard community as ASN:VALUE (well-known names translated), so equal ones compare equal."""
    numeric = WELL_KNOWN_COMMUNITIES.get(value.lower(), value)
    high, low = _numeric_key(numeric)
    if not (0 <= high <= 0xFFFF and 0 <= low <= 0xFFFF):
        raise ValueError(f"{value!r} is not a standard community")
    return f"{high}:{low}"


def normalise_large_community(value: str) -> str:
    parts = _numeric_key(value.removeprefix("large:"))
    if len(parts) != 3 or not all(0 <= part <= 0xFFFFFFFF for part in parts):
        raise ValueError(f"{value!r} is not a large community")
    return ":".join(str(part) for part in parts)


def aggregated_prefix(address: str, advertisement: BGPAdvertising) -> str:
    """The prefix announced for an address: its network at the advertisement's aggregation length."""
    ip = ipaddress.ip_address(address)
    length = advertisement.aggregation_length if ip.version == 4 else advertisement.aggregation_length_v6
    return str(ipaddress.ip_network(f"{ip}/{length}", strict=False))


def node_sessions(node: str, config: SpeakerGlobalConfig) -> dict[str, BGPSession]:
    """The sessions this node opens, by BGPPeer name."""
    return {
        placement.session.name: placement.session for placement in config.peers if node in placement.nodes
    }


def _has_ready_endpoint(node: str, announcement: ServiceAnnouncement, ready_nodes: frozenset[str]) -> bool:
    return node in ready_nodes if announcement.local_traffic else bool(ready_nodes)


@dataclass
class _Attributes:
    communities: set[str]
    large_communities: set[str]
    local_pref: int | None


def _merge(into: _Attributes, route: _Attributes) -> None:
    """Several advertisements of one prefix to one session: union of communities, the highest localPref."""
    into.communities |= route.communities
    into.large_communities |= route.large_communities
    if route.local_pref is not None:
        into.local_pref = (
            route.local_pref if into.local_pref is None else max(into.local_pref, route.local_pref)
        )


def bgp_routes(
    node: str,
    config: SpeakerGlobalConfig,
    announcements: Iterable[ServiceAnnouncement],
    endpoint_nodes: Mapping[str, frozenset[str]],
) -> dict[str, frozenset[Route]]:
    """Routes per session name for every session this node opens (empty sets for sessions with none).

    ``endpoint_nodes`` maps a Service key (``ServiceAnnouncement.service``) to the nodes with a ready
    endpoint; a Service missing from it has none and is not announced.
    """
    sessions = node_sessions(node, config)
    advertisements = {advertisement.name: advertisement for advertisement in config.bgp}
    pending: dict[str, dict[str, _Attributes]] = {name: {} for name in sessions}
    for announcement in announcements:
        if not _has_ready_endpoint(node, announcement, endpoint_nodes.get(announcement.service, frozenset())):
            continue
        for name in announcement.bgp:
            advertisement = advertisements.get(name)
            if advertisement is None or node not in advertisement.nodes:
                continue
            targets = [s for s in sessions if not advertisement.peers or s in advertisement.peers]
            for address in announcement.ips:
                prefix = aggregated_prefix(address, advertisement)
                family = 6 if ":" in prefix else 4
                for session_name in targets:
                    session = sessions[session_name]
                    if session.family != family:
                        continue
                    attributes = _Attributes(
                        {normalise_community(c) for c in advertisement.communities},
                        {normalise_large_community(c) for c in advertisement.large_communities},
                        advertisement.local_pref if session.is_ibgp else None,
                    )
                    existing = pending[session_name].get(prefix)
                    if existing is None:
                        pending[session_name][prefix] = attributes
                    else:
                        _merge(existing, attributes)
    return {
        name: frozenset(
            Route(
                prefix,
                tuple(sorted(a.communities, key=_numeric_key)),
                tuple(sorted(a.large_communities, key=_numeric_key)),
                a.local_pref,
            )
            for prefix, a in routes.items()
        )
        for name, routes in pending.items()
    }
