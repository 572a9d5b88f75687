"""Runs inside the client namespace: sends ARP requests on eth0 and times the replies (see arp_bench).
Frames are built here with struct, independently of the speaker's own code, so the probe checks the speaker
rather than agreeing with it.

Usage (with hack/ on PYTHONPATH): python -m bench.arp_probe TARGET OUR_IP COUNT FLOOD_SECONDS
"""

from __future__ import annotations

import ipaddress
import struct
import sys

from bench.l2probe import Family, mac_text, probe_main

ETH_P_ARP = 0x0806


def request(our_mac: bytes, our_ip: str, target: str) -> bytes:
    """A broadcast ARP request for ``target``, as a host's kernel sends it."""
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


def replied_mac(frame: bytes, target: bytes) -> str | None:
    """The sender MAC of an ARP reply for ``target`` (4 bytes), or None for any other frame."""
    if (
        len(frame) >= 42
        and frame[12:14] == b"\x08\x06"
        and frame[20:22] == b"\x00\x02"
        and frame[28:32] == target
    ):
        return mac_text(frame[22:28])
    return None


ARP = Family(ETH_P_ARP, request, replied_mac)

if __name__ == "__main__":
    probe_main(ARP, sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
