"""The operator's controller: the handlers of each concern around one shared state, wired together.

Each entry point parses what arrives once (a Service into a ``ServiceRequest``, a CRD into its model), lets
the handler of that concern decide and write, then re-evaluates only what the change can help.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ironlb.api.config import IronLBConfigSpec
from ironlb.api.contract import AnnouncementShard
from ironlb.api.events import EventSink
from ironlb.api.kube import KubeClient

from ..allocator import Allocation, format_address
from ..services import ServiceFilter, parse_service
from .eventlog import EventLog
from .handle_advertisements import AdvertisementHandler
from .handle_bfd import BfdProfileHandler
from .handle_communities import CommunityHandler
from .handle_legacy import LegacyHandler
from .handle_pools import PoolHandler
from .handle_services import ServiceHandler
from .handle_speaker_pods import SpeakerPodHandler
from .state import Body, OperatorState

log = logging.getLogger("ironlb.operator")


def opted_in(config: Body) -> tuple[str, ...]:
    return tuple(IronLBConfigSpec.model_validate(config.get("spec") or {}).legacy_config_namespaces or ())


def published_records(published: Sequence[Body]) -> dict[str, tuple[frozenset[str], str]]:
    """IronLB's own record of what it allocated: Service -> (IPs, pool), from the announcement shards it
    published (only it may write them; a Service's status may be written by others)."""
    records: dict[str, tuple[frozenset[str], str]] = {}
    for body in published:
        payload = (body.get("data") or {}).get("announcements.json")
        if payload is None:
            continue
        for announcement in AnnouncementShard.model_validate_json(payload).services:
            records[announcement.service] = (frozenset(announcement.ips), announcement.pool)
    return records


class Controller:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        post_event: EventSink,
        service_filter: ServiceFilter | None = None,
    ) -> None:
        self.state = OperatorState(kube, namespace, EventLog(post_event), service_filter or ServiceFilter())
        self.services = ServiceHandler(self.state)
        self.pools = PoolHandler(self.state, self.services)
        self.advertisements = AdvertisementHandler(self.state)
        self.bfd = BfdProfileHandler(self.state)
        self.communities = CommunityHandler(self.state)
        self.legacy = LegacyHandler(self.state)
        self.speaker_pods = SpeakerPodHandler(self.state)

    # ------------------------------------------------------------------------------------------- start-up
    def rebuild(self, listed: Mapping[str, Sequence[Body]]) -> int:
        """Adopt every IP Services already show, oldest Service first, before anything new is allocated.

        ``listed``: the informers' first lists, by watch name (namespaces, nodes, ipaddresspools, ...)."""
        state = self.state
        for namespace in listed["namespaces"]:
            state.namespace_labels[namespace["metadata"]["name"]] = dict(
                namespace["metadata"].get("labels") or {}
            )
        for pool in listed["ipaddresspools"]:
            self.pools.upsert(pool)
        for kind in ("l2advertisements", "bgpadvertisements"):
            for advertisement in listed[kind]:
                self.advertisements.set_advertisement(advertisement, deleted=False)
        for node in listed["nodes"]:
            self.advertisements.remember_node(node)
        for pod in listed.get("speakerpods", ()):
            self.speaker_pods.on_pod(pod, deleted=False)
        for profile in listed.get("bfdprofiles", ()):
            self.bfd.set_profile(profile, deleted=False)
        for community in listed.get("communities", ()):
            self.communities.set_community(community, deleted=False)
        for peer in listed["bgppeers"]:
            self.advertisements.set_peer(peer, deleted=False)
        for secret in listed.get("secrets", ()):
            self.advertisements.on_secret(secret, deleted=False)
        for config in listed.get("ironlbconfigs", ()):
            self.legacy.opt_in(opted_in(config))
        for where, source in self.legacy.read_sources().items():  # legacy pools exist before adoption
            self.legacy.take_source(where, source)
        self.legacy.apply()
        self.bfd.report_missing()  # a profile may come from the legacy ConfigMap
        state.refresh_global()
        services = [parse_service(body, state.service_filter) for body in listed["services"]]
        services = sorted((s for s in services if s.handled), key=lambda s: (s.created, s.key))
        records = published_records(listed.get("speakerconfigs", ()))
        adopted = 0
        for service in services:
            record = records.get(service.key)
            shown = frozenset(format_address(a) for a in service.shown)
            result = self.services.adopt(service, record[1] if record and record[0] == shown else None)
            if isinstance(result, Allocation):
                adopted += 1
            elif result is not None:
                log.warning("not adopting %s for %s: %s", service.shown, service.key, result.message)
        state.dirty_pools.update(state.pools)
        state.publisher.seed(listed.get("speakerconfigs", ()))
        state.republish_all()
        log.info(
            "rebuilt state: %d pools, %d Services, %d adopted IPs", len(state.pools), len(services), adopted
        )
        return adopted

    # ------------------------------------------------------------------------------- watch events, parsed
    async def on_service(self, body: Body, deleted: bool) -> None:
        await self.services.on_service(parse_service(body, self.state.service_filter), deleted)

    async def on_pool(self, body: Body, deleted: bool) -> None:
        if await self.pools.on_pool(body, deleted):
            self.state.refresh_global()  # the speakers check every IP against the pools' addresses
            self.state.republish_all()  # pool labels decide which advertisements announce it
            self.state.dirty_advertisements.update(self.state.advertisement_bodies)  # a named pool may exist
            await self.services.reevaluate_waiting()
            self.services.report_outside(body["metadata"]["name"])

    async def on_namespace(self, body: Body, deleted: bool) -> None:
        await self.pools.on_namespace(body, deleted)

    async def on_node(self, body: Body, deleted: bool) -> None:
        self.advertisements.on_node(body, deleted)

    async def on_speaker_pod(self, body: Body, deleted: bool) -> None:
        self.speaker_pods.on_pod(body, deleted)

    async def on_peer(self, body: Body, deleted: bool) -> None:
        self.advertisements.set_peer(body, deleted)
        self.bfd.report_missing()

    async def on_bfd_profile(self, body: Body, deleted: bool) -> None:
        self.bfd.set_profile(body, deleted)

    async def on_community(self, body: Body, deleted: bool) -> None:
        self.communities.set_community(body, deleted)

    async def on_secret(self, body: Body, deleted: bool) -> None:
        self.advertisements.on_secret(body, deleted)

    async def on_advertisement(self, body: Body, deleted: bool) -> None:
        if self.advertisements.on_advertisement(body, deleted):
            self.state.republish_all()
            await self.services.reevaluate_waiting()

    async def on_config(self, body: Body, deleted: bool) -> None:
        """IronLBConfig changed: the namespaces whose legacy ConfigMap is honoured may have."""
        if self.legacy.opt_in(() if deleted else opted_in(body)):
            await self.poll_legacy(always=True)

    async def poll_legacy(self, always: bool = False) -> None:
        """A legacy ConfigMap appeared, changed or vanished: re-apply it and re-evaluate what it can help."""
        changed_sources = await self.legacy.poll()
        if not changed_sources and not always:
            return
        changed_pools = self.legacy.apply()
        for namespace, body in changed_sources:
            log.info("legacy ConfigMap %s/config %s", namespace, "read" if body else "gone")
        state = self.state
        state.dirty_pools.update(state.pools)
        state.dirty_advertisements.update(state.advertisement_bodies)
        state.refresh_global()
        self.bfd.report_missing()  # its bfd-profiles may be what a BGPPeer names
        state.republish_all()
        await self.services.reevaluate_waiting()
        for name in sorted(changed_pools):
            self.services.report_outside(name)

    # --------------------------------------------------------------------------------- periodic writes
    async def flush_statuses(self) -> None:
        """Pool and advertisement statuses that changed, then the speaker configuration (periodic)."""
        await self.pools.flush_statuses()
        await self.advertisements.flush_statuses()
        await self.advertisements.flush_passwords()  # before the configuration naming it
        await self.state.publisher.flush()
