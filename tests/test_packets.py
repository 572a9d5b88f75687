"""ARP and NDP frames built by the speaker, checked field by field with scapy's dissectors (the oracle)."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st
from ironlb.speaker.l2.packets import (
    arp_reply,
    gratuitous_arp,
    mac_bytes,
    neighbor_advertisement,
    parse_arp_request,
    parse_neighbor_solicitation,
    solicited_node_multicast,
)
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

OUR_MAC = "02:00:00:00:00:0a"
CLIENT_MAC = "02:00:00:00:00:64"


@given(st.ip_addresses(v=4), st.ip_addresses(v=4))
def test_arp_request_in_reply_out(asked: ipaddress.IPv4Address, sender: ipaddress.IPv4Address) -> None:
    request = Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=CLIENT_MAC, psrc=str(sender), pdst=str(asked)
    )
    parsed = parse_arp_request(bytes(request))
    assert parsed is not None and parsed.target_ip == asked and parsed.sender_ip == sender
    reply = Ether(arp_reply(mac_bytes(OUR_MAC), asked, parsed))
    assert reply.dst == CLIENT_MAC and reply.src == OUR_MAC
    assert (reply[ARP].op, reply[ARP].hwsrc, reply[ARP].psrc) == (2, OUR_MAC, str(asked))
    assert (reply[ARP].hwdst, reply[ARP].pdst) == (CLIENT_MAC, str(sender))


def test_arp_replies_and_other_frames_are_not_requests() -> None:
    reply = Ether(src=CLIENT_MAC) / ARP(op=2, hwsrc=CLIENT_MAC, psrc="198.51.100.100", pdst="203.0.113.10")
    assert parse_arp_request(bytes(reply)) is None
    assert parse_arp_request(bytes(Ether() / IPv6())) is None


def test_gratuitous_arp_in_both_forms() -> None:
    ip = ipaddress.IPv4Address("203.0.113.10")
    for reply, op, hwdst in ((False, 1, "00:00:00:00:00:00"), (True, 2, "ff:ff:ff:ff:ff:ff")):
        frame = Ether(gratuitous_arp(mac_bytes(OUR_MAC), ip, reply=reply))
        assert frame.dst == "ff:ff:ff:ff:ff:ff"
        assert (frame[ARP].op, frame[ARP].psrc, frame[ARP].pdst, frame[ARP].hwdst) == (
            op,
            str(ip),
            str(ip),
            hwdst,
        )


@given(st.ip_addresses(v=6), st.ip_addresses(v=6))
def test_neighbor_solicitation_in_solicited_advertisement_out(
    target: ipaddress.IPv6Address, source: ipaddress.IPv6Address
) -> None:
    group, group_mac = solicited_node_multicast(target)
    solicitation = (
        Ether(src=CLIENT_MAC, dst=":".join(f"{b:02x}" for b in group_mac))
        / IPv6(src=str(source), dst=str(group), hlim=255)
        / ICMPv6ND_NS(tgt=str(target))
        / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC)
    )
    parsed = parse_neighbor_solicitation(bytes(solicitation))
    assert parsed is not None and parsed.target == target and parsed.source_ip == source
    answer = Ether(neighbor_advertisement(mac_bytes(OUR_MAC), target, parsed.source_mac, parsed.source_ip))
    advertisement = answer[ICMPv6ND_NA]
    assert answer[IPv6].hlim == 255 and ipaddress.IPv6Address(answer[IPv6].src) == target
    assert (
        ipaddress.IPv6Address(advertisement.tgt) == target and advertisement.O == 1 and advertisement.R == 0
    )
    assert answer[ICMPv6NDOptDstLLAddr].lladdr == OUR_MAC
    rebuilt = Ether(bytes(answer))  # scapy recomputes the checksum when the field is cleared
    del rebuilt[ICMPv6ND_NA].cksum
    assert Ether(bytes(rebuilt))[ICMPv6ND_NA].cksum == advertisement.cksum
    if source.is_unspecified:
        assert answer[IPv6].dst == "ff02::1" and advertisement.S == 0
    else:
        assert (answer.dst, ipaddress.IPv6Address(answer[IPv6].dst), advertisement.S) == (
            CLIENT_MAC,
            source,
            1,
        )


def test_unsolicited_advertisement_goes_to_all_nodes_with_override() -> None:
    target = ipaddress.IPv6Address("2001:db8:300::10")
    frame = Ether(neighbor_advertisement(mac_bytes(OUR_MAC), target))
    assert frame.dst == "33:33:00:00:00:01" and frame[IPv6].dst == "ff02::1"
    assert frame[ICMPv6ND_NA].S == 0 and frame[ICMPv6ND_NA].O == 1


def test_solicitations_with_a_hop_limit_below_255_are_ignored() -> None:
    forged = (
        Ether(src=CLIENT_MAC)
        / IPv6(src="2001:db8::1", dst="ff02::1:ff00:10", hlim=64)
        / ICMPv6ND_NS(tgt="2001:db8:300::10")
    )
    assert parse_neighbor_solicitation(bytes(forged)) is None
