"""MetalLB's legacy ``config`` ConfigMap read as IronLB specs (pure, fast)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ironlb.api import BGPAdvertisementSpec, L2AdvertisementSpec
from ironlb.operator.allocator.addresses import parse_segment
from ironlb.operator.crdrules import is_community, is_object_name, normalize_address
from ironlb.operator.legacy import (
    EVENT_REASON,
    legacy_objects,
    parse_legacy_config,
    peer_name,
)

SEED = """\
address-pools:
- name: addresspool-sample1
  protocol: layer2
  addresses:
  - 172.18.1.1-172.18.1.16
"""

BGP = """\
bgp-communities:
  no-advertise: 65535:65282
peers:
- peer-address: 198.51.100.1
  peer-asn: 64501
  my-asn: 64500
  peer-port: 1179
  hold-time: 30s
  router-id: 198.51.100.10
  source-address: 198.51.100.20
  password: s3cret
  node-selectors:
  - match-labels: {rack: a}
    match-expressions:
    - {key: kubernetes.io/hostname, operator: notin, values: [node-maintenance]}
    - {key: bgp, operator: exists}
- peer-address: 2001:db8:ff::1
  peer-asn: 64500
  my-asn: 64500
- peer-address: 198.51.100.1
  peer-asn: 64502
  my-asn: 64500
  peer-port: 2179
address-pools:
- name: pool-bgp
  protocol: bgp
  auto-assign: false
  avoid-buggy-ips: true
  addresses: [203.0.113.5/24, " 2001:db8:1::10 - 2001:db8:1::20 "]
  bgp-advertisements:
  - aggregation-length: 32
    localpref: 100
    communities: [no-advertise, 64500:7, no-advertise]
  - aggregation-length: 24
    aggregation-length-v6: 120
- name: pool-default
  protocol: bgp
  addresses: [192.0.2.0/28]
