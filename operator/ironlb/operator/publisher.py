"""Publishes the speaker contract as ConfigMaps: one global, and the announcements in stable shards.

10,000 Services in 64 shards is about 160 per ConfigMap (tens of KiB, far from the 1 MiB object limit),
and a change to one Service rewrites only its shard. Speakers watch ConfigMaps labelled
``ironlb.io/speaker-config``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ironlb.api import GROUP
from ironlb.api.contract import PUBLISHED_AT_ANNOTATION, ServiceAnnouncement, SpeakerGlobalConfig
from ironlb.api.kube import ApiError, KubeClient, NotLeaderError

from .manifests import labels
from .metrics import CONFIG_PUBLISHED
from .speakerconfig import SHARDS, shard, shard_of

log = logging.getLogger("ironlb.publisher")
CONFIG_LABEL = f"{GROUP}/speaker-config"
GLOBAL_NAME = "ironlb-speaker-config"


def shard_name(number: int) -> str:
    return f"ironlb-announcements-{number:02d}"


def configmap(name: str, namespace: str, key: str, payload: str, role: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels("speaker"), CONFIG_LABEL: role},
        },
        "data": {key: payload},
    }


@dataclass
class Publisher:
    kube: KubeClient
    namespace: str
    shards: int = SHARDS
    _announcements: dict[int, dict[str, ServiceAnnouncement]] = field(default_factory=dict)
    _dirty: set[int] = field(default_factory=set)
    _global: SpeakerGlobalConfig | None = None
    _global_dirty: bool = False
    # each ConfigMap's resourceVersion as last written or read: writes are conditional on it, so one that
    # reaches the API server late (after another replica took over) fails instead of overwriting
    _versions: dict[str, str] = field(default_factory=dict)
    # each ConfigMap's data as listed at start-up: the first rewrite of one already holding what it would
    # write is skipped (a write stamps a new published-at, which every speaker would receive for nothing)
    _payloads: dict[str, dict[str, str]] = field(default_factory=dict)

    def seed(self, published: Iterable[Mapping[str, Any]]) -> None:
        """At start-up: the published ConfigMaps as listed; every shard is rewritten once."""
        for body in published:
            self._versions[body["metadata"]["name"]] = str(body["metadata"].get("resourceVersion", ""))
            self._payloads[body["metadata"]["name"]] = dict(body.get("data") or {})
        self._dirty.update(range(self.shards))

    def set_announcement(self, service: str, announcement: ServiceAnnouncement | None) -> None:
        number = shard_of(service, self.shards)
        current = self._announcements.setdefault(number, {})
        if current.get(service) == announcement:
            return
        if announcement is None:
            current.pop(service, None)
        else:
            current[service] = announcement
        self._dirty.add(number)

    def announcements(self) -> Mapping[str, ServiceAnnouncement]:
        return {key: value for shard_map in self._announcements.values() for key, value in shard_map.items()}

    def set_global(self, config: SpeakerGlobalConfig) -> None:
        if config != self._global:
            self._global, self._global_dirty = config, True

    async def flush(self) -> None:
        if self._global_dirty and self._global is not None:
            self._global_dirty = False
            body = configmap(
                GLOBAL_NAME, self.namespace, "config.json", self._global.model_dump_json(), "global"
            )
            await self._write(body, self._mark_global_dirty)
        dirty, self._dirty = self._dirty, set()
        for number in sorted(dirty):
            payload = shard(number, self._announcements.get(number, {})).model_dump_json()
            body = configmap(
                shard_name(number), self.namespace, "announcements.json", payload, "announcements"
            )
            await self._write(body, functools.partial(self._dirty.add, number))

    def _mark_global_dirty(self) -> None:
        self._global_dirty = True

    async def _write(self, body: dict[str, Any], retry_later: Callable[[], None]) -> None:
        name = body["metadata"]["name"]
        if self._payloads.pop(name, None) == body["data"]:
            return
        path = f"/api/v1/namespaces/{self.namespace}/configmaps/{name}"
        if self._versions.get(name):
            body["metadata"]["resourceVersion"] = self._versions[name]
        stamp = time.time()
        body["metadata"]["annotations"] = {PUBLISHED_AT_ANNOTATION: f"{stamp:.3f}"}
        try:
            written = await asyncio.to_thread(self.kube.apply, path, body)
            self._versions[name] = str(written["metadata"]["resourceVersion"])
            CONFIG_PUBLISHED.set(stamp)
        except ApiError as error:
            if error.status == 409:  # written by someone else meanwhile: learn its version, write again
                await self._refresh_version(name, path)
            elif not isinstance(error, NotLeaderError):
                log.warning("publishing %s: %s", name, error)
            retry_later()

    async def _refresh_version(self, name: str, path: str) -> None:
        try:
            current = await asyncio.to_thread(self.kube.get, path)
            self._versions[name] = str(current["metadata"]["resourceVersion"])
        except ApiError as error:
            if error.status == 404:
                self._versions.pop(name, None)
