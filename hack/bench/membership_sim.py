"""Benchmark: speaker membership and ownership at scale, simulated on virtual time.

Run: hack/bench/run.sh membership_sim [nodes] [ips] [loss] [jitter_ms] [minutes] [kills]
     (defaults 100 1000 0.01 20 10 20)

The real pure code (``Membership``, ``OwnerIndex``, the wire codec) for NODES simulated speakers, on a
simulated network that loses LOSS of the messages and delays each by 0.2 ms plus up to JITTER_MS of jitter.
Every node runs its loop every 25 ms (heartbeats every 50 ms, timeout 300 ms, as the speaker). Reported:

- per-node packets sent and received per second, and CPU µs per second (time spent in the pure code, plus
  the measured cost of signing and checking each message);
- false takeovers: a live node held dead by another during MINUTES of simulated time with no failure, and
  the IPs that other node would then have answered for (out of IPS, every node eligible);
- detection after a kill (KILLS trials): time until the first node and until every node holds it dead;
- up to 100 nodes, a partition into two halves for 5 s: how many nodes held someone dead, how long the
  heal took to undo it;
- IPs moved when one node dies, and what the incremental re-election cost against a full one.
"""

from __future__ import annotations

import functools
import heapq
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ironlb.speaker.l2.election import owner
from ironlb.speaker.l2.membership import Membership
from ironlb.speaker.l2.owners import OwnerIndex
from ironlb.speaker.l2.wire import Message, decode, encode

from bench.stats import percentile

LOOP = 0.025
PARTITIONED_UP_TO = 100  # nodes: past that, simulating each side holding the other dead takes too long
KEY = b"k" * 32


@dataclass
class SimNode:
    name: str
    membership: Membership
    offset: int  # this node's monotonic clock, ns ahead of virtual time
    up: bool = True
    sent: int = 0
    received: int = 0
    cpu: float = 0.0  # seconds of real CPU in the pure code


@dataclass(order=True)
class _Event:
    at: float
    order: int
    action: Callable[[], None] = field(compare=False)


class Simulation:
    """N speakers on virtual time and a lossy, jittery network (partitions: pairs that cannot talk)."""

    def __init__(self, nodes: int, loss: float, jitter: float, seed: int) -> None:
        self.random = random.Random(seed)
        self.loss, self.jitter = loss, jitter
        self.now = 0.0
        self._queue: list[_Event] = []
        self._order = 0
        names = [f"node-{n:04d}" for n in range(nodes)]
        self.nodes = {name: self._node(name) for name in names}
        self.blocked: set[frozenset[str]] = set()
        self.changes: list[tuple[float, str, frozenset[str]]] = []  # (time, observer, dead set)
        for node in self.nodes.values():
            self._at(self.random.uniform(0, LOOP), functools.partial(self._loop, node))

    def _node(self, name: str) -> SimNode:
        return SimNode(
            name, Membership(name, self.random.randbytes(16)), offset=self.random.randrange(10**12)
        )

    def configure_all(self) -> None:
        names = list(self.nodes)
        for node in self.nodes.values():
            node.membership.configure(names)

    def _at(self, at: float, action: Callable[[], None]) -> None:
        self._order += 1
        heapq.heappush(self._queue, _Event(at, self._order, action))

    def run_until(self, end: float) -> None:
        while self._queue and self._queue[0].at <= end:
            event = heapq.heappop(self._queue)
            self.now = event.at
            event.action()
        self.now = end

    def _loop(self, node: SimNode) -> None:
        if not node.up:
            return
        started = time.process_time()
        outgoing = node.membership.tick(self.now, int(self.now * 1e9) + node.offset)
        node.cpu += time.process_time() - started
        self._observe(node)
        for destinations, message in outgoing:
            self._send(node, destinations, message)
        self._at(self.now + LOOP, lambda: self._loop(node))

    def _send(self, node: SimNode, destinations: list[str], message: Message) -> None:
        for destination in destinations:
            node.sent += 1
            if self.random.random() < self.loss or frozenset((node.name, destination)) in self.blocked:
                continue
            delay = 0.0002 + self.random.uniform(0, self.jitter)
            self._at(self.now + delay, functools.partial(self._deliver, destination, message))

    def _deliver(self, name: str, message: Message) -> None:
        node = self.nodes[name]
        if not node.up:
            return
        node.received += 1
        started = time.process_time()
        node.membership.receive(message, self.now)
        node.cpu += time.process_time() - started
        self._observe(node)

    def _observe(self, node: SimNode) -> None:
        version = node.membership.version
        if version != getattr(node, "_seen", None):
            node._seen = version  # type: ignore[attr-defined]
            self.changes.append((self.now, node.name, node.membership.dead()))

    def kill(self, name: str) -> None:
        self.nodes[name].up = False

    def restart(self, name: str) -> None:
        """A new speaker process on the same boot: a fresh membership, its clock still growing."""
        old = self.nodes[name]
        membership = Membership(name, old.membership.boot)
        membership.configure(list(self.nodes))
        node = SimNode(name, membership, old.offset, sent=old.sent, received=old.received, cpu=old.cpu)
        self.nodes[name] = node
        self._at(self.now, lambda: self._loop(node))


