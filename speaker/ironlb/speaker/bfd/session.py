"""One BFD session (RFC 5880) as a pure state machine: no sockets, no clock, no randomness of its own.

Every method takes ``now`` (monotonic seconds) and returns the packets to send and the state changes, so
the transport stays thin and tests run on virtual time. Asynchronous mode only: Demand mode is never asked
for (a peer's D bit is honoured), echo mode is not implemented (we advertise Required Min Echo RX 0, so a
peer never sends us echo packets, and a profile asking for it is refused), and authentication is refused.

Timers follow RFC 5880 6.8.2-6.8.4 and 6.8.7: while not Up we advertise a Desired Min TX of at least 1 s;
changing either advertised interval starts a Poll Sequence, and a change that would make the peer's view
stale (a slower TX or a faster RX while Up) takes effect only when the peer's Final arrives. Periodic
packets are jittered to 75-100% of the interval (75-90% when our detect multiplier is 1). The only packets
sent off-schedule are Finals (required by 6.8.7) and one AdminDown on ``admin_down``, so the peer does not
have to wait a detection time to learn a deliberate shutdown.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .packet import ControlPacket, Diag, State

SLOW_TX_US = 1_000_000  # RFC 5880 6.8.3: Desired Min TX while not Up
_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class BfdProfile:
    """Timers in milliseconds, as in MetalLB's BFDProfile (``from_metallb`` maps its camelCase names).

    ``minimum_ttl`` only matters for multihop sessions, and the transport checks it (RFC 5883); single hop
    always requires TTL 255 (RFC 5881). The detect multiplier may be 1 as RFC 5880 allows, although
    MetalLB's CRD asks for 2-255.
    """

    receive_interval: int = 300
    transmit_interval: int = 300
    detect_multiplier: int = 3
    passive: bool = False
    minimum_ttl: int = 254
    echo_mode: bool = False

    def __post_init__(self) -> None:
        for name in ("receive_interval", "transmit_interval"):
            if not 1 <= getattr(self, name) <= 60_000:
                raise ValueError(f"{name} must be 1-60000 ms, not {getattr(self, name)}")
        if not 1 <= self.detect_multiplier <= 255:
            raise ValueError(f"detect_multiplier must be 1-255, not {self.detect_multiplier}")
        if not 1 <= self.minimum_ttl <= 255:
            raise ValueError(f"minimum_ttl must be 1-255, not {self.minimum_ttl}")
        if self.echo_mode:
            raise ValueError("echo mode is not implemented: we advertise Required Min Echo RX 0")

    @classmethod
    def from_metallb(cls, spec: Mapping[str, Any]) -> BfdProfile:
        """A MetalLB ``BFDProfile.spec``; absent fields keep MetalLB's defaults."""
        names = {
            "receiveInterval": "receive_interval",
            "transmitInterval": "transmit_interval",
            "detectMultiplier": "detect_multiplier",
            "passiveMode": "passive",
            "minimumTtl": "minimum_ttl",
            "echoMode": "echo_mode",
        }
        return cls(**{ours: spec[theirs] for theirs, ours in names.items() if theirs in spec})


@dataclass(frozen=True)
class StateChange:
    old: State
    new: State
    diag: Diag
    at: float
    peer_admin_down: bool = False  # the peer took the session down on purpose (RFC 5882 3.2: not a failure)

    @property
    def went_up(self) -> bool:
        return self.new is State.UP

    @property
    def went_down(self) -> bool:
        """Lost an Up session (the event that should withdraw routes learned over it)."""
        return self.old is State.UP and self.new is not State.UP


@dataclass(frozen=True)
class Actions:
    """What a call asks the caller to do: send these packets (in order) and report these changes."""

    packets: tuple[ControlPacket, ...] = ()
    changes: tuple[StateChange, ...] = ()


@dataclass
class _Out:
    packets: list[ControlPacket] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)

    def freeze(self) -> Actions:
        return Actions(tuple(self.packets), tuple(self.changes))


