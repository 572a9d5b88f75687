"""Which announced IPs this node must answer for (pure): advertisements, endpoints, liveness, election."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from ironlb.api.contract import ServiceAnnouncement, SpeakerGlobalConfig

from .election import owner

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def l2_owned(
    me: str,
    config: SpeakerGlobalConfig,
    announcements: Iterable[ServiceAnnouncement],
    endpoint_nodes: Mapping[str, frozenset[str]],
    alive: Iterable[str],
) -> dict[IPAddress, str]:
    """Owned IP -> Service. An IP's candidates are the nodes of the L2Advertisements announcing it, for
    externalTrafficPolicy Local only those with a ready endpoint, and of those the ones alive."""
    advertised = {advertisement.name: set(advertisement.nodes) for advertisement in config.l2}
    live = set(alive)
    owned: dict[IPAddress, str] = {}
    for announcement in announcements:
        eligible: set[str] = set()
        for name in announcement.l2:
            eligible |= advertised.get(name, set())
        if announcement.local_traffic:
            eligible &= endpoint_nodes.get(announcement.service, frozenset())
        for ip in announcement.ips:
            if owner(ip, sorted(eligible), live) == me:
                owned[ipaddress.ip_address(ip)] = announcement.service
    return owned


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
