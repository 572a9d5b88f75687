"""BGP mode inside the speaker's loop: keeps one exabgp (via ExabgpSupervisor) in line with the published
configuration and the endpoints, and reports each session's state on its BGPPeer.

The decisions are pure (``exabgp_config_for``, ``bgp_routes``, ``peer_summary``); this module only feeds
them and writes the results. Each speaker owns its own entry of ``status.nodes`` (server-side apply with a
field manager per node), so speakers never overwrite each other's entries.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from ironlb.api.contract import ExabgpConfig, ExabgpNeighbor, ServiceAnnouncement, SpeakerGlobalConfig
from ironlb.api.kube import ApiError, KubeClient
from prometheus_client import Gauge
from pydantic import SecretStr

from ..interfaces import interface_addresses
from .bfd_link import BfdLink
from .exabgp_process import ExabgpSupervisor, SessionState
from .md5 import md5_key
from .routes import Route, bgp_routes

log = logging.getLogger("ironlb.speaker.bgp")
SESSION_UP = Gauge("ironlb_speaker_bgp_session_up", "1 when the session is Established.", ["peer", "node"])
PREFIXES = Gauge(
    "ironlb_speaker_bgp_announced_prefixes", "Prefixes announced on a session.", ["peer", "node"]
)
PEERS_PATH = "/apis/ironlb.io/v1beta1/namespaces/{namespace}/bgppeers/{name}/status"
FSM_STATES = frozenset({"Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"})
REPORT_EVERY = 30.0  # seconds; state changes are reported at once
# how long the sessions a node should have may take to come up before its speaker is Ready without them
READY_GRACE = 20.0


def sessions_settled(
    selected: Sequence[str], states: Mapping[str, SessionState], wanted_since: float | None, now: float
) -> bool:
    """Whether this node announces what it should: every selected session Established (its routes go out at
    once), or ``READY_GRACE`` seconds since the sessions were wanted. Readiness paces a rolling update: the
    next node is not taken down while the routers still lack this one, yet a router that is down cannot
    stall a rollout."""
    if not selected:
        return True
    if wanted_since is not None and now - wanted_since >= READY_GRACE:
        return True
    return all((state := states.get(name)) is not None and state.state == "Established" for name in selected)


def exabgp_config_for(
    node: str, config: SpeakerGlobalConfig, v4: str | None, v6: str | None
) -> ExabgpConfig | None:
    """exabgp's neighbors for this node: the sessions of the BGPPeers whose node selectors pick it, from
    the node's own address of the peer's family (or the peer's sourceAddress). None: no session here."""
    neighbors = []
    for placement in config.peers:
        session = placement.session
        if node not in placement.nodes:
            continue
        local = session.source_address or (v6 if session.family == 6 else v4)
        if local is None or v4 is None:
            log.warning("no IPv%d address on this node for BGPPeer %s", session.family, session.name)
            continue
        neighbors.append(
            ExabgpNeighbor(session=session, local_address=local, router_id=session.router_id or v4)
        )
    if not neighbors:
        return None
    return ExabgpConfig(node=node, neighbors=tuple(neighbors), api_command="set-by-the-supervisor")


def peer_summary(selected: Sequence[str], nodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The BGPPeer's counts from the per-node entries: ``kubectl get bgppeers`` shows established/selected."""
    established = sum(
        1 for entry in nodes if entry.get("node") in selected and entry.get("state") == "Established"
    )
    return {
        "selectedNodes": len(selected),
        "establishedNodes": established,
        "sessions": f"{established}/{len(selected)}",
    }


def _global_v6(interface: str) -> str | None:
    for address in interface_addresses().get(interface, []):
        if address.version == 6 and not address.is_link_local:
            return str(address)
    return None


API_ERRORS = (ApiError, OSError, ValueError, urllib3.exceptions.HTTPError)


class StatusWriter:
    """Runs the BGPPeer status writes on a thread of their own: the speaker's loop also sends the Layer 2
    heartbeats every 50 ms, and a slow or unreachable API server must never delay them (nor end the loop)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="bgp-status", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[], None]) -> None:
        self._queue.put(write)

    def _run(self) -> None:
        while (write := self._queue.get()) is not None:
            try:
                write()
            except API_ERRORS as error:
                log.warning("writing BGPPeer status: %s", error)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def close(self, timeout: float) -> None:
        """Finish what is queued (at most ``timeout`` seconds), then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)


SecretLookup = Callable[[str, str], Mapping[str, str] | None]


def with_passwords(
    config: ExabgpConfig, lookup: SecretLookup, closed: dict[str, tuple[str, float]] | None = None
) -> ExabgpConfig:
    """Passwords from the watched Secrets (never an API call in the loop). A session whose Secret or key
    is missing is left out: opening it without MD5 would be worse than not opening it."""
    neighbors = []
    for neighbor in config.neighbors:
        ref = neighbor.session.password_secret
        if ref is not None:
            encoded = (lookup(ref.namespace, ref.name) or {}).get(ref.key)
            key, problem = md5_key(encoded) if encoded else (None, None)
            if key is None:
                where = f"key {ref.key!r} in Secret {ref.namespace}/{ref.name}"
                reason = f"{f'{problem} ({where})' if problem else f'no {where}'}: the session stays closed"
                if closed is not None and closed.get(neighbor.session.name, ("",))[0] != reason:
                    closed[neighbor.session.name] = (reason, time.time())
                    log.error("BGPPeer %s: %s", neighbor.session.name, reason)
                continue
            neighbor = neighbor.model_copy(update={"password": SecretStr(key)})
        if closed is not None:
            closed.pop(neighbor.session.name, None)
        neighbors.append(neighbor)
    return config.model_copy(update={"neighbors": tuple(neighbors)})


class BGPAgent:
    def __init__(
        self, kube: KubeClient, node: str, namespace: str, run_dir: Path, secrets: SecretLookup
    ) -> None:
        self.kube, self.node, self.namespace, self.run_dir = kube, node, namespace, run_dir
        self.secrets = secrets
        self._closed: dict[str, tuple[str, float]] = {}  # sessions left closed: (why, since)
        self.supervisor: ExabgpSupervisor | None = None
        self._reported: dict[str, tuple[str, float, int, tuple[str, str] | None]] = {}
        self._next_report = 0.0
        self._selected: dict[str, tuple[str, ...]] = {}
        self._routes: dict[str, frozenset[Route]] = {}
        self._writer = StatusWriter()
        self._wanted: ExabgpConfig | None = None  # exabgp's neighbors before BFD holds any closed
        self.bfd = BfdLink(self._bfd_lost)
        self._bfd_seen = 0  # the BfdLink generation exabgp's neighbors reflect
        self._wanted_since: float | None = None  # since when this node has had sessions to open

    def update(
        self,
        config: SpeakerGlobalConfig,
        announcements: Sequence[ServiceAnnouncement],
        endpoints: Mapping[str, frozenset[str]],
        interface: str,
    ) -> None:
        v4 = config.node_addresses.get(self.node)
        wanted = exabgp_config_for(self.node, config, v4, _global_v6(interface))
        selected = {p.session.name: p.nodes for p in config.peers if self.node in p.nodes}
        existing = {p.session.name: p.nodes for p in config.peers}
        for name in set(self._selected) - set(selected):
            if name in existing:  # still there, but no longer selects this node: drop this node's entry
                self._forget(name, existing[name])
        if selected != self._selected:
            self._next_report = 0.0  # the selected nodes changed: the counts are stale, report at once
        if selected and not self._selected:
            self._wanted_since = time.monotonic()
        self._selected = selected
        if wanted is not None:
            wanted = with_passwords(wanted, self.secrets, self._closed)
        self._wanted = wanted
        if wanted is None or not wanted.neighbors:
            self.bfd.apply(ExabgpConfig(node=self.node, api_command="none"))  # no BFD session either
            if self.supervisor is not None:
                log.info("no BGP session to open from node %s any more: stopping exabgp", self.node)
                self.supervisor.stop()
                self.supervisor = None
                self._routes = {}  # a later exabgp must be given every route again
            return
        generation = self.bfd.generation
        opened = self.bfd.apply(wanted)  # exabgp's neighbors: without those BFD holds closed
        if self.supervisor is None:
            supervisor = ExabgpSupervisor(opened, self.run_dir)
            try:
                supervisor.start()
            except Exception:
                supervisor.stop()  # its listener and threads; the next update starts afresh
                raise
            self.supervisor, self._routes = supervisor, {}
            log.info("exabgp started for %d BGP session(s)", len(wanted.neighbors))
        else:
            self.supervisor.reconfigure(opened)
        self._bfd_seen = generation
        routes = bgp_routes(self.node, config, announcements, endpoints)
        if routes != self._routes:
            self.supervisor.set_routes(routes)
            self._routes = routes

    def settled(self, now: float) -> bool:
        """See ``sessions_settled``: part of the speaker's readiness."""
        states = self.supervisor.sessions() if self.supervisor is not None else {}
        return sessions_settled(tuple(self._selected), states, self._wanted_since, now)

    def _bfd_lost(self, peer_address: str) -> None:
        """BFD lost a peer (its thread): close the sessions to it now; ``poll`` keeps them closed."""
        supervisor = self.supervisor
        if supervisor is not None:
            supervisor.teardown(peer_address)

    def _follow_bfd(self) -> None:
        """BFD closed or re-opened sessions since exabgp's neighbors were set: set them again."""
        generation = self.bfd.generation
        if generation == self._bfd_seen or self.supervisor is None or self._wanted is None:
            return
        self.supervisor.reconfigure(self.bfd.apply(self._wanted))
        self._bfd_seen = generation

    def poll(self) -> None:
        self._follow_bfd()
        states: dict[str, SessionState] = {}
        if self.supervisor is not None:
            self.supervisor.poll()
            states = self.supervisor.sessions()
        # say why a session is closed on the BGPPeer, not only in the log
        for name, (reason, since) in {**self._closed, **self.bfd.closed()}.items():
            if name in self._selected and name not in states:
                states[name] = SessionState("Idle", since, reason)
        if not states:
            return
        now = time.monotonic()
        due = now >= self._next_report
        for name, state in states.items():
            # a session that is not up announces nothing, whatever is waiting for it
            prefixes = len(self._routes.get(name, ())) if state.state == "Established" else 0
            SESSION_UP.labels(name, self.node).set(1 if state.state == "Established" else 0)
            PREFIXES.labels(name, self.node).set(prefixes)
            bfd = self.bfd.status(name)
            if due or self._reported.get(name) != (state.state, state.since, prefixes, bfd):
                self._report(name, state, prefixes, bfd)
        if due:
            self._next_report = now + REPORT_EVERY

    def _report(
        self, peer: str, state: SessionState, prefixes: int, bfd: tuple[str, str] | None = None
    ) -> None:
        self._reported[peer] = (state.state, state.since, prefixes, bfd)
        selected = self._selected.get(peer, ())
        self._writer.submit(lambda: self._write_report(peer, state, prefixes, bfd, selected))

    def _write_report(
        self,
        peer: str,
        state: SessionState,
        prefixes: int,
        bfd: tuple[str, str] | None,
        selected: Sequence[str],
    ) -> None:
        entry: dict[str, Any] = {
            "node": self.node,
            "state": state.state if state.state in FSM_STATES else "Unknown",
            "since": datetime.fromtimestamp(state.since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "message": state.reason[:1024],
            "announcedPrefixes": prefixes,
        }
        if bfd is not None:  # the BFD session under it: its state, its timers or why it is not Up
            entry["bfd"], entry["bfdMessage"] = bfd[0], bfd[1][:1024]
        try:
            self._apply_entries(peer, [entry], selected)
            if state.state == "Established" or state.reason:
                log.info("BGP session %s from %s: %s %s", peer, self.node, state.state, state.reason)
        except API_ERRORS as error:
            self._next_report = time.monotonic() + 5.0  # report everything again in 5 s, not every tick
            log.warning("reporting BGP session %s: %s", peer, error)

    def _forget(self, peer: str, selected: Sequence[str]) -> None:
        """Remove this node's entry from a BGPPeer that no longer selects it (applying no entry under this
        node's field manager deletes the one it owned) and refresh the counts."""
        self._reported.pop(peer, None)
        with contextlib.suppress(KeyError):
            SESSION_UP.remove(peer, self.node)
            PREFIXES.remove(peer, self.node)
        self._writer.submit(lambda: self._write_forget(peer, selected))

    def _write_forget(self, peer: str, selected: Sequence[str]) -> None:
        try:
            self._apply_entries(peer, [], selected)
        except API_ERRORS as error:
            log.warning("removing node %s from BGPPeer %s: %s", self.node, peer, error)

    def _apply_entries(self, peer: str, entries: list[dict[str, Any]], selected: Sequence[str]) -> None:
        """Server-side apply this node's entries of ``status.nodes`` (its own field manager: no entry
        removes the one it owned), then bring the peer's counts up to date from what the server holds."""
        path = PEERS_PATH.format(namespace=self.namespace, name=peer)
        manifest = {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "BGPPeer",
            "metadata": {"name": peer, "namespace": self.namespace},
            "status": {"nodes": entries},
        }
        status = (
            self.kube.apply(path, manifest, field_manager=f"ironlb-speaker-{self.node}").get("status") or {}
        )
        summary = peer_summary(selected, status.get("nodes") or [])
        if any(status.get(key) != value for key, value in summary.items()):
            self.kube.merge_patch(path, {"status": summary})

    def stop(self) -> None:
        """Withdraw every route and close the sessions (a graceful stop: routers drop this next hop now)."""
        self.bfd.stop()  # AdminDown first: the peers' BFD must not count a stop as a failure
        if self.supervisor is not None:
            self.supervisor.stop()
            for name in self._selected:
                self._report(name, SessionState("Idle", time.time(), "speaker stopped"), 0)
        self._writer.close(timeout=2.0)
