"""BFD over UDP (RFC 5881 single hop, RFC 5883 multihop): the sockets and the clock around ``BfdSession``.

One thread runs a selector loop. Each (local address, port) gets one receive socket bound to 3784 (single
hop) or 4784 (multihop) that reports the received TTL / hop limit, so single-hop packets that did not
arrive with 255 (a forged packet from farther away) are dropped, and multihop ones below the profile's
``minimum_ttl``. Each session sends from its own socket on a random source port in 49152-65535 with TTL
255, as RFC 5881 asks. Packets are matched to sessions by Your Discriminator, or by source address while
the peer does not know ours yet. Callbacks run on the loop thread, without the lock held.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import ipaddress
import logging
import random
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .packet import ControlPacket, State, decode
from .session import Actions, BfdProfile, BfdSession, StateChange

SINGLE_HOP_PORT = 3784
MULTIHOP_PORT = 4784
SOURCE_PORTS = (49152, 65535)
TTL = 255
_IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux value; Python does not export it
_TOS_INTERNET_CONTROL = 0xC0
_RETIRE_MIN = 1.0  # an AdminDown session keeps telling the peer for at least this long (seconds)
_MAX_WAIT = 1.0

log = logging.getLogger(__name__)
OnChange = Callable[[str, StateChange], None]


def _address(text: str) -> str:
    """One spelling per address, so a peer given as ``2001:DB8::1`` matches the packet's source."""
    return str(ipaddress.ip_address(text))


