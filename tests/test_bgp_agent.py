"""The BGP agent's pure parts: passwords from the watched Secrets, exabgp neighbors per node, peer counts."""

from __future__ import annotations

import base64

from ironlb.api.contract import BGPSession, PeerPlacement, SecretRef, SpeakerGlobalConfig
from ironlb.speaker.bgp.agent import (
    READY_GRACE,
    exabgp_config_for,
    peer_summary,
    sessions_settled,
    with_passwords,
)
from ironlb.speaker.bgp.exabgp_process import SessionState

SIGNED = BGPSession(
    name="signed",
    peer_address="198.51.100.126",
    peer_asn=64512,
    my_asn=64513,
    password_secret=SecretRef(namespace="ironlb-system", name="md5"),
)
PLAIN = BGPSession(name="plain", peer_address="2001:db8:100::126", peer_asn=64512, my_asn=64513)
CONFIG = SpeakerGlobalConfig(
    peers=(
        PeerPlacement(session=SIGNED, nodes=("node1", "node2")),
        PeerPlacement(session=PLAIN, nodes=("node1",)),
    )
)


def test_each_node_opens_the_sessions_of_the_peers_selecting_it_from_its_own_addresses() -> None:
    config = exabgp_config_for("node1", CONFIG, "198.51.100.11", "2001:db8:100::11")
    assert config is not None
    local = {n.session.name: (n.local_address, n.router_id) for n in config.neighbors}
    assert local == {
        "signed": ("198.51.100.11", "198.51.100.11"),
        "plain": ("2001:db8:100::11", "198.51.100.11"),
    }
    node2 = exabgp_config_for("node2", CONFIG, "198.51.100.12", None)
    assert node2 is not None and [n.session.name for n in node2.neighbors] == ["signed"]
    assert exabgp_config_for("node3", CONFIG, "198.51.100.13", None) is None


def test_a_session_whose_secret_is_missing_stays_closed_and_says_why() -> None:
    config = exabgp_config_for("node1", CONFIG, "198.51.100.11", "2001:db8:100::11")
    assert config is not None
    closed: dict[str, tuple[str, float]] = {}
    resolved = with_passwords(config, lambda namespace, name: None, closed)
    assert [n.session.name for n in resolved.neighbors] == ["plain"]  # never opened without its MD5
    assert "no key 'password' in Secret ironlb-system/md5" in closed["signed"][0]

    secret = {"password": base64.b64encode(b"s3cret\n").decode()}  # as `echo s3cret | base64` writes it
    resolved = with_passwords(config, lambda namespace, name: secret if name == "md5" else None, closed)
    signed = next(n for n in resolved.neighbors if n.session.name == "signed")
    assert signed.password is not None and signed.password.get_secret_value() == "czNjcmV0"  # the key, base64
    assert "signed" not in closed
    assert "s3cret" not in repr(resolved)


def test_peer_counts_take_only_the_selected_nodes() -> None:
    nodes = [
        {"node": "node1", "state": "Established"},
        {"node": "node2", "state": "Active"},
        {"node": "gone", "state": "Established"},
    ]
    assert peer_summary(["node1", "node2"], nodes) == {
        "selectedNodes": 2,
        "establishedNodes": 1,
        "sessions": "1/2",
    }


def test_a_speaker_is_settled_once_every_selected_session_is_up_or_the_grace_is_over() -> None:
    """Readiness paces a rolling update: a node restarted in BGP mode is not Ready (and the next node is not
    taken down) until its routers have it back; a router that stays down cannot stall the rollout."""
    up, connecting = SessionState("Established", 0.0), SessionState("Active", 0.0)
    assert sessions_settled((), {}, None, 0.0)  # no BGP on this node
    assert not sessions_settled(("a", "b"), {"a": up}, 100.0, 101.0)  # b not even reported yet
    assert not sessions_settled(("a", "b"), {"a": up, "b": connecting}, 100.0, 101.0)
    assert sessions_settled(("a", "b"), {"a": up, "b": up}, 100.0, 101.0)
    assert sessions_settled(("a", "b"), {"a": up, "b": connecting}, 100.0, 100.0 + READY_GRACE)
    assert not sessions_settled(("a",), {}, None, 1e9)  # wanted since unknown: no grace
