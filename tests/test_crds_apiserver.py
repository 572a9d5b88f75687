"""The generated CRDs against a real kube-apiserver: install, accept examples, reject bad objects."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ironlb_lab.controlplane import ControlPlane
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT / "tests" / "data" / "invalid-objects.yaml"
NAMESPACE = "ironlb-system"
PLURALS = {
    "IPAddressPool": "ipaddresspools",
    "L2Advertisement": "l2advertisements",
    "BGPAdvertisement": "bgpadvertisements",
    "BGPPeer": "bgppeers",
    "BFDProfile": "bfdprofiles",
    "Community": "communities",
}


def invalid_cases() -> list[tuple[str, str, list[str]]]:
    cases = []
    for chunk in CORPUS.read_text().split("\n---\n"):
        expectations = re.findall(r"^# expect: (.+)$", chunk, flags=re.MULTILINE)
        document = yaml.safe_load(chunk)
        cases.append((document["metadata"]["name"], chunk, expectations))
    return cases


def test_the_invalid_corpus_is_large_and_every_case_names_a_field() -> None:
    cases = invalid_cases()
    assert len(cases) >= 20
    assert len({name for name, _, _ in cases}) == len(cases), "case names must be unique"
    for name, _, expectations in cases:
        assert len(expectations) >= 2 and expectations[0].startswith("spec"), name


@pytest.mark.parametrize(
    ("name", "manifest", "expectations"), invalid_cases(), ids=[c[0] for c in invalid_cases()]
)
def test_invalid_object_is_rejected_with_a_message_naming_the_field(
    crds_installed: ControlPlane, name: str, manifest: str, expectations: list[str]
) -> None:
    result = crds_installed.kubectl("create", "-n", NAMESPACE, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, f"{name} was accepted"
    message = result.stderr
    assert "is invalid" in message, message
    field, *details = expectations
    assert re.search(rf"\b{re.escape(field)}(:|\s)", message), f"field {field} not named in: {message}"
    for detail in details:
        assert detail in message, f"{detail!r} not in: {message}"
    kind = yaml.safe_load(manifest)["kind"]
    lookup = crds_installed.kubectl("get", "-n", NAMESPACE, PLURALS[kind], name, check=False)
    assert "NotFound" in lookup.stderr


@pytest.fixture(scope="module")
def examples_applied(crds_installed: ControlPlane) -> ControlPlane:
    crds_installed.kubectl("apply", "-f", str(REPO_ROOT / "docs" / "examples"))
    return crds_installed


def test_every_example_is_accepted_and_defaults_are_filled(examples_applied: ControlPlane) -> None:
    pool = yaml.safe_load(
        examples_applied.kubectl(
            "get", "-n", NAMESPACE, "ipaddresspool", "addresspool-sample1", "-o", "yaml"
        ).stdout
    )
    assert pool["spec"] == {
        "addresses": ["203.0.113.1-203.0.113.16"],
        "autoAssign": True,
        "avoidBuggyIPs": False,
    }
    peer = yaml.safe_load(
        examples_applied.kubectl("get", "-n", NAMESPACE, "bgppeer", "tor-v4", "-o", "yaml").stdout
    )
    assert peer["spec"]["peerPort"] == 179 and peer["spec"]["ebgpMultiHop"] is False
    advertisement = yaml.safe_load(
        examples_applied.kubectl(
            "get", "-n", NAMESPACE, "bgpadvertisement", "announce-production", "-o", "yaml"
        ).stdout
    )
    assert advertisement["spec"]["aggregationLength"] == 32


def _table(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def test_kubectl_get_ipaddresspools_shows_addresses_and_counts(examples_applied: ControlPlane) -> None:
    examples_applied.kubectl(
        "patch",
        "-n",
        NAMESPACE,
        "ipaddresspool",
        "addresspool-sample1",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"assignedIPv4": 1, "availableIPv4": 15, "assigned": 1, "available": "15"}}',
    )
    table = _table(examples_applied.kubectl("get", "-n", NAMESPACE, "ipaddresspools").stdout)
    assert table[0] == ["NAME", "ADDRESSES", "AUTO ASSIGN", "ASSIGNED", "AVAILABLE", "AGE"]
    rows = {row[0]: row for row in table[1:]}
    assert rows["addresspool-sample1"][1:5] == ['["203.0.113.1-203.0.113.16"]', "true", "1", "15"]
    assert rows["ipv6-on-request"][2] == "false"
    wide = _table(examples_applied.kubectl("get", "-n", NAMESPACE, "ipaddresspools", "-o", "wide").stdout)
    assert wide[0][-2:] == ["AVOID BUGGY IPS", "READY"]


def test_other_kinds_have_columns_short_names_and_the_ironlb_category(examples_applied: ControlPlane) -> None:
    peers = _table(examples_applied.kubectl("get", "-n", NAMESPACE, "bgpp").stdout)
    assert peers[0] == ["NAME", "ADDRESS", "PEER ASN", "MY ASN", "SESSIONS", "AGE"]
    advertisements = _table(examples_applied.kubectl("get", "-n", NAMESPACE, "l2adv").stdout)
    assert advertisements[0] == ["NAME", "IPADDRESSPOOLS", "IPADDRESSPOOL SELECTORS", "INTERFACES", "AGE"]
    everything = examples_applied.kubectl("get", "-n", NAMESPACE, "ironlb", "-o", "name").stdout.split()
    for name in (
        "ipaddresspool.ironlb.io/production",
        "l2advertisement.ironlb.io/addresspool-sample1",
        "bgpadvertisement.ironlb.io/announce-production",
        "bgppeer.ironlb.io/tor-v6",
    ):
        assert name in everything


def test_kubectl_explain_shows_the_model_docs(crds_installed: ControlPlane) -> None:
    explained = crds_installed.kubectl("explain", "ipaddresspools.spec.addresses").stdout
    assert "inclusive ranges" in explained


def test_status_is_a_subresource(examples_applied: ControlPlane) -> None:
    """A user's `kubectl apply` of the spec must never overwrite what the operator reports."""
    examples_applied.kubectl(
        "patch",
        "-n",
        NAMESPACE,
        "ipaddresspool",
        "production",
        "--type=merge",
        "-p",
        '{"status": {"assigned": 7}}',
    )
    pool = yaml.safe_load(
        examples_applied.kubectl("get", "-n", NAMESPACE, "ipaddresspool", "production", "-o", "yaml").stdout
    )
    assert "assigned" not in pool.get("status", {})


