"""The BFD control packet (RFC 5880 section 4.1): the 24-byte mandatory section, encoded and validated.

Authentication is not supported, so a packet with the A bit is refused rather than half-checked; the
checks of RFC 5880 6.8.6 that need no session state are done here, so a session only sees sane packets.
Decoding never raises on arbitrary bytes: it answers ``None`` (``parse`` raises ``DecodeError`` with why).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
LENGTH = 24
_FORMAT = struct.Struct("!BBBBIIIII")
_U32 = 0xFFFFFFFF

# flag bits in the second byte, below the two state bits
_POLL, _FINAL, _CPI, _AUTH, _DEMAND, _MULTIPOINT = 0x20, 0x10, 0x08, 0x04, 0x02, 0x01


class State(IntEnum):
    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


class Diag(IntEnum):
    """Why the local system last changed state (RFC 5880 4.1); 9-31 are reserved."""

    NONE = 0
    CONTROL_DETECTION_TIME_EXPIRED = 1
    ECHO_FUNCTION_FAILED = 2
    NEIGHBOR_SIGNALED_SESSION_DOWN = 3
    FORWARDING_PLANE_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMINISTRATIVELY_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8


class DecodeError(ValueError):
    """A received packet that RFC 5880 6.8.6 says to discard; the message says which rule."""


@dataclass(frozen=True, slots=True)
class ControlPacket:
    """The mandatory section; intervals are in microseconds as on the wire. ``diag`` stays an ``int`` so
    reserved values from a peer survive a round trip."""

    state: State
    detect_mult: int
    my_discriminator: int
    your_discriminator: int
    desired_min_tx: int
    required_min_rx: int
    required_min_echo_rx: int = 0
    diag: int = Diag.NONE
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    authentication_present: bool = False
    demand: bool = False
    multipoint: bool = False

    def encode(self) -> bytes:
        if self.authentication_present:
            raise ValueError("authentication is not supported: no A bit without an auth section")
        if not 0 <= self.diag <= 0x1F:
            raise ValueError(f"diag {self.diag} does not fit 5 bits")
        if not 0 <= self.detect_mult <= 0xFF:
            raise ValueError(f"detect mult {self.detect_mult} does not fit a byte")
        words = (
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx,
            self.required_min_rx,
            self.required_min_echo_rx,
        )
        if any(not 0 <= word <= _U32 for word in words):
            raise ValueError(f"a 32-bit field is out of range: {words}")
        flags = (
            (_POLL if self.poll else 0)
            | (_FINAL if self.final else 0)
            | (_CPI if self.control_plane_independent else 0)
            | (_DEMAND if self.demand else 0)
            | (_MULTIPOINT if self.multipoint else 0)
        )
        return _FORMAT.pack(
            (VERSION << 5) | self.diag, (int(self.state) << 6) | flags, self.detect_mult, LENGTH, *words
        )


def parse(data: bytes) -> ControlPacket:
    """Decode and validate (RFC 5880 6.8.6, the checks that need no session); raise ``DecodeError``."""
    if len(data) < LENGTH:
        raise DecodeError(f"too short: {len(data)} bytes")
    vdiag, flags, detect_mult, length, mine, yours, tx, rx, echo = _FORMAT.unpack_from(data)
    if vdiag >> 5 != VERSION:
        raise DecodeError(f"version {vdiag >> 5}")
    if flags & _AUTH:
        raise DecodeError("authentication present, not supported")
    if length < LENGTH or length > len(data):
        raise DecodeError(f"length field {length} for {len(data)} bytes")
    if detect_mult == 0:
        raise DecodeError("detect mult 0")
    if flags & _MULTIPOINT:
        raise DecodeError("multipoint bit set")
    if flags & _POLL and flags & _FINAL:
        raise DecodeError("both poll and final set")
    if mine == 0:
        raise DecodeError("my discriminator 0")
    state = State(flags >> 6)
    if yours == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
        raise DecodeError(f"your discriminator 0 in state {state.name}")
    return ControlPacket(
        state=state,
        detect_mult=detect_mult,
        my_discriminator=mine,
        your_discriminator=yours,
        desired_min_tx=tx,
        required_min_rx=rx,
        required_min_echo_rx=echo,
        diag=vdiag & 0x1F,
        poll=bool(flags & _POLL),
        final=bool(flags & _FINAL),
        control_plane_independent=bool(flags & _CPI),
        demand=bool(flags & _DEMAND),
    )


def decode(data: bytes) -> ControlPacket | None:
    """``parse`` for the receive path: an invalid packet is ``None``, to be dropped."""
    try:
        return parse(data)
    except DecodeError:
        return None
