"""BGP mode in the lab: BIRD2 in the router namespace peering with every lab node's speaker.

The router (AS ``ROUTER_ASN``) learns the Service prefixes from the speakers (AS ``NODE_ASN``, eBGP) and
installs them with ECMP into its kernel, so a client behind the router (the lab's ``remote`` host) reaches
a Service IP through whichever nodes announce it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .l2lab import L2Lab
from .routers import Bird, Neighbor

ROUTER_ASN = 64512
NODE_ASN = 64513


def start_router(l2: L2Lab, workdir: Path, password: str | None = None) -> Bird:
    """BIRD2 peering with every node of the lab (its speakers open the sessions through exabgp)."""
    neighbors = [
        Neighbor(str(l2.lab.node(number).v4), NODE_ASN, password) for number in range(1, l2.nodes + 1)
    ]
    return Bird(l2.lab, workdir, ROUTER_ASN, neighbors).start()


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
