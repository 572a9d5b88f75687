"""The client side of the Layer 2 benchmarks, shared by the ARP and NDP probes and watchers: ask on a raw
socket, then time the answers (latency, flood rate) or follow which MAC gives them (failover).

Only the frames differ between IPv4 and IPv6, so a ``Family`` carries its own builder and parser and the
loops here stay protocol-blind. Standard library only: it runs inside the client's network namespace.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

Answer = Callable[[bytes], str | None]
"""The MAC an answer frame announces, or None for any other frame."""


@dataclass(frozen=True)
class Family:
    """How one protocol asks for an IP and reads the answer."""

    ethertype: int
    build: Callable[[bytes, str, str], bytes]
    """(our MAC, our IP, target IP) -> the query frame."""
    parse: Callable[[bytes, bytes], str | None]
    """(frame, target IP packed) -> the MAC the frame announces for the target, else None."""

    def query_and_answer(self, our_mac: bytes, our_ip: str, target: str) -> tuple[bytes, Answer]:
        """The query frame for ``target`` and a parser bound to it."""
        wanted = ipaddress.ip_address(target).packed
        return self.build(our_mac, our_ip, target), lambda frame: self.parse(frame, wanted)


class ProbeResult(TypedDict):
    """What a probe prints as JSON for the benchmark that started it."""

    latencies: list[float]
    lost: int
    flood_sent: int
    flood_received: int
    flood_seconds: float


def mac_text(raw: bytes) -> str:
    """``02:00:...`` for six raw bytes."""
    return ":".join(f"{b:02x}" for b in raw)


def open_socket(ethertype: int, interface: str = "eth0") -> tuple[socket.socket, bytes]:
    """A raw socket on ``interface`` seeing ``ethertype`` frames, and the interface's MAC."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    sock.bind((interface, ethertype))
    mac = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    return sock, bytes.fromhex(mac.replace(":", ""))


def answers_waiting(sock: socket.socket, answer: Answer) -> int:
    """Drain a non-blocking socket, counting the answers."""
    count = 0
    while True:
        try:
            count += answer(sock.recv(2048)) is not None
        except BlockingIOError:
            return count


def time_answers(
    sock: socket.socket, query: bytes, answer: Answer, count: int, timeout: float = 0.5
) -> tuple[list[float], int]:
    """Ask ``count`` times, one at a time: the seconds until each answer, and how many got none (a query
    counts as lost when no frame at all arrives for ``timeout``)."""
    sock.settimeout(timeout)
    latencies: list[float] = []
    lost = 0
    for _ in range(count):
        sent = time.perf_counter()
        sock.send(query)
        while True:
            try:
                reply = sock.recv(2048)
            except TimeoutError:
                lost += 1
                break
            if answer(reply) is not None:
                latencies.append(time.perf_counter() - sent)
                break
    return latencies, lost


def flood(
    sock: socket.socket, query: bytes, answer: Answer, seconds: float, settle: float = 0.2
) -> tuple[int, int]:
    """Ask as fast as the socket takes it for ``seconds``: (queries sent, answers received), counting the
    answers still in flight for ``settle`` seconds after the last query."""
    sock.setblocking(False)
    sent = received = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            sock.send(query)
            sent += 1
        except BlockingIOError:
            pass
        received += answers_waiting(sock, answer)
    time.sleep(settle)
    return sent, received + answers_waiting(sock, answer)


def watch(
    sock: socket.socket, query: bytes, answer: Answer, seconds: float, every: float = 0.01
) -> list[tuple[float, str]]:
    """Ask every ``every`` seconds for ``seconds``: each change of the answering MAC with its wall-clock
    time (the first answer counts as a change)."""
    sock.setblocking(False)
    changes: list[tuple[float, str]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.send(query)
        deadline = time.monotonic() + every
        while time.monotonic() < deadline:
            try:
                reply = sock.recv(2048)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            mac = answer(reply)
            if mac is not None and (not changes or changes[-1][1] != mac):
                changes.append((time.time(), mac))
    return changes


# classic BPF: only answers reach the socket (ARP replies; ICMPv6 Neighbor Advertisements), so a probe
# sharing its segment with a flood of requests does not spend its time reading them
_ARP_REPLIES = [(0x28, 0, 0, 20), (0x15, 0, 1, 2), (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0)]
_ADVERTISEMENTS = [
    (0x30, 0, 0, 20),
    (0x15, 0, 3, 58),
    (0x30, 0, 0, 54),
    (0x15, 0, 1, 136),
    (0x06, 0, 0, 0xFFFF),
    (0x06, 0, 0, 0),
]


def answers_only(sock: socket.socket, ethertype: int) -> None:
    program = _ARP_REPLIES if ethertype == 0x0806 else _ADVERTISEMENTS
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code)
    sock.setsockopt(socket.SOL_SOCKET, 26, struct.pack("HL", len(program), ctypes.addressof(buffer)))


def sample(
    sock: socket.socket, query: bytes, answer_mac: Answer, seconds: float, every: float, timeout: float = 0.1
) -> dict[str, object]:
    """Ask every ``every`` seconds for ``seconds``, one query in flight at a time: each answer's latency,
    the queries with no answer within ``timeout``, and how many answers each MAC gave."""
    sock.settimeout(timeout)
    latencies: list[float] = []
    macs: dict[str, int] = {}
    lost = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sent = time.perf_counter()
        sock.send(query)
        while True:
            left = timeout - (time.perf_counter() - sent)
            if left <= 0:
                lost += 1
                break
            sock.settimeout(left)
            try:
                mac = answer_mac(sock.recv(2048))
            except TimeoutError:
                lost += 1
                break
            if mac is not None:
                latencies.append(time.perf_counter() - sent)
                macs[mac] = macs.get(mac, 0) + 1
                break
        time.sleep(max(0.0, every - (time.perf_counter() - sent)))
    return {"latencies": latencies, "lost": lost, "macs": macs}


def sample_main(family: Family, target: str, our_ip: str, seconds: float, every: float) -> None:
    """A sampler's command: say "sampling" once ready, then print ``sample``'s result as JSON."""
    sock, our_mac = open_socket(family.ethertype)
    answers_only(sock, family.ethertype)
    query, answer = family.query_and_answer(our_mac, our_ip, target)
    print("sampling", flush=True)
    print(json.dumps(sample(sock, query, answer, seconds, every)), flush=True)


def probe_main(family: Family, target: str, our_ip: str, count: int, flood_seconds: float) -> None:
    """A probe's command: time ``count`` answers on eth0, flood, print a ``ProbeResult`` as JSON."""
    sock, our_mac = open_socket(family.ethertype)
    query, answer = family.query_and_answer(our_mac, our_ip, target)
    latencies, lost = time_answers(sock, query, answer, count)
    sent, received = flood(sock, query, answer, flood_seconds)
    result: ProbeResult = {
        "latencies": latencies,
        "lost": lost,
        "flood_sent": sent,
        "flood_received": received,
        "flood_seconds": flood_seconds,
    }
    print(json.dumps(result))


def watch_main(family: Family, target: str, our_ip: str, seconds: float) -> None:
    """A watcher's command: say "watching" once ready (the caller waits for it), then print the MAC changes
    as JSON at the end."""
    sock, our_mac = open_socket(family.ethertype)
    query, answer = family.query_and_answer(our_mac, our_ip, target)
    print("watching", flush=True)
    print(json.dumps(watch(sock, query, answer, seconds)), flush=True)
