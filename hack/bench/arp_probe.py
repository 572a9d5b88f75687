"""Runs inside the client namespace: sends ARP requests on eth0 and times the replies (see arp_bench)."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
import time
from pathlib import Path

ETH_P_ARP = 0x0806


def request(our_mac: bytes, our_ip: str, target: str) -> bytes:
    return (
        b"\xff" * 6
        + our_mac
        + struct.pack("!H", ETH_P_ARP)
        + struct.pack(
            "!HHBBH6s4s6s4s",
            1,
            0x0800,
            6,
            4,
            1,
            our_mac,
            ipaddress.IPv4Address(our_ip).packed,
            b"\0" * 6,
            ipaddress.IPv4Address(target).packed,
        )
    )


def is_reply_for(frame: bytes, target: bytes) -> bool:
    return (
        len(frame) >= 42
        and frame[12:14] == b"\x08\x06"
        and frame[20:22] == b"\x00\x02"
        and frame[28:32] == target
    )


def replies_waiting(sock: socket.socket, wanted: bytes) -> int:
    """Drain a non-blocking socket, counting the ARP replies for ``wanted``."""
    count = 0
    while True:
        try:
            count += is_reply_for(sock.recv(2048), wanted)
        except BlockingIOError:
            return count


def main(target: str, our_ip: str, count: int, flood_seconds: float) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind(("eth0", ETH_P_ARP))
    our_mac = bytes.fromhex(Path("/sys/class/net/eth0/address").read_text().strip().replace(":", ""))
    frame, wanted = request(our_mac, our_ip, target), ipaddress.IPv4Address(target).packed
    sock.settimeout(0.5)
    latencies, lost = [], 0
    for _ in range(count):
        sent = time.perf_counter()
        sock.send(frame)
        while True:
            try:
                reply = sock.recv(2048)
            except TimeoutError:
                lost += 1
                break
            if is_reply_for(reply, wanted):
                latencies.append(time.perf_counter() - sent)
                break
    # flood: send as fast as we can for a while, count what comes back
    sock.setblocking(False)
    sent_count = received = 0
    end = time.perf_counter() + flood_seconds
    while time.perf_counter() < end:
        try:
            sock.send(frame)
            sent_count += 1
        except BlockingIOError:
            pass
        received += replies_waiting(sock, wanted)
    time.sleep(0.2)  # the last replies still in flight
    received += replies_waiting(sock, wanted)
    print(
        json.dumps(
            {
                "latencies": latencies,
                "lost": lost,
                "flood_sent": sent_count,
                "flood_received": received,
                "flood_seconds": flood_seconds,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