"""


def test_the_seed_configmap_is_a_pool_and_an_l2_advertisement_selecting_it() -> None:
    config = parse_legacy_config(SEED)
    assert config.problems == ()
    assert list(config.pools) == ["addresspool-sample1"]
    pool = config.pools["addresspool-sample1"]
    assert pool.addresses == ["172.18.1.1-172.18.1.16"]
    assert pool.auto_assign and not pool.avoid_buggy_ips
    assert config.l2 == {
        "addresspool-sample1-l2": L2AdvertisementSpec(ip_address_pools=["addresspool-sample1"])
    }
    assert config.bgp == {} and config.peers == {}


def test_bgp_pools_get_one_advertisement_each_and_communities_are_resolved() -> None:
    config = parse_legacy_config(BGP)
    assert config.problems == ()
    pool = config.pools["pool-bgp"]
    # host bits cleared and spaces dropped, as MetalLB's Go parser read them
    assert pool.addresses == ["203.0.113.0/24", "2001:db8:1::10-2001:db8:1::20"]
    assert (pool.auto_assign, pool.avoid_buggy_ips) == (False, True)
    assert list(config.bgp) == ["pool-bgp-bgp-1", "pool-bgp-bgp-2", "pool-default-bgp-1"]
    first, second, default = config.bgp.values()
    assert first.ip_address_pools == ["pool-bgp"]
    assert first.communities == ["65535:65282", "64500:7"]  # a name resolved, a literal kept, no duplicate
    assert first.local_pref == 100
    assert (second.aggregation_length, second.aggregation_length_v6) == (24, 120)
    assert default == BGPAdvertisementSpec(ip_address_pools=["pool-default"])  # MetalLB's default: /32, /128
    assert config.l2 == {}


def test_peers_are_named_by_address_and_their_passwords_kept_apart() -> None:
    config = parse_legacy_config(BGP)
    assert list(config.peers) == ["peer-198-51-100-1", "peer-2001-db8-ff--1", "peer-198-51-100-1-2"]
    peer = config.peers["peer-198-51-100-1"]
    assert (peer.my_asn, peer.peer_asn, peer.peer_port, peer.hold_time) == (64500, 64501, 1179, "30s")
    assert (peer.router_id, peer.source_address) == ("198.51.100.10", "198.51.100.20")
    assert peer.password is None and peer.password_secret is None
    assert config.passwords == {"peer-198-51-100-1": "s3cret"}
    assert peer.node_selectors is not None
    selector = peer.node_selectors[0]
    assert selector.match_labels == {"rack": "a"}
    assert [(e.operator, e.values) for e in selector.match_expressions or []] == [
        ("NotIn", ["node-maintenance"]),
        ("Exists", None),
    ]


BAD_CASES = [
    (
        "address-pools: [{name: p, protocol: ospf, addresses: [192.0.2.0/28]}]",
        "address-pools[0].protocol: 'ospf' is not layer2 or bgp",
    ),
    (
        "address-pools: [{name: p, protocol: layer2, addresses: [192.0.2.9-192.0.2.1]}]",
        "address-pools[0].addresses[0]: range '192.0.2.9-192.0.2.1' is reversed: its start is after its end",
    ),
    (
        "address-pools: [{name: p, protocol: layer2, addresses: [192.0.2.1-2001:db8::1]}]",
        "address-pools[0].addresses[0]: range '192.0.2.1-2001:db8::1' mixes IPv4 and IPv6",
    ),
    (
        "address-pools: [{name: p, protocol: layer2, addresses: [192.0.2.300/24]}]",
        "address-pools[0].addresses[0]: '192.0.2.300/24' is not a CIDR such as 198.51.100.0/24",
    ),
    (
        "address-pools: [{name: p, protocol: layer2, addresses: [192.0.2.0/28], auto-asign: false}]",
        "address-pools[0].auto-asign: unknown key (known: addresses, auto-assign, avoid-buggy-ips)",
    ),
    (
        "address-pools: [{name: Big_Pool, protocol: layer2, addresses: [192.0.2.0/28]}]",
        "address-pools[0].name: 'Big_Pool' is not a DNS subdomain name (lower case, at most 253)",
    ),
    (
        "address-pools: [{name: p, protocol: layer2, addresses: [192.0.2.0/28], bgp-advertisements: [{}]}]",
        "address-pools[0].bgp-advertisements: only valid with protocol bgp, not 'layer2'",
    ),
    (
        "address-pools: [{name: p, protocol: bgp, addresses: [192.0.2.0/28],"
        " bgp-advertisements: [{communities: [nope]}]}]",
        "address-pools[0].bgp-advertisements[0].communities[0]: 'nope' is neither a defined community name "
        "nor a community",
    ),
    (
        "address-pools: [{name: p, protocol: bgp, addresses: [192.0.2.0/28],"
        " bgp-advertisements: [{aggregation-length: 33}]}]",
        "address-pools[0].bgp-advertisements[0].aggregation-length: 33 is invalid "
        "(Input should be less than or equal to 32)",
    ),
    ("bgp-communities: {bad: 70000:1}", "bgp-communities.bad: '70000:1' is not a community"),
    ("peers: [{peer-address: 198.51.100.1, peer-asn: 0, my-asn: 1}]", "peers[0].peer-asn: 0 is invalid"),
    ("peers: [{peer-address: 198.51.100.1, peer-asn: 2}]", "peers[0].my-asn: required"),
    (
        "peers: [{peer-address: 198.51.100.1, peer-asn: 2, my-asn: 1, hold-time: 2s}]",
        "peers[0].hold-time: '2s' is neither 0s nor whole seconds between 3s and 65535s",
    ),
    (
        "peers: [{peer-address: 198.51.100.1, peer-asn: 2, my-asn: 1, source-address: 2001:db8::1}]",
        "peers[0].source-address: '2001:db8::1' and peerAddress '198.51.100.1' are of different families",
    ),
    (
        "peers: [{peer-address: router, peer-asn: 2, my-asn: 1}]",
        "peers[0].peer-address: 'router' is not an IPv4 or IPv6 address",
    ),
    (
        "peers: [{peer-address: 198.51.100.1, peer-asn: 2, my-asn: 1,"
        " node-selectors: [{match-expressions: [{key: a, operator: In}]}]}]",
        "peers[0].node-selectors[0].match-expressions[0].values: values must be non-empty for operator In",
    ),
    ("bfd-profiles: [{name: fast, detect-multiplier: 1}]", "bfd-profiles[0].detect-multiplier: 1 is invalid"),
    ("bfd-profiles: [{name: fast, echo-mode: true}]", "bfd-profiles[0].echo-mode: True: echo mode is not"),
    ("bfd-profiles: [{name: Fast}]", "bfd-profiles[0].name: 'Fast' is not a valid object name"),
    (
        "address-pool: []",
        "address-pool: unknown key (known: address-pools, peers, bgp-communities, bfd-profiles)",
    ),
    ("[1, 2]", "config: [1, 2] is not a mapping"),
    ("peers: [{", "config: not YAML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CASES, ids=[e.split(":")[0] for _, e in BAD_CASES])
def test_problems_name_the_field_path_and_the_value(text: str, expected: str) -> None:
    config = parse_legacy_config(text)
    messages = [str(problem) for problem in config.problems]
    assert any(message.startswith(expected) for message in messages), messages


def test_a_bad_pool_is_left_out_with_its_advertisements_and_the_rest_is_kept() -> None:
    config = parse_legacy_config(
        "address-pools:\n"
        "- {name: bad, protocol: layer2, addresses: [192.0.2.9-192.0.2.1]}\n"
        "- {name: good, protocol: layer2, addresses: [192.0.2.16/28]}\n"
        "- {name: good, protocol: layer2, addresses: [192.0.2.32/28]}\n"
    )
    assert list(config.pools) == ["good"] and list(config.l2) == ["good-l2"]
    assert config.pools["good"].addresses == ["192.0.2.16/28"]  # the first of two pools named alike
    assert len(config.problems) == 2
    assert str(config.problems[1]) == "address-pools[2].name: 'good' names an earlier pool too"


def test_a_peer_with_an_unsupported_key_is_kept_and_the_key_reported() -> None:
    config = parse_legacy_config("peers: [{peer-address: 198.51.100.1, peer-asn: 2, my-asn: 1, vrf: red}]")
    assert list(config.peers) == ["peer-198-51-100-1"]
    assert [str(p).split(" (")[0] for p in config.problems] == ["peers[0].vrf: unknown key"]


def test_bfd_profiles_become_profiles_the_peers_name() -> None:
    """MetalLB's FRR-mode ConfigMap: bfd-profiles (echo settings reported, the profile kept without them)
    and peers' bfd-profile, as BFDProfile objects and bfdProfile would say."""
    config = parse_legacy_config(
        "bfd-profiles:\n"
        "- {name: fast, receive-interval: 100, transmit-interval: 120, detect-multiplier: 5,"
        " passive-mode: true, minimum-ttl: 10, echo-mode: true, echo-interval: 50}\n"
        "- {name: plain}\n"
        "peers:\n"
        "- {peer-address: 198.51.100.1, peer-asn: 2, my-asn: 1, bfd-profile: fast}\n"
        "- {peer-address: 198.51.100.2, peer-asn: 2, my-asn: 1, bfd-profile: nowhere}\n"
    )
    fast = config.bfd_profiles["fast"]
    assert (fast.receive_interval, fast.transmit_interval, fast.detect_multiplier) == (100, 120, 5)
    assert fast.passive_mode and fast.minimum_ttl == 10 and not fast.echo_mode and fast.echo_interval is None
    assert config.bfd_profiles["plain"].receive_interval == 300  # MetalLB's defaults are IronLB's
    assert config.peers["peer-198-51-100-1"].bfd_profile == "fast"
    assert [str(p) for p in config.problems] == [
        "bfd-profiles[0].echo-mode: True: echo mode is not implemented by IronLB; profile used without it",
        "bfd-profiles[0].echo-interval: 50: echo mode is not implemented by IronLB; profile used without it",
        "peers[1].bfd-profile: 'nowhere' is not among bfd-profiles: the peer's sessions stay closed until a"
        " BFD profile of that name exists",
    ]


