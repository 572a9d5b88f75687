"""The periodic re-announcement of owned IPs, spread over its period (pure: time passed in).

Switches age out their MAC tables and clients their neighbour caches; a gratuitous ARP or unsolicited NA per
owned IP every ``period`` keeps both fresh. Sent all at once, 10,000 IPs are 10,000 frames in a burst on the
segment and ~0.2 s of CPU in one tick: under a CPU quota of 100m, two seconds in which the loop answers no
ARP request. So a round is spread over the first half of its period, a few IPs per tick; the other half is
slack for a loop that ticks late.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

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
        """What to announce again in this tick. A round takes ``owned()`` when it starts; what it has not
        sent by the next round's start is dropped (that round sends it)."""
        if self.period <= 0:
            return []
        if now >= self.next_round:
            self.next_round = now + self.period
            self._pending = deque(owned())
            ticks = max(1, int(self.period / 2 / self.tick))
            self._batch = max(1, -(-len(self._pending) // ticks))
        return [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
