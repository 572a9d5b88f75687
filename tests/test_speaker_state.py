"""The speaker's watched state: what the watches deliver is what the loop decides from, and a change that
arrives while the loop is busy is never marked as seen before the loop has used it.

The loop recomputes the BGP routes only when the state's version changed. It once read the data and the
version in two steps, so an EndpointSlice arriving between them was marked seen but never used: a node
kept no route for a Service with a ready endpoint until something else changed (a CI failure)."""

from __future__ import annotations

from ironlb.api.contract import SpeakerGlobalConfig
from ironlb.speaker.state import State


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


def test_a_change_after_a_snapshot_has_a_newer_version_than_that_snapshot() -> None:
    state = State()
    before = state.snapshot()
    state.on_endpointslice("ADDED", endpointslice("a-1", "a", ["node1"]))
    after = state.snapshot()
    assert after.version > before.version
    assert "web/a" not in before.endpoints and "web/a" in after.endpoints
