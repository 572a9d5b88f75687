"""The speaker process: follows the published configuration and the EndpointSlices, watches its peers'
heartbeats, answers ARP/NDP for the IPs this node wins (Layer 2) and keeps exabgp announcing what this node
must (BGP, ``bgp_agent``).

Watches run in threads (list, then watch from the list's resourceVersion, re-list when the server says the
version is gone); the main loop every ``tick`` seconds sends heartbeats, recomputes ownership (pure) and
hands the result to the responders, which announce newly owned IPs at once; when anything changed it
recomputes the BGP routes (pure) and hands them to exabgp's supervisor.
"""

from __future__ import annotations

import logging
import queue
import selectors
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

from .bgp_agent import BGPAgent
from .contract import AnnouncementShard, ServiceAnnouncement, SpeakerGlobalConfig
from .health import Health
from .heartbeat import HeartbeatSocket, Membership
from .interfaces import interface_with
from .ownership import answering_interfaces, l2_owned
from .responder import IPAddress, L2Responder
from .settings import SettingsFile, apply_log_level

log = logging.getLogger("ironlb.speaker.agent")
CONFIG_SELECTOR = "ironlb.io/speaker-config"
OWNED = Gauge("ironlb_speaker_announced_ips", "IPs this node answers ARP/NDP for.", ["node"])
TAKEOVERS = Counter("ironlb_speaker_takeovers", "IPs this node started announcing.", ["node"])
ANNOUNCING = Gauge(
    "ironlb_speaker_announcing", "1 for each Service IP this node answers for.", ["service", "ip", "node"]
)
ANNOUNCING_ANNOTATION = "ironlb.io/announcing-node-ipv{}"


def report_announcing(kube: KubeClient, node: str, service: str, ip: IPAddress) -> None:
    """Which node answers for the IP now: an annotation per family on the Service (``kubectl get service -o
    yaml`` shows it; the last owner to take over writes it) and an Event (``kubectl describe service``)."""
    namespace, name = service.split("/", 1)
    try:
        body = kube.merge_patch(
            f"/api/v1/namespaces/{namespace}/services/{name}",
            {"metadata": {"annotations": {ANNOUNCING_ANNOTATION.format(ip.version): node}}},
        )
        event = event_body(
            body | {"kind": "Service", "apiVersion": "v1"},
            "Normal",
            "Announcing",
            f"announcing {ip} from node {node} (Layer 2)",
            node,
        )
        event["source"] = {"component": "ironlb-speaker", "host": node}
        kube.request("POST", f"/api/v1/namespaces/{namespace}/events", event)
    except (ApiError, OSError, ValueError, urllib3.exceptions.HTTPError) as error:
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


class Responders:
    """One L2Responder per interface in use, opened on first use and kept (sockets are cheap to keep)."""

    def __init__(self) -> None:
        self.by_interface: dict[str, L2Responder] = {}
        self._retry_at: dict[str, float] = {}  # interfaces that could not be opened: when to try again
        self._selector = selectors.DefaultSelector()  # every responder's sockets, kept across ticks

    def get(self, interface: str) -> L2Responder | None:
        responder = self.by_interface.get(interface)
        if responder is None:
            if time.monotonic() < self._retry_at.get(interface, 0.0):
                return None
            try:
                responder = L2Responder(interface)
            except OSError as error:  # an L2Advertisement names an interface this node lacks (yet)
                if interface not in self._retry_at:
                    log.warning("cannot answer on interface %s: %s (retrying every 10 s)", interface, error)
                self._retry_at[interface] = time.monotonic() + 10.0
                return None
            self._retry_at.pop(interface, None)
            self.by_interface[interface] = responder
            for sock in (responder.arp, responder.ndp):
                self._selector.register(sock, selectors.EVENT_READ, responder)
        return responder

    def set_owned(self, owned: dict[IPAddress, frozenset[str]]) -> list[tuple[L2Responder, IPAddress]]:
        """Answer for each IP on its interfaces only; returns (responder, IP) pairs to announce now."""
        wanted: dict[str, set[IPAddress]] = {name: set() for name in self.by_interface}
        for address, interfaces in owned.items():
            for interface in interfaces:
                wanted.setdefault(interface, set()).add(address)
        fresh: list[tuple[L2Responder, IPAddress]] = []
        for interface, addresses in wanted.items():
            responder = self.get(interface) if addresses else self.by_interface.get(interface)
            if responder is None:
                continue
            try:
                fresh += [(responder, address) for address in responder.set_owned(addresses)]
            except OSError as error:  # the interface went away (a VLAN or bond re-created): reopen later
                log.warning("interface %s: %s; reopening it", interface, error)
                for sock in (responder.arp, responder.ndp):
                    self._selector.unregister(sock)
                responder.close()
                del self.by_interface[interface]
        return fresh

    def owned(self) -> list[tuple[L2Responder, IPAddress]]:
        return [(r, address) for r in self.by_interface.values() for address in r.owned]

    def answer_for(self, seconds: float) -> None:
        """Answer on every interface during ``seconds`` (one select over all sockets)."""
        if not self.by_interface:
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            for key, _ in self._selector.select(remaining):
                key.data.drain(key.fileobj)

    def close(self) -> None:
        self._selector.close()
        for responder in self.by_interface.values():
            responder.close()


