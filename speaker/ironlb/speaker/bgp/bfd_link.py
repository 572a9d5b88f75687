"""BFD under the BGP sessions of one node, tied to them the way FRR ties them for MetalLB.

One ``BfdTransport`` per node and one BFD session per peer address whose BGPPeer names a BFDProfile, from the
BGP session's local address: single hop (RFC 5881), or multihop (RFC 5883) for ``ebgpMultiHop`` peers. When a
BFD session goes Down after having been Up, ``on_down`` closes the BGP sessions to that peer at once (from
the BFD thread: exabgp's ``teardown``) and ``apply`` leaves them out of exabgp's neighbors, so exabgp does not
re-open them, until BFD is Up again. A BFD session that never came Up holds nothing back (a router without
BFD keeps its session, as with FRR), nor does a peer that took BFD down on purpose (AdminDown, RFC 5882 3.2).
A BGPPeer naming a BFDProfile that does not exist stays closed.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ironlb.api.contract import ExabgpConfig, ExabgpNeighbor

from ..bfd.packet import Diag, State
from ..bfd.session import BfdProfile, StateChange
from ..bfd.transport import BfdTransport

log = logging.getLogger("ironlb.speaker.bgp")
STATE_NAMES = {State.ADMIN_DOWN: "AdminDown", State.DOWN: "Down", State.INIT: "Init", State.UP: "Up"}


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]


def _why(diag: Diag) -> str:
    return diag.name.replace("_", " ").lower()


@dataclass
class _Bfd:
    """One BFD session as the BGP side sees it."""

    local: str
    profile: BfdProfile
    multihop: bool
    state: State = State.DOWN
    diag: Diag = Diag.NONE
    since: float = field(default_factory=time.time)
    held: bool = False  # went Down after having been Up: its BGP sessions stay closed until it is Up
    error: str = ""  # the session could not be started (the BGP sessions do without it)

    def message(self, peer: str) -> str:
        hops = "multihop" if self.multihop else "single hop"
        if self.error:
            return f"BFD from {self.local} to {peer} could not start: {self.error}; BGP runs without it"
        if self.state is State.UP:
            return f"Up since {_clock(self.since)} UTC ({hops} from {self.local})"
        if self.held:
            since = f"Down since {_clock(self.since)} UTC ({_why(self.diag)})"
            return f"{since}: the BGP session is closed until BFD is Up again"
        if self.diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN:
            return "the peer took BFD down administratively: meanwhile the BGP session does not depend on it"
        ttl = f" (multihop: packets arriving with a TTL below {self.profile.minimum_ttl} are dropped)"
        waiting = f"not Up yet{ttl if self.multihop else ''}"
        return f"{waiting}: until BFD has been Up, the BGP session does not depend on it"


class BfdLink:
    """The node's BFD sessions and which BGP sessions they hold closed; ``apply`` and ``status`` are called
    from the speaker's loop, state changes arrive on the transport's thread."""

    def __init__(
        self,
        on_down: Callable[[str], None],
        transport: Callable[[], BfdTransport] = BfdTransport,
    ) -> None:
        self._on_down = on_down
        self._new_transport = transport
        self._transport: BfdTransport | None = None
        self._lock = threading.Lock()
        self._peers: dict[str, _Bfd] = {}  # peer address -> its BFD session
        self._sessions: dict[str, str] = {}  # BGP session name -> peer address, for sessions with BFD
        self._missing: dict[str, tuple[str, float]] = {}  # BGP session name -> (missing profile, since)
        self.generation = 0  # counts changes to what ``apply`` leaves out

    def apply(self, config: ExabgpConfig) -> ExabgpConfig:
        """Start, retime or stop BFD sessions for ``config``; return what exabgp should open: without the
        sessions held closed, and without BFD settings (exabgp has none: a change of timers only must
        not look like a changed neighbor to it)."""
        wanted: dict[str, tuple[str, BfdProfile, bool]] = {}
        sessions: dict[str, str] = {}
        missing: dict[str, tuple[str, float]] = {}
        for neighbor in config.neighbors:
            session = neighbor.session
            if not session.bfd_profile:
                continue
            if session.bfd is None:
                missing[session.name] = self._missing.get(session.name, (session.bfd_profile, time.time()))
                continue
            peer = str(ipaddress.ip_address(session.peer_address))
            sessions[session.name] = peer
            wanted.setdefault(
                peer, (neighbor.local_address, BfdProfile(**session.bfd.model_dump()), session.ebgp_multihop)
            )
        with self._lock:
            idle = self._sync(wanted)
            self._sessions, self._missing = sessions, missing
            opened = tuple(_without_bfd(n) for n in config.neighbors if self._closing(n.session.name) is None)
        if idle is not None:  # outside the lock: its thread may be waiting for it in ``_changed``
            idle.stop()
        return config.model_copy(update={"neighbors": opened})

    def closed(self) -> dict[str, tuple[str, float]]:
        """BGP session name -> (why it is held closed, since when)."""
        with self._lock:
            found = {name: self._closing(name) for name in [*self._sessions, *self._missing]}
        return {name: why for name, why in found.items() if why is not None}

    def status(self, name: str) -> tuple[str, str] | None:
        """(BFD state, message) under a BGP session; None for a session without a BFD session."""
        with self._lock:
            peer = self._sessions.get(name)
            entry = self._peers.get(peer) if peer else None
            return None if entry is None or peer is None else (STATE_NAMES[entry.state], entry.message(peer))

    def stop(self) -> None:
        """Tell every peer AdminDown (so it does not count our stop as a failure) and end the transport."""
        with self._lock:
            transport, self._transport = self._transport, None
            self._peers.clear()
        if transport is not None:
            transport.stop()

    # ----------------------------------------------------------------------------------------- internals
    def _closing(self, name: str) -> tuple[str, float] | None:
        if name in self._missing:
            profile, since = self._missing[name]
            return f"BFDProfile {profile} does not exist: the session stays closed until it does", since
        peer = self._sessions.get(name)
        entry = self._peers.get(peer) if peer else None
        if entry is None or not entry.held:
            return None
        return f"BFD to {peer} went Down ({_why(entry.diag)}): closed until BFD is Up again", entry.since

    def _sync(self, wanted: dict[str, tuple[str, BfdProfile, bool]]) -> BfdTransport | None:
        """Returns the transport to stop once the lock is released, when no session is left."""
        for peer in [peer for peer in self._peers if peer not in wanted]:
            self._remove(peer)
        for peer, (local, profile, multihop) in wanted.items():
            current = self._peers.get(peer)
            if (
                current is not None
                and not current.error
                and (current.local, current.multihop) == (local, multihop)
            ):
                if current.profile != profile:
                    self._transport_now().update_profile(peer, profile)
                    current.profile = profile
                continue
            if current is not None:
                self._remove(peer)
            entry = self._peers[peer] = _Bfd(local, profile, multihop)
            try:
                self._transport_now().add_session(
                    peer, local, profile, functools.partial(self._changed, entry=entry), multihop
                )
            except OSError as error:
                entry.error = str(error)
                log.error("BFD to %s from %s: %s", peer, local, error)
        if not self._peers and self._transport is not None:
            idle, self._transport = self._transport, None
            return idle
        return None

    def _remove(self, peer: str) -> None:
        entry = self._peers.pop(peer)
        if entry.held:
            self.generation += 1
        if self._transport is not None and not entry.error:
            self._transport.remove_session(peer)

    def _transport_now(self) -> BfdTransport:
        if self._transport is None:
            self._transport = self._new_transport()
        return self._transport

    def _changed(self, peer: str, change: StateChange, entry: _Bfd) -> None:
        """The transport's callback (its thread): a lost session closes its BGP sessions at once. A change
        of a session since replaced (another local address) is not the new one's."""
        with self._lock:
            if self._peers.get(peer) is not entry:
                return
            entry.state, entry.diag, entry.since = change.new, change.diag, time.time()
            lost = change.went_down and not change.peer_admin_down
            if lost:
                entry.held = True
                self.generation += 1
            elif change.went_up and entry.held:
                entry.held = False
                self.generation += 1
        log.info("BFD to %s: %s -> %s (%s)", peer, change.old.name, change.new.name, _why(change.diag))
        if lost:
            self._on_down(peer)


def _without_bfd(neighbor: ExabgpNeighbor) -> ExabgpNeighbor:
    session = neighbor.session.model_copy(update={"bfd_profile": None, "bfd": None})
    return neighbor.model_copy(update={"session": session})
