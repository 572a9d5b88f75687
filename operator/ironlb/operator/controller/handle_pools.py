"""IPAddressPools and namespace labels in; pool status (counts, conditions), metrics and pool events out.

Pool statuses are written by a periodic flush of the pools whose counts or conditions changed, so a burst of
Services rewrites each pool's status once per period rather than once per Service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from ironlb.api import GROUP, VERSION, IPAddressPoolSpec
from ironlb.api.events import ObjectRef
from ironlb.api.kube import ApiError, custom_path

from ..allocator import PoolConfig
from ..conditions import now
from ..metrics import POOL_ADDRESSES, POOL_IN_USE, SERVICES_WITH_IP
from ..poolstatus import pool_status
from .handle_services import ServiceHandler
from .state import Body, OperatorState

log = logging.getLogger("ironlb.operator")


class PoolHandler:
    def __init__(self, state: OperatorState, services: ServiceHandler) -> None:
        self.state = state
        self.services = services
        self._written: dict[str, dict[str, Any]] = {}  # pool -> last status written (comparable form)

    def upsert(self, body: Body) -> None:
        name = body["metadata"]["name"]
        spec = IPAddressPoolSpec.model_validate(body.get("spec") or {})
        config = PoolConfig.from_spec(
            name, spec, body["metadata"].get("labels"), body["metadata"].get("creationTimestamp", "")
        )
        self.state.pools[name] = body
        self.state.allocator.upsert_pool(config)

    async def on_pool(self, body: Body, deleted: bool) -> bool:
        """True when the pool's spec or labels changed (the caller re-evaluates what depends on pools)."""
        state = self.state
        if body["metadata"].get("namespace") != state.namespace:
            return False
        name = body["metadata"]["name"]
        previous = state.pools.get(name)
        if deleted:
            state.pools.pop(name, None)
            state.allocator.remove_pool(name)
            if name in state.legacy.pools:  # the legacy ConfigMap's pool of that name is in force again
                state.allocator.upsert_pool(state.legacy.pool_config(name))
            self._written.pop(name, None)
            for gauge, family in ((g, f) for g in (POOL_ADDRESSES, POOL_IN_USE) for f in ("IPv4", "IPv6")):
                with contextlib.suppress(KeyError):
                    gauge.remove(name, family)
        elif (
            previous is not None
            and previous.get("spec") == body.get("spec")
            and (previous["metadata"].get("labels") == body["metadata"].get("labels"))
        ):
            state.pools[name] = body  # only status or metadata changed: nothing to re-evaluate
            return False
        else:
            self.upsert(body)
        state.dirty_pools.update(state.pools)  # overlaps may have changed for any pool
        return True

    async def on_namespace(self, body: Body, deleted: bool) -> None:
        name = body["metadata"]["name"]
        labels = dict(body["metadata"].get("labels") or {})
        if deleted:
            self.state.namespace_labels.pop(name, None)
        elif self.state.namespace_labels.get(name) != labels:
            self.state.namespace_labels[name] = labels
            await self.services.reevaluate_waiting()

    async def flush_statuses(self) -> None:
        """Write the status of pools whose counts or conditions changed (called periodically)."""
        state = self.state
        dirty, state.dirty_pools = state.dirty_pools, set()
        for name in sorted(dirty):
            body = state.pools.get(name)
            if body is None:
                continue
            previous = (body.get("status") or {}).get("conditions") or []
            status = pool_status(state.allocator, name, previous, body["metadata"].get("generation"), now())
            usage = state.allocator.usage(name)
            for family in (4, 6):
                POOL_ADDRESSES.labels(pool=name, family=f"IPv{family}").set(min(usage.total[family], 2**63))
                POOL_IN_USE.labels(pool=name, family=f"IPv{family}").set(usage.assigned[family])
            comparable = {k: v for k, v in status.items() if k != "conditions"}
            comparable["conditions"] = [{**c, "lastTransitionTime": None} for c in status["conditions"]]
            if self._written.get(name) == comparable:
                continue
            self._events(body, status)
            try:
                await asyncio.to_thread(
                    state.kube.merge_patch,
                    custom_path(GROUP, VERSION, state.namespace, "ipaddresspools", name, "status"),
                    {"status": status},
                )
                self._written[name] = comparable
            except ApiError as error:
                log.warning("pool %s status: %s", name, error)
                state.dirty_pools.add(name)
        SERVICES_WITH_IP.set(len(state.allocator.services()))

    def _events(self, body: Body, status: Mapping[str, Any]) -> None:
        ref = ObjectRef.of(body)
        for condition in status["conditions"]:
            if (
                condition["type"] in ("Overlapping", "Exhausted", "ServicesOutsidePool")
                and condition["status"] == "True"
            ):
                self.state.events.once(
                    ref, condition["type"], "Warning", condition["reason"], condition["message"]
                )
            elif condition["status"] == "False":
                self.state.events.forget_topic(ref, condition["type"])
