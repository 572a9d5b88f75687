"""BGP mode in the lab: BIRD2 in the router namespace peering with every lab node's speaker.

The router (AS ``ROUTER_ASN``) learns the Service prefixes from the speakers (AS ``NODE_ASN``, eBGP) and
installs them with ECMP into its kernel, so a client behind the router (the lab's ``remote`` host) reaches
a Service IP through whichever nodes announce it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .l2lab import L2Lab
from .network import LAN_V4, LAN_V6, Host
from .routers import Bird, Neighbor

ROUTER_ASN = 64512
NODE_ASN = 64513


def node_neighbors(
    l2: L2Lab, family: int = 4, password: str | None = None, bfd: bool = False
) -> list[Neighbor]:
    """The router's neighbors for every lab node, over the nodes' IPv4 or IPv6 LAN addresses (with a BFD
    session under each when ``bfd``)."""
    nodes = [l2.lab.node(number) for number in range(1, l2.nodes + 1)]
    return [Neighbor(str(node.v6 if family == 6 else node.v4), NODE_ASN, password, bfd=bfd) for node in nodes]


def start_router(
    l2: L2Lab,
    workdir: Path,
    password: str | None = None,
    *,
    ipv6: bool = False,
    extra: Sequence[Neighbor] = (),
    bfd: bool = False,
    graceful_restart: bool = False,
) -> Bird:
    """BIRD2 peering with every node of the lab (its speakers open the sessions through exabgp): over IPv4,
    also over IPv6 when ``ipv6``, plus ``extra`` neighbors (protocols peer0, peer1, ... in that order);
    with BFD (300 ms x 3) under the nodes' sessions when ``bfd``; able to restart gracefully when
    ``graceful_restart``."""
    neighbors = node_neighbors(l2, 4, password, bfd) + (node_neighbors(l2, 6, password, bfd) if ipv6 else [])
    return Bird(l2.lab, workdir, ROUTER_ASN, [*neighbors, *extra], graceful_restart=graceful_restart).start()


def add_lan_address(host: Host, address: str) -> None:
    """A second LAN address on a lab host (the router, a node): a session of its own that BIRD does not
    confuse with the first one's (BIRD keeps one protocol per neighbor address)."""
    if ":" in address:
        host.run("ip", "addr", "add", f"{address}/{LAN_V6.prefixlen}", "dev", "eth0", "nodad", check=True)
    else:
        host.run("ip", "addr", "add", f"{address}/{LAN_V4.prefixlen}", "dev", "eth0", check=True)


def bgp_peer(l2: L2Lab, name: str = "router", **spec: Any) -> dict[str, Any]:
    """The BGPPeer a cluster admin writes for the lab router (hold time 9 s: failures show quickly)."""
    return {
        "apiVersion": "ironlb.io/v1beta1",
        "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": l2.namespace},
        "spec": {
            "myASN": NODE_ASN,
            "peerASN": ROUTER_ASN,
            "peerAddress": str(l2.lab.router.v4),
            "holdTime": "9s",
            **spec,
        },
    }
