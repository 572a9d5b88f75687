"""Runs inside the client namespace: solicits TARGET every 10 ms and prints, as JSON, each change of the
advertised MAC with its wall-clock time (the IPv6 twin of arp_watch, for failover measurements).
Usage (with hack/ on PYTHONPATH): python -m bench.ndp_watch TARGET OUR_IP SECONDS
"""

from __future__ import annotations

import ipaddress
import json
import sys
import time

from bench.ndp_probe import advertised_mac, open_socket, solicitation


def main(target: str, our_ip: str, seconds: float) -> None:
    sock, our_mac = open_socket()
    sock.setblocking(False)
    frame, wanted = solicitation(our_mac, our_ip, target), ipaddress.IPv6Address(target).packed
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
            mac = advertised_mac(reply, wanted)
            if mac is not None and (not changes or changes[-1][1] != mac):
                changes.append((time.time(), mac))
    print(json.dumps(changes), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
