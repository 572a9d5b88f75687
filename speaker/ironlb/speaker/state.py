"""What the speaker's watches have seen (the published configuration, Services, EndpointSlices, BGP password
Secrets), replaced piecewise by the informer threads and read as one versioned snapshot by the loop.

An IP is announced only while its Service still shows it: the published announcements say what the operator
decided, and the Services themselves (watched here too, as MetalLB's speakers do) say that it still holds.
So a Service deleted while no operator replica runs stops being announced as soon as the deletion is seen.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ironlb.api.contract import (
    CONTRACT_VERSION,
    PUBLISHED_AT_ANNOTATION,
    AnnouncementShard,
    ServiceAnnouncement,
    SpeakerGlobalConfig,
    Versioned,
)
from prometheus_client import Gauge

from .pools import PoolAddresses

log = logging.getLogger("ironlb.speaker.state")
REFUSED = Gauge(
    "ironlb_speaker_refused_ips", "IPs the published configuration lists that no pool holds: never announced."
)
CONFIG_PUBLISHED = Gauge(
    "ironlb_speaker_config_published_timestamp_seconds",
    "The newest ironlb.io/published-at among the configuration this speaker acts on.",
)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Stands for ready endpoints that name no node (a selector-less Service's own EndpointSlice): they count for
# "a ready endpoint anywhere" (externalTrafficPolicy Cluster), and never match a node (Local).
NO_NODE = ""


@dataclass(frozen=True)
class Snapshot:
    version: int
    config: SpeakerGlobalConfig
    announcements: list[ServiceAnnouncement]
    endpoints: dict[str, frozenset[str]]  # Service -> nodes with a ready endpoint (NO_NODE: on no node)


_NOTHING: frozenset[str] = frozenset()
# (announcement, IPs the Service shows, pools) -> (what may be announced, IPs refused), identities compared
_Checked = tuple[ServiceAnnouncement, frozenset[str], PoolAddresses, ServiceAnnouncement | None, int]


@dataclass
class State:
    """What the watches have seen; replaced piecewise under a lock, read as a whole by the loop."""

    config: SpeakerGlobalConfig = field(default_factory=SpeakerGlobalConfig)
    shards: dict[str, tuple[ServiceAnnouncement, ...]] = field(default_factory=dict)
    slices: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)  # slice -> (service, nodes)
    _slices_of: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)  # service -> its slices
    _ready: dict[str, frozenset[str]] = field(default_factory=dict)  # service -> nodes with a ready endpoint
    lock: threading.Lock = field(default_factory=threading.Lock)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # BGP passwords' Secrets
    services: dict[str, frozenset[str]] = field(default_factory=dict)  # Service -> the IPs its status shows
    uids: dict[str, str] = field(default_factory=dict)  # Service -> its uid (events point at it)
    configured: bool = False  # the global configuration has been read at least once
    version: int = 0  # bumped on every change, so the loop recomputes BGP routes only when needed
    _snapshot: Snapshot | None = None  # the last snapshot, reused while the version is unchanged
    _told_newer: set[str] = field(default_factory=set)  # objects whose newer contract was logged once
    _refused: set[tuple[str, str]] = field(default_factory=set)  # (Service, IP) refused, logged once
    _pools: tuple[SpeakerGlobalConfig, PoolAddresses] | None = None  # the pools of this configuration
    _checked: dict[str, _Checked] = field(default_factory=dict)  # Service -> its last check (snapshot)
    _published_at: dict[str, float] = field(default_factory=dict)  # ConfigMap -> when the operator wrote it

    def on_configmap(self, kind: str, body: dict[str, Any]) -> None:
        name, data = body["metadata"]["name"], body.get("data") or {}
        if "config.json" in data:
            config = SpeakerGlobalConfig.model_validate_json(data["config.json"])
            if not self._readable(name, config):
                return
            with self.lock:
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
                self._stamp(name, body)
        elif kind == "DELETED":
            with self.lock:
                self.shards.pop(name, None)
                self._published_at.pop(name, None)
                self.version += 1
        elif "announcements.json" in data:
            shard = AnnouncementShard.model_validate_json(data["announcements.json"])
            if not self._readable(name, shard):
                return
            with self.lock:
                self.shards[name] = shard.services
                self._stamp(name, body)

    def _stamp(self, name: str, body: dict[str, Any]) -> None:
        """A change taken (under the lock): a new version, and when the operator published it."""
        stamp = (body["metadata"].get("annotations") or {}).get(PUBLISHED_AT_ANNOTATION)
        try:
            self._published_at[name] = float(stamp) if stamp is not None else 0.0
        except ValueError:
            self._published_at[name] = 0.0
        self.version += 1

    def _readable(self, name: str, published: Versioned) -> bool:
        """A configuration this speaker is too old to act on is refused (the last good one stays)."""
        newer = published.contract_version > CONTRACT_VERSION
        if newer and name not in self._told_newer:
            self._told_newer.add(name)
            log.info(
                "%s is written in contract version %d, this speaker reads %d: fields it does not know are "
                "ignored",
                name,
                published.contract_version,
                CONTRACT_VERSION,
            )
        if published.readable():
            return True
        log.error(
            "%s needs a speaker of contract version %d or newer, this one reads %d: keeping the last good "
            "configuration until this speaker is upgraded",
            name,
            published.min_contract_version,
            CONTRACT_VERSION,
        )
        return False

    def on_endpointslice(self, kind: str, body: dict[str, Any]) -> None:
        metadata = body["metadata"]
        key = f"{metadata['namespace']}/{metadata['name']}"
        service = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
        with self.lock:
            before = self.slices.pop(key, None)
            if before is not None:
                self._slices_of[before[0]].pop(key, None)
            changed = {before[0]} if before is not None else set()
            old = {name: self._ready_nodes(name) for name in changed}
            if kind != "DELETED" and service is not None:
                ready = frozenset(
                    endpoint.get("nodeName") or NO_NODE
                    for endpoint in body.get("endpoints") or []
                    if _ready(endpoint)
                )
                owner = f"{metadata['namespace']}/{service}"
                if owner not in old:
                    old[owner] = self._ready_nodes(owner)
                self.slices[key] = (owner, ready)
                self._slices_of.setdefault(owner, {})[key] = ready
            if before is not None:
                old[before[0]] |= before[1]
            # only a change in the nodes with a ready endpoint is news: pod churn that moves no node, or an
            # empty slice created, changes nothing the loop decides from (and a new version costs it a pass)
            changed_nodes = False
            for name, nodes in old.items():
                now_ready = self._ready_nodes(name)
                if self._slices_of.get(name):  # a Service with slices, ready or not
                    self._ready[name] = now_ready
                else:
                    self._ready.pop(name, None)
                changed_nodes = changed_nodes or now_ready != nodes
            if changed_nodes:
                self.version += 1

    def _ready_nodes(self, service: str) -> frozenset[str]:
        return frozenset().union(*self._slices_of.get(service, {}).values())

    def on_service(self, kind: str, body: dict[str, Any]) -> None:
        metadata = body["metadata"]
        key = f"{metadata['namespace']}/{metadata['name']}"
        shown = frozenset(shown_ips(body))
        with self.lock:
            if kind == "DELETED":
                self.uids.pop(key, None)
            else:
                self.uids[key] = str(metadata.get("uid") or "")
            if kind == "DELETED" or not shown:
                if self.services.pop(key, None) is None:
                    return
            elif self.services.get(key) == shown:
                return
            else:
                self.services[key] = shown
            self.version += 1

    def on_secret(self, kind: str, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self.lock:
            if kind == "DELETED":
                self.secrets.pop(key, None)
            else:
                self.secrets[key] = dict(body.get("data") or {})
            self.version += 1

    def uid_of(self, service: str) -> str | None:
        with self.lock:
            return self.uids.get(service) or None

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        with self.lock:
            return self.secrets.get((namespace, name))

    def snapshot(self) -> Snapshot:
        """Everything the loop decides from, with its version, read under one lock: a change arriving after
        this call has a newer version, so the loop can never take it as seen before using it."""
        with self.lock:
            if self._snapshot is not None and self._snapshot.version == self.version:
                return self._snapshot
            endpoints = dict(self._ready)
            if self._pools is None or self._pools[0] is not self.config:
                self._pools = (self.config, PoolAddresses.of(self.config.pools))
            pools = self._pools[1]
            announcements, refused = [], 0
            checked: dict[str, _Checked] = {}
            for shard in self.shards.values():
                for announcement in shard:
                    shown = self.services.get(announcement.service, _NOTHING)
                    done = self._checked.get(announcement.service)
                    if done is None or done[:3] != (announcement, shown, pools):
                        done = (announcement, shown, pools, *self._check(announcement, shown, pools))
                    checked[announcement.service] = done
                    refused += done[4]
                    if done[3] is not None:
                        announcements.append(done[3])
            self._checked = checked
            REFUSED.set(refused)
            CONFIG_PUBLISHED.set(max(self._published_at.values(), default=0.0))
            self._snapshot = Snapshot(self.version, self.config, announcements, endpoints)
            return self._snapshot

    def _check(
        self, announcement: ServiceAnnouncement, shown: frozenset[str], pools: PoolAddresses
    ) -> tuple[ServiceAnnouncement | None, int]:
        """The announcement as far as the Service shows its IPs and the pool holds them, and how many IPs
        were refused; kept per Service until one of the three changes (a snapshot costs no work per IP)."""
        ips = tuple(ip for ip in announcement.ips if ip in shown)
        held = tuple(ip for ip in ips if pools.holds(announcement.pool, ip))
        for ip in set(ips) - set(held):
            self._refuse(announcement.service, ip, announcement.pool)
        if held == announcement.ips:
            return announcement, len(ips) - len(held)
        return (announcement.model_copy(update={"ips": held}) if held else None), len(ips) - len(held)

    def _refuse(self, service: str, ip: str, pool: str) -> None:
        if (service, ip) not in self._refused:
            self._refused.add((service, ip))
            log.error("refusing to announce %s for %s: IPAddressPool %r does not hold it", ip, service, pool)


def _ready(endpoint: dict[str, Any]) -> bool:
    return bool((endpoint.get("conditions") or {}).get("ready", True))


def shown_ips(service: dict[str, Any]) -> list[str]:
    """The IPs a Service's status shows (``status.loadBalancer.ingress``)."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry["ip"] for entry in ingress if entry.get("ip")]


def slice_summary(endpointslice: dict[str, Any]) -> dict[str, Any]:
    """What the speaker keeps of an EndpointSlice: its Service and which nodes have ready endpoints."""
    metadata = endpointslice["metadata"]
    return {
        "metadata": {
            **{k: metadata.get(k) for k in ("name", "namespace", "resourceVersion")},
            "labels": {k: v for k, v in (metadata.get("labels") or {}).items() if k == SERVICE_NAME_LABEL},
        },
        "endpoints": [
            {"nodeName": e.get("nodeName"), "conditions": {"ready": _ready(e)}}
            for e in endpointslice.get("endpoints") or []
        ],
    }


def service_summary(service: dict[str, Any]) -> dict[str, Any]:
    """What the speaker keeps of a Service (its informer stores this, not the whole object)."""
    metadata = service["metadata"]
    return {
        "metadata": {k: metadata.get(k) for k in ("name", "namespace", "uid", "resourceVersion")},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in shown_ips(service)]}},
    }
