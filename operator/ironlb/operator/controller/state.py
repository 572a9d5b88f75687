"""The operator's one shared state: what the watches have shown, what the allocator decided, what is dirty.

The handlers (``handle_*.py``) each own one concern and read and change this object; it also answers the
questions several of them ask (which advertisements are in force, whether a pool is announced) and keeps the
published speaker configuration in step, so that logic exists once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ironlb.api import BFDProfileSpec, BGPAdvertisementSpec, BGPPeerSpec, CommunitySpec, L2AdvertisementSpec
from ironlb.api.events import ObjectRef
from ironlb.api.kube import KubeClient

from ..allocator import Allocator
from ..legacy import LegacyObjects
from ..metrics import SERVICES_PENDING, SPEAKER_READY
from ..publisher import Publisher
from ..services import ServiceFilter, ServiceRequest
from ..speakerconfig import announcement, community_aliases, global_config, selects_pool
from .eventlog import EventLog

Body = Mapping[str, Any]
AdvertisementKey = tuple[str, str]  # (kind, name)
AdvertisementSpec = L2AdvertisementSpec | BGPAdvertisementSpec


@dataclass
class OperatorState:
    kube: KubeClient
    namespace: str
    events: EventLog
    service_filter: ServiceFilter = field(default_factory=ServiceFilter)
    allocator: Allocator = field(default_factory=Allocator)
    services: dict[str, ServiceRequest] = field(default_factory=dict)  # every LoadBalancer Service we handle
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    pools: dict[str, Body] = field(default_factory=dict)  # IPAddressPool objects, as last seen
    advertisements: dict[AdvertisementKey, AdvertisementSpec] = field(default_factory=dict)
    advertisement_bodies: dict[AdvertisementKey, Body] = field(default_factory=dict)
    peers: dict[str, BGPPeerSpec] = field(default_factory=dict)
    peer_refs: dict[str, ObjectRef] = field(default_factory=dict)  # BGPPeer objects, for their events
    bfd_profiles: dict[str, BFDProfileSpec] = field(default_factory=dict)
    communities: dict[str, CommunitySpec] = field(default_factory=dict)  # Community objects, by name
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # data of the Secrets in our namespace
    passwords_written: dict[str, str] | None = None  # the speakers' passwords Secret as last written
    node_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    node_addresses: dict[str, str] = field(default_factory=dict)
    legacy: LegacyObjects = field(default_factory=LegacyObjects)  # the legacy ConfigMap reading in force
    not_announced: set[str] = field(default_factory=set)  # Services holding an IP no advertisement announces
    pending: dict[str, str] = field(default_factory=dict)  # Services without an IP -> why (metrics only)
    speaker_pods: dict[str, tuple[str, bool]] = field(default_factory=dict)  # speaker pod -> (node, ready)
    selected_nodes: frozenset[str] = frozenset()  # nodes some advertisement or BGPPeer selects
    _shown_nodes: frozenset[str] = frozenset()  # the nodes of ironlb_node_speaker_ready's series
    dirty_pools: set[str] = field(default_factory=set)
    dirty_advertisements: set[AdvertisementKey] = field(default_factory=set)
    publisher: Publisher = field(init=False)

    def __post_init__(self) -> None:
        self.publisher = Publisher(self.kube, self.namespace)
        SERVICES_PENDING.clear()  # a new term counts afresh
        SPEAKER_READY.clear()

    # ------------------------------------------------------------------------------ what metrics show
    def set_pending(self, key: str, reason: str | None) -> None:
        """Count the Service as pending for ``reason`` (None: it holds its IP, or is no longer ours)."""
        before = self.pending.pop(key, None)
        if reason is not None:
            self.pending[key] = reason
        if before == reason:
            return
        if before is not None:
            SERVICES_PENDING.labels(reason=before).dec()
        if reason is not None:
            SERVICES_PENDING.labels(reason=reason).inc()

    def show_speaker_readiness(self) -> None:
        """One series per selected node: whether a ready speaker runs there (the alert's input)."""
        ready = {node for node, is_ready in self.speaker_pods.values() if is_ready}
        for node in self._shown_nodes - self.selected_nodes:  # no series vanishes between two scrapes
            SPEAKER_READY.remove(node)
        for node in self.selected_nodes:
            SPEAKER_READY.labels(node=node).set(1 if node in ready else 0)
        self._shown_nodes = self.selected_nodes

    # ------------------------------------------------------------------ what is in force (CRDs and legacy)
    def all_advertisements(self) -> dict[AdvertisementKey, AdvertisementSpec]:
        """The legacy ConfigMap's advertisements and the CRDs'; a CRD object of the same name wins."""
        return {**self.legacy.advertisements, **self.advertisements}

    def all_peers(self) -> dict[str, BGPPeerSpec]:
        return {**self.legacy.peers, **self.peers}

    def all_bfd_profiles(self) -> dict[str, BFDProfileSpec]:
        """The legacy ConfigMap's bfd-profiles and the BFDProfile objects; an object of the same name wins."""
        return {**self.legacy.bfd_profiles, **self.bfd_profiles}

    def l2_specs(self) -> dict[str, L2AdvertisementSpec]:
        return {
            name: s
            for (_, name), s in self.all_advertisements().items()
            if isinstance(s, L2AdvertisementSpec)
        }

    def bgp_specs(self) -> dict[str, BGPAdvertisementSpec]:
        return {
            name: s
            for (_, name), s in self.all_advertisements().items()
            if isinstance(s, BGPAdvertisementSpec)
        }

    def announced(self, pool: str) -> bool:
        """Whether any advertisement selects the pool (by name, by label, or by selecting every pool)."""
        config = self.allocator.pool_config(pool)
        labels = config.labels if config else {}
        return any(selects_pool(spec, pool, labels) for spec in self.all_advertisements().values())

    def waiting(self) -> list[ServiceRequest]:
        """Services a configuration change can help: without an IP, missing a family, or not announced."""
        return [
            service
            for key, service in list(self.services.items())
            if (allocation := self.allocator.allocation_of(key)) is None
            or not allocation.complete
            or key in self.not_announced
        ]

    # ------------------------------------------------------------------------- the speaker configuration
    def refresh_global(self) -> None:
        config = global_config(
            self.l2_specs(),
            self.bgp_specs(),
            self.all_peers(),
            self.node_labels,
            self.namespace,
            self.node_addresses,
            self.pool_addresses(),
            self.all_bfd_profiles(),
            self.aliases(),
        )
        self.publisher.set_global(config)
        selected = frozenset(
            node for placed in (config.l2, config.bgp, config.peers) for item in placed for node in item.nodes
        )
        if selected != self.selected_nodes:
            self.selected_nodes = selected
            self.show_speaker_readiness()

    def aliases(self) -> dict[str, str]:
        """Community aliases in force (every Community object of our namespace)."""
        return community_aliases(self.communities)

    def pool_addresses(self) -> dict[str, list[str]]:
        """Every pool in force (the legacy ConfigMap's, and the CRDs', which win) with its addresses."""
        addresses = {name: list(spec.addresses) for name, spec in self.legacy.pools.items()}
        for name, body in self.pools.items():
            addresses[name] = list((body.get("spec") or {}).get("addresses") or [])
        return addresses

    def publish(self, key: str) -> None:
        """Keep the Service's announcement in the published shards in step with its allocation."""
        allocation, service = self.allocator.allocation_of(key), self.services.get(key)
        if allocation is None or service is None:
            self.publisher.set_announcement(key, None)
            return
        config = self.allocator.pool_config(allocation.pool)
        self.publisher.set_announcement(
            key,
            announcement(
                key,
                allocation,
                service.local_traffic,
                config.labels if config else {},
                self.l2_specs(),
                self.bgp_specs(),
            ),
        )

    def republish_all(self) -> None:
        for key in set(self.allocator.services()) | set(self.publisher.announcements()):
            self.publish(key)