def _sockaddr(address: str, port: int) -> tuple[int, tuple[object, ...]]:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    info = socket.getaddrinfo(address, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    return family, tuple(info[0][4])


@dataclass
class _Peer:
    address: str
    local: str
    multihop: bool
    session: BfdSession
    tx: socket.socket
    destination: tuple[object, ...]
    on_change: OnChange | None
    retire_at: float | None = None

    @property
    def port(self) -> int:
        return MULTIHOP_PORT if self.multihop else SINGLE_HOP_PORT


class BfdTransport:
    """Owns the sockets and one loop thread; the API may be called from any thread."""

    def __init__(self, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._rng = rng or random.SystemRandom()
        self._clock = clock
        self._lock = threading.RLock()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._receivers: dict[tuple[str, int], socket.socket] = {}
        self._peers: dict[str, _Peer] = {}
        self._retiring: list[_Peer] = []
        self._by_discriminator: dict[int, _Peer] = {}
        self._stopping = False
        self.drops: collections.Counter[str] = collections.Counter()
        self._thread = threading.Thread(target=self._run, name="bfd-transport", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------------------- API
    def add_session(
        self,
        peer: str,
        local: str,
        profile: BfdProfile | None = None,
        on_change: OnChange | None = None,
        multihop: bool = False,
    ) -> None:
        peer, local = _address(peer), _address(local)
        with self._lock:
            if self._stopping:
                raise RuntimeError("transport stopped")
            if peer in self._peers:
                raise ValueError(f"a BFD session to {peer} exists")
            port = MULTIHOP_PORT if multihop else SINGLE_HOP_PORT
            try:
                self._receiver(local, port)
                family, destination = _sockaddr(peer, port)
                sender = self._sender(family, local)
            except OSError:
                self._release_receivers()
                raise
            discriminator = self._free_discriminator()
            session = BfdSession(discriminator, profile or BfdProfile(), self._clock(), self._rng.random)
            entry = _Peer(peer, local, multihop, session, sender, destination, on_change)
            self._peers[peer] = entry
            self._by_discriminator[discriminator] = entry
        self._wake()

    def update_profile(self, peer: str, profile: BfdProfile) -> None:
        """New timers or roles for a running session: a Poll Sequence, not a flap (RFC 5880 6.8.3)."""
        with self._lock:
            entry = self._peers.get(_address(peer))
            if entry is None:
                raise KeyError(f"no BFD session to {peer}")
            self._send(entry, entry.session.update_profile(profile, self._clock()).packets)
        self._wake()

    def remove_session(self, peer: str) -> None:
        """AdminDown, sent at once and then periodically for a while, then the session is gone."""
        with self._lock:
            entry = self._peers.pop(_address(peer), None)
            if entry is None:
                return
            now = self._clock()
            self._send(entry, entry.session.admin_down(now).packets)
            entry.retire_at = now + max(_RETIRE_MIN, entry.session.detection_time or 0.0)
            self._retiring.append(entry)
        self._wake()

    def state(self, peer: str) -> State | None:
        with self._lock:
            entry = self._peers.get(_address(peer))
            return entry.session.state if entry else None

    def detection_time(self, peer: str) -> float | None:
        with self._lock:
            entry = self._peers.get(_address(peer))
            return entry.session.detection_time if entry else None

    def stop(self, graceful: bool = True) -> None:
        """Tell every peer AdminDown (unless not ``graceful``), end the thread and close every socket."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            if graceful:
                now = self._clock()
                for entry in self._peers.values():
                    self._send(entry, entry.session.admin_down(now).packets)
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        with self._lock:
            for entry in [*self._peers.values(), *self._retiring]:
                entry.tx.close()
            for receiver in self._receivers.values():
                receiver.close()
            self._peers.clear()
            self._retiring.clear()
            self._by_discriminator.clear()
            self._receivers.clear()
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    # ------------------------------------------------------------------------------------------ sockets
    def _receiver(self, local: str, port: int) -> None:
        if (local, port) in self._receivers:
            return
        family, address = _sockaddr(local, port)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
            sock.bind(address)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._receivers[(local, port)] = sock
        self._selector.register(sock, selectors.EVENT_READ, (sock, port))

    def _sender(self, family: int, local: str) -> socket.socket:
        """A socket of our own on a free port of 49152-65535, sending with TTL / hop limit 255."""
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, TTL)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _TOS_INTERNET_CONTROL)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TTL)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _TOS_INTERNET_CONTROL)
            for _ in range(64):
                address = _sockaddr(local, self._rng.randint(*SOURCE_PORTS))[1]
                try:
                    sock.bind(address)
                    break
                except OSError as error:
                    if error.errno != errno.EADDRINUSE:
                        raise
            else:
                raise OSError(errno.EADDRINUSE, "no free BFD source port")
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _release_receivers(self) -> None:
        used = {(entry.local, entry.port) for entry in [*self._peers.values(), *self._retiring]}
        for key in [key for key in self._receivers if key not in used]:
            sock = self._receivers.pop(key)
            self._selector.unregister(sock)
            sock.close()

    def _free_discriminator(self) -> int:
        while True:
            candidate = self._rng.randint(1, 0xFFFFFFFF)
            if candidate not in self._by_discriminator:
                return candidate

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _send(self, entry: _Peer, packets: Iterable[ControlPacket]) -> None:
        for packet in packets:
            try:
                entry.tx.sendto(packet.encode(), entry.destination)
            except OSError as error:
                self.drops["send error"] += 1
                log.debug("BFD send to %s failed: %s", entry.address, error)

    # --------------------------------------------------------------------------------------------- loop
    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                timeout = self._timeout(self._clock())
            events = self._selector.select(timeout)
            calls: list[tuple[OnChange, str, StateChange]] = []
            with self._lock:
                if self._stopping:
                    return
                try:
                    self._process(events, calls)
                except Exception:  # a bug must not stop detection for every other session
                    log.exception("BFD loop iteration failed")
            for callback, peer, change in calls:
                try:
                    callback(peer, change)
                except Exception:
                    log.exception("BFD state callback for %s failed", peer)

    def _process(
        self, events: list[tuple[selectors.SelectorKey, int]], calls: list[tuple[OnChange, str, StateChange]]
    ) -> None:
        now = self._clock()
        for key, _ in events:
            if key.fileobj is self._wake_r:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            else:
                sock, port = key.data
                self._read(sock, port, now, calls)
        self._tick(now, calls)

    def _timeout(self, now: float) -> float:
        deadlines = [_MAX_WAIT + now]
        for entry in [*self._peers.values(), *self._retiring]:
            deadline = entry.session.next_deadline()
            if deadline is not None:
                deadlines.append(deadline)
            if entry.retire_at is not None:
                deadlines.append(entry.retire_at)
        return max(0.0, min(deadlines) - now)

    def _read(
        self,
        sock: socket.socket,
        port: int,
        now: float,
        calls: list[tuple[OnChange, str, StateChange]],
    ) -> None:
        for _ in range(64):  # bounded, so one busy socket cannot starve the timers
            try:
                data, ancillary, _flags, source = sock.recvmsg(128, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. a queued ICMP error: the loop must live on
                self.drops["receive error"] += 1
                log.debug("BFD receive failed: %s", error)
                return
            ttl = None
            for level, kind, value in ancillary:
                if (level, kind) in (
                    (socket.IPPROTO_IP, socket.IP_TTL),
                    (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT),
                ):
                    ttl = int.from_bytes(value[:4], sys.byteorder)
            self._handle(data, _address(source[0]), ttl, port, now, calls)

    def _handle(
        self,
        data: bytes,
        source: str,
        ttl: int | None,
        port: int,
        now: float,
        calls: list[tuple[OnChange, str, StateChange]],
    ) -> None:
        multihop = port == MULTIHOP_PORT
        if ttl is None or (not multihop and ttl != TTL):
            self.drops["ttl"] += 1
            return
        packet = decode(data)
        if packet is None:
            self.drops["malformed"] += 1
            return
        if packet.your_discriminator:
            entry = self._by_discriminator.get(packet.your_discriminator)
        else:
            entry = self._peers.get(source)
        if entry is None or entry.address != source or entry.multihop != multihop:
            self.drops["no session"] += 1
            return
        if multihop and ttl < entry.session.profile.minimum_ttl:
            self.drops["ttl"] += 1
            return
        self._apply(entry, entry.session.receive(packet, now), calls)

    def _tick(self, now: float, calls: list[tuple[OnChange, str, StateChange]]) -> None:
        for entry in [*self._peers.values(), *self._retiring]:
            deadline = entry.session.next_deadline()
            if deadline is not None and deadline <= now:
                self._apply(entry, entry.session.tick(now), calls)
        retired = [
            entry for entry in self._retiring if entry.retire_at is not None and entry.retire_at <= now
        ]
        for entry in retired:
            self._retiring.remove(entry)
            self._by_discriminator.pop(entry.session.local_discriminator, None)
            entry.tx.close()
        if retired:
            self._release_receivers()

    def _apply(self, entry: _Peer, actions: Actions, calls: list[tuple[OnChange, str, StateChange]]) -> None:
        self._send(entry, actions.packets)
        if entry.on_change is not None and entry.retire_at is None:
            calls.extend((entry.on_change, entry.address, change) for change in actions.changes)
