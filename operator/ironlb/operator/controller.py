"""The operator's state and reconcile logic: Services, pools, namespaces and advertisements in, writes out.

Decisions are delegated to the pure allocator and the pure translations in ``services``/``poolstatus``;
this class keeps the caches they need, serialises work per Service, and performs the writes (Service
status and annotation, pool status, events). It never adds finalizers or bookkeeping annotations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .allocator import Allocation, Allocator, Failure, PoolConfig, SharingClaim
from .api import GROUP, VERSION, BGPAdvertisementSpec, BGPPeerSpec, IPAddressPoolSpec, L2AdvertisementSpec
from .conditions import now
from .kube import ApiError, KubeClient, custom_path, service_path
from .legacy import (
    CONFIGMAP_NAME,
    EVENT_REASON,
    METALLB_NAMESPACE,
    LegacyObjects,
    carried_over,
    legacy_objects,
)
from .metrics import ALLOCATION_FAILURES, ALLOCATIONS, POOL_ADDRESSES, POOL_IN_USE, SERVICES_WITH_IP
from .poolstatus import advertisement_status, pool_status
from .publisher import Publisher
from .services import (
    ALLOCATED_FROM_ANNOTATION,
    InvalidRequest,
    ServiceFilter,
    allocated_from,
    parse_request,
    service_key,
    shown_addresses,
    status_patch,
)
from .speakerconfig import announcement, global_config, selects_pool

log = logging.getLogger("ironlb.operator")
Body = Mapping[str, Any]
# (object, type, reason, message): queued by events.EventPoster, never blocking a reconcile
EventSink = Callable[[Body, str, str, str], None]


@dataclass
class Controller:
    kube: KubeClient
    namespace: str
    post_event: EventSink
    service_filter: ServiceFilter = field(default_factory=ServiceFilter)
    allocator: Allocator = field(default_factory=Allocator)

    def __post_init__(self) -> None:
        self.services: dict[str, Body] = {}  # every LoadBalancer Service we handle, as last seen
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.pools: dict[str, Body] = {}
        self.advertisements: dict[tuple[str, str], L2AdvertisementSpec | BGPAdvertisementSpec] = {}
        self._last_event: dict[str, dict[str, tuple[str, str]]] = {}  # object -> topic -> (reason, message)
        self._locks: dict[str, asyncio.Lock] = {}
        self._dirty_pools: set[str] = set()
        self._dirty_advertisements: set[tuple[str, str]] = set()
        self.advertisement_bodies: dict[tuple[str, str], Body] = {}
        self._written_pool_status: dict[str, dict[str, Any]] = {}
        self._not_announced: set[str] = set()  # Services holding an IP no advertisement announces
        self.background: asyncio.Task[None] | None = None  # the pool-status writer, kept referenced
        self.speaker_keeper: asyncio.Task[None] | None = None
        self.publisher = Publisher(self.kube, self.namespace)
        self.peers: dict[str, BGPPeerSpec] = {}
        self.node_labels: dict[str, dict[str, str]] = {}
        self.node_addresses: dict[str, str] = {}
        # MetalLB's legacy ConfigMap `config`: namespace -> body, and the reading applied from it
        self.legacy = LegacyObjects()  # the one in force: the operator's namespace wins over metallb-system
        self._legacy_sources: dict[str, Body] = {}
        self._legacy_readings: dict[str, LegacyObjects] = {}
        self.legacy_poller: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------- start-up
    def rebuild(self) -> int:
        """Adopt every IP Services already show, oldest Service first, before anything new is allocated."""
        for namespace in self.kube.list_all("/api/v1/namespaces"):
            self.namespace_labels[namespace["metadata"]["name"]] = dict(
                namespace["metadata"].get("labels") or {}
            )
        for pool in self.kube.list_all(custom_path(GROUP, VERSION, self.namespace, "ipaddresspools")):
            self._upsert_pool(pool)
        for kind in ("l2advertisements", "bgpadvertisements"):
            for advertisement in self.kube.list_all(custom_path(GROUP, VERSION, self.namespace, kind)):
                self._set_advertisement(advertisement, deleted=False)
        for node in self.kube.list_all("/api/v1/nodes"):
            self._remember_node(node)
        for peer in self.kube.list_all(custom_path(GROUP, VERSION, self.namespace, "bgppeers")):
            self.peers[peer["metadata"]["name"]] = BGPPeerSpec.model_validate(peer.get("spec") or {})
        for where, source in self.read_legacy_sources().items():  # legacy pools exist before adoption
            self._take_legacy_source(where, source)
        self._apply_legacy()
        self._refresh_global()
        services = [s for s in self.kube.list_all("/api/v1/services") if self.service_filter.handles(s)]
        services.sort(key=lambda s: (s["metadata"].get("creationTimestamp", ""), service_key(s)))
        adopted = 0
        for service in services:
            key = service_key(service)
            self.services[key] = service
            addresses = shown_addresses(service)
            if not addresses:
                continue
            parsed = parse_request(service, self.namespace_labels.get(service["metadata"]["namespace"], {}))
            claim = parsed.request.sharing if not isinstance(parsed, InvalidRequest) else SharingClaim()
            result = self.allocator.restore(key, addresses, allocated_from(service), claim)
            if isinstance(result, Allocation):
                adopted += 1
            else:
                log.warning("not adopting %s for %s: %s", addresses, key, result.message)
        self._dirty_pools.update(self.pools)
        self._republish_all()
        log.info(
            "rebuilt state: %d pools, %d Services, %d adopted IPs", len(self.pools), len(services), adopted
        )
        return adopted

    # --------------------------------------------------------------------------------------- Services
    async def on_service(self, body: Body, deleted: bool) -> None:
        key = service_key(body)
        lock = self._lock(key)
        async with lock:
            await self._reconcile_service(body, deleted)
            self._publish(key)
        if deleted and not lock.locked():  # forget a deleted Service entirely: its lock and its events
            self._locks.pop(key, None)
            self._last_event.pop(_object_key(body), None)

    async def _reconcile_service(self, body: Body, deleted: bool) -> None:
        key = service_key(body)
        if deleted or not self.service_filter.handles(body):
            self.services.pop(key, None)
            self._not_announced.discard(key)
            released = self.allocator.release(key)
            if released is not None:
                self._dirty_pools.add(released.pool)
                if not deleted:  # no longer a LoadBalancer of ours: take our IP off it
                    await self._write_service(body, (), None)
                    self._event(body, "Normal", "IPReleased", f"released {released.describe()}")
            return
        self.services[key] = body
        parsed = parse_request(body, self.namespace_labels.get(key.split("/", 1)[0], {}))
        if isinstance(parsed, InvalidRequest):
            self._event_once(body, "request", "Warning", "InvalidRequest", parsed.message)
            return
        for legacy, preferred in parsed.legacy_annotations:
            self._event_once(
                body,
                f"legacy:{legacy}",
                "Warning",
                "LegacyAnnotation",
                f"annotation {legacy} is MetalLB's; IronLB honours it, but use {preferred} instead",
            )
        before = self.allocator.allocation_of(key)
        result = self.allocator.assign(parsed.request)
        if isinstance(result, Failure):
            await self._failed(body, result)
            return
        self._dirty_pools.add(result.pool)
        if before is not None:
            self._dirty_pools.add(before.pool)
        await self._write_service(body, result.addresses, result.pool)
        if before is None or before.addresses != result.addresses:
            ALLOCATIONS.inc()
            self._event_once(
                body,
                "allocation",
                "Normal",
                "IPAllocated",
                f"assigned {result.describe()} from IPAddressPool {result.pool}",
            )
        if not result.complete:
            missing = [f"IPv{f}" for f in parsed.request.families if f not in result.families]
            self._event_once(
                body,
                "partial",
                "Normal",
                "DualStackIncomplete",
                f"PreferDualStack: no {'/'.join(missing)} address available in IPAddressPool {result.pool} "
                "yet; it is added when one is",
            )
        if not self.announced(result.pool):
            self._not_announced.add(key)
            self._event_once(
                body,
                "announce",
                "Warning",
                "NotAnnounced",
                f"IPAddressPool {result.pool} is selected by no L2Advertisement or BGPAdvertisement in "
                f"namespace {self.namespace}: {result.describe()} is allocated but not reachable",
            )
        elif key in self._not_announced:
            self._not_announced.discard(key)
            self._last_event.get(_object_key(body), {}).pop("announce", None)

    async def _failed(self, body: Body, failure: Failure) -> None:
        key = service_key(body)
        ALLOCATION_FAILURES.labels(reason=failure.reason.value).inc()
        self._event_once(body, "allocation", "Warning", failure.reason.value, failure.message)
        shown = shown_addresses(body)
        if shown and self.allocator.allocation_of(key) is None:
            await self._write_service(body, (), None)  # never leave an IP on it that another Service holds

    async def _write_service(self, body: Body, addresses: tuple[Any, ...], pool: str | None) -> None:
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        try:
            if set(shown_addresses(body)) != set(addresses):
                patch = (
                    status_patch(addresses) if addresses else {"status": {"loadBalancer": {"ingress": None}}}
                )
                await asyncio.to_thread(self.kube.merge_patch, service_path(namespace, name, "status"), patch)
            if allocated_from(body) != pool:
                annotations = {"metadata": {"annotations": {ALLOCATED_FROM_ANNOTATION: pool}}}
                await asyncio.to_thread(self.kube.merge_patch, service_path(namespace, name), annotations)
        except ApiError as error:
            if error.status != 404:  # a deleted Service needs nothing; anything else is retried by kopf
                raise

    # ------------------------------------------------------------------------------------------ pools
    def _upsert_pool(self, body: Body) -> None:
        name = body["metadata"]["name"]
        spec = IPAddressPoolSpec.model_validate(body.get("spec") or {})
        config = PoolConfig.from_spec(
            name, spec, body["metadata"].get("labels"), body["metadata"].get("creationTimestamp", "")
        )
        self.pools[name] = body
        self.allocator.upsert_pool(config)

    async def on_pool(self, body: Body, deleted: bool) -> None:
        if body["metadata"].get("namespace") != self.namespace:
            return
        name = body["metadata"]["name"]
        previous = self.pools.get(name)
        if deleted:
            self.pools.pop(name, None)
            self.allocator.remove_pool(name)
            if name in self.legacy.pools:  # the legacy ConfigMap's pool of that name is in force again
                self.allocator.upsert_pool(self.legacy.pool_config(name))
            self._written_pool_status.pop(name, None)
            for gauge, family in ((g, f) for g in (POOL_ADDRESSES, POOL_IN_USE) for f in ("IPv4", "IPv6")):
                with contextlib.suppress(KeyError):
                    gauge.remove(name, family)
        elif (
            previous is not None
            and previous.get("spec") == body.get("spec")
            and (previous["metadata"].get("labels") == body["metadata"].get("labels"))
        ):
            self.pools[name] = body  # only status or metadata changed: nothing to re-evaluate
            return
        else:
            self._upsert_pool(body)
        self._dirty_pools.update(self.pools)  # overlaps may have changed for any pool
        self._republish_all()  # pool labels decide which advertisements announce it
        self._dirty_advertisements.update(self.advertisement_bodies)  # a named pool may exist now, or not
        await self._after_config_change()
        self._report_outside(name)

    def _report_outside(self, name: str) -> None:
        """Services keep IPs a pool no longer holds (never moved); each one is told once."""
        for service in self.allocator.services_outside_pool(name):
            allocation = self.allocator.allocation_of(service)
            if service in self.services and allocation is not None:
                self._event_once(
                    self.services[service],
                    "outside",
                    "Warning",
                    "IPOutsidePool",
                    f"{allocation.describe()} is no longer in IPAddressPool {name}; the Service keeps it "
                    "(re-create the Service to move it)",
                )

    async def on_namespace(self, body: Body, deleted: bool) -> None:
        name = body["metadata"]["name"]
        labels = dict(body["metadata"].get("labels") or {})
        if deleted:
            self.namespace_labels.pop(name, None)
        elif self.namespace_labels.get(name) != labels:
            self.namespace_labels[name] = labels
            await self._after_config_change()

    def _remember_node(self, body: Body) -> bool:
        """Cache a node's labels and InternalIP; True when either changed."""
        name = body["metadata"]["name"]
        labels = dict(body["metadata"].get("labels") or {})
        addresses = (body.get("status") or {}).get("addresses") or []
        address = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), None)
        changed = self.node_labels.get(name) != labels or self.node_addresses.get(name) != address
        self.node_labels[name] = labels
        if address is None:
            self.node_addresses.pop(name, None)
        else:
            self.node_addresses[name] = address
        return changed

    async def on_node(self, body: Body, deleted: bool) -> None:
        name = body["metadata"]["name"]
        if deleted:
            self.node_labels.pop(name, None)
            self.node_addresses.pop(name, None)
        elif not self._remember_node(body):
            return
        self._refresh_global()

    async def on_peer(self, body: Body, deleted: bool) -> None:
        if body["metadata"].get("namespace") != self.namespace:
            return
        name = body["metadata"]["name"]
        if deleted:
            self.peers.pop(name, None)
        else:
            self.peers[name] = BGPPeerSpec.model_validate(body.get("spec") or {})
        self._refresh_global()

    # ------------------------------------------------------------------------- the legacy ConfigMap
    def read_legacy_sources(self) -> dict[str, Body | None]:
        """GET `config` in our namespace and metallb-system (blocking); absent or forbidden is None."""
        sources: dict[str, Body | None] = {}
        for namespace in dict.fromkeys((self.namespace, METALLB_NAMESPACE)):
            try:
                sources[namespace] = self.kube.get(
                    f"/api/v1/namespaces/{namespace}/configmaps/{CONFIGMAP_NAME}"
                )
            except ApiError as error:
                if error.status not in (403, 404):
                    raise
                sources[namespace] = None
        return sources

    def _take_legacy_source(self, namespace: str, body: Body | None) -> bool:
        """Remember one ConfigMap's reading; True when it changed (only ``data`` and identity count)."""
        previous = self._legacy_sources.get(namespace)
        if _legacy_identity(previous) == _legacy_identity(body):
            if body is not None:
                self._legacy_sources[namespace] = body
            return False
        if previous is not None:  # a new content or a new object gets its own Warning event
            self._last_event.pop(_object_key(previous), None)
        if body is None:
            self._legacy_sources.pop(namespace, None)
            self._legacy_readings.pop(namespace, None)
        else:
            self._legacy_sources[namespace] = body
            last = self._legacy_readings.get(namespace, LegacyObjects())
            self._legacy_readings[namespace] = carried_over(last, legacy_objects(body))
        return True

    def _apply_legacy(self) -> set[str]:
        """Put the reading in force into the allocator (CRD pools of the same name win); say so on it.

        Returns the legacy pools whose addresses changed or vanished, whose Services may now be outside.
        """
        chosen = next((ns for ns in (self.namespace, METALLB_NAMESPACE) if ns in self._legacy_readings), None)
        old, self.legacy = self.legacy, self._legacy_readings[chosen] if chosen else LegacyObjects()
        changed = {name for name in old.pools if old.pools[name] != self.legacy.pools.get(name)}
        for name in self.legacy.pools:
            if name not in self.pools and (
                old.pools.get(name) != self.legacy.pools[name] or self.allocator.pool_config(name) is None
            ):
                self.allocator.upsert_pool(self.legacy.pool_config(name))
        for name in old.pools:
            if name not in self.legacy.pools and name not in self.pools:
                self.allocator.remove_pool(name)
        for namespace, body in self._legacy_sources.items():
            if namespace == chosen:
                self._event_once(body, "legacy", "Warning", EVENT_REASON, self.legacy.warning())
            else:
                message = f"not used: {chosen}/{CONFIGMAP_NAME} is in force (the operator's namespace wins)"
                self._event_once(body, "legacy", "Warning", EVENT_REASON, message)
        return {name for name in changed if name not in self.pools}

    async def set_legacy_source(self, namespace: str, body: Body | None) -> None:
        """A legacy ConfigMap appeared, changed or vanished: re-apply it and re-evaluate what it can help."""
        if not self._take_legacy_source(namespace, body):
            return
        changed = self._apply_legacy()
        log.info("legacy ConfigMap %s/%s %s", namespace, CONFIGMAP_NAME, "read" if body else "gone")
        self._dirty_pools.update(self.pools)
        self._dirty_advertisements.update(self.advertisement_bodies)
        self._refresh_global()
        self._republish_all()
        await self._after_config_change()
        for name in sorted(changed):
            self._report_outside(name)

    async def poll_legacy(self) -> None:
        """One poll of both ConfigMaps (two GETs): cheaper than watching every ConfigMap in the cluster."""
        for namespace, body in (await asyncio.to_thread(self.read_legacy_sources)).items():
            await self.set_legacy_source(namespace, body)

    # ---------------------------------------------------------------------------- speaker configuration
    def all_advertisements(self) -> dict[tuple[str, str], L2AdvertisementSpec | BGPAdvertisementSpec]:
        """The legacy ConfigMap's advertisements and the CRDs'; a CRD object of the same name wins."""
        return {**self.legacy.advertisements, **self.advertisements}

    def all_peers(self) -> dict[str, BGPPeerSpec]:
        return {**self.legacy.peers, **self.peers}

    def _l2_specs(self) -> dict[str, L2AdvertisementSpec]:
        return {
            name: s
            for (_, name), s in self.all_advertisements().items()
            if isinstance(s, L2AdvertisementSpec)
        }

    def _bgp_specs(self) -> dict[str, BGPAdvertisementSpec]:
        return {
            name: s
            for (_, name), s in self.all_advertisements().items()
            if isinstance(s, BGPAdvertisementSpec)
        }

    def _refresh_global(self) -> None:
        self.publisher.set_global(
            global_config(
                self._l2_specs(),
                self._bgp_specs(),
                self.all_peers(),
                self.node_labels,
                self.namespace,
                self.node_addresses,
            )
        )

    def _publish(self, key: str) -> None:
        """Keep the Service's announcement in the published shards in step with its allocation."""
        allocation, body = self.allocator.allocation_of(key), self.services.get(key)
        if allocation is None or body is None:
            self.publisher.set_announcement(key, None)
            return
        config = self.allocator.pool_config(allocation.pool)
        local = (body.get("spec") or {}).get("externalTrafficPolicy") == "Local"
        self.publisher.set_announcement(
            key,
            announcement(
                key,
                allocation,
                local,
                config.labels if config else {},
                self._l2_specs(),
                self._bgp_specs(),
            ),
        )

    def _republish_all(self) -> None:
        for key in set(self.allocator.services()) | set(self.publisher.announcements()):
            self._publish(key)

    async def on_advertisement(self, body: Body, deleted: bool) -> None:
        if body["metadata"].get("namespace") != self.namespace:
            return
        previous = self.advertisement_bodies.get((body["kind"], body["metadata"]["name"]))
        if not deleted and previous is not None and previous.get("spec") == body.get("spec"):
            self.advertisement_bodies[(body["kind"], body["metadata"]["name"])] = body  # our status write
            return
        self._set_advertisement(body, deleted)
        self._refresh_global()
        self._republish_all()
        await self._after_config_change()

    def _set_advertisement(self, body: Body, deleted: bool) -> None:
        key = (body["kind"], body["metadata"]["name"])
        if deleted:
            self.advertisements.pop(key, None)
            self.advertisement_bodies.pop(key, None)
            return
        self.advertisement_bodies[key] = body
        self._dirty_advertisements.add(key)
        model = L2AdvertisementSpec if body["kind"] == "L2Advertisement" else BGPAdvertisementSpec
        self.advertisements[key] = model.model_validate(body.get("spec") or {})

    def announced(self, pool: str) -> bool:
        """Whether any advertisement selects the pool (by name, by label, or by selecting every pool)."""
        config = self.allocator.pool_config(pool)
        labels = config.labels if config else {}
        return any(selects_pool(spec, pool, labels) for spec in self.all_advertisements().values())

    async def _after_config_change(self) -> None:
        """Re-evaluate only the Services the change can help: those without an IP or missing a family."""
        waiting = [
            body
            for key, body in list(self.services.items())
            if (allocation := self.allocator.allocation_of(key)) is None
            or not allocation.complete
            or key in self._not_announced
        ]
        await asyncio.gather(*(self.on_service(body, deleted=False) for body in waiting))

    # ------------------------------------------------------------------------------------ pool status
    async def flush_pool_statuses(self) -> None:
        """Write the status of pools whose counts or conditions changed (called periodically)."""
        dirty, self._dirty_pools = self._dirty_pools, set()
        for name in sorted(dirty):
            body = self.pools.get(name)
            if body is None:
                continue
            previous = (body.get("status") or {}).get("conditions") or []
            status = pool_status(self.allocator, name, previous, body["metadata"].get("generation"), now())
            usage = self.allocator.usage(name)
            for family in (4, 6):
                POOL_ADDRESSES.labels(pool=name, family=f"IPv{family}").set(min(usage.total[family], 2**63))
                POOL_IN_USE.labels(pool=name, family=f"IPv{family}").set(usage.assigned[family])
            comparable = {k: v for k, v in status.items() if k != "conditions"}
            comparable["conditions"] = [{**c, "lastTransitionTime": None} for c in status["conditions"]]
            if self._written_pool_status.get(name) == comparable:
                continue
            self._pool_events(body, status)
            try:
                await asyncio.to_thread(
                    self.kube.merge_patch,
                    custom_path(GROUP, VERSION, self.namespace, "ipaddresspools", name, "status"),
                    {"status": status},
                )
                self._written_pool_status[name] = comparable
            except ApiError as error:
                log.warning("pool %s status: %s", name, error)
                self._dirty_pools.add(name)
        SERVICES_WITH_IP.set(len(self.allocator.services()))
        await self._flush_advertisement_statuses()
        await self.publisher.flush()

    async def _flush_advertisement_statuses(self) -> None:
        dirty, self._dirty_advertisements = self._dirty_advertisements, set()
        for key in sorted(dirty):
            body, spec = self.advertisement_bodies.get(key), self.advertisements.get(key)
            if body is None or spec is None:
                continue
            missing = [
                name
                for name in spec.ip_address_pools or []
                if name not in self.pools and name not in self.legacy.pools
            ]
            previous = (body.get("status") or {}).get("conditions") or []
            status = advertisement_status(missing, previous, body["metadata"].get("generation"), now())
            if previous and [(c["status"], c["message"]) for c in previous] == [
                (c["status"], c["message"]) for c in status["conditions"]
            ]:
                continue
            if missing:
                self._event_once(body, "pools", "Warning", "PoolsMissing", status["conditions"][0]["message"])
            plural = "l2advertisements" if key[0] == "L2Advertisement" else "bgpadvertisements"
            try:
                await asyncio.to_thread(
                    self.kube.merge_patch,
                    custom_path(GROUP, VERSION, self.namespace, plural, key[1], "status"),
                    {"status": status},
                )
            except ApiError as error:
                if error.status != 404:
                    log.warning("%s %s status: %s", key[0], key[1], error)
                    self._dirty_advertisements.add(key)

    def _pool_events(self, body: Body, status: Mapping[str, Any]) -> None:
        for condition in status["conditions"]:
            if (
                condition["type"] in ("Overlapping", "Exhausted", "ServicesOutsidePool")
                and condition["status"] == "True"
            ):
                self._event_once(
                    body, condition["type"], "Warning", condition["reason"], condition["message"]
                )
            elif condition["status"] == "False":
                self._last_event.get(_object_key(body), {}).pop(condition["type"], None)

    # ---------------------------------------------------------------------------------------- helpers
    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _event(self, body: Body, kind: str, reason: str, message: str) -> None:
        try:
            self.post_event(body, kind, reason, message)
        except Exception as error:  # an event must never break reconciliation
            log.warning("event %s on %s: %s", reason, _object_key(body), error)

    def _event_once(self, body: Body, topic: str, kind: str, reason: str, message: str) -> None:
        """Post an event unless the same one was the last posted on this topic (no storms on resync)."""
        posted = self._last_event.setdefault(_object_key(body), {})
        if posted.get(topic) == (reason, message):
            return
        posted[topic] = (reason, message)
        self._event(body, kind, reason, message)


def _legacy_identity(body: Body | None) -> tuple[str, str, Any] | None:
    """What makes a legacy ConfigMap a different one to read: its object and its data, not its labels."""
    if body is None:
        return None
    metadata = body.get("metadata") or {}
    return (str(metadata.get("uid", "")), str(metadata.get("namespace", "")), body.get("data"))


def _object_key(body: Body) -> str:
    metadata = body["metadata"]
    return f"{body.get('kind', '')}:{metadata.get('namespace', '')}/{metadata['name']}"
