"""Services: allocate, keep or release each Service's IPs, write them to its status, say why when not.

Work is serialised per Service (one lock each). The status is written first (it is the source of truth on
restart), then the ``ironlb.io/ip-allocated-from-pool`` annotation.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from ironlb.api.kube import ApiError, NotLeaderError, service_path

from ..allocator import Allocation, AllocationRequest, Failure, format_address
from ..metrics import ALLOCATION_FAILURES, ALLOCATIONS
from ..services import ALLOCATED_FROM_ANNOTATION, InvalidRequest, ServiceRequest, status_patch
from .state import OperatorState

log = logging.getLogger("ironlb.operator")


class ServiceHandler:
    def __init__(self, state: OperatorState) -> None:
        self.state = state
        self._locks: dict[str, asyncio.Lock] = {}

    async def on_service(self, service: ServiceRequest, deleted: bool) -> None:
        key = service.key
        lock = self._locks.get(key) or self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            await self._reconcile(service, deleted)
            self.state.publish(key)
        if deleted and not lock.locked():  # forget a deleted Service entirely: its lock and its events
            self._locks.pop(key, None)
            self.state.events.forget(service.ref)

    async def reevaluate_waiting(self) -> None:
        """After a configuration change: re-run only the Services it can help."""
        await asyncio.gather(*(self.on_service(s, deleted=False) for s in self.state.waiting()))

    def adopt(self, service: ServiceRequest, recorded_pool: str | None) -> Allocation | Failure | None:
        """On start-up: take back the IPs the Service shows (None when it shows none), where they agree
        with the pools or with IronLB's own record (``recorded_pool``)."""
        self.state.services[service.key] = service
        if not service.shown:
            return None
        request = self._request(service)
        if isinstance(request, InvalidRequest):
            request = AllocationRequest(service.key)
        return self.state.allocator.restore(request, service.shown, recorded_pool)

    def _request(self, service: ServiceRequest) -> AllocationRequest | InvalidRequest:
        """What the Service asks of the allocator, with its namespace's current labels (they change on
        their own, so they are added at each decision)."""
        if isinstance(service.parsed, InvalidRequest):
            return service.parsed
        labels = self.state.namespace_labels.get(service.namespace, {})
        return replace(service.parsed.request, namespace_labels=dict(labels))

    def _foreign(self, service: ServiceRequest, allocation: Allocation | None) -> None:
        """IPs the Service shows that IronLB did not give it (a forged or stale status) are taken off by
        the write that follows; say so once."""
        ours = set(allocation.addresses if allocation else ()) | self.state.allocator.lingering(service.key)
        foreign = [a for a in service.shown if a not in ours]
        if foreign:
            self.state.events.once(
                service.ref,
                "foreign",
                "Warning",
                "ForeignIP",
                f"status.loadBalancer.ingress shows {', '.join(map(format_address, foreign))}, which IronLB "
                "did not allocate to this Service: removed, never announced",
            )

    async def _reconcile(self, service: ServiceRequest, deleted: bool) -> None:
        state, events, key = self.state, self.state.events, service.key
        # what the Service no longer shows is no longer its: a moved-away IP is free once the move landed
        state.allocator.settle(key, () if deleted else service.shown)
        if deleted or not service.handled:
            state.services.pop(key, None)
            state.not_announced.discard(key)
            state.set_pending(key, None)
            released = state.allocator.release(key, linger=not deleted)
            if released is not None:
                state.dirty_pools.add(released.pool)
                if not deleted:  # no longer a LoadBalancer of ours: take our IP off it
                    await self._write(service, (), None)
                    events.event(service.ref, "Normal", "IPReleased", f"released {released.describe()}")
            return
        state.services[key] = service
        parsed, request = service.parsed, self._request(service)
        if isinstance(parsed, InvalidRequest) or isinstance(request, InvalidRequest):
            message = parsed.message if isinstance(parsed, InvalidRequest) else ""
            events.once(service.ref, "request", "Warning", "InvalidRequest", message)
            state.set_pending(key, None if state.allocator.allocation_of(key) else "InvalidRequest")
            return
        for legacy, preferred in parsed.legacy_annotations:
            events.once(
                service.ref,
                f"legacy:{legacy}",
                "Warning",
                "LegacyAnnotation",
                f"annotation {legacy} is MetalLB's; IronLB honours it, but use {preferred} instead",
            )
        before = state.allocator.allocation_of(key)
        result = state.allocator.assign(request)
        self._foreign(service, result if isinstance(result, Allocation) else None)
        if isinstance(result, Failure):
            await self._failed(service, result)
            return
        state.dirty_pools.add(result.pool)
        if before is not None:
            state.dirty_pools.add(before.pool)
        await self._write(service, result.addresses, result.pool)
        state.set_pending(key, None)
        if before is None or before.addresses != result.addresses:
            ALLOCATIONS.inc()
            events.once(
                service.ref,
                "allocation",
                "Normal",
                "IPAllocated",
                f"assigned {result.describe()} from IPAddressPool {result.pool}",
            )
        if not result.complete:
            missing = [f"IPv{f}" for f in request.families if f not in result.families]
            events.once(
                service.ref,
                "partial",
                "Normal",
                "DualStackIncomplete",
                f"PreferDualStack: no {'/'.join(missing)} address available in IPAddressPool {result.pool} "
                "yet; it is added when one is",
            )
        if not state.announced(result.pool):
            state.not_announced.add(key)
            events.once(
                service.ref,
                "announce",
                "Warning",
                "NotAnnounced",
                f"IPAddressPool {result.pool} is selected by no L2Advertisement or BGPAdvertisement in "
                f"namespace {state.namespace}: {result.describe()} is allocated but not reachable",
            )
        elif key in state.not_announced:
            state.not_announced.discard(key)
            events.forget_topic(service.ref, "announce")

    async def _failed(self, service: ServiceRequest, failure: Failure) -> None:
        ALLOCATION_FAILURES.labels(reason=failure.reason.value).inc()
        keeps = self.state.allocator.allocation_of(service.key) is not None  # an IP from before, kept
        self.state.set_pending(service.key, None if keeps else failure.reason.value)
        self.state.events.once(service.ref, "allocation", "Warning", failure.reason.value, failure.message)
        if service.shown and self.state.allocator.allocation_of(service.key) is None:
            await self._write(service, (), None)  # an IP it may not keep is not shown either

    async def _write(self, service: ServiceRequest, addresses: tuple[Any, ...], pool: str | None) -> None:
        """Both writes are conditional on the Service's resourceVersion as this decision saw it: a write
        that reaches the API server late (held in a partition that healed after another replica took
        over, or the Service changed meanwhile) fails with 409 instead of overwriting newer decisions, and
        is retried from the latest copy."""
        kube, namespace, name = self.state.kube, service.ref.namespace, service.ref.name
        version = service.ref.resource_version
        try:
            if set(service.shown) != set(addresses):
                patch: dict[str, Any] = (
                    status_patch(addresses) if addresses else {"status": {"loadBalancer": {"ingress": None}}}
                )
                patch["metadata"] = {"resourceVersion": version}
                written = await asyncio.to_thread(
                    kube.merge_patch, service_path(namespace, name, "status"), patch
                )
                version = written["metadata"]["resourceVersion"]
            if service.allocated_from != pool:
                annotations = {
                    "metadata": {"annotations": {ALLOCATED_FROM_ANNOTATION: pool}, "resourceVersion": version}
                }
                await asyncio.to_thread(kube.merge_patch, service_path(namespace, name), annotations)
        except NotLeaderError:
            raise
        except ApiError as error:
            if error.status == 404:  # a deleted Service needs nothing
                return
            if error.status == 409:  # changed meanwhile: retried from the latest copy, nothing to say
                raise
            # said on the Service (a Service without its IP always says why), then retried until it works
            if addresses and not service.shown:
                self.state.set_pending(service.key, "StatusNotWritten")
            self.state.events.once(
                service.ref,
                "write",
                "Warning",
                "StatusNotWritten",
                f"could not write the status ({', '.join(map(format_address, addresses)) or 'no IP'}): "
                f"{error}; retrying",
            )
            raise
        self.state.events.forget_topic(service.ref, "write")

    def report_outside(self, pool: str) -> None:
        """Services keep IPs a pool no longer holds (never moved); each one is told once."""
        state = self.state
        for key in state.allocator.services_outside_pool(pool):
            allocation, service = state.allocator.allocation_of(key), state.services.get(key)
            if service is not None and allocation is not None:
                state.events.once(
                    service.ref,
                    "outside",
                    "Warning",
                    "IPOutsidePool",
                    f"{allocation.describe()} is no longer in IPAddressPool {pool}; the Service keeps it "
                    "(re-create the Service to move it)",
                )
