"""Which announced IPs this node must answer for (pure): advertisements, endpoints, liveness, election."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from ironlb.api.contract import ServiceAnnouncement, SpeakerGlobalConfig

from .election import owner
from .owners import Key

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NONE: frozenset[str] = frozenset()


def l2_eligible(
    config: SpeakerGlobalConfig,
    announcements: Iterable[ServiceAnnouncement],
    endpoint_nodes: Mapping[str, frozenset[str]],
) -> dict[Key, frozenset[str]]:
    """(Service, IP) -> the nodes that may answer for it: those of the L2Advertisements announcing it, and
    for externalTrafficPolicy Local only those with a ready endpoint. A Service with no ready endpoint
    anywhere has none: as in MetalLB, nobody answers for an IP that would lead nowhere. Equal sets are one
    object, so the incremental index compares them by identity."""
    advertised = {advertisement.name: frozenset(advertisement.nodes) for advertisement in config.l2}
    interned: dict[frozenset[str], frozenset[str]] = {}
    by_advertisements: dict[tuple[str, ...], frozenset[str]] = {}  # a union is made once, not per Service
    eligible_of: dict[Key, frozenset[str]] = {}
    for announcement in announcements:
        eligible = by_advertisements.get(announcement.l2)
        if eligible is None:
            eligible = frozenset().union(*(advertised.get(name, frozenset()) for name in announcement.l2))
            eligible = by_advertisements[announcement.l2] = interned.setdefault(eligible, eligible)
        ready = endpoint_nodes.get(announcement.service, _NONE)
        if not ready:
            eligible = _NONE
        elif announcement.local_traffic:
            local = eligible & ready
            eligible = interned.setdefault(local, local)
        for ip in announcement.ips:
            eligible_of[(announcement.service, ip)] = eligible
    return eligible_of


def owned_ips(keys: Iterable[Key]) -> dict[IPAddress, str]:
    """Owned (Service, IP) keys as IP -> Service; an IP shared by Services goes with the first by name."""
    owned: dict[IPAddress, str] = {}
    for service, ip in sorted(keys):
        owned.setdefault(ipaddress.ip_address(ip), service)
    return owned


def l2_owned(
    me: str,
    config: SpeakerGlobalConfig,
    announcements: Iterable[ServiceAnnouncement],
    endpoint_nodes: Mapping[str, frozenset[str]],
    alive: Iterable[str],
) -> dict[IPAddress, str]:
    """Owned IP -> Service, by a full election of every IP (the reference ``OwnerIndex`` is tested
    against; the speaker keeps the index)."""
    live = set(alive)
    eligible_of = l2_eligible(config, announcements, endpoint_nodes)
    return owned_ips(key for key, eligible in eligible_of.items() if owner(key[1], eligible, live) == me)


def answering_interfaces(
    me: str, config: SpeakerGlobalConfig, announcement: ServiceAnnouncement, primary: str
) -> frozenset[str]:
    """The interfaces an owned IP is answered on: those of the L2Advertisements that announce it from this
    node; an advertisement without ``interfaces`` means the node's primary interface (its InternalIP's)."""
    names: set[str] = set()
    for advertisement in config.l2:
        if advertisement.name in announcement.l2 and me in advertisement.nodes:
            names |= set(advertisement.interfaces) if advertisement.interfaces else {primary}
    return frozenset(names)