def test_communities_written_without_quotes_stay_text_not_base_60_numbers() -> None:
    config = parse_legacy_config(
        "address-pools: [{name: p, protocol: bgp, addresses: [192.0.2.0/28],"
        " bgp-advertisements: [{communities: [1:2, 64500:100]}]}]"
    )
    assert config.problems == ()
    assert config.bgp["p-bgp-1"].communities == ["1:2", "64500:100"]


def test_an_empty_config_is_empty_and_fine() -> None:
    config = parse_legacy_config("")
    assert (config.pools, config.peers, config.problems) == ({}, {}, ())


# ----------------------------------------------------------------------------------- the operator's view
def _configmap(text: str, namespace: str = "metallb-system") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": namespace, "creationTimestamp": "2024-01-02T03:04:05Z"},
        "data": {"config": text},
    }


def test_legacy_objects_are_keyed_like_the_controller_and_keep_passwords_out_of_the_warning() -> None:
    objects = legacy_objects(_configmap(BGP + SEED.split("\n", 1)[1]))  # the seed's pool appended
    assert objects.source == "metallb-system/config"
    assert set(objects.pools) == {"addresspool-sample1", "pool-bgp", "pool-default"}
    assert ("L2Advertisement", "addresspool-sample1-l2") in objects.advertisements
    assert ("BGPAdvertisement", "pool-bgp-bgp-2") in objects.advertisements
    passwords = {name: peer.password for name, peer in objects.peers.items() if peer.password is not None}
    assert passwords == {"peer-198-51-100-1": "s3cret"}  # gathered for the speakers as an inline password
    assert objects.problems == ()
    configs = objects.pool_configs()
    assert configs["addresspool-sample1"].seniority == ("2024-01-02T03:04:05Z", "addresspool-sample1")
    assert configs["pool-bgp"].segments[0].avoid_buggy and not configs["pool-bgp"].auto_assign
    warning = objects.warning()
    assert EVENT_REASON == "LegacyConfigMap"
    assert "3 pools" in warning and "ironlb migrate" in warning and "s3cret" not in warning


