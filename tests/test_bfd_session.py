"""The BFD session state machine on virtual time: two sessions wired to each other through a fake link.

The link delivers each packet after a fixed delay unless cut; the clock jumps from one deadline to the next,
so timer arithmetic is checked exactly (a Down that comes a microsecond early fails).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ironlb.speaker.bfd.packet import ControlPacket, Diag, State
from ironlb.speaker.bfd.session import SLOW_TX_US, Actions, BfdProfile, BfdSession, StateChange

FAST = BfdProfile(receive_interval=300, transmit_interval=300, detect_multiplier=3)
EPSILON = 1e-9


@dataclass
class Sent:
    at: float
    packet: ControlPacket


@dataclass
class Side:
    name: str
    session: BfdSession
    sent: list[Sent] = field(default_factory=list)
    received: list[Sent] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)

    @property
    def state(self) -> State:
        return self.session.state

    def periodic(self, since: float = 0.0) -> list[float]:
        """Send times of the periodic packets (Finals are off-schedule by design)."""
        return [s.at for s in self.sent if not s.packet.final and s.at >= since]


class Wire:
    """Two sessions, a link with one-way ``delay`` in each direction, and a virtual clock."""

    def __init__(self, a: BfdSession, b: BfdSession, delay: float = 0.001, now: float = 0.0) -> None:
        self.sides = {"a": Side("a", a), "b": Side("b", b)}
        self.delay = delay
        self.now = now
        self.cut = {"a": False, "b": False}  # True: what this side sends is lost
        self.in_flight: list[tuple[float, str, ControlPacket]] = []

    @property
    def a(self) -> Side:
        return self.sides["a"]

    @property
    def b(self) -> Side:
        return self.sides["b"]

    def other(self, name: str) -> str:
        return "b" if name == "a" else "a"

    def replace(self, name: str, session: BfdSession) -> None:
        self.sides[name] = Side(name, session)

    def _route(self, side: Side, actions: Actions) -> None:
        side.changes.extend(actions.changes)
        for packet in actions.packets:
            side.sent.append(Sent(self.now, packet))
            if not self.cut[side.name]:
                self.in_flight.append((self.now + self.delay, self.other(side.name), packet))

    def run(self, until: float) -> None:
        for _ in range(1_000_000):
            times = [t for t, _, _ in self.in_flight]
            times += [t for s in self.sides.values() if (t := s.session.next_deadline()) is not None]
            step = min(times, default=math.inf)
            if step > until:
                self.now = until
                return
            self.now = max(self.now, step)
            arrived = [item for item in self.in_flight if item[0] <= self.now]
            self.in_flight = [item for item in self.in_flight if item[0] > self.now]
            for _, target, packet in arrived:
                side = self.sides[target]
                side.received.append(Sent(self.now, packet))
                self._route(side, side.session.receive(packet, self.now))
            for side in self.sides.values():
                self._route(side, side.session.tick(self.now))
        raise AssertionError("the simulation does not advance")

    def run_until(self, condition: str, timeout: float = 30.0) -> float:
        """Run in small steps until both sides are in ``condition`` state; return the time."""
        end = self.now + timeout
        while self.now < end:
            if all(s.state.name == condition for s in self.sides.values()):
                return self.now
            self.run(self.now + 0.01)
        raise AssertionError(f"not both {condition} by {end}: {self.a.state} {self.b.state}")


def pair(
    profile_a: BfdProfile = FAST, profile_b: BfdProfile = FAST, seed: int = 1, delay: float = 0.001
) -> Wire:
    rng = random.Random(seed)
    a = BfdSession(rng.randint(1, 2**32 - 1), profile_a, 0.0, rng.random)
    b = BfdSession(rng.randint(1, 2**32 - 1), profile_b, 0.0, rng.random)
    return Wire(a, b, delay)


def steady(wire: Wire) -> float:
    """Both Up and their Poll Sequences done: the negotiated timers are in force."""
    wire.run_until("UP")
    wire.run(wire.now + 3.0)
    assert not wire.a.session.poll_active and not wire.b.session.poll_active
    return wire.now


# ------------------------------------------------------------------------------------------- handshake
def test_two_sessions_reach_up_with_a_three_way_handshake() -> None:
    wire = pair()
    up = wire.run_until("UP")
    assert up < 2.1  # slow start: at most two 1 s intervals
    for side in wire.sides.values():
        states = [c.new for c in side.changes]
        assert states[-1] is State.UP and State.ADMIN_DOWN not in states
        assert all(c.went_up for c in side.changes if c.new is State.UP)
    assert wire.a.session.remote_discriminator == wire.b.session.local_discriminator
    assert wire.b.session.remote_discriminator == wire.a.session.local_discriminator
    steady(wire)
    assert wire.a.session.detection_time == pytest.approx(0.9)
    assert wire.a.session.transmit_interval == pytest.approx(0.3)


def test_not_up_sends_at_most_once_a_second_and_advertises_one_second() -> None:
    session = BfdSession(
        7, BfdProfile(transmit_interval=50, receive_interval=50), 0.0, random.Random(3).random
    )
    sent: list[tuple[float, ControlPacket]] = []
    now = 0.0
    while now < 20:
        deadline = session.next_deadline()
        assert deadline is not None
        now = max(now, deadline)
        sent += [(now, p) for p in session.tick(now).packets]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert all(0.75 - EPSILON <= gap < 1.0 for gap in gaps), gaps
    assert all(p.desired_min_tx == SLOW_TX_US and p.required_min_rx == 50_000 for _, p in sent)
    assert all(p.state is State.DOWN and p.your_discriminator == 0 for _, p in sent)
    assert all(p.required_min_echo_rx == 0 for _, p in sent)


@pytest.mark.parametrize(("multiplier", "high"), [(3, 1.0), (1, 0.9)])
def test_jitter_stays_in_75_to_100_percent_or_90_with_multiplier_one(multiplier: int, high: float) -> None:
    profile = BfdProfile(receive_interval=100, transmit_interval=100, detect_multiplier=multiplier)
    wire = pair(profile, profile, seed=multiplier)
    since = steady(wire)
    wire.run(since + 30)
    gaps = [b - a for a, b in itertools.pairwise(wire.a.periodic(since))]
    assert len(gaps) > 200
    assert min(gaps) >= 0.075 - EPSILON and max(gaps) < 0.1 * high
    assert max(gaps) > 0.1 * (high - 0.02) and min(gaps) < 0.077  # the whole range is used


# ------------------------------------------------------------------------------------------- detection
@settings(max_examples=40, deadline=None)
@given(
    tx_a=st.integers(min_value=20, max_value=1500),
    rx_a=st.integers(min_value=20, max_value=1500),
    tx_b=st.integers(min_value=20, max_value=1500),
    rx_b=st.integers(min_value=20, max_value=1500),
    mult_a=st.integers(min_value=1, max_value=5),
    mult_b=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=2**16),
    cut_after=st.floats(min_value=0.0, max_value=3.0),
)
def test_cutting_the_link_brings_each_side_down_within_detection_time_never_earlier(
    tx_a: int, rx_a: int, tx_b: int, rx_b: int, mult_a: int, mult_b: int, seed: int, cut_after: float
) -> None:
    wire = pair(BfdProfile(rx_a, tx_a, mult_a), BfdProfile(rx_b, tx_b, mult_b), seed=seed)
    cut = steady(wire) + cut_after
    wire.run(cut)
    wire.cut = {"a": True, "b": True}
    detect = {"a": mult_b * max(rx_a, tx_b) / 1000, "b": mult_a * max(rx_b, tx_a) / 1000}
    interval = {"a": max(tx_b, rx_a) / 1000, "b": max(tx_a, rx_b) / 1000}  # the peer's TX toward us
    for name in ("a", "b"):
        assert wire.sides[name].session.detection_time == pytest.approx(detect[name])
    wire.run(cut + max(detect.values()) + 2 * max(interval.values()))
    for name, side in wire.sides.items():
        downs = [c for c in side.changes if c.at > cut]
        assert [(c.old, c.new, c.diag) for c in downs] == [
            (State.UP, State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED)
        ]
        down = downs[0].at
        last = max(r.at for r in side.received)  # after the cut, only what was already in flight
        assert down >= last + detect[name] - EPSILON, "down before the detection time"
        late = cut + wire.delay + detect[name] + EPSILON
        assert down <= late, "down later than the detection time after the cut"
        assert down > cut + detect[name] - interval[name] - wire.delay - EPSILON
        assert downs[0].went_down


def test_down_side_forgets_the_peer_and_comes_back_up_when_the_link_returns() -> None:
    wire = pair()
    cut = steady(wire)
    wire.cut = {"a": True, "b": True}
    wire.run(cut + 2)
    assert wire.a.state is State.DOWN and wire.a.session.remote_discriminator == 0
    assert wire.a.sent[-1].packet.desired_min_tx == SLOW_TX_US  # back to the slow rate
    wire.cut = {"a": False, "b": False}
    wire.run_until("UP")


def test_one_way_loss_brings_down_the_deaf_side_and_the_other_follows() -> None:
    wire = pair()
    cut = steady(wire)
    wire.cut["b"] = True  # a hears nothing
    wire.run(cut + 2.0)
    a_down, b_down = wire.a.changes[-1], wire.b.changes[-1]
    assert a_down.diag is Diag.CONTROL_DETECTION_TIME_EXPIRED and a_down.new is State.DOWN
    assert b_down.diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN and b_down.new is State.DOWN
    assert 0 < b_down.at - a_down.at < 1.0  # a's next packet, now at the slow rate, tells b


# --------------------------------------------------------------------------------------- poll sequence
def test_poll_sequence_changes_timers_faster() -> None:
    wire = pair()
    start = steady(wire)
    faster = BfdProfile(receive_interval=100, transmit_interval=100)
    wire.a.session.update_profile(faster, wire.now)
    assert wire.a.session.poll_active
    wire.run(start + 1)
    polls = [s for s in wire.a.sent if s.at >= start and s.packet.poll]
    finals = [s for s in wire.b.sent if s.at >= start and s.packet.final]
    assert polls and finals and finals[0].at - polls[0].at == pytest.approx(wire.delay)
    assert polls[0].packet.desired_min_tx == 100_000 and polls[0].packet.required_min_rx == 100_000
    assert not wire.a.session.poll_active
    assert wire.b.session.transmit_interval == pytest.approx(0.3)  # b still wants 300 ms itself
    assert wire.a.session.transmit_interval == pytest.approx(0.3)  # b requires 300 ms
    assert wire.b.session.detection_time == pytest.approx(0.9)
    wire.b.session.update_profile(faster, wire.now)
    wire.run(wire.now + 1)
    assert wire.a.session.transmit_interval == pytest.approx(0.1)
    assert wire.a.session.detection_time == pytest.approx(0.3)
    assert wire.a.state is State.UP and wire.b.state is State.UP


def test_slower_tx_waits_for_the_final_and_faster_rx_keeps_the_old_detection_time() -> None:
    wire = pair(FAST, BfdProfile(receive_interval=300, transmit_interval=100))
    steady(wire)
    a = wire.a.session
    assert a.detection_time == pytest.approx(0.9)  # 3 x max(our 300 ms RX, b's 100 ms TX)
    wire.cut["b"] = True  # no Final reaches a
    a.update_profile(BfdProfile(receive_interval=100, transmit_interval=600), wire.now)
    assert a.transmit_interval == pytest.approx(0.3)  # still the old TX until the peer acknowledged
    assert a.detection_time == pytest.approx(0.9)  # still the old RX in the detection time
    wire.run(wire.now + 0.2)
    assert a.poll_active and wire.a.sent[-1].packet.poll
    assert a.transmit_interval == pytest.approx(0.3) and a.detection_time == pytest.approx(0.9)
    wire.cut["b"] = False
    wire.run(wire.now + 1)
    assert not a.poll_active
    assert a.transmit_interval == pytest.approx(0.6)
    assert a.detection_time == pytest.approx(0.3)  # 3 x max(100, 100)
    assert wire.b.session.detection_time == pytest.approx(1.8)  # 3 x 600 ms
    assert wire.a.state is State.UP and wire.b.state is State.UP


def test_answers_a_poll_with_a_final_at_once() -> None:
    session = BfdSession(5, FAST, 0.0, random.Random(1).random)
    session.tick(0.0)
    poll = ControlPacket(State.DOWN, 3, 9, 5, 1_000_000, 300_000, poll=True)
    actions = session.receive(poll, 0.01)
    finals = [p for p in actions.packets if p.final]
    assert len(finals) == 1 and not finals[0].poll and finals[0].your_discriminator == 9


# ------------------------------------------------------------------------------------------- passive
def test_passive_side_waits_for_the_first_packet() -> None:
    passive = BfdProfile(passive=True)
    wire = pair(FAST, passive)
    wire.cut["a"] = True  # a's packets are lost: b hears nothing and must stay quiet
    wire.run(5)
    assert wire.b.sent == [] and wire.b.state is State.DOWN
    wire.cut["a"] = False
    wire.run_until("UP")
    first_heard = wire.b.received[0].at
    assert wire.b.sent[0].at == first_heard


def test_two_passive_sides_never_talk() -> None:
    passive = BfdProfile(passive=True)
    wire = pair(passive, passive)
    wire.run(10)
    assert wire.a.sent == [] and wire.b.sent == []
    assert wire.a.session.next_deadline() is None


def test_passive_side_goes_quiet_again_after_the_peer_is_lost() -> None:
    wire = pair(FAST, BfdProfile(passive=True))
    cut = steady(wire)
    wire.cut["a"] = True
    wire.run(cut + 5)
    assert wire.b.state is State.DOWN
    assert max(s.at for s in wire.b.sent) < cut + 1.0


# --------------------------------------------------------------------------------- restarts, admin down
def test_restart_with_a_new_discriminator_goes_down_then_up() -> None:
    wire = pair()
    steady(wire)
    old = wire.b.session.local_discriminator
    restarted = BfdSession(old ^ 0x5A5A5A5A, FAST, wire.now, random.Random(9).random)
    wire.replace("b", restarted)
    wire.in_flight = [item for item in wire.in_flight if item[1] != "b"]  # the old process got those
    wire.run_until("DOWN", timeout=1.5)
    assert wire.a.changes[-1].diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN  # told, not timed out
    wire.run_until("UP")
    assert wire.a.session.remote_discriminator == restarted.local_discriminator != old


def test_admin_down_is_signalled_and_admin_up_recovers() -> None:
    wire = pair()
    steady(wire)
    actions = wire.b.session.admin_down(wire.now)
    assert [p.state for p in actions.packets] == [State.ADMIN_DOWN]
    assert actions.packets[0].diag == Diag.ADMINISTRATIVELY_DOWN
    wire.sides["b"].changes.extend(actions.changes)
    wire.in_flight.append((wire.now + wire.delay, "a", actions.packets[0]))
    wire.run(wire.now + 0.01)
    assert wire.a.state is State.DOWN and wire.a.changes[-1].diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN
    wire.run(wire.now + 5)
    assert wire.b.state is State.ADMIN_DOWN and wire.a.state is State.DOWN  # no flapping meanwhile
    wire.b.session.admin_up(wire.now)
    wire.run_until("UP")


def test_packets_for_another_discriminator_are_ignored() -> None:
    session = BfdSession(5, FAST, 0.0)
    stranger = ControlPacket(State.INIT, 3, 9, 6, 1_000_000, 300_000)
    assert session.receive(stranger, 0.1) == Actions()
    assert session.remote_discriminator == 0 and session.state is State.DOWN


def test_profile_validation_and_metallb_names() -> None:
    profile = BfdProfile.from_metallb(
        {"receiveInterval": 200, "transmitInterval": 250, "detectMultiplier": 5, "passiveMode": True}
    )
    assert profile == BfdProfile(200, 250, 5, passive=True, minimum_ttl=254)
    with pytest.raises(ValueError, match="echo mode"):
        BfdProfile(echo_mode=True)
    with pytest.raises(ValueError, match="detect_multiplier"):
        BfdProfile(detect_multiplier=0)
    with pytest.raises(ValueError, match="receive_interval"):
        BfdProfile(receive_interval=0)
