"""The Layer 2 responder in the lab: real ARP/NDP between namespaces, probed with arping and ndisc6."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterhelpers import wait_until
from ironlb_lab.network import Host, LabNetwork

SPEAKER = str(Path(sys.executable).parent / "ironlb-speaker")


@pytest.fixture(scope="module")
def lab() -> Iterator[LabNetwork]:
    with LabNetwork(nodes=2) as network:
        yield network


def _respond(lab: LabNetwork, host: Host, tmp_path: Path, *ips: str, announce: bool = False) -> None:
    log = tmp_path / f"responder-{host.role}-{time.monotonic_ns()}.log"
    argv = [SPEAKER, "l2-responder", "--interface", "eth0", *[f"--ip={ip}" for ip in ips]]
    lab.spawn(host, [*argv, "--announce"] if announce else argv, log)
    wait_until(lambda: log.exists() and "answering for" in log.read_text(), 10, "the responder to start")


def _neighbour(host: Host, ip: str) -> str:
    match = re.search(r"lladdr (\S+)", host.run("ip", "neigh", "show", ip, "dev", "eth0").stdout)
    return match.group(1).lower() if match else ""


def test_arp_and_ndp_resolve_owned_ips_to_the_owner_and_nothing_else(lab: LabNetwork, tmp_path: Path) -> None:
    owner = lab.node(1)
    _respond(lab, owner, tmp_path, "203.0.113.10", "2001:db8:300::10")
    arp = lab.client.run("arping", "-c", "1", "-w", "3", "-I", "eth0", "203.0.113.10")
    assert arp.returncode == 0 and owner.mac() in arp.stdout.lower(), arp.stdout + arp.stderr
    ndp = lab.client.run("ndisc6", "-1", "-r", "3", "-w", "1000", "2001:db8:300::10", "eth0")
    assert ndp.returncode == 0 and owner.mac() in ndp.stdout.lower(), ndp.stdout + ndp.stderr
    silent = lab.client.run("arping", "-c", "1", "-w", "1", "-I", "eth0", "203.0.113.11")
    assert silent.returncode != 0, silent.stdout
    silent6 = lab.client.run("ndisc6", "-1", "-r", "1", "-w", "500", "2001:db8:300::11", "eth0")
    assert silent6.returncode != 0, silent6.stdout


def test_gratuitous_announcements_replace_stale_neighbour_entries(lab: LabNetwork, tmp_path: Path) -> None:
    new_owner, old_owner = lab.node(1), lab.node(2)
    for ip in ("203.0.113.20", "2001:db8:300::20"):
        lab.client.run(
            "ip", "neigh", "replace", ip, "lladdr", old_owner.mac(), "dev", "eth0", "nud", "stale", check=True
        )
        assert _neighbour(lab.client, ip) == old_owner.mac()
    time.sleep(1.1)  # the kernel ignores ARP updates within locktime (1 s) of the last change
    _respond(lab, new_owner, tmp_path, "203.0.113.20", "2001:db8:300::20", announce=True)
    for ip in ("203.0.113.20", "2001:db8:300::20"):

        def moved(address: str = ip) -> bool:
            return _neighbour(lab.client, address) == new_owner.mac()

        wait_until(moved, 5, f"the client's entry for {ip} to move to the new owner")
