"""Speakers watch each other directly with authenticated UDP heartbeats, so a dead owner is replaced in well
under a second without waiting for the API server (node leases take 40 s).

Each speaker sends ``node|sequence|time`` signed with HMAC-SHA256 (key from a Secret shared by the
speakers) to every other node every ``interval``; a node is alive while its last valid heartbeat is younger
than ``timeout``. Forged, replayed or stale messages are ignored. ``Membership`` is pure; the socket code
only moves bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("ironlb.speaker.l2")
_HEADER = struct.Struct("!QdBH")  # sequence, sender's wall clock, leaving flag, length of the node name
MAC_SIZE = 32
MAX_CLOCK_SKEW = 5.0  # seconds a heartbeat's timestamp may differ from ours (replay window)


def encode(key: bytes, node: str, sequence: int, sent_at: float, leaving: bool = False) -> bytes:
    """A signed heartbeat; ``leaving`` says the sender is stopping, so peers take over at once."""
    name = node.encode()
    body = _HEADER.pack(sequence, sent_at, int(leaving), len(name)) + name
    return body + hmac.new(key, body, hashlib.sha256).digest()


def decode(key: bytes, message: bytes) -> tuple[str, int, float, bool] | None:
    """(node, sequence, sent_at, leaving) of a genuine heartbeat, None for anything else."""
    if len(message) < _HEADER.size + MAC_SIZE:
        return None
    body, mac = message[:-MAC_SIZE], message[-MAC_SIZE:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    sequence, sent_at, leaving, length = _HEADER.unpack_from(body)
    if len(body) != _HEADER.size + length:
        return None
    return body[_HEADER.size :].decode(errors="replace"), sequence, sent_at, bool(leaving)


@dataclass
class Membership:
    """Who is alive, from the heartbeats received (pure: time is passed in)."""

    me: str
    timeout: float = 0.3
    _last_seen: dict[str, float] = field(default_factory=dict)
    _last_sequence: dict[str, tuple[float, int]] = field(default_factory=dict)  # node -> (sent_at, sequence)

    def receive(
        self, node: str, sequence: int, sent_at: float, leaving: bool, now: float, wall_now: float
    ) -> bool:
        """Record a genuine heartbeat; False when it is a replay, out of order, or too far off in time.
        A leaving heartbeat marks the node dead at once (a graceful stop hands over without a timeout)."""
        if node == self.me or abs(wall_now - sent_at) > MAX_CLOCK_SKEW:
            return False
        previous = self._last_sequence.get(node)
        if previous is not None and (sent_at, sequence) <= previous:
            return False
        self._last_sequence[node] = (sent_at, sequence)
        if leaving:
            self._last_seen.pop(node, None)
        else:
            self._last_seen[node] = now
        return True

    def alive(self, now: float) -> set[str]:
        """Nodes heard from within ``timeout``, and always this node itself."""
        return {self.me} | {node for node, seen in self._last_seen.items() if now - seen <= self.timeout}


class HeartbeatSocket:
    """One UDP socket for sending and receiving heartbeats on the node network."""

    def __init__(self, key: bytes, node: str, port: int, bind: str = "::") -> None:
        self.key, self.node, self.port = key, node, port
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 peers as mapped addresses
        self.sock.bind((bind, port))
        self.sock.setblocking(False)
        self.sequence = 0

    def send(self, peers: list[str], leaving: bool = False) -> None:
        self.sequence += 1
        message = encode(self.key, self.node, self.sequence, time.time(), leaving)
        for address in peers:
            target = f"::ffff:{address}" if ":" not in address else address
            try:
                self.sock.sendto(message, (target, self.port))
            except OSError:
                continue  # an unreachable peer is simply not alive

    def receive_all(self, membership: Membership) -> None:
        while True:
            try:
                message, _ = self.sock.recvfrom(512)
            except BlockingIOError:
                return
            except OSError:  # an ICMP error queued on the socket, a link going down: next round
                return
            decoded = decode(self.key, message)
            if decoded is not None:
                membership.receive(*decoded, now=time.monotonic(), wall_now=time.time())

    def close(self) -> None:
        self.sock.close()


class HeartbeatLoop:
    """Heartbeats on a thread of their own: sent every ``interval`` and read as they arrive, whatever the
    responders are doing. A flood of ARP requests keeps the main loop busy; it must not make this node look
    dead to its peers, nor its peers look dead to it (either would move IPs: a false takeover)."""

    def __init__(self, sock: HeartbeatSocket, membership: Membership, interval: float) -> None:
        self.sock, self.membership, self.interval = sock, membership, interval
        self._lock = threading.Lock()
        self._peers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)

    def start(self) -> HeartbeatLoop:
        self._thread.start()
        return self

    def set_peers(self, peers: list[str]) -> None:
        with self._lock:
            self._peers = list(peers)

    def alive(self, now: float) -> set[str]:
        with self._lock:
            return self.membership.alive(now)

    def leave(self, peers: list[str]) -> None:
        """A graceful stop: the loop ends, and a last heartbeat says so."""
        self._end()
        self.sock.send(peers, leaving=True)

    def stop(self) -> None:
        self._end()
        self.sock.close()

    def _end(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(1.0)

    def _run(self) -> None:
        """Never ends before ``stop``: a thread that died would make this node look dead to its peers."""
        next_send = time.monotonic()
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_send:
                    with self._lock:
                        peers = list(self._peers)
                    self.sock.send(peers)
                    next_send = now + self.interval
                wait = max(0.0, next_send - time.monotonic())
                ready, _, _ = select.select([self.sock.sock], [], [], wait)
                if ready:
                    with self._lock:
                        self.sock.receive_all(self.membership)
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("heartbeats")
                time.sleep(self.interval)
