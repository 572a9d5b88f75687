"""``ironlb migrate``: MetalLB's legacy ConfigMap and metallb.io CRs as IronLB manifests."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from ironlb.operator import cli
from ironlb.operator.migrate import load_documents, migrate
from ironlb_lab.controlplane import ControlPlane

SAMPLE = Path(__file__).resolve().parent / "data" / "metallb-sample.yaml"
SEED_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: addresspool-sample1
      protocol: layer2
      addresses:
      - 172.18.1.1-172.18.1.16
"""


def _by_kind(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def _peer(version: str, **spec: Any) -> dict[str, Any]:
    base = {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1"}
    return {
        "apiVersion": f"metallb.io/{version}",
        "kind": "BGPPeer",
        "metadata": {"name": "tor", "namespace": "metallb-system"},
        "spec": {**base, **spec},
    }


def test_the_seed_configmap_becomes_a_pool_and_an_l2_advertisement() -> None:
    manifests, problems = migrate(load_documents(SEED_CONFIGMAP))
    assert problems == []
    assert manifests == [
        {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "addresspool-sample1", "namespace": "ironlb-system"},
            "spec": {"addresses": ["172.18.1.1-172.18.1.16"]},
        },
        {
            "apiVersion": "ironlb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "addresspool-sample1-l2", "namespace": "ironlb-system"},
            "spec": {"ipAddressPools": ["addresspool-sample1"]},
        },
    ]


def test_the_sample_converts_everything_but_bfd_echo_and_connect_time_into_the_target_namespace() -> None:
    manifests, problems = migrate(load_documents(SAMPLE.read_text()), "lb")
    objects = _by_kind(manifests)
    assert [str(p) for p in problems] == [
        "BGPPeer tor-b spec.connectTime: '5s': exabgp, which opens IronLB's sessions, retries after 1 s, then"
        " longer up to 60 s; field dropped",
        "BFDProfile full-profile spec.echoInterval: 95: echo mode is not implemented by IronLB; field"
        " dropped",
        "BFDProfile full-profile spec.echoMode: True: echo mode is not implemented by IronLB; converted"
        " without echo mode",
    ]
    assert {m["metadata"]["namespace"] for m in manifests} == {"lb"}
    assert set(objects) == {
        ("Secret", "peer-198-51-100-1-password"),
        ("Secret", "tor-a-password"),
        ("Secret", "tor-b-md5"),
        ("IPAddressPool", "legacy-layer2"),
        ("IPAddressPool", "legacy-bgp"),
        ("IPAddressPool", "production"),
        ("L2Advertisement", "legacy-layer2-l2"),
        ("L2Advertisement", "production-l2"),
        ("BGPAdvertisement", "legacy-bgp-bgp-1"),
        ("BGPAdvertisement", "legacy-bgp-bgp-2"),
        ("BGPAdvertisement", "production-bgp"),
        ("BGPPeer", "peer-198-51-100-1"),
        ("BGPPeer", "peer-2001-db8-ff--1"),
        ("BGPPeer", "tor-a"),
        ("BGPPeer", "tor-b"),
        ("BFDProfile", "fast"),
        ("BFDProfile", "full-profile"),
        ("Community", "communities"),
    }
    assert objects[("Community", "communities")]["spec"] == {
        "communities": [{"name": "local-only", "value": "64500:666"}]
    }
    assert objects[("BGPPeer", "tor-a")]["spec"]["bfdProfile"] == "fast"
    assert objects[("BFDProfile", "fast")]["spec"] == {}  # MetalLB's defaults are IronLB's
    assert objects[("BFDProfile", "full-profile")]["spec"] == {
        "receiveInterval": 380,
        "transmitInterval": 270,
        "detectMultiplier": 37,
        "passiveMode": True,
        "minimumTtl": 10,
    }
    assert objects[("IPAddressPool", "production")]["metadata"]["labels"] == {"tier": "production"}
    assert objects[("BGPAdvertisement", "production-bgp")]["spec"]["communities"] == [
        "64500:666",  # the Community object's alias local-only, resolved (and the Community converted)
        "no-export",
        "large:64500:1:2",
    ]
    assert objects[("BGPAdvertisement", "legacy-bgp-bgp-1")]["spec"]["communities"] == [
        "65535:65282",
        "64500:7",
    ]


def test_plaintext_passwords_become_secrets_the_peers_refer_to() -> None:
    manifests, _ = migrate(load_documents(SAMPLE.read_text()))
    objects = _by_kind(manifests)
    legacy = objects[("BGPPeer", "peer-198-51-100-1")]["spec"]
    assert "password" not in legacy and legacy["passwordSecret"] == {"name": "peer-198-51-100-1-password"}
    secret = objects[("Secret", "peer-198-51-100-1-password")]
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["stringData"] == {"password": "legacy-secret"}
    assert objects[("BGPPeer", "tor-a")]["spec"]["passwordSecret"] == {"name": "tor-a-password"}
    assert objects[("Secret", "tor-a-password")]["stringData"] == {"password": "tor-a-secret"}
    # v1beta2 passwordSecret: the Secret given alongside is copied into IronLB's namespace
    assert objects[("BGPPeer", "tor-b")]["spec"]["passwordSecret"] == {"name": "tor-b-md5"}
    assert objects[("Secret", "tor-b-md5")]["metadata"] == {"name": "tor-b-md5", "namespace": "ironlb-system"}


def test_v1beta1_peers_have_password_and_no_passwordsecret_v1beta2_peers_both() -> None:
    reference = {"passwordSecret": {"name": "md5", "namespace": "metallb-system"}}
    manifests, problems = migrate([_peer("v1beta1", **reference)])
    assert [str(p) for p in problems] == [
        "BGPPeer tor spec.passwordSecret: not a field of metallb.io/v1beta1 BGPPeer"
    ]
    assert "passwordSecret" not in manifests[0]["spec"]
    manifests, problems = migrate([_peer("v1beta2", **reference)])
    assert manifests[0]["spec"]["passwordSecret"] == {"name": "md5"}
    assert [str(p) for p in problems] == [
        "BGPPeer tor spec.passwordSecret: Secret metallb-system/md5 was not in the input: copy it to "
        "namespace ironlb-system (IronLB reads BGP passwords only there)"
    ]
    manifests, problems = migrate([_peer("v1beta1", dynamicASN="external")])
    assert str(problems[0]) == "BGPPeer tor spec.dynamicASN: not a field of metallb.io/v1beta1 BGPPeer"
    manifests, problems = migrate([_peer("v1beta2", password="pw", enableGracefulRestart=True)])
    assert problems == [] and manifests[1]["spec"]["enableGracefulRestart"] is True


@pytest.mark.parametrize(
    ("spec", "converted", "expected"),
    [
        ({"vrf": "red"}, False, "BGPPeer tor spec.vrf: 'red': VRFs are not supported by IronLB"),
        ({"interface": "eth1"}, False, "BGPPeer tor spec.interface: 'eth1': unnumbered BGP"),
        (
            {"bfdProfile": "fast"},
            True,
            "BGPPeer tor spec.bfdProfile: BFDProfile 'fast' was not in the input: convert it too (until it"
            " exists in namespace ironlb-system, the peer's sessions stay closed)",
        ),
        ({"disableMP": True}, True, "BGPPeer tor spec.disableMP: True:"),
        (
            {"holdTime": "1s"},
            False,
            "BGPPeer tor spec.holdTime: '1s' is neither 0s nor whole seconds between 3s and 65535s",
        ),
        ({"peerASN": 64500, "ebgpMultiHop": True}, False, "BGPPeer tor spec.ebgpMultiHop: applies to eBGP"),
        ({"myASN": 0}, False, "BGPPeer tor spec.myASN: 0 is invalid"),
    ],
)
def test_what_ironlb_lacks_or_refuses_is_reported_naming_object_and_field(
    spec: dict[str, Any], converted: bool, expected: str
) -> None:
    manifests, problems = migrate([_peer("v1beta2", **spec)])
    assert [m["kind"] for m in manifests] == (["BGPPeer"] if converted else [])
    assert len(problems) == 1 and str(problems[0]).startswith(expected), problems


def test_bfd_profiles_are_checked_as_the_crd_checks_them_and_peers_keep_naming_them() -> None:
    profile = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BFDProfile",
        "metadata": {"name": "slow", "namespace": "metallb-system"},
        "spec": {"detectMultiplier": 1, "receiveInterval": 300, "echoMode": False},
    }
    manifests, problems = migrate([profile, _peer("v1beta1", bfdProfile="slow")])
    assert [str(p) for p in problems] == [
        "BFDProfile slow spec.detectMultiplier: 1 is invalid (Input should be greater than or equal to 2)"
    ]
    assert [m["kind"] for m in manifests] == ["BGPPeer"]  # the profile is left out, with its problem
    good = {**profile, "spec": {"transmitInterval": 50, "minimumTtl": 254, "echoMode": False}}
    manifests, problems = migrate([_peer("v1beta2", bfdProfile="slow"), good])
    assert problems == []
    assert [(m["kind"], m["spec"]) for m in manifests] == [
        ("BFDProfile", {"transmitInterval": 50}),
        ("BGPPeer", {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1", "bfdProfile": "slow"}),
    ]


def test_defaults_meaning_not_used_are_not_problems() -> None:
    manifests, problems = migrate([_peer("v1beta2", vrf="", disableMP=False, bfdProfile="")])
    assert problems == [] and len(manifests) == 1


def test_pools_are_checked_as_the_crd_checks_them() -> None:
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p"},
        "spec": {"addresses": ["192.0.2.9-192.0.2.1", "192.0.2.64/26"], "autoAssign": True},
    }
    manifests, problems = migrate([pool])
    assert manifests == []
    assert [str(p) for p in problems] == [
        "IPAddressPool p spec.addresses[0]: range '192.0.2.9-192.0.2.1' is reversed: "
        "its start is after its end"
    ]
    l2 = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "a"},
        "spec": {
            "interfaces": ["a/b"],
            "nodeSelectors": [{"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["v"]}]}],
        },
    }
    manifests, problems = migrate([l2])
    assert manifests == []
    assert [p.where for p in problems] == [
        "L2Advertisement a spec.nodeSelectors[0].matchExpressions[0].values",
        "L2Advertisement a spec.interfaces[0]",
    ]


def test_lists_are_flattened_and_foreign_or_repeated_objects_reported() -> None:
    pool = yaml.safe_load(SEED_CONFIGMAP)
    crd_pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "addresspool-sample1"},
        "spec": {"addresses": ["192.0.2.0/28"]},
    }
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "y"}}
    status = {"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status", "metadata": {"name": "s"}}
    document = {"apiVersion": "v1", "kind": "List", "items": [pool, crd_pool, deployment, status]}
    manifests, problems = migrate([document])
    assert [(m["kind"], m["spec"].get("addresses")) for m in manifests] == [
        ("IPAddressPool", ["172.18.1.1-172.18.1.16"]),
        ("L2Advertisement", None),
    ]
    assert [str(p) for p in problems] == [
        "IPAddressPool addresspool-sample1: defined by ConfigMap metallb-system/config and "
        "metallb.io/v1beta1 IPAddressPool addresspool-sample1; kept the first",
        "Deployment y/x: not a MetalLB object (apps/v1); skipped",
    ]


