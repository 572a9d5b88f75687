"""Runs inside the client namespace: asks who has TARGET every 10 ms and prints, as JSON, each change of
the answering MAC with its wall-clock time (for failover measurements).

Usage (with hack/ on PYTHONPATH): python -m bench.arp_watch TARGET OUR_IP SECONDS
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import time
from pathlib import Path

from bench.arp_probe import ETH_P_ARP, is_reply_for, request


def main(target: str, our_ip: str, seconds: float) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind(("eth0", ETH_P_ARP))
    sock.setblocking(False)
    our_mac = bytes.fromhex(Path("/sys/class/net/eth0/address").read_text().strip().replace(":", ""))
    frame, wanted = request(our_mac, our_ip, target), ipaddress.IPv4Address(target).packed
    changes: list[tuple[float, str]] = []
    end = time.monotonic() + seconds
    print("watching", flush=True)
    while time.monotonic() < end:
        sock.send(frame)
        deadline = time.monotonic() + 0.01
        while time.monotonic() < deadline:
            try:
                reply = sock.recv(2048)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            if is_reply_for(reply, wanted):
                mac = ":".join(f"{b:02x}" for b in reply[22:28])
                if not changes or changes[-1][1] != mac:
                    changes.append((time.time(), mac))
    print(json.dumps(changes), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