# --- the reversed-range CEL rule, cross-checked against Python's ipaddress on random pairs -------------


@pytest.fixture(scope="module")
def custom_objects(crds_installed: ControlPlane) -> Iterator[client.CustomObjectsApi]:
    api_client = config.new_client_from_config(config_file=str(crds_installed.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield client.CustomObjectsApi(api_client)
    finally:
        api_client.close()


@st.composite
def address_pairs(draw: Any) -> tuple[str, str, bool]:
    """Two addresses of one family sharing a prefix of random length, in compressed or exploded text."""
    version = draw(st.sampled_from([4, 6]))
    bits = 32 if version == 4 else 128
    start = draw(st.integers(0, 2**bits - 1))
    low_bits = draw(st.integers(0, bits))
    mask = (1 << low_bits) - 1
    end = (start & ~mask) | (draw(st.integers(0, 2**bits - 1)) & mask)
    first, last = (
        ipaddress.ip_address(start if version == 4 else start.to_bytes(16, "big")),
        ipaddress.ip_address(end if version == 4 else end.to_bytes(16, "big")),
    )
    if version == 6 and (first.ipv4_mapped or last.ipv4_mapped):  # type: ignore[union-attr]
        first = last = ipaddress.ip_address("2001:db8::1")
    exploded = draw(st.booleans())
    text = (lambda a: a.exploded) if exploded and version == 6 else str
    return text(first), text(last), start <= end or first == last


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=address_pairs())
def test_reversed_range_rule_agrees_with_python(
    custom_objects: client.CustomObjectsApi, pair: tuple[str, str, bool]
) -> None:
    first, last, ordered = pair
    body = {
        "apiVersion": "ironlb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "range-check"},
        "spec": {"addresses": [f"{first}-{last}"]},
    }
    try:
        custom_objects.create_namespaced_custom_object(
            "ironlb.io", "v1beta1", NAMESPACE, "ipaddresspools", body, dry_run="All"
        )
        accepted, message = True, ""
    except ApiException as error:
        assert error.status == 422, error.body
        accepted, message = False, str(error.body)
    assert accepted == ordered, f"{first}-{last}: accepted={accepted} but ordered={ordered}: {message}"
    if not accepted:
        assert "is reversed" in message