def test_legacy_configmap_problems_are_placed_in_the_configmap() -> None:
    text = SEED_CONFIGMAP.replace("layer2", "ospf")
    manifests, problems = migrate(load_documents(text))
    assert manifests == []
    assert [str(p) for p in problems] == [
        "ConfigMap metallb-system/config address-pools[0].protocol: 'ospf' is not layer2 or bgp"
    ]


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED_CONFIGMAP)
    assert cli.main(["migrate", "-f", str(seed), "--namespace", "lb"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert [(d["kind"], d["metadata"]["namespace"]) for d in yaml.safe_load_all(out)] == [
        ("IPAddressPool", "lb"),
        ("L2Advertisement", "lb"),
    ]
    assert cli.main(["migrate", "-f", str(SAMPLE), "-f", str(seed)]) == 1
    out, err = capsys.readouterr()
    assert len(list(yaml.safe_load_all(out))) == 20  # everything converted is still printed
    assert err.count("problem: ") == 3 and "echoMode" in err  # the two echo settings, connectTime
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [")
    assert cli.main(["migrate", "-f", str(broken)]) == 2
    assert cli.main(["migrate", "-f", str(tmp_path / "missing.yaml")]) == 2
    _, err = capsys.readouterr()
    assert "cannot read" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(SEED_CONFIGMAP))
    assert cli.main(["migrate"]) == 0
    assert "addresspool-sample1-l2" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ the API server
def test_the_migrated_sample_passes_the_crds_schema_and_cel_rules(crds_installed: ControlPlane) -> None:
    namespace = f"migrate-{os.getpid()}"  # not ironlb-system: no operator test should see these pools
    manifests, _ = migrate(load_documents(SAMPLE.read_text()), namespace)
    crds_installed.kubectl("create", "namespace", namespace)
    try:
        result = crds_installed.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests), check=False)
        assert result.returncode == 0, result.stderr
        listed = crds_installed.kubectl(
            "get", "ironlb", "-n", namespace, "-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name} {end}"
        ).stdout.split()
        expected = {f"{m['kind']}/{m['metadata']['name']}" for m in manifests if m["kind"] != "Secret"}
        assert set(listed) == expected
        stored = yaml.safe_load(
            crds_installed.kubectl(
                "get", "bgpadvertisement", "production-bgp", "-n", namespace, "-o", "yaml"
            ).stdout
        )
        assert stored["spec"]["communities"] == ["64500:666", "no-export", "large:64500:1:2"]
    finally:
        crds_installed.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_community_ironlb_would_refuse_is_reported_and_its_aliases_still_resolve() -> None:
    documents = load_documents(
        """
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: odd, namespace: metallb-system}
spec:
  communities:
  - {name: no-export, value: "64500:1"}
  - {name: "has space", value: "64500:2"}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: tagged, namespace: metallb-system}
spec:
  communities: ["has space"]
"""
    )
    manifests, problems = migrate(documents)
    objects = _by_kind(manifests)
    assert ("Community", "odd") not in objects
    assert objects[("BGPAdvertisement", "tagged")]["spec"]["communities"] == ["64500:2"]
    assert any(str(p).startswith("Community odd spec") for p in problems), problems


def test_the_legacy_configmap_s_bfd_profiles_become_bfdprofiles() -> None:
    config = (
        "bfd-profiles: [{name: fast, detect-multiplier: 5}]\n"
        "peers: [{peer-address: 198.51.100.1, peer-asn: 2, my-asn: 1, bfd-profile: fast}]\n"
    )
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config"},
        "data": {"config": config},
    }
    manifests, problems = migrate([configmap])
    objects = _by_kind(manifests)
    assert problems == []
    assert objects[("BFDProfile", "fast")]["spec"] == {"detectMultiplier": 5}
    assert objects[("BGPPeer", "peer-198-51-100-1")]["spec"]["bfdProfile"] == "fast"
