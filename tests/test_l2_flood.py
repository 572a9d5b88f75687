"""Flood resilience of the Layer 2 responder (issue 13): the kernel filters requests down to owned IPs, a
flooding requester gets a bounded number of answers (heartbeats under load: test_heartbeat.py)."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest
from bench.arp_probe import request
from bench.ndp_probe import solicitation
from hypothesis import given
from hypothesis import strategies as st
from ironlb.speaker.l2.filters import MAX_TARGETS, arp_requests, neighbor_solicitations
from ironlb.speaker.l2.limiter import ReplyLimiter
from ironlb.speaker.l2.packets import ETH_P_ARP, ETH_P_IPV6
from ironlb.speaker.l2.responder import BUDGET, L2Responder, _attach_filter, _open
from ironlb_lab.network import LabNetwork

# --- the limiter (pure) --------------------------------------------------------------------------------


@given(st.lists(st.floats(0, 0.05), min_size=1, max_size=400))
def test_one_requester_gets_at_most_the_burst_plus_the_rate(gaps: list[float]) -> None:
    limiter = ReplyLimiter(rate=50.0, burst=10.0)
    now, answered = 0.0, 0
    for gap in gaps:
        now += gap
        answered += limiter.allow(b"flooder", b"ip", now)
    assert answered <= 10 + 50 * now + 1e-6
    assert answered >= min(len(gaps), 10)  # the burst is always there for a first asker


def test_a_quiet_requester_is_always_answered_while_another_floods() -> None:
    limiter = ReplyLimiter(rate=200.0, burst=100.0)
    now, client_answers = 0.0, 0
    for step in range(50_000):  # 50,000 requests/s for one second, a client asking every 10 ms
        now = step / 50_000
        limiter.allow(b"flooder", b"ip", now)
        if step % 500 == 0:
            client_answers += limiter.allow(b"client", b"ip", now)
    assert client_answers == 100
    assert limiter.limited >= 50_000 - 100 - 200 - 1


def test_the_limiter_forgets_idle_requesters_instead_of_growing() -> None:
    limiter = ReplyLimiter(rate=10.0, burst=5.0, capacity=100)
    for n in range(10_000):
        assert limiter.allow(n.to_bytes(6, "big"), b"ip", n * 0.01)
    assert len(limiter._buckets) <= 100


# --- the filters, in the kernel ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Iterator[LabNetwork]:
    with LabNetwork(nodes=1) as network:
        yield network


def _ask_from_client(lab: LabNetwork, targets: list[str]) -> None:
    """One request per target from the client's eth0: ARP, or a Neighbor Solicitation for an IPv6 one."""
    client = lab.client
    with client.inside():
        sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sender.bind(("eth0", 0))
        mac = bytes.fromhex(client.mac().replace(":", ""))
        for target in targets:
            v6 = ":" in target
            sender.send(
                solicitation(mac, str(client.v6), target) if v6 else request(mac, str(client.v4), target)
            )
        sender.close()


def _delivered(lab: LabNetwork, family: int, owned: list[str], asked: list[str]) -> set[str]:
    """Open the responder's socket on node1 with the filter for ``owned``; ask for each of ``asked`` from
    the client; the targets whose requests reached the socket."""
    node = lab.node(1)
    with node.inside():
        if family == 4:
            sock = _open("eth0", ETH_P_ARP, arp_requests([ipaddress.IPv4Address(a) for a in owned]))
        else:
            sock = _open(
                "eth0", ETH_P_IPV6, neighbor_solicitations([ipaddress.IPv6Address(a) for a in owned])
            )
    try:
        _ask_from_client(lab, asked)
        time.sleep(0.3)
        seen: set[str] = set()
        while True:
            try:
                frame = sock.recv(2048)
            except BlockingIOError:
                return seen
            if family == 4:
                seen.add(str(ipaddress.IPv4Address(frame[38:42])))
            else:
                seen.add(str(ipaddress.IPv6Address(frame[62:78])))
    finally:
        sock.close()


def test_the_kernel_hands_over_only_requests_for_owned_ips(lab: LabNetwork) -> None:
    owned4 = ["203.0.113.10", "203.0.113.12"]
    assert _delivered(lab, 4, owned4, ["203.0.113.10", "203.0.113.11", "203.0.113.12"]) == set(owned4)
    owned6 = ["2001:db8:300::10", "2001:db8:300::12"]
    asked6 = ["2001:db8:300::10", "2001:db8:300::11", "2001:db8:300::12", "2001:db8:300:1::13"]
    assert _delivered(lab, 6, owned6, asked6) == set(owned6)
    assert _delivered(lab, 4, [], ["203.0.113.10"]) == set()


def test_the_largest_filters_load_and_past_them_every_request_is_handed_over(lab: LabNetwork) -> None:
    many4 = [str(ipaddress.IPv4Address("203.0.113.0") + n) for n in range(MAX_TARGETS)]
    assert _delivered(lab, 4, many4, ["198.51.100.1", many4[-1]]) == {many4[-1]}
    assert _delivered(lab, 4, [*many4, "198.51.100.2"], ["198.51.100.1"]) == {"198.51.100.1"}
    many6 = [str(ipaddress.IPv6Address("2001:db8:300::") + n) for n in range(MAX_TARGETS)]
    assert _delivered(lab, 6, many6, ["2001:db8:300::ffff", many6[-1]]) == {many6[-1]}
    assert _delivered(lab, 6, [*many6, "2001:db8:300::ffff"], ["2001:db8:300::fffe"]) == {
        "2001:db8:300::fffe"
    }


def test_the_largest_filter_replaces_another_on_a_live_socket() -> None:
    """The kernel charges the old and the new program at once while it swaps them."""
    largest = arp_requests([ipaddress.IPv4Address("203.0.113.0") + n for n in range(MAX_TARGETS)])
    other = neighbor_solicitations([ipaddress.IPv6Address("2001:db8::") + n for n in range(MAX_TARGETS)])
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        for program in (largest, other, largest, other):
            _attach_filter(sock, program)
    finally:
        sock.close()


# --- the responder and the heartbeats under load, in the lab ----------------------------------------------


def test_one_wake_up_reads_a_bounded_number_of_frames(lab: LabNetwork) -> None:
    """A flood used to keep the drain loop reading for as long as frames kept coming: nothing else ran."""
    with lab.node(1).inside():
        responder = L2Responder("eth0")
    try:
        responder.limiter = ReplyLimiter(rate=1e6, burst=1e6)  # count reads here, not the limiter
        responder.set_owned([ipaddress.IPv4Address("203.0.113.30")])
        _ask_from_client(lab, ["203.0.113.30"] * 300)
        time.sleep(0.3)
        responder.drain(responder.arp)
        assert responder.replies == BUDGET
        responder.drain(responder.arp)
        assert responder.replies == 2 * BUDGET  # the rest waited for the next wake-up
    finally:
        responder.close()


def test_one_requester_gets_a_bounded_number_of_answers(lab: LabNetwork) -> None:
    with lab.node(1).inside():
        responder = L2Responder("eth0")
    try:
        responder.set_owned([ipaddress.IPv4Address("203.0.113.31")])
        began = time.monotonic()
        _ask_from_client(lab, ["203.0.113.31"] * 2000)
        responder.answer_for(0.5)
        took = time.monotonic() - began
        limiter = responder.limiter
        assert responder.replies <= limiter.burst + limiter.rate * took + 1, (responder.replies, took)
        assert responder.replies >= 1 and limiter.limited > 0  # (the kernel dropped what overflowed)
    finally:
        responder.close()