def run(
    kube: KubeClient,
    node: str,
    namespace: str,
    interface: str | None,
    key: bytes,
    settings: SettingsFile,
    stop: threading.Event,
    health: Health | None = None,
    tick: float = 0.05,
    run_dir: Path = Path("/run/ironlb"),
) -> None:
    """The speaker's loop. ``interface`` None: the one holding this node's InternalIP (from the config)."""
    health = health or Health()
    state = State()
    watches = [
        (
            f"/api/v1/namespaces/{namespace}/configmaps",
            {"labelSelector": CONFIG_SELECTOR},
            state.on_configmap,
        ),
        ("/apis/discovery.k8s.io/v1/endpointslices", {}, state.on_endpointslice),
        (f"/api/v1/namespaces/{namespace}/secrets", {}, state.on_secret),  # BGP passwords, read in the loop
    ]
    for path, query, handle in watches:
        threading.Thread(target=list_and_watch, args=(kube, path, query, handle, stop), daemon=True).start()
    primary = interface or wait_for_primary_interface(state, node, stop, health)
    if primary is None:
        return
    responders = Responders()
    responders.get(primary)
    heartbeats = HeartbeatSocket(key, node, settings.current.heartbeat_port)
    members = Membership(node, timeout=max(0.3, 6 * tick))
    next_refresh = time.monotonic() + settings.current.gratuitous_refresh_seconds
    next_settings_check = time.monotonic() + 2
    announced: dict[IPAddress, str] = {}
    # one worker posts the Announcing events and annotations: a survivor taking over 1,000 IPs must not
    # start 1,000 threads competing with this loop while heartbeats matter most
    reports: queue.Queue[tuple[str, IPAddress]] = queue.Queue()

    def post_reports() -> None:
        while not stop.is_set():
            try:
                service, address = reports.get(timeout=0.5)
            except queue.Empty:
                continue
            report_announcing(kube, node, service, address)

    threading.Thread(target=post_reports, name="announcing-reports", daemon=True).start()
    bgp = BGPAgent(kube, node, namespace, run_dir / "exabgp", state.secret)
    seen_version, bgp_retry_at = -1, 0.0
    log.info("speaker %s answering on %s", node, primary)
    try:
        link = LinkWatch(primary, hold_down=members.timeout)
        while not stop.is_set():
            now = time.monotonic()
            health.tick()
            snapshot = state.snapshot()
            config, announcements, endpoints = snapshot.config, snapshot.announcements, snapshot.endpoints
            health.configured = state.configured
            heartbeats.send([address for name, address in config.node_addresses.items() if name != node])
            heartbeats.receive_all(members)
            owned = (
                l2_owned(node, config, announcements, endpoints, members.alive(now))
                if link.usable(now)
                else {}
            )
            by_service = {a.service: a for a in announcements}
            interfaces = {
                address: answering_interfaces(node, config, by_service[service], primary)
                for address, service in owned.items()
            }
            for responder, address in responders.set_owned(interfaces):
                responder.announce(address)
                if announced.get(address) != owned[address]:
                    log.info("announcing %s (%s) from node %s", address, owned[address], node)
                    TAKEOVERS.labels(node=node).inc()
                    reports.put((owned[address], address))
            for address, service in announced.items():
                if owned.get(address) != service:  # released, or now another Service's (shared IPs)
                    ANNOUNCING.remove(service, str(address), node)
            for address, service in owned.items():
                ANNOUNCING.labels(service, str(address), node).set(1)
            announced = dict(owned)
            OWNED.labels(node=node).set(len(owned))
            if snapshot.version != seen_version and now >= bgp_retry_at:
                seen_version = snapshot.version
                try:
                    bgp.update(config, announcements, endpoints, primary)
                except Exception:  # BGP trouble must never stop the Layer 2 answers: log, retry in 1 s
                    log.exception("updating BGP")
                    seen_version, bgp_retry_at = -1, now + 1.0
            try:
                bgp.poll()
            except Exception:
                log.exception("polling exabgp")
            if now >= next_settings_check:
                next_settings_check = now + 2
                if settings.reload():
                    apply_log_level(settings.current)
                    next_refresh = now + settings.current.gratuitous_refresh_seconds
            if settings.current.gratuitous_refresh_seconds and now >= next_refresh:
                for responder, address in responders.owned():
                    responder.announce(address)  # switches whose tables aged out relearn the port
                next_refresh = now + settings.current.gratuitous_refresh_seconds
            responders.answer_for(tick)
        # a graceful stop: tell the peers first, so the new owners take over without waiting for a timeout
        addresses = state.snapshot().config.node_addresses
        heartbeats.send([a for name, a in addresses.items() if name != node], leaving=True)
    finally:
        bgp.stop()  # withdraw routes and close sessions: routers drop this next hop at once
        responders.close()
        heartbeats.close()


def wait_for_primary_interface(state: State, node: str, stop: threading.Event, health: Health) -> str | None:
    """The interface holding this node's InternalIP, once the published configuration names it."""
    warned = False
    while not stop.is_set():
        health.tick()
        address = state.snapshot().config.node_addresses.get(node)
        if address is not None:
            found = interface_with(address)
            if found is not None:
                return found
        if not warned and state.configured:
            log.warning("no interface of this host holds node %s's InternalIP %s yet", node, address)
            warned = True
        stop.wait(0.2)
    return None
