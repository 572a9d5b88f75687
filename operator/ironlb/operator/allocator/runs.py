"""A set of integers kept as sorted, merged runs, answering "lowest free index" in O(log n)."""

from __future__ import annotations

from sortedcontainers import SortedList


class UsedRuns:
    """Used indexes of one segment as maximal runs ``[start, end]``.

    Because runs are merged, the index after a run is always free, so the lowest free index is found by
    one look-up rather than a scan.
    """

    def __init__(self) -> None:
        self._starts: SortedList = SortedList()
        self._end_of: dict[int, int] = {}
        self.count = 0

    def _run_containing(self, index: int) -> int | None:
        position = self._starts.bisect_right(index) - 1
        if position < 0:
            return None
        start: int = self._starts[position]
        return start if self._end_of[start] >= index else None

    def __contains__(self, index: int) -> bool:
        return self._run_containing(index) is not None

    def add(self, index: int) -> None:
        if index in self:
            return
        left = self._run_containing(index - 1)
        right_end = self._end_of.pop(index + 1, None)
        if right_end is not None:
            self._starts.remove(index + 1)
        end = right_end if right_end is not None else index
        if left is not None:
            self._end_of[left] = end
        else:
            self._starts.add(index)
            self._end_of[index] = end
        self.count += 1

    def discard(self, index: int) -> None:
        start = self._run_containing(index)
        if start is None:
            return
        end = self._end_of[start]
        if start == index:
            self._starts.remove(start)
            del self._end_of[start]
        else:
            self._end_of[start] = index - 1
        if index < end:
            self._starts.add(index + 1)
            self._end_of[index + 1] = end
        self.count -= 1

    def lowest_free(self, size: int) -> int | None:
        """The lowest index in ``0..size-1`` not in the set, or None when all are used."""
        start = self._run_containing(0)
        candidate = 0 if start is None else self._end_of[start] + 1
        return candidate if candidate < size else None
