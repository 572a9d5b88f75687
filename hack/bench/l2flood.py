"""Runs inside a lab namespace: floods ARP requests or Neighbor Solicitations at one IP, paced to a rate,
for a bounded time, from one made-up source MAC (locally administered) on eth0. Prints what it sent as JSON.

Usage (with hack/ on PYTHONPATH): python -m bench.l2flood FAMILY TARGET OUR_IP RATE SECONDS
Bounded in count (RATE x SECONDS) and time; stops by itself. Frames are built by the probes' own code.
"""

from __future__ import annotations

import json
import socket
import sys
import time

from bench.arp_probe import ETH_P_ARP, request
from bench.ndp_probe import ETH_P_IPV6, solicitation

FLOODER_MAC = bytes.fromhex("02005e10ff01")  # locally administered: no real NIC has it
MAX_RATE, MAX_SECONDS = 200_000, 120.0
SLICE = 0.002  # frames are sent in bursts every 2 ms, so the rate holds without a busy loop


def flood(family: int, target: str, our_ip: str, rate: int, seconds: float) -> dict[str, float]:
    rate, seconds = min(rate, MAX_RATE), min(seconds, MAX_SECONDS)
    ethertype = ETH_P_ARP if family == 4 else ETH_P_IPV6
    frame = request(FLOODER_MAC, our_ip, target) if family == 4 else solicitation(FLOODER_MAC, our_ip, target)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    sock.bind(("eth0", ethertype))
    sent, began = 0, time.monotonic()
    try:
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(due):
                try:
                    sock.send(frame)
                except BlockingIOError:  # the qdisc is full: the rest of this slice is lost
                    break
                sent += 1
            time.sleep(SLICE)
    finally:
        sock.close()
    took = time.monotonic() - began
    return {"sent": sent, "seconds": round(took, 2), "rate": round(sent / took)}


if __name__ == "__main__":
    family, target, our_ip, rate, seconds = sys.argv[1:6]
    print(json.dumps(flood(int(family), target, our_ip, int(rate), float(seconds))), flush=True)