def codec_cost() -> float:
    """Seconds to sign one heartbeat and check it (what each packet costs besides the pure code)."""
    message = Message("node-0001", bytes(16), 123456789)
    rounds = 20000
    started = time.process_time()
    for _ in range(rounds):
        decode(KEY, encode(KEY, message))
    return (time.process_time() - started) / rounds


def steady(sim: Simulation, seconds: float) -> dict[str, float]:
    """Run with no failure: load per node, and every false death (a live node held dead)."""
    sent = {n: node.sent for n, node in sim.nodes.items()}
    received = {n: node.received for n, node in sim.nodes.items()}
    cpu = {n: node.cpu for n, node in sim.nodes.items()}
    start = len(sim.changes)
    sim.run_until(sim.now + seconds)
    nodes = list(sim.nodes.values())
    packets = [
        (node.sent - sent[node.name] + node.received - received[node.name]) / seconds for node in nodes
    ]
    cost = codec_cost()
    cpu_us = [
        (
            (node.cpu - cpu[node.name])
            + (node.received - received[node.name]) * cost
            + (node.sent - sent[node.name]) * cost / 2
        )
        / seconds
        * 1e6
        for node in nodes
    ]
    false = [change for change in sim.changes[start:] if change[2]]
    return {
        "packets_p50": percentile(packets, 0.5),
        "packets_max": max(packets),
        "cpu_us_p50": percentile(cpu_us, 0.5),
        "cpu_us_max": max(cpu_us),
        "false_deaths": float(len(false)),
        "false_observers": float(len({observer for _, observer, _ in false})),
    }


def false_takeovers(sim: Simulation, ips: list[str], events: list[tuple[float, str, frozenset[str]]]) -> int:
    """IPs an observer would have answered for while their live owner still did."""
    names = list(sim.nodes)
    total = 0
    for _, observer, dead in events:
        alive = set(names) - dead
        total += sum(1 for ip in ips if owner(ip, names) in dead and owner(ip, names, alive) == observer)
    return total


def detection(sim: Simulation, kills: int) -> tuple[list[float], list[float]]:
    """Kill a random node, then restart it; time until the first and until the last live node held it dead."""
    first, last = [], []
    for _ in range(kills):
        victim = sim.random.choice(list(sim.nodes))
        sim.kill(victim)
        killed_at, start = sim.now, len(sim.changes)
        sim.run_until(sim.now + 3.0)
        seen: dict[str, float] = {}
        for at, observer, dead in sim.changes[start:]:
            if victim in dead and observer not in seen:
                seen[observer] = at - killed_at
        live = [n for n, node in sim.nodes.items() if node.up]
        missing = [n for n in live if n not in seen]
        if missing:
            print(f"  {victim}: {len(missing)} nodes never held it dead within 3 s", flush=True)
        first.append(min(seen.values(), default=3.0))
        last.append(3.0 if missing else max(seen.values()))
        sim.restart(victim)
        sim.run_until(sim.now + 2.0)
    return first, last


