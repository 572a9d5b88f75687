"""The operator's side of BFD (pure, no API server): BFDProfiles resolved into the speakers' sessions, and a
Warning on a BGPPeer naming a profile that does not exist."""

from __future__ import annotations

from typing import Any, cast

from ironlb.api import BFDProfileSpec, BGPPeerSpec
from ironlb.api.contract import BfdSettings
from ironlb.api.events import ObjectRef
from ironlb.api.kube import KubeClient
from ironlb.operator.controller import Controller
from ironlb.operator.speakerconfig import global_config

NS = "ironlb-system"
PEER = {"myASN": 64513, "peerASN": 64512, "peerAddress": "198.51.100.126"}


def _body(kind: str, name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    return {"apiVersion": "ironlb.io/v1beta1", "kind": kind, "metadata": metadata, "spec": spec}


def test_a_peer_s_profile_travels_resolved_in_its_session() -> None:
    peers = {
        "fast": BGPPeerSpec.model_validate({**PEER, "bfdProfile": "fast"}),
        "missing": BGPPeerSpec.model_validate({**PEER, "bfdProfile": "nope"}),
        "empty": BGPPeerSpec.model_validate({**PEER, "bfdProfile": ""}),
        "none": BGPPeerSpec.model_validate(PEER),
    }
    profiles = {"fast": BFDProfileSpec.model_validate({"receiveInterval": 100, "passiveMode": True})}
    config = global_config({}, {}, peers, {"node1": {}}, NS, bfd_profiles=profiles)
    sessions = {p.session.name: p.session for p in config.peers}
    assert sessions["fast"].bfd_profile == "fast"
    assert sessions["fast"].bfd == BfdSettings(receive_interval=100, transmit_interval=300, passive=True)
    assert sessions["missing"].bfd_profile == "nope" and sessions["missing"].bfd is None
    for name in ("empty", "none"):
        assert sessions[name].bfd_profile is None and sessions[name].bfd is None


def test_a_missing_profile_is_a_warning_on_the_peer_until_it_exists() -> None:
    events: list[tuple[str, str, str, str]] = []

    def post(obj: ObjectRef, kind: str, reason: str, message: str) -> None:
        events.append((obj.key, kind, reason, message))

    controller = Controller(cast(KubeClient, object()), NS, post)
    controller.advertisements.set_peer(_body("BGPPeer", "tor", {**PEER, "bfdProfile": "fast"}), deleted=False)
    controller.bfd.report_missing()
    controller.bfd.report_missing()  # once, not on every resync
    assert events == [
        (
            f"BGPPeer:{NS}/tor",
            "Warning",
            "BFDProfileMissing",
            f"BFDProfile {NS}/fast does not exist: the BGP sessions of this peer stay closed until it does",
        )
    ]
    published = controller.state.publisher._global
    assert published is not None and published.peers[0].session.bfd is None

    controller.bfd.set_profile(_body("BFDProfile", "fast", {}, namespace="elsewhere"), deleted=False)
    assert controller.state.bfd_profiles == {}  # only IronLB's namespace counts
    controller.bfd.set_profile(_body("BFDProfile", "fast", {"detectMultiplier": 5}), deleted=False)
    published = controller.state.publisher._global
    assert published is not None and published.peers[0].session.bfd == BfdSettings(detect_multiplier=5)
    controller.bfd.set_profile(_body("BFDProfile", "fast", {}), deleted=True)
    assert len(events) == 2 and events[1] == events[0]  # told again once it is missing again
