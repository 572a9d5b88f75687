"""Two clocks shared by the speaker and its heartbeat process, in a few bytes of shared memory (a memfd).

The heartbeat process publishes when its membership last ticked and when this node may claim again
(``Membership.claim_window``); the speaker reads them before every ARP/NDP answer, without a system call or
a lock. The speaker publishes when its own loop last ran; the heartbeat process stops heartbeating once that
is too old (a hung speaker must not keep its IPs from its peers).

Each record has one writer and is read under a sequence lock: an odd sequence is a write under way, and a
read is kept only if the sequence did not move. A writer stopped mid-write (throttled by the CPU quota,
frozen) leaves the sequence odd: after a few tries the reader takes the last record it read whole. Both
records hold moments, so a stale one ages into the safe answer: cannot claim, loop not running.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

_SEQUENCE = struct.Struct("=Q")
_VALUES = struct.Struct("=dd")
_RECORD = 32  # bytes: a sequence, two doubles, padding
CLAIM, LOOP = 0, _RECORD  # the heartbeat process's record; the speaker loop's
SIZE = 2 * _RECORD
TRIES = 100
NEVER = (float("-inf"), float("inf"))  # (last tick, claim after) of a membership that never ticked


class SharedStamps:
    """The shared record pair, mapped from ``fd`` (created by ``create``, inherited by the child)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, SIZE)
        self._last = {CLAIM: NEVER, LOOP: (float("-inf"), 0.0)}  # the last record read whole

    @classmethod
    def create(cls) -> SharedStamps:
        fd = os.memfd_create("ironlb-heartbeat-stamps")
        os.ftruncate(fd, SIZE)
        stamps = cls(fd)
        stamps.publish_claim(*NEVER)
        stamps.mark_loop(time.monotonic())
        return stamps

    # ---------------------------------------------------------------------------- heartbeat process side
    def publish_claim(self, last_tick: float, claim_after: float) -> None:
        self._write(CLAIM, last_tick, claim_after)

    def loop_ran(self) -> float:
        """When the speaker's loop last ran (CLOCK_MONOTONIC)."""
        return self._read(LOOP)[0]

    # ------------------------------------------------------------------------------------- speaker side
    def mark_loop(self, now: float) -> None:
        self._write(LOOP, now, 0.0)

    def claim_window(self) -> tuple[float, float]:
        """(last tick, claim after) of the membership."""
        return self._read(CLAIM)

    # ---------------------------------------------------------------------------------------- internals
    def _write(self, offset: int, first: float, second: float) -> None:
        (sequence,) = _SEQUENCE.unpack_from(self._map, offset)
        _SEQUENCE.pack_into(self._map, offset, sequence + 1)
        _VALUES.pack_into(self._map, offset + 8, first, second)
        _SEQUENCE.pack_into(self._map, offset, sequence + 2)

    def _read(self, offset: int) -> tuple[float, float]:
        for _ in range(TRIES):
            (before,) = _SEQUENCE.unpack_from(self._map, offset)
            if before % 2:
                continue
            values: tuple[float, float] = _VALUES.unpack_from(self._map, offset + 8)
            (after,) = _SEQUENCE.unpack_from(self._map, offset)
            if before == after:
                self._last[offset] = values
                return values
        return self._last[offset]

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)
