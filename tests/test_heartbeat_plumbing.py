"""What the speaker and its heartbeat process share: the sequence-locked stamps (a reader never takes a torn
or half-written record, and a writer frozen mid-write reads as the safe answer) and the line channel (never
blocks either side; a peer that stopped reading costs a bounded buffer)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from ironlb.speaker.l2.channel import MAX_BUFFERED, Channel
from ironlb.speaker.l2.membership import Membership, claimable
from ironlb.speaker.l2.responders import Responders
from ironlb.speaker.l2.stamps import CLAIM, LOOP, NEVER, SharedStamps

finite = st.floats(allow_nan=False, allow_infinity=True)


@given(finite, finite, finite)
def test_what_one_side_writes_the_other_reads(last_tick: float, claim_after: float, loop: float) -> None:
    stamps = SharedStamps.create()
    try:
        other = SharedStamps(stamps.fd)  # a second mapping, as the heartbeat process has
        stamps.publish_claim(last_tick, claim_after)
        other.mark_loop(loop)
        assert other.claim_window() == (last_tick, claim_after)
        assert stamps.loop_ran() == loop
    finally:
        stamps.close()


def test_a_new_record_pair_claims_nothing_and_its_loop_has_just_run() -> None:
    stamps = SharedStamps.create()
    try:
        assert stamps.claim_window() == NEVER
        assert not claimable(0.0, *stamps.claim_window(), 0.25)
        assert stamps.loop_ran() > 0
    finally:
        stamps.close()


def test_a_writer_stopped_mid_write_reads_as_its_last_whole_record() -> None:
    """An odd sequence is a write under way (its writer throttled or frozen): after its tries the reader
    takes the last record it read whole, never half-written values; a reader that never read one gets the
    safe answer ("cannot claim", "the loop has not run")."""
    stamps = SharedStamps.create()
    fresh = SharedStamps(stamps.fd)
    try:
        stamps.publish_claim(100.0, 0.0)
        stamps.mark_loop(100.0)
        assert (stamps.claim_window(), stamps.loop_ran()) == ((100.0, 0.0), 100.0)
        with Path(f"/proc/self/fd/{stamps.fd}").open("r+b") as raw:  # the stopped writer's view
            for offset in (CLAIM, LOOP):
                raw.seek(offset)
                (sequence,) = struct.unpack("=Q", raw.read(8))
                raw.seek(offset + 8)
                raw.write(struct.pack("=dd", 555.0, 555.0))  # half-written
                raw.seek(offset)
                raw.write(struct.pack("=Q", sequence + 1))
        assert (stamps.claim_window(), stamps.loop_ran()) == ((100.0, 0.0), 100.0)
        assert fresh.claim_window() == NEVER
        assert fresh.loop_ran() == float("-inf")
    finally:
        stamps.close()


def test_the_stamps_reach_another_process_through_the_inherited_descriptor() -> None:
    stamps = SharedStamps.create()
    try:
        stamps.mark_loop(42.5)
        code = (
            "import sys; from ironlb.speaker.l2.stamps import SharedStamps; "
            "s = SharedStamps(int(sys.argv[1])); print(s.loop_ran()); s.publish_claim(7.0, 8.0)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, str(stamps.fd)],
            pass_fds=(stamps.fd,),
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == "42.5"
        assert stamps.claim_window() == (7.0, 8.0)
    finally:
        stamps.close()


def test_the_membership_and_the_shared_window_agree() -> None:
    members = Membership("node1", b"a" * 16)
    members.tick(10.0, 1)
    assert members.may_claim(10.1) == claimable(10.1, *members.claim_window(), members.stall_limit)
    assert not claimable(10.3, *members.claim_window(), members.stall_limit)


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=20)), max_size=30))
def test_messages_arrive_whole_and_in_order(messages: list[dict[str, object]]) -> None:
    ours, theirs = socket.socketpair()
    sender, receiver = Channel(ours), Channel(theirs)
    try:
        received: list[dict[str, object]] = []
        for message in messages:
            assert sender.send(message)
            received += receiver.receive()
        received += receiver.receive()
        assert received == messages
    finally:
        sender.close()
        receiver.close()


def test_the_other_side_gone_closes_the_channel_and_sending_never_blocks() -> None:
    ours, theirs = socket.socketpair()
    sender, receiver = Channel(ours), Channel(theirs)
    try:
        big = {"log": [20, "x" * 60_000]}
        sent = 0
        while sender.send(big):  # nobody reads: the buffer fills, then messages are dropped, no waiting
            sent += 1
            assert sent < 100
        assert sender.pending and sent * 60_000 >= MAX_BUFFERED
        receiver.close()
        sender.flush()
        assert sender.closed and not sender.send({"stop": True})
        assert sender.receive() == []
    finally:
        sender.close()


def test_news_from_the_heartbeat_process_ends_the_responders_wait() -> None:
    """The speaker's loop waits in ``Responders.answer_for`` between ticks: a report on the channel (a peer
    held dead) must end that wait at once, so the peer's IPs are taken without waiting for the next tick."""
    ours, theirs = socket.socketpair()
    responders = Responders()
    try:
        channel = Channel(ours)
        responders.wake_on(channel)
        threading.Timer(0.2, Channel(theirs).send, [{"dead": ["node2"], "doubted": 0}]).start()
        began = time.monotonic()
        responders.answer_for(5.0)
        assert time.monotonic() - began < 2.0
        assert channel.receive() == [{"dead": ["node2"], "doubted": 0}]
        channel.close()  # the process replaced: its channel closed first, then no longer watched
        responders.wake_on(None)
        theirs.close()
        began = time.monotonic()
        responders.answer_for(0.3)
        assert time.monotonic() - began >= 0.3
    finally:
        responders.close()
        ours.close()
        theirs.close()
