"""Runs inside the client namespace: sends IPv6 Neighbor Solicitations on eth0 and times the Neighbor
Advertisements (see ndp_bench). Frames are built here with struct, independently of the speaker's own code,
so the probe checks the speaker rather than agreeing with it.

Usage (with hack/ on PYTHONPATH): python -m bench.ndp_probe TARGET OUR_IP COUNT FLOOD_SECONDS
"""

from __future__ import annotations

import ipaddress
import struct
import sys

from bench.l2probe import Family, mac_text, probe_main

ETH_P_IPV6 = 0x86DD
ICMPV6 = 58
SOLICITATION, ADVERTISEMENT = 135, 136


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def solicitation(our_mac: bytes, our_ip: str, target: str) -> bytes:
    """A multicast Neighbor Solicitation for ``target`` (to its solicited-node group), with our MAC in the
    source link-layer option, as a host's kernel sends it."""
    source, wanted = ipaddress.IPv6Address(our_ip).packed, ipaddress.IPv6Address(target).packed
    group = b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + wanted[-3:]
    body = struct.pack("!BBHI", SOLICITATION, 0, 0, 0) + wanted + b"\x01\x01" + our_mac
    pseudo = source + group + struct.pack("!I3xB", len(body), ICMPV6)
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    header = struct.pack("!IHBB16s16s", 0x60000000, len(body), ICMPV6, 255, source, group)
    return b"\x33\x33\xff" + wanted[-3:] + our_mac + struct.pack("!H", ETH_P_IPV6) + header + body


def advertised_mac(frame: bytes, target: bytes) -> str | None:
    """The MAC a Neighbor Advertisement for ``target`` (16 bytes) announces (its target link-layer option,
    else the frame's source), or None for any other frame."""
    if (
        len(frame) < 78
        or frame[12:14] != b"\x86\xdd"
        or frame[20] != ICMPV6
        or frame[21] != 255
        or frame[54] != ADVERTISEMENT
        or frame[62:78] != target
    ):
        return None
    return mac_text(frame[80:86] if len(frame) >= 86 and frame[78:80] == b"\x02\x01" else frame[6:12])


def override(frame: bytes) -> bool:
    """Whether an advertisement carries the override flag (neighbours then replace their entries)."""
    return bool(frame[58] & 0x20)


NDP = Family(ETH_P_IPV6, solicitation, advertised_mac)

if __name__ == "__main__":
    probe_main(NDP, sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
