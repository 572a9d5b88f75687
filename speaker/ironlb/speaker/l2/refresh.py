"""The periodic re-announcement of owned IPs, spread out in time (pure: time passed in).

Clients that missed a takeover's announcement learn the new owner from the next re-announcement: a
gratuitous ARP or unsolicited NA per owned IP every ``period``. Sent all at once, 10,000 IPs are 10,000
frames in a burst that every host of the segment processes, and ~0.2 s of CPU in one tick: under a CPU quota
of 100m, two seconds in which the loop answers no request. So a round goes out a few IPs per tick, over the
first half of its period (the other half is slack for a loop that ticks late), and never faster than
``MAX_RATE`` IPs per second: past ``MAX_RATE * period / 2`` IPs a round takes longer than half the period,
and the next one starts once it is over.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

MAX_RATE = 100  # IPs re-announced per second at most (a segment's hosts each process every frame)
Item = TypeVar("Item")


class SpreadRefresh(Generic[Item]):
    def __init__(self, period: float, tick: float, now: float) -> None:
        self.period, self.tick = period, tick
        self.next_round = now + period
        self._pending: deque[Item] = deque()
        self._batch = 1

    def set_period(self, period: float, now: float) -> None:
        """A new period (0: no refresh) starts its first round one period from now."""
        self.period, self.next_round = period, now + period
        self._pending.clear()

    def due(self, now: float, owned: Callable[[], list[Item]]) -> list[Item]:
        """What to announce again in this tick. A round takes ``owned()`` when it starts, one period after
        the previous round started, or once that round is over if it took longer."""
        if self.period <= 0:
            return []
        if not self._pending and now >= self.next_round:
            self.next_round = now + self.period
            self._pending = deque(owned())
            spread = max(self.period / 2, len(self._pending) / MAX_RATE)
            self._batch = max(1, -(-len(self._pending) // max(1, int(spread / self.tick))))
        return [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
