"""The BFD control packet codec: exact bytes, round trips, and every discard rule of RFC 5880 6.8.6."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ironlb.speaker.bfd.packet import LENGTH, ControlPacket, DecodeError, Diag, State, decode, parse

U32 = st.integers(min_value=0, max_value=0xFFFFFFFF)


@st.composite
def packets(draw: st.DrawFn) -> ControlPacket:
    state = draw(st.sampled_from(State))
    zero_allowed = state in (State.DOWN, State.ADMIN_DOWN)
    poll, final = draw(st.sampled_from([(False, False), (True, False), (False, True)]))
    return ControlPacket(
        state=state,
        detect_mult=draw(st.integers(min_value=1, max_value=255)),
        my_discriminator=draw(st.integers(min_value=1, max_value=0xFFFFFFFF)),
        your_discriminator=draw(U32 if zero_allowed else st.integers(min_value=1, max_value=0xFFFFFFFF)),
        desired_min_tx=draw(U32),
        required_min_rx=draw(U32),
        required_min_echo_rx=draw(U32),
        diag=draw(st.integers(min_value=0, max_value=31)),
        poll=poll,
        final=final,
        control_plane_independent=draw(st.booleans()),
        demand=draw(st.booleans()),
    )


def raw(
    vdiag: int = 0x20,
    flags: int = 0xC0,
    mult: int = 3,
    length: int = LENGTH,
    mine: int = 1,
    yours: int = 2,
    tail: bytes = b"",
) -> bytes:
    return struct.pack("!BBBBIIIII", vdiag, flags, mult, length, mine, yours, 300_000, 300_000, 0) + tail


def test_known_bytes() -> None:
    packet = ControlPacket(
        state=State.UP,
        detect_mult=3,
        my_discriminator=0x01020304,
        your_discriminator=0x0A0B0C0D,
        desired_min_tx=300_000,
        required_min_rx=1_000_000,
        diag=Diag.NEIGHBOR_SIGNALED_SESSION_DOWN,
        poll=True,
    )
    assert packet.encode().hex() == (
        "23e00318" "01020304" "0a0b0c0d" "000493e0" "000f4240" "00000000"
    )  # fmt: skip


@given(packets())
def test_round_trip(packet: ControlPacket) -> None:
    data = packet.encode()
    assert len(data) == LENGTH
    assert decode(data) == packet


@given(st.binary(max_size=80))
def test_decode_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    result = decode(data)
    assert result is None or isinstance(result, ControlPacket)


@given(packets(), st.lists(st.tuples(st.integers(0, LENGTH - 1), st.integers(0, 255)), max_size=4))
def test_decode_never_raises_on_mutated_packets(packet: ControlPacket, edits: list[tuple[int, int]]) -> None:
    data = bytearray(packet.encode())
    for index, value in edits:
        data[index] = value
    result = decode(bytes(data))
    if result is not None:  # whatever survives validation is again a valid packet
        assert decode(result.encode()) == result


def test_a_valid_packet_with_trailing_bytes_beyond_length_is_accepted() -> None:
    assert decode(raw(tail=b"\0" * 8)) is not None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (raw()[:23], "too short"),
        (raw(vdiag=0x00), "version"),
        (raw(vdiag=0x40), "version"),
        (raw(length=23), "length"),
        (raw(length=25), "length"),
        (raw(mult=0), "detect mult"),
        (raw(flags=0xC1), "multipoint"),
        (raw(flags=0xC4, length=26, tail=b"\x01\x02"), "authentication"),
        (raw(flags=0xF0), "poll and final"),
        (raw(mine=0), "my discriminator"),
        (raw(flags=0xC0, yours=0), "your discriminator 0 in state UP"),
        (raw(flags=0x80, yours=0), "your discriminator 0 in state INIT"),
    ],
)
def test_discard_rules(data: bytes, reason: str) -> None:
    assert decode(data) is None
    with pytest.raises(DecodeError, match=reason):
        parse(data)


@pytest.mark.parametrize("state", [State.DOWN, State.ADMIN_DOWN])
def test_your_discriminator_zero_is_fine_while_down(state: State) -> None:
    packet = decode(raw(flags=state << 6, yours=0))
    assert packet is not None and packet.state is state and packet.your_discriminator == 0


def test_encode_refuses_what_we_cannot_send() -> None:
    base = ControlPacket(State.DOWN, 3, 1, 0, 1_000_000, 300_000)
    with pytest.raises(ValueError, match="authentication"):
        replace(base, authentication_present=True).encode()
    with pytest.raises(ValueError, match="32-bit"):
        replace(base, desired_min_tx=2**32).encode()
    with pytest.raises(ValueError, match="diag"):
        replace(base, diag=32).encode()
    with pytest.raises(ValueError, match="detect mult"):
        replace(base, detect_mult=256).encode()
