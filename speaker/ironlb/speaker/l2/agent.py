"""Layer 2 mode inside the speaker's loop: heartbeats in and out, the election of each IP's owner (pure), and
the responders that answer ARP/NDP for the IPs this node wins and announce the ones it takes over. The
heartbeats themselves run in a process of their own (``heartbeat``), which no work of this one can stall.

Who announces what is reported (ServiceL2Status objects and an event, ``report``) off the loop, so the loop
never waits for the API server while heartbeats matter most.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ironlb.api.kube import KubeClient
from prometheus_client import Counter, Gauge

from ..settings import SettingsFile
from ..state import Snapshot
from .heartbeat_process import HeartbeatProcess
from .link import LinkWatch
from .owners import OwnerIndex
from .ownership import answering_interfaces, l2_eligible, owned_ips
from .refresh import SpreadRefresh
from .report import AnnouncementReporter
from .responder import IPAddress, L2Responder
from .responders import Responders

log = logging.getLogger("ironlb.speaker.l2")
OWNED = Gauge("ironlb_speaker_announced_ips", "IPs this node answers ARP/NDP for.", ["node"])
TAKEOVERS = Counter("ironlb_speaker_takeovers", "IPs this node started announcing.", ["node"])
UNANSWERED = Counter(
    "ironlb_speaker_l2_unanswered_requests",
    "ARP/NDP requests for owned IPs left unanswered: their requester asked faster than its rate (a flood).",
    ["node"],
)
ANNOUNCING = Gauge(
    "ironlb_speaker_announcing", "1 for each Service IP this node answers for.", ["service", "ip", "node"]
)


class L2Agent:
    """One node's Layer 2 part: called once per loop tick with the latest snapshot, then serves the sockets
    until the next tick."""

    def __init__(
        self,
        kube: KubeClient,
        node: str,
        namespace: str,
        uid_of: Callable[[str], str | None],
        primary: str,
        key: bytes,
        settings: SettingsFile,
        tick: float,
        stop: threading.Event,
        now: float,
        pace: Callable[[], None] | None = None,
    ) -> None:
        self.node, self.primary, self.settings = node, primary, settings
        self.responders = Responders()
        self.responders.get(primary)
        self.heartbeats = HeartbeatProcess(
            node, settings.current.heartbeat_port, key, interval=tick, timeout=max(0.3, 6 * tick)
        ).start()
        self.link = LinkWatch(primary, hold_down=self.heartbeats.timeout)
        self.refresh = SpreadRefresh[tuple[L2Responder, IPAddress]](
            settings.current.gratuitous_refresh_seconds, tick, now
        )
        self.announced: dict[IPAddress, str] = {}
        self.owners = OwnerIndex()
        self._seen: tuple[int, int, bool] | None = None  # (snapshot, membership, link usable) applied
        self._muted = False  # answering nothing after a stall of the heartbeat loop (see answer_for)
        self._doubted = 0
        self._reassert_at: float | None = None
        self._interfaces: dict[IPAddress, frozenset[str]] = {}
        self._snapshot_version = -1
        self._limited = 0
        self.reporter = AnnouncementReporter(
            kube, node, namespace, uid_of, stop, pace, lambda service, ip: self.announced.get(ip) == service
        )

    def step(self, snapshot: Snapshot, now: float) -> None:
        """Answer for exactly the IPs this node wins now (heartbeats come and go in their own process). Only
        what changed is re-elected; a tick with nothing changed costs nothing per IP."""
        self.heartbeats.loop_ran(now)
        if snapshot.version != self._snapshot_version:
            self._snapshot_version = snapshot.version
            self.heartbeats.set_peers(snapshot.config.node_addresses)
            self.owners.set_eligible(l2_eligible(snapshot.config, snapshot.announcements, snapshot.endpoints))
        membership, alive = self.heartbeats.alive()
        usable = self.link.usable(now)
        if (snapshot.version, membership, usable) != self._seen:
            self._seen = (snapshot.version, membership, usable)
            self.owners.set_alive(alive)
            self._apply(snapshot, owned_ips(self.owners.owned_by(self.node)) if usable else {})
        self._count_unanswered()
        doubted = self.heartbeats.doubted()
        if doubted != self._doubted:  # peers held this node dead: once they have handed back, claim again
            self._doubted, self._reassert_at = doubted, now + self.heartbeats.timeout * 2
        if self._reassert_at is not None and now >= self._reassert_at:
            self._reassert_at = None
            self._reassert()
        muted = not self.heartbeats.may_claim(now)
        if self._muted and not muted:
            # after a stall, peers may have taken this node's IPs and given them back: clients must
            # learn again where they are, all at once
            for responder, address in self.responders.owned():
                responder.announce(address)
        self._muted = muted
        if muted:  # peers may be taking this node's IPs: announcing them would contradict the new owners
            return
        for responder, address in self.refresh.due(now, self.responders.owned):
            if address in responder.owned:  # clients that missed a takeover's announcement learn it
                responder.announce(address)

    def _apply(self, snapshot: Snapshot, owned: dict[IPAddress, str]) -> None:
        """Answer for ``owned`` from now on: announce what is new, release what is gone. Nothing to do
        when the owned IPs and the interfaces they are answered on are those already applied."""
        node, config = self.node, snapshot.config
        by_service = {a.service: a for a in snapshot.announcements}
        interfaces = {
            address: answering_interfaces(node, config, by_service[service], self.primary)
            for address, service in owned.items()
        }
        if owned == self.announced and interfaces == self._interfaces:
            return
        self._interfaces = interfaces
        # what the reporter checks its queue against is set before anything is queued
        before, self.announced = self.announced, dict(owned)
        fresh = self.responders.set_owned(interfaces)
        for responder, address in fresh:  # the clients first: logs, metrics and reports after
            responder.announce(address)
        for _, address in fresh:
            if before.get(address) != owned[address]:
                log.info("announcing %s (%s) from node %s", address, owned[address], node)
                TAKEOVERS.labels(node=node).inc()
                self.reporter.answering(owned[address], address, tuple(sorted(interfaces[address])))
        for address, service in before.items():
            if owned.get(address) != service:  # released, or now another Service's (shared IPs)
                ANNOUNCING.remove(service, str(address), node)
                self.reporter.released(service, address)
        for address, service in owned.items():
            if before.get(address) != service:
                ANNOUNCING.labels(service, str(address), node).set(1)
        OWNED.labels(node=node).set(len(owned))

    def _reassert(self) -> None:
        """Announce every owned IP and report it again: a peer that took it over while this node was held
        dead has deleted its report (or will not, its delete being conditional on naming itself)."""
        for responder, address in self.responders.owned():
            responder.announce(address)
            service = self.announced.get(address)
            if service is not None:
                self.reporter.answering(service, address, tuple(sorted(self._interfaces.get(address, ()))))

    def _count_unanswered(self) -> None:
        limited = sum(r.limiter.limited for r in self.responders.by_interface.values())
        if limited > self._limited:
            UNANSWERED.labels(node=self.node).inc(limited - self._limited)
        self._limited = limited  # (lower: a responder was reopened with a fresh count)

    def settings_changed(self, now: float) -> None:
        period = self.settings.current.gratuitous_refresh_seconds
        if period != self.refresh.period:
            self.refresh.set_period(period, now)

    def answer_for(self, seconds: float) -> None:
        """Answer ARP/NDP meanwhile, but not once this node's loop has stalled long enough for its peers
        to take over: a late answer would contradict the new owner's."""
        # a report from the heartbeat process (a peer's death) ends the wait: its IPs are taken at once
        self.responders.wake_on(self.heartbeats.news())
        self.responders.answer_for(seconds, lambda: self.heartbeats.may_claim(time.monotonic()))

    def leave(self) -> None:
        """A graceful stop: tell the peers first, so new owners take over without waiting for a timeout."""
        self.heartbeats.leave()

    def close(self) -> None:
        self.heartbeats.stop()
        self.responders.close()
