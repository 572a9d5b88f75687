"""The lab's network namespaces: real packets between client, nodes, router and remote; always cleaned up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from ironlb_lab.network import PREFIX, Host, LabNetwork, ip, remove_stale_namespaces


def _namespaces() -> set[str]:
    return {line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def lab() -> Iterator[LabNetwork]:
    with LabNetwork(nodes=3) as network:
        yield network


def _ping(host: Host, address: object) -> bool:
    return host.run("ping", "-c", "1", "-W", "2", str(address)).returncode == 0


def test_client_reaches_every_node_over_ipv4_and_ipv6(lab: LabNetwork) -> None:
    for number in (1, 2, 3):
        node = lab.node(number)
        assert _ping(lab.client, node.v4), node
        assert _ping(lab.client, node.v6), node


def test_remote_reaches_the_lan_through_the_router(lab: LabNetwork) -> None:
    assert _ping(lab.remote, lab.client.v4)
    assert _ping(lab.remote, lab.node(2).v6)


def test_hosts_have_distinct_macs_on_one_segment(lab: LabNetwork) -> None:
    macs = {lab.node(n).mac() for n in (1, 2, 3)} | {lab.client.mac()}
    assert len(macs) == 4


def test_a_lab_removes_its_namespaces_and_only_dead_owners_are_swept() -> None:
    alive_other = f"{PREFIX}1-1-switch"  # pid 1 is always alive: never swept
    stale_owner = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    stale = f"{PREFIX}{stale_owner}-1-node1"
    ip("netns", "add", alive_other)
    ip("netns", "add", stale)
    try:
        assert stale in remove_stale_namespaces()
        assert alive_other in _namespaces() and stale not in _namespaces()
    finally:
        ip("netns", "delete", alive_other, check=False)
        ip("netns", "delete", stale, check=False)
    network = LabNetwork(nodes=1).create()
    created = {name for name in _namespaces() if name.startswith(network.stem)}
    assert len(created) == 5  # switch, node1, client, router, remote
    network.destroy()
    assert not {name for name in _namespaces() if name.startswith(network.stem)}
