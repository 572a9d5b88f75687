"""Long-lived objects kept out of Python's full garbage collections, so that none is a burst of CPU.

A full collection walks every tracked object: with 5,000 Services watched, tens of milliseconds of CPU in
one go. Under a 50m quota that stops the whole speaker, heartbeats included, for most of a second. The
watched objects are long-lived and free of reference cycles (parsed JSON, frozen models), so they are
moved to the permanent generation (``gc.freeze``) once the watches have listed, then periodically: full
collections only walk what is newer. Frozen objects are still freed by reference counting; only a
reference cycle already frozen when it becomes garbage stays (the frozen count is exported).
"""

from __future__ import annotations

import gc

from prometheus_client import Gauge

FREEZE_EVERY = 60.0  # seconds
FROZEN = Gauge("ironlb_speaker_gc_frozen_objects", "Objects moved out of the garbage collector's reach.")


class HeapFreezer:
    def __init__(self, every: float = FREEZE_EVERY) -> None:
        self.every = every
        self._next: float | None = None

    def tick(self, now: float, ready: bool) -> None:
        """Freeze once ``ready`` (the watches have listed), then every ``every`` seconds."""
        if not ready or (self._next is not None and now < self._next):
            return
        gc.collect(1)  # the young generations only: short-lived garbage is not frozen
        gc.freeze()
        FROZEN.set(gc.get_freeze_count())
        self._next = now + self.every