class BfdSession:
    """RFC 5880 state variables and the rules that move them; intervals are kept in microseconds."""

    def __init__(
        self,
        local_discriminator: int,
        profile: BfdProfile,
        now: float,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not 0 < local_discriminator <= _U32:
            raise ValueError(f"local discriminator must be 1..2^32-1, not {local_discriminator}")
        self.local_discriminator = local_discriminator
        self.profile = profile
        self._random = random
        self.state = State.DOWN
        self.diag = Diag.NONE
        self.remote_discriminator = 0
        self.remote_state = State.DOWN
        self.remote_min_rx = 1  # RFC 5880 6.8.1: 1 us until the peer tells, so we may start sending
        self.remote_min_tx = 0
        self.remote_detect_mult = 0
        self.remote_demand = False
        # advertised (bfd.DesiredMinTxInterval, bfd.RequiredMinRxInterval) and the values in force
        self.desired_min_tx = self._target_tx()
        self.required_min_rx = profile.receive_interval * 1000
        self._tx_in_use = self.desired_min_tx
        self._rx_in_use = self.required_min_rx
        self._polled: tuple[int, int] | None = None  # what the running Poll Sequence announces
        self._epoch = now
        self.last_received: float | None = None
        self.last_sent: float | None = None
        self._jitter = 1.0
        self._detect_deadline: float | None = None

    # ------------------------------------------------------------------------------------ introspection
    @property
    def poll_active(self) -> bool:
        return self._polled is not None

    @property
    def transmit_interval(self) -> float:
        """The negotiated periodic interval, before jitter (seconds)."""
        return max(self._tx_in_use, self.remote_min_rx) / 1e6

    @property
    def detection_time(self) -> float | None:
        """Remote detect mult x max(our RX in force, peer's Desired Min TX) (seconds; None: no peer yet)."""
        if not self.remote_detect_mult:
            return None
        return self.remote_detect_mult * max(self._rx_in_use, self.remote_min_tx) / 1e6

    def next_deadline(self) -> float | None:
        """When ``tick`` has something to do: a periodic packet or the detection timer."""
        due = self._due()
        times = [t for t in (due, self._detect_deadline) if t is not None]
        return min(times) if times else None

    # ------------------------------------------------------------------------------------------- inputs
    def tick(self, now: float) -> Actions:
        out = _Out()
        if self._detect_deadline is not None and now >= self._detect_deadline:
            self._expire(now, out)
        self._send_if_due(now, out)
        return out.freeze()

    def receive(self, packet: ControlPacket, now: float) -> Actions:
        """RFC 5880 6.8.6 for a packet that ``packet.parse`` accepted and the transport matched to us."""
        out = _Out()
        if packet.your_discriminator not in (0, self.local_discriminator):
            return out.freeze()
        if packet.your_discriminator == 0 and packet.state not in (State.DOWN, State.ADMIN_DOWN):
            return out.freeze()
        if packet.authentication_present or packet.multipoint or not packet.detect_mult:
            return out.freeze()
        if not packet.my_discriminator:
            return out.freeze()
        self.remote_discriminator = packet.my_discriminator
        self.remote_state = packet.state
        self.remote_demand = packet.demand
        self.remote_min_rx = packet.required_min_rx
        self.remote_min_tx = packet.desired_min_tx
        self.remote_detect_mult = packet.detect_mult
        if packet.final and self._polled is not None:
            self._terminate_poll()
        if self.state is State.ADMIN_DOWN:
            return out.freeze()
        remote = packet.state
        if remote is State.ADMIN_DOWN:
            if self.state is not State.DOWN:
                self._change(State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, now, out, peer_admin_down=True)
        elif self.state is State.DOWN:
            if remote is State.DOWN:
                self._change(State.INIT, Diag.NONE, now, out)
            elif remote is State.INIT:
                self._change(State.UP, Diag.NONE, now, out)
        elif self.state is State.INIT:
            if remote in (State.INIT, State.UP):
                self._change(State.UP, Diag.NONE, now, out)
        elif remote is State.DOWN:  # we are Up
            self._change(State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, now, out)
        self.last_received = now
        self._rearm_detection()
        if packet.poll and self._may_send():
            out.packets.append(self._packet(final=True))
        self._send_if_due(now, out)
        return out.freeze()

    def update_profile(self, profile: BfdProfile, now: float) -> Actions:
        """New timers or roles at run time; interval changes go through a Poll Sequence."""
        out = _Out()
        self.profile = profile
        self._retime()
        self._send_if_due(now, out)
        return out.freeze()

    def admin_down(self, now: float) -> Actions:
        """Stop the session on purpose (diag 7) and tell the peer at once; packets keep going."""
        out = _Out()
        if self.state is not State.ADMIN_DOWN:
            self._change(State.ADMIN_DOWN, Diag.ADMINISTRATIVELY_DOWN, now, out)
            self._detect_deadline = None
            if self._may_send():
                out.packets.append(self._packet())
        return out.freeze()

    def admin_up(self, now: float) -> Actions:
        out = _Out()
        if self.state is State.ADMIN_DOWN:
            self._change(State.DOWN, Diag.NONE, now, out)
            self._rearm_detection()
            self._send_if_due(now, out)
        return out.freeze()

    # ----------------------------------------------------------------------------------------- internals
    def _target_tx(self) -> int:
        configured = self.profile.transmit_interval * 1000
        return configured if self.state is State.UP else max(configured, SLOW_TX_US)

    def _change(self, new: State, diag: Diag, now: float, out: _Out, peer_admin_down: bool = False) -> None:
        out.changes.append(StateChange(self.state, new, diag, now, peer_admin_down))
        self.state, self.diag = new, diag
        self._retime()

    def _retime(self) -> None:
        """Re-derive the advertised intervals; start a Poll Sequence if they changed (RFC 5880 6.8.3)."""
        tx, rx = self._target_tx(), self.profile.receive_interval * 1000
        if (tx, rx) == (self.desired_min_tx, self.required_min_rx):
            return
        self.desired_min_tx, self.required_min_rx = tx, rx
        self._apply_safe_values()
        if self._polled is None and self.remote_discriminator:
            self._polled = (tx, rx)

    def _apply_safe_values(self) -> None:
        """Changes the peer's view cannot contradict apply now; the others wait for the Final."""
        up = self.state is State.UP
        if not up or self.desired_min_tx < self._tx_in_use:
            self._tx_in_use = self.desired_min_tx
        if not up or self.required_min_rx > self._rx_in_use:
            self._rx_in_use = self.required_min_rx
        self._rearm_detection()

    def _terminate_poll(self) -> None:
        assert self._polled is not None
        self._tx_in_use, self._rx_in_use = self._polled
        self._polled = None
        if (self.desired_min_tx, self.required_min_rx) != (self._tx_in_use, self._rx_in_use):
            self._apply_safe_values()  # changed again during the poll: announce the newer values
            if self.remote_discriminator:
                self._polled = (self.desired_min_tx, self.required_min_rx)
        self._rearm_detection()

    def _rearm_detection(self) -> None:
        detection = self.detection_time
        if self.state is State.ADMIN_DOWN or detection is None or self.last_received is None:
            self._detect_deadline = None
        else:
            self._detect_deadline = self.last_received + detection

    def _expire(self, now: float, out: _Out) -> None:
        """Detection time passed without a packet: forget the peer (RFC 5880 6.8.1, 6.8.4)."""
        self._detect_deadline = None
        self.remote_discriminator = 0
        self.remote_state = State.DOWN
        self.remote_min_rx = 1
        self.remote_min_tx = 0
        self.remote_detect_mult = 0
        self.remote_demand = False
        self._polled = None
        if self.state in (State.INIT, State.UP):
            self._change(State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED, now, out)
        else:
            self._apply_safe_values()

    def _may_send(self) -> bool:
        return not (self.profile.passive and self.remote_discriminator == 0)

    def _due(self) -> float | None:
        """When the next periodic packet goes out (RFC 5880 6.8.7), or None while we must stay quiet."""
        if not self._may_send() or self.remote_min_rx == 0:
            return None
        quiet = self.remote_demand and self.state is State.UP and self.remote_state is State.UP
        if quiet and self._polled is None:
            return None
        if self.last_sent is None:
            return self._epoch
        return self.last_sent + self.transmit_interval * self._jitter

    def _send_if_due(self, now: float, out: _Out) -> None:
        due = self._due()
        if due is None or now < due:
            return
        self.last_sent = now
        low, high = 0.75, (0.9 if self.profile.detect_multiplier == 1 else 1.0)
        self._jitter = low + (high - low) * min(max(self._random(), 0.0), math.nextafter(1.0, 0.0))
        out.packets.append(self._packet())

    def _packet(self, final: bool = False) -> ControlPacket:
        return ControlPacket(
            state=self.state,
            detect_mult=self.profile.detect_multiplier,
            my_discriminator=self.local_discriminator,
            your_discriminator=self.remote_discriminator,
            desired_min_tx=self.desired_min_tx,
            required_min_rx=self.required_min_rx,
            required_min_echo_rx=0,
            diag=self.diag,
            poll=self._polled is not None and not final,
            final=final,
        )
