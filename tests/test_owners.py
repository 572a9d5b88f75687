"""Incremental ownership (pure): after any sequence of membership and configuration changes, the index elects
the same owner as a full election, and a change re-elects only the IPs it can affect."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from ironlb.api.contract import L2Advertising, ServiceAnnouncement, SpeakerGlobalConfig
from ironlb.speaker.l2.election import owner
from ironlb.speaker.l2.owners import OwnerIndex
from ironlb.speaker.l2.ownership import l2_eligible, l2_owned, owned_ips
from ironlb.speaker.state import NO_NODE

NODES = [f"node-{n}" for n in range(1, 13)]
IPS = [f"203.0.113.{n}" for n in range(1, 9)] + ["2001:db8::1"]
SERVICES = ["ns/a", "ns/b", "ns/c"]

node_sets = st.frozensets(st.sampled_from(NODES))
configurations = st.dictionaries(st.tuples(st.sampled_from(SERVICES), st.sampled_from(IPS)), node_sets)
changes = st.lists(st.one_of(node_sets.map(lambda alive: ("alive", alive)), configurations), max_size=12)


def _check(index: OwnerIndex, eligible: dict[tuple[str, str], frozenset[str]], alive: frozenset[str]) -> None:
    for key, nodes in eligible.items():
        assert index.owner(key) == owner(key[1], nodes, alive), key
    assert set(index.keys()) == set(eligible)
    for node in NODES:
        assert all(index.owner(key) == node for key in index.owned_by(node))


@settings(max_examples=300)
@given(changes, st.sampled_from([1, 2, 3, 8]))
def test_the_index_agrees_with_a_full_election_after_any_changes(changes: list[object], keep: int) -> None:
    index = OwnerIndex(keep=keep)
    eligible: dict[tuple[str, str], frozenset[str]] = {}
    alive: frozenset[str] = frozenset()
    for change in changes:
        if isinstance(change, tuple):
            alive = change[1]
            index.set_alive(alive)
        else:
            assert isinstance(change, dict)
            eligible = change
            index.set_eligible(eligible)
        _check(index, eligible, alive)


def test_a_death_re_elects_only_the_dead_nodes_ips_and_an_idle_change_nothing() -> None:
    nodes = [f"node-{n}" for n in range(20)]
    everyone = frozenset(nodes)
    eligible = {("ns/web", f"2001:db8:300::{n:x}"): everyone for n in range(1000)}
    index = OwnerIndex()
    index.set_alive(everyone)
    index.set_eligible(eligible)
    before = index.elections
    index.set_alive(everyone)
    index.set_eligible(dict(eligible))
    assert index.elections == before, "nothing changed: nothing re-elected"
    victim = nodes[3]
    owned = set(index.owned_by(victim))
    assert 20 <= len(owned) <= 90  # about 1000 / 20
    index.set_alive(everyone - {victim})
    assert index.elections - before == len(owned)
    moved = {key for key in owned if index.owner(key) != victim}
    assert moved == owned and not index.owned_by(victim)
    before = index.elections
    index.set_alive(everyone)
    assert {key for key in eligible if index.owner(key) == victim} == owned
    assert index.elections - before <= 1000 * 8 // 20 + 60, "only the keys ranking the newcomer"


def test_the_speakers_view_matches_the_full_reference() -> None:
    config = SpeakerGlobalConfig(
        l2=(
            L2Advertising(name="all", nodes=("node-1", "node-2", "node-3")),
            L2Advertising(name="two", nodes=("node-2", "node-3")),
        )
    )
    announcements = [
        ServiceAnnouncement(
            service="ns/a", ips=("203.0.113.1", "2001:db8::1"), pool="p", local_traffic=False, l2=("all",)
        ),
        ServiceAnnouncement(service="ns/b", ips=("203.0.113.1",), pool="p", local_traffic=False, l2=("two",)),
        ServiceAnnouncement(service="ns/c", ips=("203.0.113.3",), pool="p", local_traffic=True, l2=("all",)),
    ]
    endpoints = {"ns/a": frozenset({NO_NODE}), "ns/b": frozenset({"node-9"}), "ns/c": frozenset({"node-1"})}
    eligible = l2_eligible(config, announcements, endpoints)
    assert eligible[("ns/a", "2001:db8::1")] == {"node-1", "node-2", "node-3"}, (
        "an endpoint on no node counts"
    )
    assert eligible[("ns/c", "203.0.113.3")] == {"node-1"}
    assert eligible[("ns/b", "203.0.113.1")] is eligible[("ns/b", "203.0.113.1")]
    index = OwnerIndex()
    for alive in ({"node-1", "node-2", "node-3"}, {"node-1", "node-3"}, {"node-2"}):
        index.set_alive(alive)
        index.set_eligible(eligible)
        for node in ("node-1", "node-2", "node-3"):
            assert owned_ips(index.owned_by(node)) == l2_owned(node, config, announcements, endpoints, alive)


def test_a_service_without_a_ready_endpoint_anywhere_is_answered_by_nobody() -> None:
    """MetalLB's rule (activeEndpointExists): an IP whose Service has no ready endpoint would lead nowhere,
    so no node answers ARP/NDP for it, whatever its externalTrafficPolicy; one ready endpoint, on any node or
    on none, is enough for Cluster."""
    config = SpeakerGlobalConfig(l2=(L2Advertising(name="all", nodes=("node-1", "node-2")),))
    cluster = ServiceAnnouncement(
        service="ns/a", ips=("203.0.113.1",), pool="p", local_traffic=False, l2=("all",)
    )
    local = ServiceAnnouncement(
        service="ns/b", ips=("203.0.113.2",), pool="p", local_traffic=True, l2=("all",)
    )
    nothing_ready: list[dict[str, frozenset[str]]] = [{}, {"ns/a": frozenset(), "ns/b": frozenset()}]
    for endpoints in nothing_ready:
        eligible = l2_eligible(config, [cluster, local], endpoints)
        assert eligible == {("ns/a", "203.0.113.1"): frozenset(), ("ns/b", "203.0.113.2"): frozenset()}
        assert l2_owned("node-1", config, [cluster, local], endpoints, {"node-1", "node-2"}) == {}
    ready = {"ns/a": frozenset({"node-7"}), "ns/b": frozenset({NO_NODE})}
    eligible = l2_eligible(config, [cluster, local], ready)
    assert eligible == {("ns/a", "203.0.113.1"): {"node-1", "node-2"}, ("ns/b", "203.0.113.2"): frozenset()}
