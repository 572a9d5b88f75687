"""The Layer 2 responder: answers ARP and Neighbor Solicitation for the IPs this node owns, on one interface.

Two raw AF_PACKET sockets stay open for the process's life, each with a classic BPF filter (``filters``)
so the kernel hands over only ARP requests and ICMPv6 Neighbor Solicitations for the owned IPs; for every
owned IPv6 address the socket joins its solicited-node multicast group, so the NIC delivers the
solicitations at all. A flood is bounded twice: a wake-up reads at most ``BUDGET`` frames per socket, and
one requester gets at most its ``ReplyLimiter`` bucket of answers per IP.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .filters import arp_requests, neighbor_solicitations
from .limiter import ReplyLimiter
from .packets import (
    ETH_P_ARP,
    ETH_P_IPV6,
    arp_reply,
    gratuitous_arp,
    neighbor_advertisement,
    parse_arp_request,
    parse_neighbor_solicitation,
    solicited_node_multicast,
)

log = logging.getLogger("ironlb.speaker.l2")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SO_ATTACH_FILTER = 26
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_DROP_MEMBERSHIP = 1, 2
PACKET_MR_MULTICAST = 0
PACKET_OUTGOING = 4

BUDGET = 64  # frames read from one socket per wake-up: a flood cannot keep the loop from its other work
Program = list[tuple[int, int, int, int]]


def _attach_filter(
    sock: socket.socket, program: list[tuple[int, int, int, int]]
) -> ctypes.Array[ctypes.c_char]:
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code)
    sock.setsockopt(
        socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(buffer))
    )
    return buffer  # the kernel copied it; returned only to keep it alive during the call


def _open(interface: str, protocol: int, program: Program) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(protocol))
    _attach_filter(sock, program)
    sock.bind((interface, protocol))
    sock.setblocking(False)
    return sock


def _silent(frame: bytes) -> None:
    return None


class L2Responder:
    def __init__(self, interface: str) -> None:
        self.interface = interface
        self.ifindex = socket.if_nametoindex(interface)
        self.mac = bytes.fromhex(
            Path(f"/sys/class/net/{interface}/address").read_text().strip().replace(":", "")
        )
        # nothing owned yet: the kernel hands over nothing until set_owned says what to answer for
        self.arp = _open(interface, ETH_P_ARP, arp_requests(()))
        self.ndp = _open(interface, ETH_P_IPV6, neighbor_solicitations(()))
        self._owned: frozenset[IPAddress] = frozenset()
        self._announcements: dict[IPAddress, tuple[bytes, ...]] = {}  # built once: refreshes repeat them
        self._groups: dict[bytes, int] = {}  # multicast MAC -> owned IPv6 addresses using it
        self.replies = 0
        self.limiter = ReplyLimiter()
        self._said_unfiltered = False  # the kernel refused an exact filter once (warned once)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.arp, selectors.EVENT_READ, self._arp_answer)
        self._selector.register(self.ndp, selectors.EVENT_READ, self._ndp_answer)

    @property
    def owned(self) -> frozenset[IPAddress]:
        return self._owned

    def _membership(self, mac: bytes, join: bool) -> None:
        request = struct.pack("iHH8s", self.ifindex, PACKET_MR_MULTICAST, 6, mac)
        self.ndp.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP if join else PACKET_DROP_MEMBERSHIP, request)

    def set_owned(self, addresses: Iterable[IPAddress]) -> set[IPAddress]:
        """Answer for exactly these addresses from now on; returns the ones newly owned (to announce)."""
        wanted = frozenset(addresses)
        for address in wanted - self._owned:
            if address.version == 6:
                _, mac = solicited_node_multicast(address)
                if not self._groups.get(mac):
                    self._membership(mac, join=True)
                self._groups[mac] = self._groups.get(mac, 0) + 1
        for address in self._owned - wanted:
            self._announcements.pop(address, None)
            if address.version == 6:
                _, mac = solicited_node_multicast(address)
                self._groups[mac] -= 1
                if not self._groups[mac]:
                    del self._groups[mac]
                    self._membership(mac, join=False)
        added = set(wanted - self._owned)
        if wanted != self._owned:
            self._filter(wanted)
        self._owned = wanted
        return added

    def _filter(self, owned: frozenset[IPAddress]) -> None:
        """Have the kernel hand over only requests for ``owned`` (before they are announced)."""
        v4 = [a for a in owned if isinstance(a, ipaddress.IPv4Address)]
        v6 = [a for a in owned if isinstance(a, ipaddress.IPv6Address)]
        for sock, exact, everything in (
            (self.arp, arp_requests(v4), arp_requests(None)),
            (self.ndp, neighbor_solicitations(v6), neighbor_solicitations(None)),
        ):
            try:
                _attach_filter(sock, exact)
            except OSError as error:  # e.g. ENOMEM: net.core.optmem_max is small on this node
                if not self._said_unfiltered:
                    log.warning(
                        "interface %s: exact request filter refused (%s); reading every request",
                        self.interface,
                        error,
                    )
                self._said_unfiltered = True
                _attach_filter(sock, everything)

    def announce(self, address: IPAddress) -> None:
        """Tell the segment that ``address`` lives here now (gratuitous ARP both ways, or unsolicited NA)."""
        frames = self._announcements.get(address)
        if frames is None:
            frames = (
                tuple(gratuitous_arp(self.mac, address, reply=reply) for reply in (False, True))
                if address.version == 4
                else (neighbor_advertisement(self.mac, address),)
            )
            if address in self._owned:
                self._announcements[address] = frames
        for frame in frames:
            self._send(self.arp if address.version == 4 else self.ndp, frame)

    def _arp_answer(self, frame: bytes) -> bytes | None:
        request = parse_arp_request(frame)
        if request is None or request.target_ip not in self._owned:
            return None
        if not self.limiter.allow(frame[6:12], request.target_ip.packed, time.monotonic()):
            return None
        return arp_reply(self.mac, request.target_ip, request)

    def _ndp_answer(self, frame: bytes) -> bytes | None:
        solicitation = parse_neighbor_solicitation(frame)
        if solicitation is None or solicitation.target not in self._owned:
            return None
        if not self.limiter.allow(frame[6:12], solicitation.target.packed, time.monotonic()):
            return None
        return neighbor_advertisement(
            self.mac, solicitation.target, solicitation.source_mac, solicitation.source_ip
        )

    def _drain(self, sock: socket.socket, answer: Callable[[bytes], bytes | None]) -> None:
        """Answer up to ``BUDGET`` frames waiting on ``sock`` (never our own outgoing ones); the rest wait
        for the next wake-up, or the kernel drops them when the socket's buffer is full."""
        for _ in range(BUDGET):
            try:
                frame, meta = sock.recvfrom(2048)
            except BlockingIOError:
                return
            except OSError as error:  # e.g. ENETDOWN while our link is down: nothing to answer now
                log.debug("receiving on %s: %s", self.interface, error)
                return
            reply = None if meta[2] == PACKET_OUTGOING else answer(frame)
            if reply is not None and self._send(sock, reply):
                self.replies += 1

    def drain(self, sock: socket.socket, answering: bool = True) -> None:
        """Answer what waits on one of this responder's sockets (for callers selecting over many); with
        ``answering`` False, read it and answer nothing."""
        answer = (self._arp_answer if sock is self.arp else self._ndp_answer) if answering else _silent
        self._drain(sock, answer)

    def _send(self, sock: socket.socket, frame: bytes) -> bool:
        try:
            sock.send(frame)
            return True
        except OSError as error:  # the link went down under us; the speaker stops owning IPs meanwhile
            log.debug("sending on %s: %s", self.interface, error)
            return False

    def answer_for(self, seconds: float) -> None:
        """Answer whatever arrives during the next ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            for key, _ in self._selector.select(remaining):
                self._drain(key.fileobj, key.data)  # type: ignore[arg-type]

    def serve(
        self, stop: threading.Event, tick: Callable[[], None] | None = None, interval: float = 0.2
    ) -> None:
        """Answer until ``stop`` is set; ``tick`` runs every ``interval`` seconds (refreshes)."""
        while not stop.is_set():
            self.answer_for(interval)
            if tick is not None:
                tick()

    def close(self) -> None:
        self._selector.close()
        self.arp.close()
        self.ndp.close()
