"""Layer 2 mode inside the speaker's loop: heartbeats in and out, the election of each IP's owner (pure), and
the responders that answer ARP/NDP for the IPs this node wins and announce the ones it takes over.

Who announces what is reported (ServiceL2Status objects and an event, ``report``) off the loop, so the loop
never waits for the API server while heartbeats matter most.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ironlb.api.kube import KubeClient
from prometheus_client import Counter, Gauge

from ..settings import SettingsFile
from ..state import Snapshot
from .heartbeat import HeartbeatLoop, HeartbeatSocket, Membership
from .link import LinkWatch
from .ownership import answering_interfaces, l2_owned
from .report import AnnouncementReporter
from .responder import IPAddress
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
    ) -> None:
        self.node, self.primary, self.settings = node, primary, settings
        self.responders = Responders()
        self.responders.get(primary)
        members = Membership(node, timeout=max(0.3, 6 * tick))
        sock = HeartbeatSocket(key, node, settings.current.heartbeat_port)
        self.heartbeats = HeartbeatLoop(sock, members, interval=tick).start()
        self.link = LinkWatch(primary, hold_down=members.timeout)
        self.next_refresh = now + settings.current.gratuitous_refresh_seconds
        self.announced: dict[IPAddress, str] = {}
        self._limited = 0
        self.reporter = AnnouncementReporter(kube, node, namespace, uid_of, stop)

    def step(self, snapshot: Snapshot, now: float) -> None:
        """Answer for exactly the IPs this node wins now (heartbeats come and go on their own thread)."""
        node, config, announcements = self.node, snapshot.config, snapshot.announcements
        self.heartbeats.set_peers(
            [address for name, address in config.node_addresses.items() if name != node]
        )
        owned = (
            l2_owned(node, config, announcements, snapshot.endpoints, self.heartbeats.alive(now))
            if self.link.usable(now)
            else {}
        )
        by_service = {a.service: a for a in announcements}
        interfaces = {
            address: answering_interfaces(node, config, by_service[service], self.primary)
            for address, service in owned.items()
        }
        for responder, address in self.responders.set_owned(interfaces):
            responder.announce(address)
            if self.announced.get(address) != owned[address]:
                log.info("announcing %s (%s) from node %s", address, owned[address], node)
                TAKEOVERS.labels(node=node).inc()
                self.reporter.answering(owned[address], address, tuple(sorted(interfaces[address])))
        for address, service in self.announced.items():
            if owned.get(address) != service:  # released, or now another Service's (shared IPs)
                ANNOUNCING.remove(service, str(address), node)
                self.reporter.released(service, address)
        for address, service in owned.items():
            ANNOUNCING.labels(service, str(address), node).set(1)
        self.announced = dict(owned)
        OWNED.labels(node=node).set(len(owned))
        self._count_unanswered()
        refresh = self.settings.current.gratuitous_refresh_seconds
        if refresh and now >= self.next_refresh:
            for responder, address in self.responders.owned():
                responder.announce(address)  # switches whose tables aged out relearn the port
            self.next_refresh = now + refresh

    def _count_unanswered(self) -> None:
        limited = sum(r.limiter.limited for r in self.responders.by_interface.values())
        if limited > self._limited:
            UNANSWERED.labels(node=self.node).inc(limited - self._limited)
        self._limited = limited  # (lower: a responder was reopened with a fresh count)

    def settings_changed(self, now: float) -> None:
        self.next_refresh = now + self.settings.current.gratuitous_refresh_seconds

    def answer_for(self, seconds: float) -> None:
        self.responders.answer_for(seconds)

    def leave(self, node_addresses: dict[str, str]) -> None:
        """A graceful stop: tell the peers first, so new owners take over without waiting for a timeout."""
        self.heartbeats.leave([a for name, a in node_addresses.items() if name != self.node])

    def close(self) -> None:
        self.heartbeats.stop()
        self.responders.close()