def test_a_configmap_without_the_config_key_is_a_problem() -> None:
    body = _configmap(SEED)
    body["data"] = {"other": "x"}
    objects = legacy_objects(body)
    assert objects.pools == {} and [str(p) for p in objects.problems] == ["data.config: missing"]


# ------------------------------------------------------------------------------------------ properties
@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_a_cidr_is_read_as_go_reads_it_host_bits_cleared(value: int, prefix: int) -> None:
    address = ipaddress.IPv4Address(value)
    normalized = normalize_address(f"{address}/{prefix}")
    assert normalized == str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    assert ipaddress.ip_network(normalized, strict=True).prefixlen == prefix


@given(st.integers(0, 2**128 - 1), st.integers(0, 2**128 - 1))
def test_a_range_is_accepted_exactly_when_ordered_and_means_what_the_allocator_reads(a: int, b: int) -> None:
    start, end = ipaddress.IPv6Address(a), ipaddress.IPv6Address(b)
    if a <= b:
        segment = parse_segment(normalize_address(f" {start} - {end} "))
        assert (segment.first, segment.last) == (a, b)
    else:
        with pytest.raises(ValueError, match="reversed"):
            normalize_address(f"{start}-{end}")


@given(st.lists(st.ip_addresses(), min_size=1, max_size=8))
def test_peer_names_are_valid_object_names_unique_and_deterministic(addresses: list[object]) -> None:
    taken: dict[str, object] = {}
    for address in addresses:
        name = peer_name(str(address), taken)
        assert is_object_name(name) and name not in taken
        assert name == peer_name(str(address), taken)
        taken[name] = address


@given(st.integers(0, 70000), st.integers(0, 70000))
def test_standard_communities_are_two_16_bit_numbers(asn: int, value: int) -> None:
    assert is_community(f"{asn}:{value}") == (asn <= 65535 and value <= 65535)


def test_unreadable_yaml_is_reported_by_position_without_quoting_the_text() -> None:
    """PyYAML's own message quotes the offending line; a peer's password must not reach the event."""
    text = 'peers:\n- peer-address: 192.0.2.1\n  password: "s3cret-never-shown\n  peer-asn: 64500\n'
    problems = parse_legacy_config(text).problems
    assert len(problems) == 1
    message = str(problems[0])
    assert "not YAML (line" in message
    assert "s3cret" not in message
