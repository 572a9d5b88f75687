"""What the speaker's watches have seen (the published configuration, EndpointSlices, BGP password
Secrets), replaced piecewise by the watch threads and read as one versioned snapshot by the loop."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ironlb.api.contract import AnnouncementShard, ServiceAnnouncement, SpeakerGlobalConfig

log = logging.getLogger("ironlb.speaker.state")


@dataclass(frozen=True)
class Snapshot:
    version: int
    config: SpeakerGlobalConfig
    announcements: list[ServiceAnnouncement]
    endpoints: dict[str, frozenset[str]]  # Service -> nodes with a ready endpoint


@dataclass
class State:
    """What the watches have seen; replaced piecewise under a lock, read as a whole by the loop."""

    config: SpeakerGlobalConfig = field(default_factory=SpeakerGlobalConfig)
    shards: dict[str, tuple[ServiceAnnouncement, ...]] = field(default_factory=dict)
    slices: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)  # slice -> (service, nodes)
    lock: threading.Lock = field(default_factory=threading.Lock)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # BGP passwords' Secrets
    configured: bool = False  # the global configuration has been read at least once
    version: int = 0  # bumped on every change, so the loop recomputes BGP routes only when needed

    def on_configmap(self, kind: str, body: dict[str, Any]) -> None:
        name, data = body["metadata"]["name"], body.get("data") or {}
        with self.lock:
            if "config.json" in data:
                config = SpeakerGlobalConfig.model_validate_json(data["config.json"])
                if config != self.config:
                    log.info(
                        "configuration %s: %d nodes, %d L2 and %d BGP advertisements, BGP peers (nodes) %s",
                        body["metadata"].get("resourceVersion"),
                        len(config.node_addresses),
                        len(config.l2),
                        len(config.bgp),
                        {p.session.name: len(p.nodes) for p in config.peers} or "none",
                    )
                self.config = config
                self.configured = True
                self.version += 1
            elif kind == "DELETED":
                self.shards.pop(name, None)
                self.version += 1
            elif "announcements.json" in data:
                self.shards[name] = AnnouncementShard.model_validate_json(data["announcements.json"]).services
                self.version += 1

    def on_endpointslice(self, kind: str, body: dict[str, Any]) -> None:
        metadata = body["metadata"]
        key = f"{metadata['namespace']}/{metadata['name']}"
        service = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
        with self.lock:
            self.version += 1
            if kind == "DELETED" or service is None:
                self.slices.pop(key, None)
                return
            ready = frozenset(
                endpoint["nodeName"]
                for endpoint in body.get("endpoints") or []
                if endpoint.get("nodeName") and (endpoint.get("conditions") or {}).get("ready", True)
            )
            self.slices[key] = (f"{metadata['namespace']}/{service}", ready)

    def on_secret(self, kind: str, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self.lock:
            if kind == "DELETED":
                self.secrets.pop(key, None)
            else:
                self.secrets[key] = dict(body.get("data") or {})
            self.version += 1

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        with self.lock:
            return self.secrets.get((namespace, name))

    def snapshot(self) -> Snapshot:
        """Everything the loop decides from, with its version, read under one lock: a change arriving after
        this call has a newer version, so the loop can never take it as seen before using it."""
        with self.lock:
            endpoints: dict[str, frozenset[str]] = {}
            for service, nodes in self.slices.values():
                endpoints[service] = endpoints.get(service, frozenset()) | nodes
            announcements = [a for shard in self.shards.values() for a in shard]
            return Snapshot(self.version, self.config, announcements, endpoints)
