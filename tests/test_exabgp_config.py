"""exabgp configuration from the contract: golden files, and exabgp itself accepts every rendered file."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ironlb.api import BGPPeerSpec
from ironlb.api.contract import ExabgpConfig, ExabgpNeighbor
from ironlb.api.durations import duration_seconds
from ironlb.operator.speakerconfig import global_config, session_from_peer
from ironlb.speaker.bgp.agent import exabgp_config_for
from ironlb.speaker.bgp.exabgp_config import render_exabgp
from ironlb.speaker.bgp.md5 import md5_key
from pydantic import SecretStr

GOLDEN = Path(__file__).parent / "golden" / "exabgp"
EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples" / "bgp.yaml"
API = "/usr/bin/env ironlb-speaker exabgp-api"


def _peers() -> dict[str, BGPPeerSpec]:
    return {
        doc["metadata"]["name"]: BGPPeerSpec.model_validate(doc["spec"])
        for doc in yaml.safe_load_all(EXAMPLES.read_text())
        if doc["kind"] == "BGPPeer"
    }


def _scenarios() -> dict[str, ExabgpConfig]:
    peers = _peers()
    tor_v4 = session_from_peer("tor-v4", "ironlb-system", peers["tor-v4"])
    tor_v6 = session_from_peer("tor-v6", "ironlb-system", peers["tor-v6"])
    ibgp = session_from_peer(
        "route-reflector",
        "ironlb-system",
        BGPPeerSpec.model_validate(
            {"myASN": 64512, "dynamicASN": "internal", "peerAddress": "198.51.100.253"}
        ),
    )
    return {
        "ebgp-v4-password-graceful-restart": ExabgpConfig(
            node="node-a",
            api_command=API,
            neighbors=(
                ExabgpNeighbor(
                    session=tor_v4,
                    local_address="198.51.100.11",
                    router_id="198.51.100.11",
                    password=SecretStr(base64.b64encode(b"change-me").decode()),
                ),
            ),
        ),
        "ebgp-v6-multihop-dynamic-and-ibgp": ExabgpConfig(
            node="node-b",
            api_command=API,
            neighbors=(
                ExabgpNeighbor(session=tor_v6, local_address="2001:db8:ff::10", router_id="198.51.100.10"),
                ExabgpNeighbor(session=ibgp, local_address="198.51.100.12", router_id="198.51.100.12"),
            ),
        ),
        "no-peers": ExabgpConfig(node="node-c", api_command=API),
    }


@pytest.mark.parametrize("name", sorted(_scenarios()))
def test_rendered_configuration_matches_the_golden_file(name: str) -> None:
    rendered = render_exabgp(_scenarios()[name])
    golden = GOLDEN / f"{name}.conf"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"run UPDATE_GOLDEN=1 pytest {__file__} after checking the diff"


@pytest.mark.parametrize("name", sorted(_scenarios()))
def test_exabgp_validates_every_rendered_file(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.conf"
    path.write_text(render_exabgp(_scenarios()[name]))
    exabgp = Path(sys.executable).parent / "exabgp"
    result = subprocess.run(
        [str(exabgp), "validate", "-n", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr


def test_a_broken_configuration_is_refused_by_exabgp(tmp_path: Path) -> None:
    """The validation step can fail: a neighbor without local-as is rejected."""
    path = tmp_path / "broken.conf"
    path.write_text(
        render_exabgp(_scenarios()["ebgp-v4-password-graceful-restart"]).replace("    local-as", "    # ")
    )
    exabgp = Path(sys.executable).parent / "exabgp"
    result = subprocess.run(
        [str(exabgp), "validate", "-n", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


def test_session_from_peer_maps_the_crd_fields() -> None:
    tor_v4 = session_from_peer("tor-v4", "ironlb-system", _peers()["tor-v4"])
    assert (tor_v4.hold_time_seconds, tor_v4.keepalive_seconds, tor_v4.connect_seconds) == (9, 3, None)
    # the password is read from the Secret the operator gathers them into, under the peer's name
    assert tor_v4.password_secret is not None and tor_v4.password_secret.key == "tor-v4"
    assert tor_v4.password_secret.namespace == "ironlb-system" and not tor_v4.is_ibgp
    assert duration_seconds("1m30s") == 90 and duration_seconds("1.5h") == 5400
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("90")


def test_a_key_that_is_not_base64_never_reaches_the_file() -> None:
    scenario = _scenarios()["ebgp-v4-password-graceful-restart"]
    neighbor = scenario.neighbors[0].model_copy(update={"password": SecretStr('x";\n}')})
    with pytest.raises(ValueError, match="MD5 key of BGPPeer tor-v4 is not base64"):
        render_exabgp(scenario.model_copy(update={"neighbors": (neighbor,)}))


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=80).filter(lambda key: not key.endswith((b"\r", b"\n"))))
def test_any_key_of_1_to_80_bytes_is_kept_exactly(key: bytes) -> None:
    written, problem = md5_key(base64.b64encode(key).decode())
    assert problem is None and written is not None and base64.b64decode(written) == key


def test_keys_the_kernel_cannot_take_are_refused_without_quoting_them() -> None:
    assert md5_key(base64.b64encode(b"pw\n").decode()) == (base64.b64encode(b"pw").decode(), None)
    for encoded, why in (
        (base64.b64encode(b"y" * 81).decode(), "81 bytes long"),
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"\n").decode(), "empty"),
    ):
        key, problem = md5_key(encoded)
        assert key is None and problem is not None and why in problem and "yyy" not in problem


def test_exabgp_accepts_a_key_made_of_its_own_grammar_and_of_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    scenario = _scenarios()["ebgp-v4-password-graceful-restart"]
    key, _ = md5_key(base64.b64encode(b'";{}\\ \xff\xfe#').decode())
    assert key is not None
    neighbor = scenario.neighbors[0].model_copy(update={"password": SecretStr(key)})
    path = tmp_path / "odd.conf"
    path.write_text(render_exabgp(scenario.model_copy(update={"neighbors": (neighbor,)})))
    exabgp = Path(sys.executable).parent / "exabgp"
    result = subprocess.run(
        [str(exabgp), "validate", "-n", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _rendered(node_v4: str, **spec: object) -> str:
    """The exabgp configuration one node gets for one BGPPeer, through the operator and the speaker."""
    peer = BGPPeerSpec.model_validate({"myASN": 64512, "peerAddress": "198.51.100.254", **spec})
    config = global_config({}, {}, {"tor": peer}, {"node-a": {}}, "ironlb-system")
    exabgp = exabgp_config_for("node-a", config, node_v4, None)
    assert exabgp is not None
    return render_exabgp(exabgp)


def test_each_bgppeer_field_reaches_the_exabgp_configuration() -> None:
    """Every BGPPeer field that changes the session, from the CRD to the line exabgp reads."""
    plain = _rendered("198.51.100.11", peerASN=64500)
    assert "local-as 64512;" in plain and "peer-as 64500;" in plain  # myASN, peerASN
    assert "local-as 64999;" in _rendered("198.51.100.11", myASN=64999, peerASN=64500)
    assert "router-id 198.51.100.11;" in plain  # without routerID: the node's IPv4 address
    assert "router-id 192.0.2.77;" in _rendered("198.51.100.11", peerASN=64500, routerID="192.0.2.77")
    assert "peer-as auto;" in _rendered("198.51.100.11", dynamicASN="external")
    internal = _rendered("198.51.100.11", dynamicASN="internal")
    assert "peer-as 64512;" in internal and "outgoing-ttl" not in internal  # iBGP: no TTL security
    assert "outgoing-ttl 1;" in plain  # eBGP: single hop unless ebgpMultiHop
    assert "outgoing-ttl 255;" in _rendered("198.51.100.11", peerASN=64500, ebgpMultiHop=True)
    assert "graceful-restart" not in plain
    assert "graceful-restart" in _rendered("198.51.100.11", peerASN=64500, enableGracefulRestart=True)
    assert "connect 179;" in plain and "connect 1179;" in _rendered(
        "198.51.100.11", peerASN=64500, peerPort=1179
    )
    assert "hold-time 90;" in plain and "hold-time 9;" in _rendered(
        "198.51.100.11", peerASN=64500, holdTime="9s"
    )
    sourced = _rendered("198.51.100.11", peerASN=64500, sourceAddress="198.51.100.21")
    assert "local-address 198.51.100.21;" in sourced and "local-address 198.51.100.11;" in plain
