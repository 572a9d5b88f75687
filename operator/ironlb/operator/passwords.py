"""BGP passwords gathered into the one Secret the speakers may read (by name, ``PASSWORDS_SECRET``).

A BGPPeer names its password's Secret; a speaker on every node, on the host network, used to read every
Secret of IronLB's namespace to find them. Now the operator (one replica, off the host network) reads the
Secrets its peers name (and the inline ``password`` MetalLB also accepts) and copies each password into
``PASSWORDS_SECRET``, keyed by peer name; the speakers' RBAC names that Secret and no other. Passwords are
copied as the API stores them (base64), never decoded here, never logged. A Secret in another namespace is
refused at admission (``passwordSecret.namespace``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ironlb.api import BGPPeerSpec
from ironlb.api.contract import PASSWORDS_SECRET

from .manifests import labels

PASSWORD_KEY = "password"  # the key in the peer's Secret (MetalLB's convention: a basic-auth Secret)


def gather(
    peers: Mapping[str, BGPPeerSpec], namespace: str, secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """Peer name -> its password (base64) from the Secret it names, for the peers whose Secret has one."""
    data: dict[str, str] = {}
    for name, spec in sorted(peers.items()):
        if spec.password:  # MetalLB's inline password ("" is none), kept out of the speakers' reach alike
            data[name] = base64.b64encode(spec.password.encode()).decode("ascii")
            continue
        ref = spec.password_secret
        if ref is None or ref.namespace is not None:  # refused at admission: IronLB reads its own namespace
            continue
        encoded = (secrets.get(ref.name) or {}).get(PASSWORD_KEY)
        if encoded:
            data[name] = encoded
    return data


def passwords_secret(data: Mapping[str, str], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": PASSWORDS_SECRET, "namespace": namespace, "labels": labels("speaker")},
        "data": dict(data),
    }
