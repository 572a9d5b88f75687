"""BFD end to end: the operator resolves a BGPPeer's BFDProfile into the published configuration, the
DaemonSet's speakers open BFD under their BGP sessions to BIRD2 (``bfd on``, 300 ms x 3), and report it in
the BGPPeer's ``status.nodes``. A missing profile keeps the sessions closed, with a Warning on the peer.

The link-cut timing against BIRD is measured in tests/test_bfd_lab.py (the exabgp harness, cheaper to run
many times); here a cut is only checked to end the router's session well before the 9 s hold time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterhelpers import Cluster, wait_until
from ironlb_lab.bgplab import bgp_peer, node_neighbors, start_router
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.routers import Bird

NAMESPACE = "bfd-lab"
PROFILE = {
    "apiVersion": "ironlb.io/v1beta1",
    "kind": "BFDProfile",
    "metadata": {"name": "fast", "namespace": NAMESPACE},
    "spec": {"receiveInterval": 300, "transmitInterval": 300, "detectMultiplier": 3},
}


@pytest.fixture(scope="module")
def lab(
    crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[L2Lab, Bird]]:
    workdir = tmp_path_factory.mktemp("bfd")
    with L2Lab(crds_installed, workdir, namespace=NAMESPACE, nodes=2, real_images=True) as l2:
        router = start_router(l2, workdir / "bird", bfd=True)
        try:
            yield l2, router
        finally:
            router.stop()


def entries(cluster: Cluster) -> dict[str, dict[str, Any]]:
    status = (cluster.get("bgppeers", "router") or {}).get("status") or {}
    return {entry["node"]: entry for entry in status.get("nodes") or []}


def test_a_peer_s_bfd_profile_opens_bfd_under_each_session_and_its_status_shows_it(
    lab: tuple[L2Lab, Bird],
) -> None:
    l2, router = lab
    cluster = Cluster(l2.plane, NAMESPACE)
    cluster.apply(bgp_peer(l2, bfdProfile="fast"))  # before its profile exists: closed, and said so
    event = cluster.wait_event(NAMESPACE, "router", "BFDProfileMissing")
    assert event["type"] == "Warning" and "BFDProfile bfd-lab/fast does not exist" in event["message"]
    closed = wait_until(
        lambda: len(found := entries(cluster)) == 2 and found, 60, "both nodes reporting the closed session"
    )
    for entry in closed.values():
        assert entry["state"] == "Idle" and "BFDProfile fast does not exist" in entry["message"], entry
    assert "Established" not in router.sessions().values()

    cluster.apply(PROFILE)
    nodes = [str(neighbor.address) for neighbor in node_neighbors(l2)]
    wait_until(
        lambda: (
            all(e.get("state") == "Established" and e.get("bfd") == "Up" for e in entries(cluster).values())
            and all(router.bfd_sessions().get(node) == "Up" for node in nodes)
        ),
        60,
        "BGP Established and BFD Up on both nodes, on both ends",
    )
    assert entries(cluster)["node1"]["bfdMessage"].startswith("Up since")
    printed = l2.plane.kubectl("get", "bfdprofiles", "-n", NAMESPACE).stdout.split()
    assert printed[:6] == ["NAME", "PASSIVE", "MODE", "TRANSMIT", "INTERVAL", "RECEIVE"] and "fast" in printed

    # node2's link cut: the router's session ends within the BFD detection time, not the 9 s hold time
    cut = time.monotonic()
    l2.lab.unplug("node2")
    try:
        neighbor = router.neighbors[1]
        wait_until(lambda: router.state(neighbor) != "Established", 5, "the router's session to node2 down")
        took = time.monotonic() - cut
        print(f"\nlink cut -> BIRD's session to node2 down: {took * 1000:.0f} ms (polled every 200 ms)")
        assert took < 2.0
        down = wait_until(
            lambda: (e := entries(cluster).get("node2", {})).get("bfd") == "Down" and e,
            30,
            "node2 reports Down",
        )
        assert down["state"] == "Idle" and "closed until BFD is Up again" in down["message"]
    finally:
        l2.lab.plug("node2")
    wait_until(
        lambda: all(
            e.get("state") == "Established" and e.get("bfd") == "Up" for e in entries(cluster).values()
        ),
        60,
        "node2 back: BFD Up, then BGP",
    )


def test_the_example_profile_applies_as_written(lab: tuple[L2Lab, Bird]) -> None:
    """docs/examples/bfd.yaml applies as written (the bundle's alm-examples hold it too)."""
    l2, _ = lab
    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "bfd.yaml"
    result = l2.plane.kubectl("apply", "--dry-run=server", "-n", "ironlb-system", "-f", str(example))
    assert "bfdprofile.ironlb.io/fast" in result.stdout
