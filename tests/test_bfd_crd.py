"""The BFDProfile CRD and BGPPeer.spec.bfdProfile against a real kube-apiserver: defaults, columns, and
refusals that name the field and the value."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from ironlb_lab.controlplane import ControlPlane

NAMESPACE = "ironlb-system"


def _profile(name: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "BFDProfile",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }
    )


def test_a_profile_gets_metallb_s_defaults_and_kubectl_shows_its_timers(crds_installed: ControlPlane) -> None:
    crds_installed.kubectl("apply", "-f", "-", input=_profile("bfd-defaults"))
    crds_installed.kubectl("apply", "-f", "-", input=_profile("bfd-passive", passiveMode=True, minimumTtl=10))
    try:
        stored = yaml.safe_load(
            crds_installed.kubectl("get", "-n", NAMESPACE, "bfdp", "bfd-defaults", "-o", "yaml").stdout
        )
        assert stored["spec"] == {
            "receiveInterval": 300,
            "transmitInterval": 300,
            "detectMultiplier": 3,
            "echoMode": False,
            "passiveMode": False,
            "minimumTtl": 254,
        }
        table = crds_installed.kubectl(
            "get", "-n", NAMESPACE, "bfdprofiles", "-o", "wide"
        ).stdout.splitlines()
        assert table[0].split() == [
            "NAME", "PASSIVE", "MODE", "TRANSMIT", "INTERVAL", "RECEIVE", "INTERVAL", "MULTIPLIER", "AGE",
            "MINIMUM", "TTL",
        ]  # fmt: skip
        rows = {line.split()[0]: line.split() for line in table[1:]}
        assert rows["bfd-passive"][1:5] == ["true", "300", "300", "3"] and rows["bfd-passive"][-1] == "10"
        names = crds_installed.kubectl("get", "-n", NAMESPACE, "ironlb", "-o", "name").stdout.split()
        assert "bfdprofile.ironlb.io/bfd-defaults" in names
    finally:
        crds_installed.kubectl("delete", "-n", NAMESPACE, "bfdp", "bfd-defaults", "bfd-passive", check=False)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"receiveInterval": 5},
            "spec.receiveInterval: Invalid value: 5: spec.receiveInterval in body should be",
        ),
        ({"transmitInterval": 60001}, "spec.transmitInterval: Invalid value: 60001"),
        ({"detectMultiplier": 1}, "spec.detectMultiplier: Invalid value: 1"),
        ({"minimumTtl": 255}, "spec.minimumTtl: Invalid value: 255"),
        (
            {"echoMode": True},
            'spec.echoMode: Invalid value: "boolean": echoMode true is refused: echo mode is',
        ),
        (
            {"echoInterval": 50},
            'spec.echoInterval: Invalid value: "integer": echoInterval is refused whatever',
        ),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_a_bad_profile_is_refused_naming_the_field_and_the_value(
    crds_installed: ControlPlane, spec: dict[str, Any], expected: str
) -> None:
    result = crds_installed.kubectl("create", "-f", "-", input=_profile("bad", **spec), check=False)
    assert result.returncode != 0 and expected in result.stderr, result.stderr


def test_a_peer_names_a_profile_by_object_name(crds_installed: ControlPlane) -> None:
    peer: dict[str, Any] = {
        "apiVersion": "ironlb.io/v1beta1",
        "kind": "BGPPeer",
        "metadata": {"name": "bfd-peer", "namespace": NAMESPACE},
        "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": "198.51.100.126", "bfdProfile": "Fast_1"},
    }
    result = crds_installed.kubectl("create", "-f", "-", input=json.dumps(peer), check=False)
    assert result.returncode != 0 and 'spec.bfdProfile: Invalid value: "Fast_1"' in result.stderr
    peer["spec"]["bfdProfile"] = "fast"
    crds_installed.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(peer))
