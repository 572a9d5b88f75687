"""MetalLB's legacy ConfigMap ``config`` as a source of pools, advertisements and peers.

It is read from the operator's namespace and from the namespaces the admin names in IronLBConfig
(``legacyConfigNamespaces``, opt-in: a ConfigMap in a namespace anyone may create must not define IronLB's
addresses). It is polled (a GET per namespace and period), not watched: a watch would need list/watch on
every ConfigMap in the cluster. The operator's namespace wins, then the named ones in order; CRD objects of
the same name win over it; a broken edit keeps the last good reading.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ironlb.api.events import ObjectRef
from ironlb.api.kube import ApiError

from ..legacy import (
    CONFIGMAP_NAME,
    EVENT_REASON,
    LegacyObjects,
    carried_over,
    legacy_objects,
)
from .state import Body, OperatorState

log = logging.getLogger("ironlb.operator")


class LegacyHandler:
    def __init__(self, state: OperatorState) -> None:
        self.state = state
        self._sources: dict[str, Body] = {}  # namespace -> the ConfigMap as last read
        self._readings: dict[str, LegacyObjects] = {}  # namespace -> what it says
        self.opted_in: tuple[str, ...] = ()  # IronLBConfig's legacyConfigNamespaces

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Where the ConfigMap is read, in order of precedence."""
        return tuple(dict.fromkeys((self.state.namespace, *self.opted_in)))

    def opt_in(self, namespaces: tuple[str, ...]) -> bool:
        """The admin's list changed: forget what namespaces no longer on it said. True when it changed."""
        if namespaces == self.opted_in:
            return False
        self.opted_in = namespaces
        for namespace in [ns for ns in self._sources if ns not in self.namespaces]:
            self.take_source(namespace, None)
        return True

    def read_sources(self) -> dict[str, Body | None]:
        """GET `config` where it is honoured (blocking); absent or forbidden is None."""
        sources: dict[str, Body | None] = {}
        for namespace in self.namespaces:
            try:
                sources[namespace] = self.state.kube.get(
                    f"/api/v1/namespaces/{namespace}/configmaps/{CONFIGMAP_NAME}"
                )
            except ApiError as error:
                if error.status not in (403, 404):
                    raise
                sources[namespace] = None
        return sources

    def take_source(self, namespace: str, body: Body | None) -> bool:
        """Remember one ConfigMap's reading; True when it changed (only ``data`` and identity count)."""
        previous = self._sources.get(namespace)
        if _identity(previous) == _identity(body):
            if body is not None:
                self._sources[namespace] = body
            return False
        if previous is not None:  # a new content or a new object gets its own Warning event
            self.state.events.forget(_ref(previous))
        if body is None:
            self._sources.pop(namespace, None)
            self._readings.pop(namespace, None)
        else:
            self._sources[namespace] = body
            last = self._readings.get(namespace, LegacyObjects())
            self._readings[namespace] = carried_over(last, legacy_objects(body))
        return True

    def apply(self) -> set[str]:
        """Put the reading in force into the allocator (CRD pools of the same name win); say so on it.

        Returns the legacy pools whose addresses changed or vanished, whose Services may now be outside.
        """
        state = self.state
        chosen = next((ns for ns in self.namespaces if ns in self._readings), None)
        old, state.legacy = state.legacy, self._readings[chosen] if chosen else LegacyObjects()
        changed = {name for name in old.pools if old.pools[name] != state.legacy.pools.get(name)}
        for name in state.legacy.pools:
            if name not in state.pools and (
                old.pools.get(name) != state.legacy.pools[name] or state.allocator.pool_config(name) is None
            ):
                state.allocator.upsert_pool(state.legacy.pool_config(name))
        for name in old.pools:
            if name not in state.legacy.pools and name not in state.pools:
                state.allocator.remove_pool(name)
        for namespace, body in self._sources.items():
            if namespace == chosen:
                state.events.once(_ref(body), "legacy", "Warning", EVENT_REASON, state.legacy.warning())
            else:
                message = f"not used: {chosen}/{CONFIGMAP_NAME} is in force (it comes first)"
                state.events.once(_ref(body), "legacy", "Warning", EVENT_REASON, message)
        return {name for name in changed if name not in state.pools}

    async def poll(self) -> list[tuple[str, Body | None]]:
        """One poll of both ConfigMaps (two GETs): the sources whose reading changed."""
        read = await asyncio.to_thread(self.read_sources)
        return [(namespace, body) for namespace, body in read.items() if self.take_source(namespace, body)]


def _ref(body: Body) -> ObjectRef:
    return ObjectRef.of({**body, "kind": "ConfigMap", "apiVersion": "v1"})


def _identity(body: Body | None) -> tuple[str, str, Any] | None:
    """What makes a legacy ConfigMap a different one to read: its object and its data, not its labels."""
    if body is None:
        return None
    metadata = body.get("metadata") or {}
    return (str(metadata.get("uid", "")), str(metadata.get("namespace", "")), body.get("data"))
