"""Speaker membership (pure): signed messages, replay protection without a wall clock, quorum of watchers,
bounded load per node, a stalled loop that stops claiming, and a restarted speaker that learns who is dead.
Whole clusters run on the simulation of hack/bench/membership_sim.py (virtual time, lossy network)."""

from __future__ import annotations

from bench.membership_sim import Simulation, steady
from hypothesis import given
from hypothesis import strategies as st
from ironlb.speaker.l2.membership import Membership
from ironlb.speaker.l2.wire import Message, Report, decode, encode

KEY = b"k" * 32
BOOT_A, BOOT_B = b"a" * 16, b"b" * 16
names = st.text(min_size=1, max_size=60).filter(lambda name: len(name.encode()) <= 255)


@given(
    names,
    st.integers(0, 2**63 - 1),
    st.booleans(),
    st.lists(st.tuples(names, st.booleans()), max_size=5),
    st.booleans(),
)
def test_a_genuine_message_decodes_and_any_change_is_refused(
    node: str, sequence: int, leaving: bool, reports: list[tuple[str, bool]], syncing: bool
) -> None:
    reported = tuple(Report(subject, down, BOOT_B, -1 if down else 7) for subject, down in reports)
    message = Message(node, BOOT_A, sequence, leaving, reported, syncing)
    data = encode(KEY, message)
    assert decode(KEY, data) == message
    assert decode(b"other-key", data) is None
    for position in (0, len(data) // 2, len(data) - 1):
        tampered = bytearray(data)
        tampered[position] ^= 1
        assert decode(KEY, bytes(tampered)) is None
    assert decode(KEY, data[:10]) is None


def _members(me: str, nodes: list[str]) -> Membership:
    members = Membership(me, BOOT_A)
    members.configure(nodes)
    return members


def test_a_report_on_a_neighbour_never_heard_goes_on_the_wire() -> None:
    """A speaker whose neighbour never spoke reports it with no stamp (sequence -1): that message once failed
    to encode, and the failing heartbeat thread then sent nothing at all (its peers took its IPs over)."""
    members = _members("n1", ["n1", "n2", "n3"])
    sent = [out for tick in range(20) for out in members.tick(tick * 0.025, tick)]
    reports = [message for _, message in sent if message.reports]
    assert reports and {r.sequence for m in reports for r in m.reports} == {-1}
    for _, message in sent:
        assert decode(KEY, encode(KEY, message)) == message


def test_replays_are_refused_by_stamp_alone_and_reordering_is_not() -> None:
    members = _members("n1", ["n1", "n2"])
    assert members.receive(Message("n2", BOOT_B, 5_000_000_000), now=1.0)
    assert not members.receive(Message("n2", BOOT_B, 5_000_000_000), now=1.1), "the same message again"
    assert members.receive(Message("n2", BOOT_B, 4_900_000_000), now=1.1), "reordered by jitter: taken once"
    assert not members.receive(Message("n2", BOOT_B, 4_900_000_000), now=1.2)
    assert not members.receive(Message("n2", BOOT_B, 3_000_000_000), now=1.2), "older than the window"
    assert members.receive(Message("n2", BOOT_A, 1), now=1.3), "a reboot: a new boot id"
    assert not members.receive(Message("n2", BOOT_B, 9_000_000_000), now=1.4), "the replaced boot, replayed"
    assert not members.receive(Message("n9", BOOT_B, 1), now=1.4), "not a node of the cluster"
    assert not members.receive(Message("n1", BOOT_B, 1), now=1.4), "our own name"


def test_one_watchers_report_moves_nothing_two_do_and_an_up_report_revives() -> None:
    nodes = [f"n{n}" for n in range(1, 8)]
    members = _members("n1", nodes)
    stamp = 10_000_000_000
    down = Report("n5", True, BOOT_B, stamp)
    watchers = [w for w in nodes if w not in ("n1", "n5")]
    assert members.receive(Message(watchers[0], BOOT_A, 1, reports=(down,)), now=1.0)
    assert "n5" in members.alive(), "one watcher's word is not enough"
    version = members.version
    assert members.receive(Message(watchers[1], BOOT_A, 1, reports=(down,)), now=1.0)
    assert "n5" not in members.alive() and members.version > version
    up = Report("n5", False, BOOT_B, stamp + 1_000_000_000)
    assert members.receive(Message(watchers[2], BOOT_A, 1, reports=(up,)), now=2.0)
    assert "n5" in members.alive(), "heard of a second after the stamps the down reports name"
    stale = Report("n5", True, BOOT_B, stamp)
    members.receive(Message(watchers[3], BOOT_A, 1, reports=(stale,)), now=2.0)
    assert "n5" in members.alive(), "a report older than what was heard since counts for nothing"


def test_a_node_knows_when_its_peers_held_it_dead() -> None:
    """The speaker then announces and reports its IPs again, once its peers have handed them back."""
    members = _members("n1", ["n1", "n2", "n3"])
    members.receive(Message("n2", BOOT_B, 10, reports=(Report("n3", True, BOOT_B, 5),)), now=1.0)
    assert members.doubted == 0
    members.receive(Message("n2", BOOT_B, 11, reports=(Report("n1", True, BOOT_A, 5),)), now=1.0)
    assert members.doubted == 1 and "n1" in members.alive()


def test_a_goodbye_hands_over_at_once() -> None:
    members = _members("n1", ["n1", "n2", "n3"])
    members.receive(Message("n2", BOOT_B, 10), now=1.0)
    members.receive(Message("n2", BOOT_B, 11, leaving=True), now=1.0)
    assert members.alive() == {"n1", "n3"}
    members.receive(Message("n2", BOOT_B, 5_000_000_000), now=6.0)
    assert members.alive() == {"n1", "n2", "n3"}, "started again"


def test_a_stalled_loop_stops_claiming_and_holds_nothing_against_its_neighbours() -> None:
    members = _members("n1", ["n1", "n2", "n3"])
    for tick in range(10):
        members.tick(tick * 0.025, tick)
        members.receive(Message("n2", BOOT_B, 100 + tick), now=tick * 0.025)
        members.receive(Message("n3", BOOT_B, 100 + tick), now=tick * 0.025)
    now = 9 * 0.025
    assert members.may_claim(now)
    assert members.may_claim(now + 0.2), "a 200 ms delay: still well before anyone takes over"
    assert not members.may_claim(now + 0.26), "no tick for 260 ms: peers may be taking over"
    resumed = now + 2.0
    outgoing = members.tick(resumed, 10**10)
    assert not [message for _, message in outgoing if message.reports], "its own silence, not theirs"
    assert members.alive() == {"n1", "n2", "n3"}
    assert members.stalls and members.stalls[0] > 1.9
    assert not members.may_claim(resumed + 0.1), "held back until its peers hear it again"
    for tick in range(1, 16):
        members.tick(resumed + tick * 0.025, 10**10 + tick)
    assert members.may_claim(resumed + 15 * 0.025)


def test_heartbeats_per_node_do_not_grow_with_the_cluster() -> None:
    rates = []
    for nodes in (8, 64):
        sim = Simulation(nodes, loss=0.0, jitter=0.002, seed=1)
        sim.configure_all()
        sim.run_until(1.0)
        rates.append(steady(sim, 5.0)["packets_p50"])
    assert rates[1] <= rates[0] * 1.1, rates


def test_a_death_is_seen_by_every_node_within_the_timeout_and_a_restart_learns_who_is_dead() -> None:
    sim = Simulation(30, loss=0.01, jitter=0.02, seed=7)
    sim.configure_all()
    sim.run_until(1.0)
    victim, restarted = "node-0003", "node-0011"
    sim.kill(victim)
    sim.run_until(1.6)
    live = [node for name, node in sim.nodes.items() if name != victim]
    assert all(victim not in node.membership.alive() for node in live)
    sim.kill(restarted)
    sim.run_until(2.0)
    sim.restart(restarted)  # it never heard the victim's death: its neighbours tell it
    sim.run_until(2.15)
    assert victim not in sim.nodes[restarted].membership.alive()
    assert restarted in sim.nodes["node-0020"].membership.alive()
    sim.restart(victim)
    sim.run_until(3.0)
    assert all(victim in node.membership.alive() for node in sim.nodes.values())


def test_no_live_node_is_held_dead_at_one_percent_loss() -> None:
    sim = Simulation(20, loss=0.01, jitter=0.02, seed=3)
    sim.configure_all()
    sim.run_until(1.0)
    assert steady(sim, 120.0)["false_deaths"] == 0


def test_after_a_partition_heals_both_sides_hear_each_other_again() -> None:
    for nodes in (2, 12):
        sim = Simulation(nodes, loss=0.0, jitter=0.002, seed=5)
        sim.configure_all()
        sim.run_until(1.0)
        names = list(sim.nodes)
        left, right = names[: nodes // 2], names[nodes // 2 :]
        sim.blocked = {frozenset((a, b)) for a in left for b in right}
        sim.run_until(3.0)
        assert any(node.membership.dead() for node in sim.nodes.values()), "the cut was seen"
        sim.blocked = set()
        sim.run_until(4.0)
        assert all(node.membership.alive() == set(names) for node in sim.nodes.values()), nodes


def test_two_silent_nodes_of_three_are_both_dead_for_the_survivor() -> None:
    """Each of the two has the survivor and the other silent node as watchers: no second report can come,
    and no watcher vouches, so the survivor's lone reports count after a timeout."""
    sim = Simulation(3, loss=0.0, jitter=0.002, seed=2)
    sim.configure_all()
    sim.run_until(1.0)
    survivor, *others = list(sim.nodes)
    for name in others:
        sim.kill(name)
    sim.run_until(2.0)
    assert sim.nodes[survivor].membership.alive() == {survivor}


def test_a_watcher_that_cannot_hear_one_neighbour_moves_nothing() -> None:
    """Its lone report is voided by the other watchers, who hear the node and vouch for it."""
    sim = Simulation(12, loss=0.01, jitter=0.02, seed=4)
    sim.configure_all()
    sim.run_until(1.0)
    watcher = "node-0005"
    neighbour = sim.nodes[watcher].membership.neighbours()[0]
    sim.blocked = {frozenset((watcher, neighbour))}
    start = len(sim.changes)
    sim.run_until(10.0)
    held_dead = [(at, observer) for at, observer, dead in sim.changes[start:] if neighbour in dead]
    assert held_dead == [], held_dead[:5]


@given(
    st.integers(2, 12),
    st.lists(st.tuples(st.integers(0, 11), st.floats(0.0, 0.6)), max_size=20),
    st.floats(0.0, 1.0),
)
def test_ticking_before_next_due_changes_nothing(
    size: int, heard: list[tuple[int, float]], fraction: float
) -> None:
    """The heartbeat process sleeps until ``next_due`` (each wake-up costs CPU): any tick before it must
    send nothing and change nobody's life, whatever was heard when."""
    nodes = [f"node{n}" for n in range(size)]
    members = _members("node0", nodes)
    now, boots = 100.0, {node: node.encode().ljust(16, b"-") for node in nodes}
    members.tick(now, int(now * 1e9))
    for index, delay in sorted(heard, key=lambda pair: pair[1]):
        sender = nodes[index % size]
        at = now + delay
        members.receive(Message(sender, boots[sender], int(at * 1e9)), at)
        members.tick(at, int(at * 1e9))
    last = now + max((delay for _, delay in heard), default=0.0)
    members.tick(last, int(last * 1e9) + 1)
    due = members.next_due()
    assert due > last
    before = (members.version, members.alive(), members.dead())
    quiet = last + (due - last) * fraction * 0.999
    assert members.tick(quiet, int(quiet * 1e9) + 2) == []
    assert (members.version, members.alive(), members.dead()) == before