def partition(sim: Simulation, seconds: float) -> tuple[int, float]:
    """Cut the nodes in two halves for ``seconds``, then heal: (nodes holding someone dead at the end of
    the cut, seconds after the heal until every node holds everyone alive)."""
    names = list(sim.nodes)
    left, right = names[: len(names) // 2], names[len(names) // 2 :]
    sim.blocked = {frozenset((a, b)) for a in left for b in right}
    sim.run_until(sim.now + seconds)
    holding = sum(1 for node in sim.nodes.values() if node.membership.dead())
    sim.blocked = set()
    healed = sim.now
    while any(node.membership.dead() for node in sim.nodes.values()) and sim.now < healed + 10:
        sim.run_until(sim.now + 0.01)
    return holding, sim.now - healed


def moved_on_death(nodes: int, ips: int) -> dict[str, float]:
    names = [f"node-{n:04d}" for n in range(nodes)]
    everyone = frozenset(names)
    index = OwnerIndex()
    index.set_alive(everyone)
    started = time.perf_counter()
    index.set_eligible({("ns/svc", f"2001:db8:300::{n:x}"): everyone for n in range(ips)})
    build = time.perf_counter() - started
    victim = names[0]
    keys = list(index.keys())
    owners = [index.owner(key) for key in keys]
    started = time.perf_counter()
    index.set_alive(everyone - {victim})
    death = time.perf_counter() - started
    moved = sum(1 for key, previous in zip(keys, owners, strict=True) if index.owner(key) != previous)
    started = time.perf_counter()
    index.set_alive(everyone)
    idle_started = time.perf_counter()
    index.set_alive(everyone)
    idle = time.perf_counter() - idle_started
    return {
        "moved": float(moved),
        "build_s": build,
        "death_ms": death * 1e3,
        "idle_us": idle * 1e6,
    }


def main(nodes: int, ips: int, loss: float, jitter_ms: float, minutes: float, kills: int) -> None:
    wall = time.monotonic()
    sim = Simulation(nodes, loss, jitter_ms / 1000, seed=1129)
    sim.configure_all()
    sim.run_until(2.0)  # everyone has heard its neighbours
    print(f"{nodes} nodes, {ips} IPs, loss {loss:.1%}, jitter {jitter_ms:g} ms", flush=True)
    load = steady(sim, minutes * 60)
    start = len(sim.changes)
    ip_list = [f"2001:db8:300::{n:x}" for n in range(ips)]
    taken = false_takeovers(sim, ip_list, [c for c in sim.changes[:start] if c[2]])
    per_hour = 60 / minutes
    print(
        f"steady {minutes:g} simulated min: packets/s per node p50 {load['packets_p50']:.0f} "
        f"max {load['packets_max']:.0f}; CPU µs/s per node p50 {load['cpu_us_p50']:.0f} "
        f"max {load['cpu_us_max']:.0f}; false deaths {load['false_deaths']:.0f} "
        f"({load['false_deaths'] * per_hour:.1f}/h), false takeovers {taken} ({taken * per_hour:.1f}/h)",
        flush=True,
    )
    first, last = detection(sim, kills)
    print(
        f"detection over {kills} kills: first node p50 {percentile(first, 0.5) * 1000:.0f} ms "
        f"p99 {percentile(first, 0.99) * 1000:.0f} ms; every node p50 {percentile(last, 0.5) * 1000:.0f} ms "
        f"p99 {percentile(last, 0.99) * 1000:.0f} ms",
        flush=True,
    )
    if nodes <= PARTITIONED_UP_TO:
        holding, heal = partition(sim, 5.0)
        print(
            f"partition in two halves for 5 s: {holding} of {nodes} nodes held some node dead; "
            f"{heal * 1000:.0f} ms after the heal every node held every node alive",
            flush=True,
        )
    moved = moved_on_death(nodes, ips)
    print(
        f"one death moves {moved['moved']:.0f} of {ips} IPs (M/N = {ips / nodes:.0f}); re-election "
        f"{moved['death_ms']:.2f} ms; with nothing changed {moved['idle_us']:.1f} µs; "
        f"first ranking of every IP {moved['build_s']:.2f} s",
        flush=True,
    )
    print(f"simulated in {time.monotonic() - wall:.0f} s of wall clock", flush=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(
        int(arguments[0]) if len(arguments) > 0 else 100,
        int(arguments[1]) if len(arguments) > 1 else 1000,
        float(arguments[2]) if len(arguments) > 2 else 0.01,
        float(arguments[3]) if len(arguments) > 3 else 20,
        float(arguments[4]) if len(arguments) > 4 else 10,
        int(arguments[5]) if len(arguments) > 5 else 20,
    )
