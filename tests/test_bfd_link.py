"""BfdLink: which BGP sessions BFD holds closed, against a recording transport (no sockets, no threads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ironlb.api.contract import BfdSettings, BGPSession, ExabgpConfig, ExabgpNeighbor
from ironlb.speaker.bfd.packet import Diag, State
from ironlb.speaker.bfd.session import BfdProfile, StateChange
from ironlb.speaker.bgp.bfd_link import BfdLink

ROUTER, OTHER = "198.51.100.126", "2001:db8:100::7e"
FAST = BfdSettings(receive_interval=300, transmit_interval=300, detect_multiplier=3)


@dataclass
class RecordingTransport:
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    callbacks: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False

    def add_session(self, peer: str, local: str, profile: BfdProfile, on_change: Any, multihop: bool) -> None:
        self.calls.append(("add", peer, local, profile, multihop))
        self.callbacks[peer] = on_change

    def update_profile(self, peer: str, profile: BfdProfile) -> None:
        self.calls.append(("update", peer, profile))

    def remove_session(self, peer: str) -> None:
        self.calls.append(("remove", peer))

    def stop(self) -> None:
        self.stopped = True


def neighbor(name: str, peer: str = ROUTER, bfd: BfdSettings | None = FAST, **session: Any) -> ExabgpNeighbor:
    settings = {"bfd_profile": "fast", "bfd": bfd} if "bfd_profile" not in session else {"bfd": bfd}
    return ExabgpNeighbor(
        session=BGPSession(name=name, peer_address=peer, peer_asn=64512, my_asn=64513, **settings, **session),
        local_address="198.51.100.11" if ":" not in peer else "2001:db8:100::b",
        router_id="198.51.100.11",
    )


def config(*neighbors: ExabgpNeighbor) -> ExabgpConfig:
    return ExabgpConfig(node="node1", neighbors=neighbors, api_command="relay")


def change(old: State, new: State, diag: Diag = Diag.NONE, admin: bool = False) -> StateChange:
    return StateChange(old, new, diag, 0.0, admin)


def link() -> tuple[BfdLink, RecordingTransport, list[str]]:
    transport, lost = RecordingTransport(), list[str]()
    return BfdLink(lost.append, lambda: transport), transport, lost  # type: ignore[arg-type,return-value]


def names(opened: ExabgpConfig) -> list[str]:
    return [n.session.name for n in opened.neighbors]


def test_a_session_with_a_profile_gets_a_bfd_session_and_exabgp_never_sees_bfd() -> None:
    bfd, transport, _ = link()
    opened = bfd.apply(config(neighbor("router"), neighbor("plain", OTHER, bfd=None, bfd_profile=None)))
    assert transport.calls == [("add", ROUTER, "198.51.100.11", BfdProfile(300, 300, 3), False)]
    assert names(opened) == ["router", "plain"]
    assert all(n.session.bfd is None and n.session.bfd_profile is None for n in opened.neighbors)
    assert bfd.status("router") == (
        "Down",
        "not Up yet: until BFD has been Up, the BGP session does not depend on it",
    )
    assert bfd.status("plain") is None


def test_down_after_up_closes_at_once_and_holds_the_session_closed_until_up_again() -> None:
    bfd, transport, lost = link()
    wanted = config(neighbor("router"))
    bfd.apply(wanted)
    report = transport.callbacks[ROUTER]
    for old, new in ((State.DOWN, State.INIT), (State.INIT, State.UP)):
        report(ROUTER, change(old, new))
    assert lost == [] and bfd.generation == 0  # coming Up the first time changes nothing for BGP
    state, message = bfd.status("router") or ("", "")
    assert state == "Up" and message.startswith("Up since") and "single hop from 198.51.100.11" in message

    report(ROUTER, change(State.UP, State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED))
    assert lost == [ROUTER] and bfd.generation == 1
    assert names(bfd.apply(wanted)) == []
    reason, _ = bfd.closed()["router"]
    assert (
        reason == f"BFD to {ROUTER} went Down (control detection time expired): closed until BFD is Up again"
    )
    assert "the BGP session is closed until BFD is Up again" in (bfd.status("router") or ("", ""))[1]

    report(ROUTER, change(State.DOWN, State.INIT))  # the peer is back, not yet confirmed: still closed
    assert names(bfd.apply(wanted)) == []
    report(ROUTER, change(State.INIT, State.UP))
    assert bfd.generation == 2 and names(bfd.apply(wanted)) == ["router"] and bfd.closed() == {}


def test_a_peer_taking_bfd_down_on_purpose_is_no_failure() -> None:
    bfd, transport, lost = link()
    wanted = config(neighbor("router"))
    bfd.apply(wanted)
    transport.callbacks[ROUTER](
        ROUTER, change(State.UP, State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, True)
    )
    assert lost == [] and names(bfd.apply(wanted)) == ["router"]
    assert "administratively" in (bfd.status("router") or ("", ""))[1]


def test_a_missing_profile_keeps_the_session_closed_and_says_which() -> None:
    bfd, transport, _ = link()
    opened = bfd.apply(config(neighbor("router", bfd=None)))
    assert names(opened) == [] and transport.calls == []
    reason, since = bfd.closed()["router"]
    assert reason == "BFDProfile fast does not exist: the session stays closed until it does"
    assert bfd.apply(config(neighbor("router", bfd=None))) == opened and bfd.closed()["router"][1] == since
    assert names(bfd.apply(config(neighbor("router")))) == ["router"] and bfd.closed() == {}


def test_timers_change_in_place_multihop_follows_ebgp_multihop_and_the_transport_goes_with_the_last() -> None:
    bfd, transport, _ = link()
    bfd.apply(config(neighbor("router")))
    slower = BfdSettings(receive_interval=1000, transmit_interval=500, detect_multiplier=5, minimum_ttl=250)
    bfd.apply(config(neighbor("router", bfd=slower)))
    assert transport.calls[-1] == ("update", ROUTER, BfdProfile(1000, 500, 5, minimum_ttl=250))
    bfd.apply(config(neighbor("router", ebgp_multihop=True)))
    assert transport.calls[-2:] == [
        ("remove", ROUTER),
        ("add", ROUTER, "198.51.100.11", BfdProfile(300, 300, 3), True),
    ]
    bfd.apply(config(neighbor("router", bfd=None, bfd_profile=None)))
    assert transport.calls[-1:] == [("remove", ROUTER)] and transport.stopped


def test_two_sessions_to_one_peer_share_its_bfd_session() -> None:
    bfd, transport, lost = link()
    wanted = config(neighbor("a"), neighbor("b", peer_port=1179))
    bfd.apply(wanted)
    assert [call[0] for call in transport.calls] == ["add"]
    transport.callbacks[ROUTER](ROUTER, change(State.UP, State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED))
    assert lost == [ROUTER] and names(bfd.apply(wanted)) == [] and set(bfd.closed()) == {"a", "b"}


def test_a_change_of_a_replaced_bfd_session_does_not_hold_the_new_one() -> None:
    """The old session's Down, delivered after a new local address replaced it, is not the new one's."""
    bfd, transport, lost = link()
    bfd.apply(config(neighbor("router")))
    old_report = transport.callbacks[ROUTER]
    old_report(ROUTER, change(State.DOWN, State.UP))
    moved = ExabgpNeighbor(
        session=neighbor("router").session, local_address="198.51.100.12", router_id="198.51.100.11"
    )
    bfd.apply(config(moved))
    old_report(ROUTER, change(State.UP, State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED))
    assert lost == [] and names(bfd.apply(config(moved))) == ["router"]
