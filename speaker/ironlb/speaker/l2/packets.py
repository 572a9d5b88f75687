"""ARP and NDP frames, parsed and built with struct: the hot path of Layer 2 mode, so no per-packet objects.

Only what a responder needs: ARP requests in, ARP replies and gratuitous ARP out; Neighbor Solicitations in,
Neighbor Advertisements (solicited and unsolicited) out. Tests check every frame against scapy's dissectors.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ETH = struct.Struct("!6s6sH")
_IPV6 = struct.Struct("!IHBB16s16s")
ICMPV6 = 58
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True)
class ArpRequest:
    sender_mac: bytes
    sender_ip: ipaddress.IPv4Address
    target_ip: ipaddress.IPv4Address


@dataclass(frozen=True)
class NeighborSolicitation:
    source_mac: bytes
    source_ip: ipaddress.IPv6Address
    target: ipaddress.IPv6Address


def parse_arp_request(frame: bytes) -> ArpRequest | None:
    if len(frame) < 42:
        return None
    _, _, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, oper, sha, spa, _tha, tpa = _ARP.unpack_from(frame, 14)
    if (htype, ptype, hlen, plen, oper) != (1, 0x0800, 6, 4, 1):
        return None
    return ArpRequest(sha, ipaddress.IPv4Address(spa), ipaddress.IPv4Address(tpa))


def arp_reply(our_mac: bytes, ip: ipaddress.IPv4Address, request: ArpRequest) -> bytes:
    return _ETH.pack(request.sender_mac, our_mac, ETH_P_ARP) + _ARP.pack(
        1, 0x0800, 6, 4, 2, our_mac, ip.packed, request.sender_mac, request.sender_ip.packed
    )


def gratuitous_arp(our_mac: bytes, ip: ipaddress.IPv4Address, *, reply: bool) -> bytes:
    """Announce ``ip`` at ``our_mac`` to the segment; both forms are sent, as switches and hosts differ."""
    target_mac = BROADCAST if reply else b"\x00" * 6
    return _ETH.pack(BROADCAST, our_mac, ETH_P_ARP) + _ARP.pack(
        1, 0x0800, 6, 4, 2 if reply else 1, our_mac, ip.packed, target_mac, ip.packed
    )


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _icmpv6(source: ipaddress.IPv6Address, destination: ipaddress.IPv6Address, body: bytes) -> bytes:
    pseudo = source.packed + destination.packed + struct.pack("!I3xB", len(body), ICMPV6)
    checksum = _checksum(pseudo + body)
    return body[:2] + struct.pack("!H", checksum) + body[4:]


def parse_neighbor_solicitation(frame: bytes) -> NeighborSolicitation | None:
    if len(frame) < 14 + 40 + 24:
        return None
    _, source_mac, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_IPV6:
        return None
    _, _length, next_header, hop_limit, source, _destination = _IPV6.unpack_from(frame, 14)
    if next_header != ICMPV6 or hop_limit != 255 or frame[54] != NEIGHBOR_SOLICITATION or frame[55] != 0:
        return None
    target = ipaddress.IPv6Address(frame[62:78])
    return NeighborSolicitation(source_mac, ipaddress.IPv6Address(source), target)


def solicited_node_multicast(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv6Address, bytes]:
    """The group a Neighbor Solicitation for ``ip`` is sent to, and its Ethernet multicast address."""
    low = ip.packed[-3:]
    return ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + low), b"\x33\x33\xff" + low


def neighbor_advertisement(
    our_mac: bytes,
    target: ipaddress.IPv6Address,
    destination_mac: bytes | None = None,
    destination: ipaddress.IPv6Address | None = None,
) -> bytes:
    """A solicited NA to the soliciting host, or (no destination) an unsolicited NA to all nodes; both
    carry the override flag so neighbours replace a stale entry at once."""
    solicited = destination is not None and not destination.is_unspecified
    to = destination if solicited and destination is not None else ALL_NODES
    to_mac = destination_mac if solicited and destination_mac is not None else b"\x33\x33\x00\x00\x00\x01"
    flags = (0x40000000 if solicited else 0) | 0x20000000  # S, O (R stays 0: we are not a router)
    body = struct.pack("!BBHI", NEIGHBOR_ADVERTISEMENT, 0, 0, flags) + target.packed + b"\x02\x01" + our_mac
    icmp = _icmpv6(target, to, body)
    ipv6 = _IPV6.pack(0x60000000, len(icmp), ICMPV6, 255, target.packed, to.packed)
    return _ETH.pack(to_mac, our_mac, ETH_P_IPV6) + ipv6 + icmp
