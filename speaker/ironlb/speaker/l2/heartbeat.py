"""Speakers watch each other directly, so a dead owner is replaced in well under a second without waiting for
the API server (node leases take 40 s). Who talks to whom, and what a message means, is ``membership`` (pure);
this module only moves its messages over UDP, on a thread of its own.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
import uuid
from pathlib import Path

from prometheus_client import Counter

from .membership import Membership, Outgoing
from .wire import decode, encode

log = logging.getLogger("ironlb.speaker.l2")
STALLS = Counter(
    "ironlb_speaker_heartbeat_stalls",
    "Times this speaker's heartbeat loop did not run for long enough that peers may have taken over.",
)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> bytes:
    """The kernel's boot id: with CLOCK_MONOTONIC, a stamp that only grows while this node runs."""
    try:
        return uuid.UUID(BOOT_ID.read_text().strip()).bytes
    except (OSError, ValueError):
        return uuid.uuid4().bytes  # no /proc: a restart then looks like a reboot to the peers


class HeartbeatSocket:
    """One UDP socket on the node network; datagrams in and out, nothing else."""

    def __init__(self, port: int, bind: str = "::") -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 peers as mapped addresses
        self.sock.bind((bind, port))
        self.sock.setblocking(False)

    def send(self, data: bytes, addresses: list[str]) -> None:
        for address in addresses:
            target = f"::ffff:{address}" if ":" not in address else address
            try:
                self.sock.sendto(data, (target, self.port))
            except OSError:
                continue  # an unreachable peer is simply not heard from

    def receive_all(self, limit: int = 256) -> list[bytes]:
        received: list[bytes] = []
        while len(received) < limit:
            try:
                received.append(self.sock.recv(2048))
            except BlockingIOError:
                break
            except OSError:  # an ICMP error queued on the socket, a link going down: next round
                break
        return received

    def close(self) -> None:
        self.sock.close()


class HeartbeatLoop:
    """Membership on a thread of its own: ticked every quarter of an interval and fed messages as they
    arrive, whatever the responders or the API are doing. A busy main loop must not make this node look
    dead to its peers, nor its peers look dead to it (either would move IPs: a false takeover)."""

    def __init__(self, sock: HeartbeatSocket, membership: Membership, key: bytes) -> None:
        self.sock, self.membership, self.key = sock, membership, key
        self._lock = threading.Lock()
        self._addresses: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)
        self._logged_version, self._dead = -1, frozenset[str]()

    def start(self) -> HeartbeatLoop:
        self._thread.start()
        return self

    def set_peers(self, addresses: dict[str, str]) -> None:
        """Every node's address (from the published configuration)."""
        with self._lock:
            if addresses != self._addresses:
                self._addresses = dict(addresses)
                self.membership.configure(addresses)

    def alive(self) -> tuple[int, frozenset[str]]:
        """(version, live nodes): the version changes whenever the live nodes do."""
        with self._lock:
            return self.membership.version, self.membership.alive()

    def doubted(self) -> int:
        """How many down reports on this node its peers have sent (each may have moved its IPs)."""
        return self.membership.doubted

    def may_claim(self, now: float) -> bool:
        """Asked on every wake-up of the responders: two floats read, no lock to wait for."""
        return self.membership.may_claim(now)

    def leave(self) -> None:
        """A graceful stop: the loop ends, and a goodbye goes to every node."""
        self._end()
        with self._lock:
            outgoing = self.membership.leave(time.monotonic_ns())
        self._send(outgoing)

    def stop(self) -> None:
        self._end()
        self.sock.close()

    def _end(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(1.0)

    def _send(self, outgoing: Outgoing) -> None:
        """Each message on its own: one that cannot be sent must not silence the heartbeats after it."""
        for nodes, message in outgoing:
            addresses = [self._addresses[node] for node in nodes if node in self._addresses]
            try:
                self.sock.send(encode(self.key, message), addresses)
            except Exception:
                log.exception("sending %s", message)

    def _log_changes(self) -> None:
        """Who this node holds dead or alive again, when that changes: the first thing to read after a
        takeover nobody expected."""
        version = self.membership.version
        if version == self._logged_version:
            return
        with self._lock:
            version, alive = self.membership.version, self.membership.alive()
        configured = set(self._addresses)
        dead = frozenset(configured - alive - {self.membership.me})
        if self._logged_version >= 0:
            for node in sorted(dead - self._dead):
                log.info("node %s held dead (silent past %.0f ms, as its watchers report)", node,
                         self.membership.timeout * 1000)  # fmt: skip
            for node in sorted(self._dead - dead):
                log.info("node %s alive again", node)
        self._logged_version, self._dead = version, dead

    def _run(self) -> None:
        """Never ends before ``stop``: a thread that died would make this node look dead to its peers."""
        pause = self.membership.interval / 4
        while not self._stop.is_set():
            try:
                with self._lock:
                    outgoing = self.membership.tick(time.monotonic(), time.monotonic_ns())
                    stalls, self.membership.stalls = self.membership.stalls, []
                for gap in stalls:
                    STALLS.inc()
                    log.warning(
                        "this speaker's heartbeat loop stalled for %.0f ms: it answers nothing until its "
                        "peers have heard it again",
                        gap * 1000,
                    )
                self._send(outgoing)
                ready, _, _ = select.select([self.sock.sock], [], [], pause)
                if ready:
                    messages = [m for data in self.sock.receive_all() if (m := decode(self.key, data))]
                    with self._lock:
                        now = time.monotonic()
                        for message in messages:
                            self.membership.receive(message, now)
                self._log_changes()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("heartbeats")
                time.sleep(pause)
