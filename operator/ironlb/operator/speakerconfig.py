"""From the CRDs to the speaker contract (pure). Growing piece: BGP sessions first."""

from __future__ import annotations

from ironlb.speaker.contract import BGPSession, SecretRef, duration_seconds

from .api import BGPPeerSpec

DEFAULT_HOLD_SECONDS = 90


def session_from_peer(name: str, namespace: str, spec: BGPPeerSpec) -> BGPSession:
    """One BGPPeer as a session; durations become whole seconds (BGP's unit), rounded up."""

    def seconds(text: str | None) -> int | None:
        return None if text is None else int(-(-duration_seconds(text) // 1))

    hold = seconds(spec.hold_time)
    secret = spec.password_secret
    return BGPSession(
        name=name,
        peer_address=spec.peer_address,
        peer_asn=spec.peer_asn,
        dynamic_asn=spec.dynamic_asn,
        my_asn=spec.my_asn,
        peer_port=spec.peer_port,
        source_address=spec.source_address,
        router_id=spec.router_id,
        hold_time_seconds=DEFAULT_HOLD_SECONDS if hold is None else hold,
        keepalive_seconds=seconds(spec.keepalive_time),
        connect_seconds=seconds(spec.connect_time),
        password_secret=SecretRef(namespace=secret.namespace or namespace, name=secret.name)
        if secret
        else None,
        ebgp_multihop=spec.ebgp_multi_hop,
        graceful_restart=spec.enable_graceful_restart,
    )
