"""The speaker's watched state: what the watches deliver is what the loop decides from, and a change that
arrives while the loop is busy is never marked as seen before the loop has used it.

The loop recomputes the BGP routes only when the state's version changed. It once read the data and the
version in two steps, so an EndpointSlice arriving between them was marked seen but never used: a node
kept no route for a Service with a ready endpoint until something else changed (a CI failure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ironlb.api.contract import CONTRACT_VERSION, AnnouncementShard, ServiceAnnouncement, SpeakerGlobalConfig
from ironlb.speaker.pools import PoolAddresses
from ironlb.speaker.state import NO_NODE, State
from prometheus_client import REGISTRY

CONTRACT = Path(__file__).parent / "data" / "contract"


def endpointslice(name: str, service: str, nodes: list[str], ready: bool = True) -> dict[str, object]:
    return {
        "metadata": {
            "namespace": "web",
            "name": name,
            "labels": {"kubernetes.io/service-name": service},
        },
        "endpoints": [{"nodeName": node, "conditions": {"ready": ready}} for node in nodes],
    }


def global_config(nodes: dict[str, str]) -> dict[str, object]:
    config = SpeakerGlobalConfig(node_addresses=nodes)
    return {
        "metadata": {"name": "ironlb-speaker-config", "resourceVersion": "1"},
        "data": {"config.json": config.model_dump_json()},
    }


def test_a_snapshot_holds_the_ready_nodes_per_service_and_the_configuration() -> None:
    state = State()
    state.on_configmap("ADDED", global_config({"node1": "198.51.100.11"}))
    state.on_endpointslice("ADDED", endpointslice("a-1", "a", ["node1"]))
    state.on_endpointslice("ADDED", endpointslice("a-2", "a", ["node2"]))
    state.on_endpointslice("ADDED", endpointslice("b-1", "b", ["node3"], ready=False))
    snapshot = state.snapshot()
    assert snapshot.endpoints == {"web/a": frozenset({"node1", "node2"}), "web/b": frozenset()}
    assert snapshot.config.node_addresses == {"node1": "198.51.100.11"}
    state.on_endpointslice("DELETED", endpointslice("a-2", "a", ["node2"]))
    assert state.snapshot().endpoints["web/a"] == frozenset({"node1"})
    selectorless = endpointslice("c-1", "c", ["node1"])
    selectorless["endpoints"] = [{"conditions": {"ready": True}}, {"nodeName": None}]  # on no node
    state.on_endpointslice("ADDED", selectorless)
    assert state.snapshot().endpoints["web/c"] == frozenset({NO_NODE})


def test_a_change_after_a_snapshot_has_a_newer_version_than_that_snapshot() -> None:
    state = State()
    before = state.snapshot()
    state.on_endpointslice("ADDED", endpointslice("a-1", "a", ["node1"]))
    after = state.snapshot()
    assert after.version > before.version
    assert "web/a" not in before.endpoints and "web/a" in after.endpoints


def test_an_endpointslice_rewritten_with_the_same_ready_nodes_is_no_change() -> None:
    """Pod churn rewrites EndpointSlices all the time; a new version costs the loop a pass over every IP."""
    state = State()
    state.on_endpointslice("ADDED", endpointslice("a-1", "a", ["node1"]))
    version = state.snapshot().version
    state.on_endpointslice("MODIFIED", endpointslice("a-1", "a", ["node1"]))
    assert state.snapshot().version == version
    state.on_endpointslice("MODIFIED", endpointslice("a-1", "a", ["node1", "node2"]))
    assert state.snapshot().version > version


def published(name: str, key: str, payload: str) -> dict[str, object]:
    return {"metadata": {"name": name, "resourceVersion": "9"}, "data": {key: payload}}


def service(name: str, ips: list[str]) -> dict[str, object]:
    return {
        "metadata": {"namespace": "web", "name": name},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def test_the_first_contract_version_is_still_read() -> None:
    """An operator of the previous version publishes what tests/data/contract/v1-*.json holds."""
    state = State()
    state.on_configmap(
        "ADDED", published("ironlb-speaker-config", "config.json", (CONTRACT / "v1-global.json").read_text())
    )
    state.on_configmap(
        "ADDED",
        published("ironlb-announcements-07", "announcements.json", (CONTRACT / "v1-shard.json").read_text()),
    )
    state.on_service("ADDED", service("a", ["203.0.113.1"]))
    snapshot = state.snapshot()
    assert state.configured and snapshot.config.peers[0].session.name == "router"
    assert [a.service for a in snapshot.announcements] == ["web/a"]


def test_a_newer_writer_s_unknown_fields_are_ignored() -> None:
    """A newer operator adds fields (top level and nested) and a higher version: this speaker reads on."""
    config = json.loads((CONTRACT / "v1-global.json").read_text())
    config |= {"contract_version": CONTRACT_VERSION + 1, "bfd_profiles": [{"name": "fast"}]}
    config["peers"][0]["session"]["bfd_profile"] = "fast"
    state = State()
    state.on_configmap("ADDED", published("ironlb-speaker-config", "config.json", json.dumps(config)))
    assert state.configured
    assert state.snapshot().config.peers[0].session.peer_address == "198.51.100.126"


def test_a_configuration_this_speaker_is_too_old_for_keeps_the_last_good_one() -> None:
    state = State()
    good = json.loads((CONTRACT / "v1-global.json").read_text())
    state.on_configmap("ADDED", published("ironlb-speaker-config", "config.json", json.dumps(good)))
    unsafe = {**good, "node_addresses": {}, "min_contract_version": CONTRACT_VERSION + 1}
    state.on_configmap("MODIFIED", published("ironlb-speaker-config", "config.json", json.dumps(unsafe)))
    assert state.snapshot().config.node_addresses == good["node_addresses"]


def test_an_ip_is_announced_only_while_its_service_shows_it() -> None:
    """The operator's announcement alone is not enough: a Service deleted (or its IP taken off its status)
    while no operator runs stops being announced at once."""
    state = State()
    state.on_configmap(
        "ADDED",
        published("ironlb-announcements-07", "announcements.json", (CONTRACT / "v1-shard.json").read_text()),
    )
    assert state.snapshot().announcements == []  # not shown by the Service (yet)
    state.on_service("ADDED", service("a", ["203.0.113.1"]))
    assert [a.ips for a in state.snapshot().announcements] == [("203.0.113.1",)]
    state.on_service("MODIFIED", service("a", ["203.0.113.9"]))  # a hand edit: another IP
    assert state.snapshot().announcements == []
    state.on_service("MODIFIED", service("a", ["203.0.113.1"]))
    state.on_service("DELETED", service("a", ["203.0.113.1"]))
    assert state.snapshot().announcements == []


def test_a_snapshot_is_reused_while_nothing_changed() -> None:
    state = State()
    first = state.snapshot()
    assert state.snapshot() is first
    state.on_service("ADDED", service("a", ["203.0.113.1"]))
    assert state.snapshot() is not first


def test_an_ip_outside_its_pool_is_never_announced() -> None:
    """Whatever the shards say (a bug, a stale or forged record), a speaker announces only pool addresses."""
    config = json.loads((CONTRACT / "v1-global.json").read_text())
    config |= {"contract_version": 3, "pools": {"p": ["203.0.113.0/30", "2001:db8::1 - 2001:db8::3"]}}
    shard = json.loads((CONTRACT / "v1-shard.json").read_text())
    shard["services"][0]["ips"] = ["203.0.113.1", "198.51.100.126", "2001:db8::2", "2001:db8::9"]
    state = State()
    state.on_configmap("ADDED", published("ironlb-speaker-config", "config.json", json.dumps(config)))
    state.on_configmap("ADDED", published("ironlb-announcements-07", "announcements.json", json.dumps(shard)))
    state.on_service("ADDED", service("a", shard["services"][0]["ips"]))
    assert [a.ips for a in state.snapshot().announcements] == [("203.0.113.1", "2001:db8::2")]
    config["pools"] = {"other": ["203.0.113.0/24"]}  # the pool it names holds none of them
    state.on_configmap("MODIFIED", published("ironlb-speaker-config", "config.json", json.dumps(config)))
    assert state.snapshot().announcements == []


def _service_body(name: str, ips: list[str]) -> dict[str, object]:
    ingress = [{"ip": ip} for ip in ips]
    return {
        "metadata": {"namespace": "web", "name": name, "uid": name},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": ingress}},
    }


def _shard_body(number: int, services: dict[str, list[str]]) -> dict[str, object]:
    shard = AnnouncementShard(
        shard=number,
        services=tuple(
            ServiceAnnouncement(service=f"web/{name}", ips=tuple(ips), pool="p", local_traffic=False)
            for name, ips in sorted(services.items())
        ),
    )
    return {
        "metadata": {"name": f"ironlb-announcements-{number}"},
        "data": {"announcements.json": shard.model_dump_json()},
    }


def _reference(state: State) -> list[tuple[str, tuple[str, ...]]]:
    """What a snapshot must hold, computed from scratch: the IPs both shown and in the pool."""
    pools = PoolAddresses.of(state.config.pools)
    result = []
    for shard in state.shards.values():
        for announcement in shard:
            shown = state.services.get(announcement.service, frozenset())
            held = tuple(ip for ip in announcement.ips if ip in shown and pools.holds(announcement.pool, ip))
            if held:
                result.append((announcement.service, held))
    return result


IPS = ["203.0.113.1", "203.0.113.2", "203.0.113.9", "2001:db8::1"]
CHANGES = st.one_of(
    st.tuples(
        st.just("service"), st.sampled_from(["a", "b", "c"]), st.lists(st.sampled_from(IPS), max_size=2)
    ),
    st.tuples(
        st.just("shard"),
        st.integers(0, 1),
        st.dictionaries(
            st.sampled_from(["a", "b", "c"]), st.lists(st.sampled_from(IPS), min_size=1, max_size=2)
        ),
    ),
    st.tuples(st.just("pools"), st.sampled_from(["203.0.113.0/29", "203.0.113.0/24", "2001:db8::/64"])),
    st.tuples(
        st.just("slice"),
        st.sampled_from(["a-1", "a-2", "b-1"]),
        st.lists(st.sampled_from(["node1", "node2"]), max_size=2),
        st.booleans(),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(CHANGES, max_size=12))
def test_a_snapshot_reusing_what_did_not_change_equals_one_made_from_scratch(
    changes: list[tuple[Any, ...]],
) -> None:
    state = State()
    for change in changes:
        if change[0] == "service":
            state.on_service("MODIFIED", _service_body(change[1], change[2]))
        elif change[0] == "shard":
            state.on_configmap("MODIFIED", _shard_body(change[1], change[2]))
        elif change[0] == "slice":
            body = endpointslice(change[1], change[1].split("-")[0], change[2])
            state.on_endpointslice("MODIFIED" if change[3] else "DELETED", body)
        else:
            config = SpeakerGlobalConfig(pools={"p": (change[1],)})
            state.on_configmap(
                "MODIFIED",
                {
                    "metadata": {"name": "ironlb-speaker-config"},
                    "data": {"config.json": config.model_dump_json()},
                },
            )
        snapshot = state.snapshot()
        assert [(a.service, a.ips) for a in snapshot.announcements] == _reference(state)
        ready: dict[str, frozenset[str]] = {}
        for service, nodes in state.slices.values():
            ready[service] = ready.get(service, frozenset()) | nodes
        nonempty = {service: nodes for service, nodes in snapshot.endpoints.items() if nodes}
        assert nonempty == {service: nodes for service, nodes in ready.items() if nodes}  # none = no entry


def test_the_speaker_exports_the_newest_publication_it_acts_on() -> None:
    def exported() -> float | None:
        return REGISTRY.get_sample_value("ironlb_speaker_config_published_timestamp_seconds")

    state = State()
    config = global_config({"node1": "198.51.100.11"})
    config["metadata"] = {"name": "ironlb-speaker-config", "annotations": {"ironlb.io/published-at": "100.5"}}
    shard = {
        "metadata": {"name": "ironlb-announcements-07", "annotations": {"ironlb.io/published-at": "250.25"}},
        "data": {"announcements.json": AnnouncementShard(shard=7).model_dump_json()},
    }
    state.on_configmap("ADDED", config)
    state.on_configmap("ADDED", shard)
    assert exported() != 250.25  # taken, not yet acted on: the loop's snapshot is what counts
    state.snapshot()
    assert exported() == 250.25
    state.on_configmap("DELETED", shard)
    state.snapshot()
    assert exported() == 100.5
