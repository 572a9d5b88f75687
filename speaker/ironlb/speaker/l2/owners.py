"""Incremental Layer 2 ownership (pure): each IP's owner kept up to date as membership and configuration
change, so that a tick with nothing changed costs nothing per IP.

The election is the rendezvous hashing of ``election.owner`` (the same weights, so speakers of different
versions agree during a rolling upgrade). For each (Service, IP) the ``KEEP`` best-ranked eligible nodes are
cached with their weights. A node's death re-elects only the IPs it owned (about M/N of them), walking
their cached ranking; a node coming back re-elects only the IPs whose ranking holds it. An IP whose cached
candidates are all dead (a mass failure) falls back to a full ranking of its live eligible nodes and is
re-examined on every membership change until a cached candidate lives again.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from .election import weight

KEEP = 8  # candidates cached per IP: all of them dead at once is a mass failure, handled by a full ranking

Key = tuple[str, str]  # (Service, IP)
Ranked = tuple[tuple[bytes, str], ...]  # (weight, node), best first


@dataclass(frozen=True)
class _Entry:
    eligible: frozenset[str]
    ranking: Ranked  # the best min(KEEP, len(eligible)) eligible nodes
    complete: bool  # the ranking holds every eligible node


def _rank(ip: str, nodes: Iterable[str], keep: int) -> Ranked:
    return tuple(heapq.nlargest(keep, ((weight(node, ip), node) for node in nodes)))


class OwnerIndex:
    """The owner of every (Service, IP), maintained incrementally; ``owned_by(node)`` is what a speaker
    answers for. Agrees with ``election.owner`` on every key after any sequence of changes (tested)."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._entries: dict[Key, _Entry] = {}
        self._owner: dict[Key, str] = {}
        self._by_owner: dict[str, set[Key]] = {}
        self._by_candidate: dict[str, set[Key]] = {}
        self._fallback: set[Key] = set()  # owner (or no owner) decided outside the cached ranking
        self._alive: frozenset[str] = frozenset()
        self.elections = 0  # keys re-elected so far: what a change cost (benchmarks read it)

    # ------------------------------------------------------------------------------------------ reading
    def owner(self, key: Key) -> str | None:
        return self._owner.get(key)

    def owned_by(self, node: str) -> Set[Key]:
        return self._by_owner.get(node, set())

    def keys(self) -> Set[Key]:
        return self._entries.keys()

    # ---------------------------------------------------------------------------------------- changing
    def set_alive(self, alive: Iterable[str]) -> None:
        """New membership: re-elect the keys the dead owned and those whose ranking holds a newcomer."""
        alive = frozenset(alive)
        if alive == self._alive:
            return
        dead, joined = self._alive - alive, alive - self._alive
        self._alive = alive
        touched: set[Key] = set(self._fallback)
        for node in dead:
            touched |= self._by_owner.get(node, set())
        for node in joined:
            touched |= self._by_candidate.get(node, set())
        for key in touched:
            self._elect(key)

    def set_eligible(self, wanted: Mapping[Key, frozenset[str]]) -> None:
        """New configuration: each key's eligible nodes. Keys gone are forgotten; a key whose eligible set
        changed is re-ranked from its cached ranking when that is enough, from scratch otherwise."""
        for key in [key for key in self._entries if key not in wanted]:
            self._forget(key)
        for key, eligible in wanted.items():
            entry = self._entries.get(key)
            if entry is not None and (entry.eligible is eligible or entry.eligible == eligible):
                continue
            self._store(key, self._reranked(key[1], entry, eligible))
            self._elect(key)

    # ---------------------------------------------------------------------------------------- internals
    def _reranked(self, ip: str, entry: _Entry | None, eligible: frozenset[str]) -> _Entry:
        keep = self.keep
        if entry is not None:
            removed, added = entry.eligible - eligible, eligible - entry.eligible
            kept = [(w, node) for w, node in entry.ranking if node not in removed]
            if entry.complete or len(kept) == len(entry.ranking):
                # nothing below the cached ranking was lost: the new best are among it and the newcomers
                merged = heapq.nlargest(keep, kept + [(weight(node, ip), node) for node in added])
                return _Entry(eligible, tuple(merged), len(eligible) <= keep)
        return _Entry(eligible, _rank(ip, eligible, keep), len(eligible) <= keep)

    def _store(self, key: Key, entry: _Entry) -> None:
        previous = self._entries.get(key)
        if previous is not None:
            for _, node in previous.ranking:
                self._by_candidate[node].discard(key)
        self._entries[key] = entry
        for _, node in entry.ranking:
            self._by_candidate.setdefault(node, set()).add(key)

    def _forget(self, key: Key) -> None:
        entry = self._entries.pop(key)
        for _, node in entry.ranking:
            self._by_candidate[node].discard(key)
        self._set_owner(key, None)
        self._fallback.discard(key)

    def _elect(self, key: Key) -> None:
        self.elections += 1
        entry = self._entries[key]
        alive = self._alive
        chosen = next((node for _, node in entry.ranking if node in alive), None)
        if chosen is None and not entry.complete:
            self._fallback.add(key)
            best = _rank(key[1], entry.eligible & alive, 1)
            chosen = best[0][1] if best else None
        else:
            self._fallback.discard(key)
        self._set_owner(key, chosen)

    def _set_owner(self, key: Key, node: str | None) -> None:
        previous = self._owner.get(key)
        if previous == node:
            return
        if previous is not None:
            self._by_owner[previous].discard(key)
        if node is None:
            self._owner.pop(key, None)
        else:
            self._owner[key] = node
            self._by_owner.setdefault(node, set()).add(key)
