"""Layer 2 ownership election (pure): deterministic, live eligible nodes only, minimal movement, spread."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from ironlb.speaker.l2.election import owner

NODES = [f"node-{n}" for n in range(1, 9)]
ips = st.ip_addresses().map(str)
node_sets = st.sets(st.sampled_from(NODES), min_size=1)


@given(ips, node_sets, st.permutations(NODES))
def test_every_speaker_computes_the_same_owner_whatever_the_order(
    ip: str, eligible: set[str], order: list[str]
) -> None:
    ordered = [node for node in order if node in eligible]
    assert owner(ip, ordered) == owner(ip, sorted(eligible)) and owner(ip, ordered) in eligible


@given(ips, node_sets, node_sets)
def test_the_owner_is_eligible_and_alive(ip: str, eligible: set[str], alive: set[str]) -> None:
    chosen = owner(ip, eligible, alive)
    assert chosen is None if not eligible & alive else chosen in eligible & alive


@given(ips, node_sets, st.sampled_from(NODES))
def test_only_the_ips_of_a_dead_node_move(ip: str, alive: set[str], dead: str) -> None:
    before = owner(ip, NODES, alive)
    after = owner(ip, NODES, alive - {dead})
    if before != dead:
        assert after == before


def test_ips_spread_evenly() -> None:
    counts = Counter(owner(f"203.0.113.{n % 256}-{n}", NODES[:3]) for n in range(3000))
    assert set(counts) == set(NODES[:3])
    assert all(850 <= count <= 1150 for count in counts.values()), counts


def test_no_eligible_node_means_no_owner() -> None:
    assert owner("203.0.113.1", []) is None
    assert owner("203.0.113.1", ["node-1"], alive=[]) is None
