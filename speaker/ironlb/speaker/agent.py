"""The speaker process: follows the published configuration and the EndpointSlices, watches its peers'
heartbeats, and answers ARP/NDP for the IPs this node wins (Layer 2 mode; BGP comes with its own issue).

Watches run in threads (list, then watch from the list's resourceVersion, re-list when the server says the
version is gone); the main loop every ``tick`` seconds sends heartbeats, recomputes ownership (pure) and
hands the result to the responder, which announces newly owned IPs at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from ironlb.operator.events import event_body
from ironlb.operator.kube import ApiError, KubeClient
from prometheus_client import Counter, Gauge

from .contract import AnnouncementShard, ServiceAnnouncement, SpeakerGlobalConfig
from .heartbeat import HeartbeatSocket, Membership
from .ownership import l2_owned
from .responder import L2Responder

log = logging.getLogger("ironlb.speaker.agent")
CONFIG_SELECTOR = "ironlb.io/speaker-config"
OWNED = Gauge("ironlb_speaker_announced_ips", "IPs this node answers ARP/NDP for.", ["node"])
TAKEOVERS = Counter("ironlb_speaker_takeovers", "IPs this node started announcing.", ["node"])


def report_announcing(kube: KubeClient, node: str, service: str, ip: str) -> None:
    """An Event on the Service: which node answers for its IP now (kubectl describe service shows it)."""
    namespace, name = service.split("/", 1)
    try:
        body = kube.get(f"/api/v1/namespaces/{namespace}/services/{name}")
        event = event_body(
            body | {"kind": "Service", "apiVersion": "v1"},
            "Normal",
            "Announcing",
            f"announcing {ip} from node {node} (Layer 2)",
            node,
        )
        event["source"] = {"component": "ironlb-speaker", "host": node}
        kube.request("POST", f"/api/v1/namespaces/{namespace}/events", event)
    except (ApiError, OSError) as error:
        log.warning("event for %s: %s", service, error)


def list_and_watch(
    kube: KubeClient,
    path: str,
    query: dict[str, str],
    handle: Callable[[str, dict[str, Any]], None],
    stop: threading.Event,
) -> None:
    """Deliver ("ADDED"|"MODIFIED"|"DELETED", object) for a collection until ``stop``; survives errors."""
    while not stop.is_set():
        try:
            listed = kube.get(path, query)
            for item in listed.get("items", []):
                handle("ADDED", item)
            version = listed["metadata"]["resourceVersion"]
            for event in kube.watch(path, {**query, "resourceVersion": version, "timeoutSeconds": "300"}):
                if stop.is_set():
                    return
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    handle(event["type"], event["object"])
                elif event.get("type") == "ERROR":
                    break  # e.g. 410 Gone: list again
        except (ApiError, OSError, ValueError, urllib3.exceptions.HTTPError) as error:
            log.warning("watching %s: %s", path, error)  # the stream broke: list again, then watch
            stop.wait(1.0)


@dataclass
class State:
    """What the watches have seen; replaced piecewise under a lock, read as a whole by the loop."""

    config: SpeakerGlobalConfig = field(default_factory=SpeakerGlobalConfig)
    shards: dict[str, tuple[ServiceAnnouncement, ...]] = field(default_factory=dict)
    slices: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)  # slice -> (service, nodes)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_configmap(self, kind: str, body: dict[str, Any]) -> None:
        name, data = body["metadata"]["name"], body.get("data") or {}
        with self.lock:
            if "config.json" in data:
                self.config = SpeakerGlobalConfig.model_validate_json(data["config.json"])
            elif kind == "DELETED":
                self.shards.pop(name, None)
            elif "announcements.json" in data:
                self.shards[name] = AnnouncementShard.model_validate_json(data["announcements.json"]).services

    def on_endpointslice(self, kind: str, body: dict[str, Any]) -> None:
        metadata = body["metadata"]
        key = f"{metadata['namespace']}/{metadata['name']}"
        service = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
        with self.lock:
            if kind == "DELETED" or service is None:
                self.slices.pop(key, None)
                return
            ready = frozenset(
                endpoint["nodeName"]
                for endpoint in body.get("endpoints") or []
                if endpoint.get("nodeName") and (endpoint.get("conditions") or {}).get("ready", True)
            )
            self.slices[key] = (f"{metadata['namespace']}/{service}", ready)

    def snapshot(self) -> tuple[SpeakerGlobalConfig, list[ServiceAnnouncement], dict[str, frozenset[str]]]:
        with self.lock:
            endpoints: dict[str, frozenset[str]] = {}
            for service, nodes in self.slices.values():
                endpoints[service] = endpoints.get(service, frozenset()) | nodes
            announcements = [a for shard in self.shards.values() for a in shard]
            return self.config, announcements, endpoints


class LinkWatch:
    """Whether this node's own link can carry its announcements.

    With the link down the speaker owns nothing (its peers stop hearing it and take over). After the link
    comes back it waits one heartbeat timeout before claiming again, so it first hears that its peers are
    alive instead of claiming every IP it believed orphaned.
    """

    def __init__(self, interface: str, hold_down: float) -> None:
        self.carrier = Path(f"/sys/class/net/{interface}/carrier")
        self.hold_down = hold_down
        self.up_since: float | None = None
        self.started = True  # at start-up there is nothing to wait for

    def usable(self, now: float) -> bool:
        try:
            up = self.carrier.read_text().strip() == "1"
        except OSError:  # reading carrier fails while the interface is administratively down
            up = False
        if not up:
            self.up_since, self.started = None, False
            return False
        if self.up_since is None:
            self.up_since = now
        return self.started or now - self.up_since >= self.hold_down


def run(
    kube: KubeClient,
    node: str,
    namespace: str,
    interface: str,
    key: bytes,
    heartbeat_port: int,
    stop: threading.Event,
    tick: float = 0.05,
    refresh: float = 30.0,
) -> None:
    state = State()
    watches = [
        (
            f"/api/v1/namespaces/{namespace}/configmaps",
            {"labelSelector": CONFIG_SELECTOR},
            state.on_configmap,
        ),
        ("/apis/discovery.k8s.io/v1/endpointslices", {}, state.on_endpointslice),
    ]
    for path, query, handle in watches:
        threading.Thread(target=list_and_watch, args=(kube, path, query, handle, stop), daemon=True).start()
    responder = L2Responder(interface)
    heartbeats = HeartbeatSocket(key, node, heartbeat_port)
    members = Membership(node, timeout=max(0.3, 6 * tick))
    next_refresh = time.monotonic() + refresh
    log.info("speaker %s answering on %s", node, interface)
    try:
        link = LinkWatch(interface, hold_down=members.timeout)
        while not stop.is_set():
            config, announcements, endpoints = state.snapshot()
            heartbeats.send([address for name, address in config.node_addresses.items() if name != node])
            heartbeats.receive_all(members)
            owned = (
                l2_owned(node, config, announcements, endpoints, members.alive(time.monotonic()))
                if link.usable(time.monotonic())
                else {}
            )
            for address in responder.set_owned(owned):
                log.info("announcing %s (%s) from node %s", address, owned[address], node)
                responder.announce(address)
                TAKEOVERS.labels(node=node).inc()
                threading.Thread(
                    target=report_announcing, args=(kube, node, owned[address], str(address)), daemon=True
                ).start()
            OWNED.labels(node=node).set(len(owned))
            if refresh and time.monotonic() >= next_refresh:
                for address in responder.owned:
                    responder.announce(address)  # switches whose tables aged out relearn the port
                next_refresh = time.monotonic() + refresh
            responder.answer_for(tick)
        # a graceful stop: tell the peers first, so the new owners take over without waiting for a timeout
        config, _, _ = state.snapshot()
        heartbeats.send([a for name, a in config.node_addresses.items() if name != node], leaving=True)
    finally:
        responder.close()
        heartbeats.close()
