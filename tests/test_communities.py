"""Community aliases (MetalLB's ``Community`` kind), the operator's side (pure, no API server): aliases
resolved into the speakers' configuration, and a BGPAdvertisement naming an alias nobody defines held back
(not announced) with a Warning and its Ready condition until a Community defines it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from ironlb.api import BGPAdvertisementSpec, CommunitySpec
from ironlb.api.advertisements import ALIAS_PATTERN
from ironlb.api.events import ObjectRef
from ironlb.api.kube import KubeClient
from ironlb.operator.controller import Controller
from ironlb.operator.speakerconfig import apply_aliases, community_aliases, global_config

NS = "ironlb-system"


def _body(kind: str, name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1}
    return {"apiVersion": "ironlb.io/v1beta1", "kind": kind, "metadata": metadata, "spec": spec}


def _aliases(**objects: list[dict[str, str]]) -> dict[str, str]:
    return community_aliases(
        {name: CommunitySpec.model_validate({"communities": v}) for name, v in objects.items()}
    )


def test_aliases_resolve_literals_stay_and_the_first_object_by_name_wins() -> None:
    aliases = _aliases(
        b=[{"name": "vpn-only", "value": "64512:2"}],
        a=[{"name": "vpn-only", "value": "64512:1"}, {"name": "BIG", "value": "large:64512:1:2"}],
    )
    assert aliases == {"vpn-only": "64512:1", "BIG": "large:64512:1:2"}
    assert apply_aliases(["vpn-only", "no-export", "64512:1", "BIG", "typo"], aliases) == (
        ("64512:1", "no-export", "large:64512:1:2"),
        ("typo",),
    )


def test_an_advertisement_with_an_unknown_alias_is_left_out_of_the_speakers_configuration() -> None:
    bgp = {
        "tagged": BGPAdvertisementSpec.model_validate({"communities": ["vpn-only", "large:1:2:3"]}),
        "typo": BGPAdvertisementSpec.model_validate({"communities": ["vpn-onyl"]}),
    }
    config = global_config({}, bgp, {}, {"node1": {}}, NS, aliases={"vpn-only": "64512:200"})
    assert [(a.name, a.communities, a.large_communities) for a in config.bgp] == [
        ("tagged", ("64512:200",), ("1:2:3",))
    ]


def test_the_alias_pattern_is_the_one_the_advertisement_rule_accepts() -> None:
    crd = BGPAdvertisementSpec.model_json_schema(by_alias=True)["properties"]["communities"]
    rule = next(iter(crd["anyOf"][0]["items"]["x-kubernetes-validations"]))["rule"]
    assert f"self.matches('{ALIAS_PATTERN}')" in rule


def test_an_unknown_alias_is_a_warning_and_not_ready_until_a_community_defines_it() -> None:
    events: list[tuple[str, str, str, str]] = []
    patches: list[tuple[str, dict[str, Any]]] = []

    def post(obj: ObjectRef, kind: str, reason: str, message: str) -> None:
        events.append((obj.key, kind, reason, message))

    class Kube:
        def merge_patch(self, path: str, body: dict[str, Any]) -> None:
            patches.append((path, body))

    controller = Controller(cast(KubeClient, Kube()), NS, post)
    advertisement = _body("BGPAdvertisement", "tagged", {"communities": ["vpn-only"]})
    controller.advertisements.on_advertisement(advertisement, deleted=False)
    published = controller.state.publisher._global
    assert published is not None and published.bgp == ()
    asyncio.run(controller.advertisements.flush_statuses())
    ready = patches[-1][1]["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "CommunityNotFound")
    assert "vpn-only" in ready["message"]
    assert events == [(f"BGPAdvertisement:{NS}/tagged", "Warning", "CommunityNotFound", ready["message"])]

    community = _body("Community", "aliases", {"communities": [{"name": "vpn-only", "value": "64512:200"}]})
    assert not controller.communities.set_community(
        {**community, "metadata": {"name": "x", "namespace": "other"}}, False
    )
    assert controller.communities.set_community(community, deleted=False)
    published = controller.state.publisher._global
    assert published is not None and [a.communities for a in published.bgp] == [("64512:200",)]
    advertisement["status"] = patches[-1][1]["status"]
    controller.state.advertisement_bodies[("BGPAdvertisement", "tagged")] = advertisement
    asyncio.run(controller.advertisements.flush_statuses())
    ready = patches[-1][1]["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("True", "Announcing")
    assert not controller.communities.set_community(community, deleted=False), "a resync changes nothing"
    assert controller.communities.set_community(community, deleted=True)
    published = controller.state.publisher._global
    assert published is not None and published.bgp == (), "its alias gone, the advertisement is held back"
