"""The speaker contract rendered from CRDs (pure): node resolution, route attributes, stable small shards."""

from __future__ import annotations

from ironlb.api import BGPAdvertisementSpec, BGPPeerSpec, L2AdvertisementSpec
from ironlb.operator.allocator import Allocation, parse_address
from ironlb.operator.speakerconfig import EXCLUDE_LABEL, SHARDS, announcement, global_config, shard, shard_of

NODES = {
    "edge-1": {"role": "edge", "zone": "a"},
    "edge-2": {"role": "edge", "zone": "b"},
    "core-1": {"role": "core", "zone": "a"},
}


def test_selectors_resolve_to_node_names_and_communities_are_split() -> None:
    config = global_config(
        l2={
            "edge": L2AdvertisementSpec.model_validate(
                {"nodeSelectors": [{"matchLabels": {"role": "edge"}}], "interfaces": ["eth1"]}
            )
        },
        bgp={
            "tor": BGPAdvertisementSpec.model_validate(
                {"communities": ["64512:100", "large:64512:1:2"], "localPref": 150, "peers": ["tor-a"]}
            )
        },
        peers={
            "tor-a": BGPPeerSpec.model_validate(
                {
                    "myASN": 64512,
                    "peerASN": 64500,
                    "peerAddress": "198.51.100.254",
                    "nodeSelectors": [{"matchLabels": {"zone": "a"}}],
                }
            )
        },
        nodes=NODES,
        namespace="ironlb-system",
    )
    assert config.l2[0].nodes == ("edge-1", "edge-2") and config.l2[0].interfaces == ("eth1",)
    bgp = config.bgp[0]
    assert bgp.nodes == ("core-1", "edge-1", "edge-2")  # no selector: every node
    assert bgp.communities == ("64512:100",) and bgp.large_communities == ("64512:1:2",)
    assert (bgp.local_pref, bgp.peers, bgp.aggregation_length) == (150, ("tor-a",), 32)
    assert config.peers[0].nodes == ("core-1", "edge-1") and config.peers[0].session.peer_asn == 64500


def test_announcement_names_the_advertisements_that_select_the_pool() -> None:
    l2 = {
        "by-name": L2AdvertisementSpec.model_validate({"ipAddressPools": ["prod"]}),
        "by-label": L2AdvertisementSpec.model_validate(
            {"ipAddressPoolSelectors": [{"matchLabels": {"t": "x"}}]}
        ),
        "everything": L2AdvertisementSpec.model_validate({}),
        "other": L2AdvertisementSpec.model_validate({"ipAddressPools": ["staging"]}),
    }
    allocation = Allocation("prod", (parse_address("203.0.113.5"), parse_address("2001:db8::5")))
    result = announcement("shop/web", allocation, True, {"t": "x"}, l2, {})
    assert result.l2 == ("by-label", "by-name", "everything") and result.bgp == ()
    assert result.ips == ("203.0.113.5", "2001:db8::5") and result.local_traffic


def test_bgp_advertisements_select_pools_by_name_and_by_label() -> None:
    bgp = {
        "by-name": BGPAdvertisementSpec.model_validate({"ipAddressPools": ["prod"]}),
        "by-label": BGPAdvertisementSpec.model_validate(
            {"ipAddressPoolSelectors": [{"matchLabels": {"t": "x"}}]}
        ),
        "other-name": BGPAdvertisementSpec.model_validate({"ipAddressPools": ["staging"]}),
        "other-label": BGPAdvertisementSpec.model_validate(
            {"ipAddressPoolSelectors": [{"matchLabels": {"t": "y"}}]}
        ),
    }
    allocation = Allocation("prod", (parse_address("203.0.113.5"),))
    assert announcement("shop/web", allocation, False, {"t": "x"}, {}, bgp).bgp == ("by-label", "by-name")
    assert announcement("shop/web", allocation, False, {}, {}, bgp).bgp == ("by-name",)


def test_shards_are_stable_and_10000_services_stay_far_below_the_object_limit() -> None:
    assert shard_of("default/metallb-nginx-svc") == shard_of("default/metallb-nginx-svc")
    shards: dict[int, dict[str, object]] = {}
    for number in range(10_000):
        key = f"namespace-{number % 97}/service-with-a-long-name-{number:05d}"
        allocation = Allocation("production-pool", (parse_address(f"2001:db8:1000::{number:x}"),))
        shards.setdefault(shard_of(key), {})[key] = announcement(key, allocation, False, {}, {}, {})
    sizes = [len(shard(n, items).model_dump_json()) for n, items in shards.items()]  # type: ignore[arg-type]
    assert len(shards) == SHARDS
    assert max(sizes) < 100 * 1024, max(sizes)  # the API limit is 1 MiB


def test_nodes_excluded_from_external_load_balancers_announce_in_neither_mode() -> None:
    nodes = {**NODES, "edge-2": {**NODES["edge-2"], EXCLUDE_LABEL: ""}}  # presence alone excludes
    config = global_config(
        l2={"all": L2AdvertisementSpec.model_validate({})},
        bgp={"all": BGPAdvertisementSpec.model_validate({})},
        peers={
            "tor": BGPPeerSpec.model_validate(
                {"myASN": 64512, "peerASN": 64500, "peerAddress": "198.51.100.1"}
            )
        },
        nodes=nodes,
        namespace="ironlb-system",
    )
    assert config.l2[0].nodes == ("core-1", "edge-1")
    assert config.bgp[0].nodes == ("core-1", "edge-1")
    assert config.peers[0].nodes == ("core-1", "edge-1", "edge-2")  # the session stays; nothing is announced
