"""From the CRDs, Services and Nodes to the speaker contract (pure).

The operator resolves what must be the same on every speaker (which advertisements select a pool, which
nodes an advertisement or a peer selects), so speakers electing an owner for an IP all see one eligible
set. Endpoints are left to the speakers (they change with every pod and are read per node).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from ironlb.api import (
    BFDProfileSpec,
    BGPAdvertisementSpec,
    BGPPeerSpec,
    CommunitySpec,
    L2AdvertisementSpec,
    LabelSelector,
)
from ironlb.api.contract import (
    CONTRACT_VERSION,
    MIN_CONTRACT_VERSION,
    PASSWORDS_SECRET,
    AnnouncementShard,
    BfdSettings,
    BGPAdvertising,
    BGPSession,
    L2Advertising,
    PeerPlacement,
    SecretRef,
    ServiceAnnouncement,
    SpeakerGlobalConfig,
)
from ironlb.api.durations import duration_seconds

from .allocator import Allocation, format_address
from .allocator.selectors import any_selector_matches
from .crdrules import is_community

DEFAULT_HOLD_SECONDS = 90
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SHARDS = 64
Labels = Mapping[str, str]


def bfd_settings(profile: BFDProfileSpec) -> BfdSettings:
    return BfdSettings(
        receive_interval=profile.receive_interval,
        transmit_interval=profile.transmit_interval,
        detect_multiplier=profile.detect_multiplier,
        passive=profile.passive_mode,
        minimum_ttl=profile.minimum_ttl,
    )


def session_from_peer(
    name: str, namespace: str, spec: BGPPeerSpec, bfd_profiles: Mapping[str, BFDProfileSpec] | None = None
) -> BGPSession:
    """One BGPPeer as a session; durations become whole seconds (BGP's unit; the CRD accepts no fraction
    of a second that matters, and CEL's getSeconds truncates: so does this). Its BFDProfile is resolved
    here, so every speaker uses the same timers; a missing one leaves ``bfd`` None (the session stays
    closed)."""

    def seconds(text: str | None) -> int | None:
        return None if text is None else int(duration_seconds(text))

    hold = seconds(spec.hold_time)
    profile = (bfd_profiles or {}).get(spec.bfd_profile) if spec.bfd_profile else None
    signed = spec.password_secret is not None or bool(spec.password)  # "" is no password, as in MetalLB
    return BGPSession(
        name=name,
        peer_address=spec.peer_address,
        peer_asn=spec.peer_asn,
        dynamic_asn=spec.dynamic_asn,
        my_asn=spec.my_asn,
        peer_port=spec.peer_port,
        source_address=spec.source_address,
        router_id=spec.router_id,
        hold_time_seconds=DEFAULT_HOLD_SECONDS if hold is None else hold,
        keepalive_seconds=seconds(spec.keepalive_time),
        connect_seconds=seconds(spec.connect_time),
        # the operator gathered the password into the speakers' Secret, keyed by peer (passwords.py)
        password_secret=SecretRef(namespace=namespace, name=PASSWORDS_SECRET, key=name) if signed else None,
        ebgp_multihop=spec.ebgp_multi_hop,
        graceful_restart=spec.enable_graceful_restart,
        bfd_profile=spec.bfd_profile or None,
        bfd=None if profile is None else bfd_settings(profile),
    )


def _nodes(selectors: Sequence[LabelSelector] | None, nodes: Mapping[str, Labels]) -> tuple[str, ...]:
    return tuple(
        sorted(name for name, labels in nodes.items() if any_selector_matches(selectors or [], labels))
    )


def _announcing_nodes(
    selectors: Sequence[LabelSelector] | None, nodes: Mapping[str, Labels]
) -> tuple[str, ...]:
    """The nodes an advertisement selects, but those excluded from external load balancers (Kubernetes'
    well-known label: its presence, whatever its value), as MetalLB and cloud providers honour it."""
    return tuple(name for name in _nodes(selectors, nodes) if EXCLUDE_LABEL not in nodes[name])


def community_aliases(communities: Mapping[str, CommunitySpec]) -> dict[str, str]:
    """Alias -> community, over every Community object; an alias defined twice: the object sorting first."""
    aliases: dict[str, str] = {}
    for _, spec in sorted(communities.items()):
        for alias in spec.communities or ():
            aliases.setdefault(alias.name, alias.value)
    return aliases


def apply_aliases(
    communities: Sequence[str] | None, aliases: Mapping[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the communities with aliases replaced by their values, the names no Community defines)."""
    resolved: list[str] = []
    unknown: list[str] = []
    for text in communities or ():
        value = text if is_community(text) else aliases.get(text)
        if value is None:
            unknown.append(text)
        elif value not in resolved:
            resolved.append(value)
    return tuple(resolved), tuple(unknown)


def _bgp_advertising(
    name: str, spec: BGPAdvertisementSpec, nodes: Mapping[str, Labels], aliases: Mapping[str, str]
) -> BGPAdvertising | None:
    """The advertisement as speakers use it; None (not in force) while it names an unknown alias."""
    communities, unknown = apply_aliases(spec.communities, aliases)
    if unknown:
        return None
    return BGPAdvertising(
        name=name,
        nodes=_announcing_nodes(spec.node_selectors, nodes),
        peers=tuple(spec.peers or ()),
        communities=tuple(c for c in communities if not c.startswith("large:")),
        large_communities=tuple(c.removeprefix("large:") for c in communities if c.startswith("large:")),
        local_pref=spec.local_pref,
        aggregation_length=spec.aggregation_length or 32,
        aggregation_length_v6=spec.aggregation_length_v6 or 128,
    )


def global_config(
    l2: Mapping[str, L2AdvertisementSpec],
    bgp: Mapping[str, BGPAdvertisementSpec],
    peers: Mapping[str, BGPPeerSpec],
    nodes: Mapping[str, Labels],
    namespace: str,
    node_addresses: Mapping[str, str] | None = None,
    pools: Mapping[str, Sequence[str]] | None = None,
    bfd_profiles: Mapping[str, BFDProfileSpec] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> SpeakerGlobalConfig:
    """Advertisements and peers with their node selectors resolved against the nodes' labels (and their
    BFDProfiles and community aliases), and every pool's addresses (speakers refuse to announce anything
    outside them). A BGPAdvertisement naming an alias no Community defines is left out: announcing its
    routes without a community asked for (say no-export) could leak them."""
    advertising = (_bgp_advertising(name, spec, nodes, aliases or {}) for name, spec in sorted(bgp.items()))
    return SpeakerGlobalConfig(
        contract_version=CONTRACT_VERSION,
        min_contract_version=MIN_CONTRACT_VERSION,
        node_addresses=dict(sorted((node_addresses or {}).items())),
        pools={name: tuple(addresses) for name, addresses in sorted((pools or {}).items())},
        l2=tuple(
            L2Advertising(
                name=name,
                nodes=_announcing_nodes(spec.node_selectors, nodes),
                interfaces=tuple(spec.interfaces or ()),
            )
            for name, spec in sorted(l2.items())
        ),
        bgp=tuple(item for item in advertising if item is not None),
        peers=tuple(
            PeerPlacement(
                session=session_from_peer(name, namespace, spec, bfd_profiles),
                nodes=_nodes(spec.node_selectors, nodes),
            )
            for name, spec in sorted(peers.items())
        ),
    )


def selects_pool(spec: L2AdvertisementSpec | BGPAdvertisementSpec, pool: str, pool_labels: Labels) -> bool:
    """MetalLB's rule: by name, by label, or (neither given) every pool."""
    names, selectors = spec.ip_address_pools or [], spec.ip_address_pool_selectors or []
    if not names and not selectors:
        return True
    return pool in names or (bool(selectors) and any_selector_matches(selectors, pool_labels))


def announcement(
    service: str,
    allocation: Allocation,
    local_traffic: bool,
    pool_labels: Labels,
    l2: Mapping[str, L2AdvertisementSpec],
    bgp: Mapping[str, BGPAdvertisementSpec],
) -> ServiceAnnouncement:
    return ServiceAnnouncement(
        service=service,
        ips=tuple(format_address(address) for address in allocation.addresses),
        pool=allocation.pool,
        local_traffic=local_traffic,
        l2=tuple(
            name for name, spec in sorted(l2.items()) if selects_pool(spec, allocation.pool, pool_labels)
        ),
        bgp=tuple(
            name for name, spec in sorted(bgp.items()) if selects_pool(spec, allocation.pool, pool_labels)
        ),
    )


def shard_of(service: str, shards: int = SHARDS) -> int:
    """A stable shard per Service (not Python's salted hash): one Service change rewrites one shard."""
    return int.from_bytes(hashlib.sha256(service.encode()).digest()[:4], "big") % shards


def shard(number: int, announcements: Mapping[str, ServiceAnnouncement]) -> AnnouncementShard:
    return AnnouncementShard(
        contract_version=CONTRACT_VERSION,
        min_contract_version=MIN_CONTRACT_VERSION,
        shard=number,
        services=tuple(announcements[key] for key in sorted(announcements)),
    )
