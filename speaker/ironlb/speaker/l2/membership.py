"""Which speakers are alive, with bounded work per node however many nodes there are (pure: time passed in).

Nodes sit on a ring ordered by a hash of their names. Each node exchanges heartbeats with its ``FANOUT``
nearest live ring neighbours only (half on each side): its watchers. A watcher that hears nothing from a
neighbour for ``timeout`` broadcasts a signed down report to every node; a node is dead for everybody once
``QUORUM`` distinct watchers report it down, so one watcher's bad link or stalled loop moves no IP. A
watcher that hears the node again broadcasts an up report. Per node and second that is 2 x FANOUT / interval
heartbeats, whatever the cluster's size; a death costs each node FANOUT x REPEATS extra messages.

Replay protection uses no wall clock: every message carries its sender's stamp (boot id, monotonic
nanoseconds), and a receiver keeps the newest stamp of each sender, refusing anything not newer and any
boot it has seen replaced. A down report stops counting once the node is heard of ``timeout`` after the
stamp the report names.

Failure model: see docs/architecture.md ("Membership").
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from .wire import MAX_REPORTS, Message, Report

FANOUT = 4  # watchers per node (two ring neighbours on each side)
QUORUM = 2  # distinct watchers whose down reports make a node dead (fewer when it has fewer watchers)
REPEATS = 3  # a report is broadcast this many times, one interval apart: 1 % loss misses all 3 in 10⁻⁶
REORDER = 1_000_000_000  # ns: a message up to 1 s older than the sender's newest may still arrive
RETIRED_BOOTS = 8  # boots remembered per node, so that none of them can be replayed once replaced
UNKNOWN = bytes(16)  # the boot named by a down report on a node never heard of
DUE_MARGIN = 0.001  # s: a silence counts once *past* the timeout, so a tick is due just after it
Outgoing = list[tuple[list[str], Message]]  # (destinations, message)


def stall_limit(interval: float, timeout: float) -> float:
    """How long a node's membership may go unticked before its peers may be about to take over: it sends a
    heartbeat before their ``timeout`` runs out."""
    return timeout - interval


def claimable(now: float, last_tick: float, claim_after: float, limit: float) -> bool:
    """May a node claim IPs at ``now``: its membership ticked within ``limit`` (its stall limit) and is past
    any hold after a stall (``Membership.may_claim``, also read across processes)."""
    return now - last_tick <= limit and now >= claim_after


def ring_position(node: str) -> bytes:
    return hashlib.sha256(node.encode()).digest()


@dataclass
class _Window:
    """A sender's stamps accepted lately: a sequence is taken once, and only if newer than the newest
    minus ``REORDER`` (jitter reorders datagrams; a replay is a sequence seen, or older than that)."""

    boot: bytes
    newest: int
    seen: set[int] = field(default_factory=set)

    def accept(self, sequence: int) -> bool:
        if sequence <= self.newest - REORDER or sequence in self.seen or sequence == self.newest:
            return False
        if sequence > self.newest:
            self.seen = {seen for seen in self.seen if seen > sequence - REORDER}
            self.seen.add(self.newest)
            self.newest = sequence
        else:
            self.seen.add(sequence)
        return True


@dataclass
class _Subject:
    """What this node knows of another node's life, in that node's own stamps."""

    boot: bytes | None = None
    heard: int = -1  # newest sequence of ``boot`` known to be alive (heard directly or reported up)
    down: dict[str, int] = field(default_factory=dict)  # watcher -> the sequence it last heard
    leaving: int | None = None  # sequence of a goodbye
    retired: list[bytes] = field(default_factory=list)

    def evidence(self, boot: bytes) -> bool:
        """Move to ``boot`` if new; False when it is a replaced (replayed) boot."""
        if boot == self.boot:
            return True
        if boot in self.retired:
            return False
        if self.boot is not None:
            self.retired = [*self.retired, self.boot][-RETIRED_BOOTS:]
        self.boot, self.heard, self.down, self.leaving = boot, -1, {}, None
        return True


@dataclass
class Membership:
    """One node's view of who is alive. ``tick`` returns what to send; ``receive`` takes what arrived."""

    me: str
    boot: bytes
    interval: float = 0.05
    timeout: float = 0.3
    fanout: int = FANOUT
    quorum: int = QUORUM
    repeats: int = REPEATS
    _ring: list[tuple[bytes, str]] = field(default_factory=list)
    _subjects: dict[str, _Subject] = field(default_factory=dict)
    _senders: dict[str, _Window] = field(default_factory=dict)  # the stamps accepted of each sender
    _watching: dict[str, float] = field(default_factory=dict)  # neighbour -> when last heard (local time)
    _reported_down: set[str] = field(default_factory=set)  # neighbours this node reports down
    _pending: list[tuple[int, Report]] = field(default_factory=list)  # (sends left, report)
    _direct: list[tuple[str, list[Report]]] = field(default_factory=list)  # to one node, next tick
    _synced: dict[str, float] = field(default_factory=dict)  # node -> when it was last told who is dead
    _vouching: set[str] = field(default_factory=set)  # neighbours reported down that this node hears
    _lone: dict[str, float] = field(default_factory=dict)  # node -> since when one report alone holds it
    _started: float | None = None
    _dead: set[str] = field(default_factory=set)
    _live: list[str] = field(default_factory=list)  # the ring without the dead (cached)
    _live_index: dict[str, int] = field(default_factory=dict)
    _ring_neighbours: list[str] = field(default_factory=list)  # dead or alive
    _next_heartbeat: float = float("-inf")
    _last_tick: float | None = None
    _claim_after: float = float("-inf")
    _sequence: int = -1  # the last stamp sent: every message gets a greater one
    stalls: list[float] = field(default_factory=list)  # this node's own stalls (s), for the adapter to log
    doubted: int = 0  # down reports received about this very node
    version: int = 0  # bumped whenever the set of live nodes changes: an unchanged one costs nothing

    def __post_init__(self) -> None:
        self.configure([self.me])

    # ------------------------------------------------------------------------------------------ reading
    def alive(self) -> frozenset[str]:
        """Every configured node not known dead, this node included."""
        return frozenset(self._live)

    def dead(self) -> frozenset[str]:
        return frozenset(self._dead)

    def neighbours(self) -> list[str]:
        """The live ring neighbours this node exchanges heartbeats with (half on each side)."""
        return self._neighbours_of(self.me)

    @property
    def stall_limit(self) -> float:
        """How long ``tick`` may go unrun before peers may be about to take over (a heartbeat before the
        timeout)."""
        return stall_limit(self.interval, self.timeout)

    def may_claim(self, now: float) -> bool:
        """False while this node's own loop is stalled past ``stall_limit`` and, after such a stall, until
        its peers have heard it again and handed its IPs back."""
        return claimable(now, *self.claim_window(), self.stall_limit)

    def next_due(self) -> float:
        """When ``tick`` next has work if no message comes first: a heartbeat (with any report repeats), a
        reply owed to a speaker that just started, a neighbour's silence past the timeout, a lone report's
        timeout. Ticking earlier changes nothing, so a caller may sleep until then."""
        if self._direct:
            return float("-inf")
        due = self._next_heartbeat
        for node, heard in self._watching.items():
            if node not in self._reported_down:
                due = min(due, heard + self.timeout + DUE_MARGIN)
        for since in self._lone.values():
            due = min(due, since + self.timeout)
        return due

    def claim_window(self) -> tuple[float, float]:
        """(last tick, claim after): what ``may_claim`` decides from, for a process that asks without
        running the membership itself."""
        return float("-inf") if self._last_tick is None else self._last_tick, self._claim_after

    # ---------------------------------------------------------------------------------------- changing
    def configure(self, nodes: Iterable[str]) -> None:
        """The cluster's nodes (from the published configuration); unknown senders are ignored."""
        names = set(nodes) | {self.me}
        self._ring = sorted((ring_position(node), node) for node in names)
        for gone in set(self._subjects) - names:
            del self._subjects[gone]
        self._senders = {node: stamp for node, stamp in self._senders.items() if node in names}
        self._dead &= names
        ring = [name for _, name in self._ring]
        if len(ring) <= self.fanout + 1:
            self._ring_neighbours = [name for name in ring if name != self.me]
        else:
            index, half = ring.index(self.me), self.fanout // 2
            offsets = [offset for offset in range(-half, half + 1) if offset]
            self._ring_neighbours = [ring[(index + offset) % len(ring)] for offset in offsets]
        self._relink()

    def tick(self, now: float, sequence: int) -> Outgoing:
        """Watch the neighbours, and return the heartbeats and report broadcasts due now. ``sequence``
        is this node's monotonic clock in nanoseconds (its stamp). After a stall of this node's own loop,
        silence observed meanwhile is not held against its neighbours."""
        gap = 0.0 if self._last_tick is None else now - self._last_tick
        if gap > self.timeout / 2:  # what queued meanwhile is read after this tick: hear it first
            self._watching = dict.fromkeys(self._watching, now)
        if gap > self.stall_limit:
            self.hold(now)
            self.stalls.append(gap)
        self._last_tick = now
        if self._started is None:
            self._started = now
        syncing = now - self._started < self.timeout
        fresh = self._watch(now)
        for node in list(self._lone):  # unconfirmed, unvoided for a timeout: its other watchers are gone too
            self._recount(node)
        outgoing: Outgoing = []
        for node, reports in self._direct:
            outgoing += self._reporting([node], reports, sequence)
        self._direct = []
        due = now >= self._next_heartbeat
        if fresh or (due and self._pending):  # a new report goes out at once, its repeats with heartbeats
            outgoing += self._reporting(self._others(), [report for _, report in self._pending], sequence)
            self._pending = [(left - 1, report) for left, report in self._pending if left > 1]
        if due:
            self._next_heartbeat = now + self.interval
            heartbeat = Message(self.me, self.boot, self._stamp(sequence), syncing=syncing)
            outgoing.append((self._heartbeat_targets(), heartbeat))
        return outgoing

    def hold(self, now: float) -> None:
        """Claim nothing until peers have heard this node for a timeout: after a stall, or in a heartbeat
        process that replaces one that fell silent (peers may hold this node dead and answer for its IPs)."""
        self._claim_after = max(self._claim_after, now + self.timeout + self.interval)

    def leave(self, sequence: int) -> Outgoing:
        """A goodbye to every node, so that they take over at once instead of after a timeout."""
        return [(self._others(), Message(self.me, self.boot, self._stamp(sequence), leaving=True))]

    def receive(self, message: Message, now: float) -> bool:
        """Take a genuine message; False (and nothing changes) for a replay or an unknown sender."""
        sender = message.sender
        if sender == self.me or (sender not in self._senders and not self._known(sender)):
            return False
        subject = self._subjects.setdefault(sender, _Subject())
        window = self._senders.get(sender)
        if window is not None and window.boot == message.boot:
            if not window.accept(message.sequence):
                return False
        elif subject.evidence(message.boot):
            self._senders[sender] = _Window(message.boot, message.sequence)
        else:
            return False
        if message.syncing and self._dead and now - self._synced.get(sender, float("-inf")) > 1.0:
            self._synced[sender] = now  # a speaker that just started: tell it who is dead
            self._direct.append((sender, [self._standing(node) for node in sorted(self._dead)]))
        if message.leaving:
            subject.leaving = message.sequence
        else:
            subject.heard = max(subject.heard, message.sequence)
            if subject.leaving is not None and message.sequence > subject.leaving:
                subject.leaving = None
        if sender in self._watching:
            self._watching[sender] = now
        if not message.leaving and (
            sender in self._reported_down or sender in self._dead or sender in self._vouching
        ):
            self._reported_down.discard(sender)  # it lives: say so to all, who may hold it dead
            self._vouching.discard(sender)
            self._announce(Report(sender, False, message.boot, message.sequence))
        self._recount(sender)
        for report in message.reports:
            self._take(sender, report)
        return True

    # ---------------------------------------------------------------------------------------- internals
    def _others(self) -> list[str]:
        return [node for _, node in self._ring if node != self.me]

    def _reporting(self, nodes: list[str], reports: list[Report], sequence: int) -> Outgoing:
        """``reports`` to ``nodes``, in as many messages as it takes (MAX_REPORTS each)."""
        return [
            (
                nodes,
                Message(
                    self.me, self.boot, self._stamp(sequence), reports=tuple(reports[i : i + MAX_REPORTS])
                ),
            )
            for i in range(0, len(reports), MAX_REPORTS)
        ]

    def _stamp(self, clock: int) -> int:
        """A sequence greater than any sent before (two messages of one tick share the clock)."""
        self._sequence = max(clock, self._sequence + 1)
        return self._sequence

    def _known(self, node: str) -> bool:
        index = bisect.bisect_left(self._ring, (ring_position(node), node))
        return index < len(self._ring) and self._ring[index][1] == node

    def _standing(self, node: str) -> Report:
        """This node's down report on a node it holds dead, for a speaker that just started."""
        subject = self._subjects[node]
        if subject.leaving is not None:
            return Report(node, True, subject.boot or UNKNOWN, subject.leaving)
        return Report(node, True, subject.boot or UNKNOWN, max(subject.down.values(), default=-1))

    def _take(self, watcher: str, report: Report) -> None:
        if report.subject == self.me:
            self.doubted += report.down  # peers may be taking this node's IPs: it must claim them back
            return
        if not self._known(report.subject):
            return
        subject = self._subjects.setdefault(report.subject, _Subject())
        if report.boot == UNKNOWN:  # "never heard it since I started": says nothing of its boots
            if report.down:
                subject.down[watcher] = max(subject.down.get(watcher, -1), -1)
                self._vouch(report.subject)
                self._recount(report.subject)
            return
        if not subject.evidence(report.boot):
            return
        if report.down:
            subject.down[watcher] = max(subject.down.get(watcher, -1), report.sequence)
            self._vouch(report.subject)
        else:
            subject.heard = max(subject.heard, report.sequence)
            subject.down.pop(watcher, None)
        self._recount(report.subject)

    def _vouch(self, node: str) -> None:
        """A down report on a neighbour this node hears fine: the next message heard from it is vouched for
        to all (an up report), which voids a report made by a watcher with a bad link before a second one
        confirms it. (That message is newer than the report's stamp by more than a timeout.)"""
        heard = self._watching.get(node)
        if heard is None or node in self._reported_down or self._last_tick is None:
            return
        if self._last_tick - heard <= self.timeout:
            self._vouching.add(node)

    def _watch(self, now: float) -> bool:
        """Follow the current neighbours; report down any silent for ``timeout`` (True: a new report). A
        neighbour never heard of since this node started is reported with an UNKNOWN boot."""
        neighbours = self.neighbours()
        if neighbours != list(self._watching):
            self._watching = {node: self._watching.get(node, now) for node in neighbours}
            self._reported_down &= set(neighbours)
        fresh = False
        for node, heard in list(self._watching.items()):
            if node in self._reported_down or now - heard <= self.timeout:
                continue
            subject = self._subjects.setdefault(node, _Subject())
            sequence = max(subject.heard, subject.down.get(self.me, -1))
            self._reported_down.add(node)
            subject.down[self.me] = sequence
            self._announce(Report(node, True, subject.boot or UNKNOWN, sequence))
            self._recount(node)
            fresh = True
        return fresh

    def _announce(self, report: Report) -> None:
        self._pending = [(left, r) for left, r in self._pending if r.subject != report.subject]
        self._pending.append((self.repeats, report))
        subject = self._subjects.setdefault(report.subject, _Subject())
        if not report.down and subject.evidence(report.boot):
            subject.down.pop(self.me, None)

    def _heartbeat_targets(self) -> list[str]:
        """The live neighbours, and the ring neighbours even when held dead: after a partition heals, each
        side hears the other again and says so (nobody would send first otherwise)."""
        return list(dict.fromkeys([*self._watching, *self._ring_neighbours]))

    def _neighbours_of(self, node: str) -> list[str]:
        """``node``'s live ring neighbours (``node`` itself counted as live: it is the one looked at)."""
        live, index = self._live, self._live_index.get(node)
        if index is None:  # a dead node: where it would sit among the live
            live = sorted([*live, node], key=lambda name: (ring_position(name), name))
            index = live.index(node)
        if len(live) <= self.fanout + 1:
            return [name for name in live if name != node]
        half = self.fanout // 2
        return [live[(index + offset) % len(live)] for offset in range(-half, half + 1) if offset]

    def _recount(self, node: str) -> None:
        """``node`` is dead once QUORUM of its live watchers report it silent (and nothing was heard of it
        ``timeout`` after the stamps they name), or once it said goodbye. A lone report that no watcher
        voids (by vouching) within a timeout also counts: the other watchers are gone as well."""
        subject = self._subjects.get(node)
        dead = False
        if subject is not None:
            if subject.leaving is not None:
                dead = True
            elif subject.down:
                limit = int(self.timeout * 1e9)
                reports = sum(1 for heard in subject.down.values() if subject.heard < heard + limit)
                needed = min(self.quorum, len(self._neighbours_of(node)))
                if reports and reports < needed:  # a lone report: no other watcher may be left to confirm
                    lone_since = self._lone.setdefault(node, self._last_tick or 0.0)
                    dead = (self._last_tick or 0.0) - lone_since >= self.timeout
                else:
                    self._lone.pop(node, None)
                    dead = reports > 0
            if not subject.down:
                self._lone.pop(node, None)
        if dead != (node in self._dead):
            if dead:
                self._dead.add(node)
            else:
                self._dead.discard(node)
            self._relink()

    def _relink(self) -> None:
        self.version += 1
        self._live = [name for _, name in self._ring if name not in self._dead]
        self._live_index = {name: index for index, name in enumerate(self._live)}
