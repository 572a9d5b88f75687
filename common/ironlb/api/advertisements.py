"""L2Advertisement and BGPAdvertisement: which pools are announced, how, and from which nodes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .common import (
    DNS_SUBDOMAIN_PATTERN,
    NAME_LIST_MAX,
    SELECTOR_LIST_MAX,
    UINT32_MAX,
    ApiModel,
    LabelSelector,
    StatusBase,
    cel,
    list_set,
    validations,
)

ObjectName = Annotated[str, Field(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
InterfaceName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,  # a backstop for the cost estimate; the rule enforces Linux's 15 with the value shown
        json_schema_extra=validations(
            cel(
                "size(self) <= 15 && self.matches('^[^/\\\\s:]+$') && self != '.' && self != '..'",
                "'\"' + self + '\" is not a network interface name (at most 15 characters,"
                ' no "/", ":" or spaces)\'',
            )
        ),
    ),
]

WELL_KNOWN_COMMUNITIES = (
    "no-export",
    "no-advertise",
    "no-export-subconfed",
    "no-peer",
    "blackhole",
    "graceful-shutdown",
    "accept-own",
    "llgr-stale",
    "no-llgr",
)


def _uint_fields_at_most(expr: str, indexes: range, limit: int) -> str:
    return " && ".join(f"int({expr}.split(':')[{i}]) <= {limit}" for i in indexes)


_STANDARD = (
    f"(self.matches('^[0-9]{{1,5}}:[0-9]{{1,5}}$') && {_uint_fields_at_most('self', range(2), 65535)})"
)
_LARGE = (
    f"(self.matches('^large:[0-9]{{1,10}}:[0-9]{{1,10}}:[0-9]{{1,10}}$')"
    f" && {_uint_fields_at_most('self', range(1, 4), UINT32_MAX)})"
)
IS_WELL_KNOWN = "self in [" + ", ".join(f"'{name}'" for name in WELL_KNOWN_COMMUNITIES) + "]"  # CEL
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]*$"  # a Community alias's name

Community = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        json_schema_extra=validations(
            cel(
                f"{_STANDARD} || {_LARGE} || {IS_WELL_KNOWN}",
                "'\"' + self + '\" is not a community: use ASN:VALUE (each 0-65535), "
                "large:GLOBAL:DATA1:DATA2 (each 0-4294967295) or a well-known name such as no-export'",
            )
        ),
    ),
]


CommunityOrAlias = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        json_schema_extra=validations(
            cel(
                f"{_STANDARD} || {_LARGE} || {IS_WELL_KNOWN} || self.matches('{ALIAS_PATTERN}')",
                "'\"' + self + '\" is neither a community nor an alias: use ASN:VALUE (each 0-65535), "
                "large:GLOBAL:DATA1:DATA2 (each 0-4294967295), a well-known name such as no-export, or the "
                "name of an alias in a Community object (a letter, then letters, digits, _ . -)'",
            )
        ),
    ),
]


class _PoolSelection(ApiModel):
    ip_address_pools: list[ObjectName] | None = Field(
        default=None,
        alias="ipAddressPools",
        max_length=NAME_LIST_MAX,
        json_schema_extra=list_set(),
        description="Names of the IPAddressPools announced. With no pools and no pool selectors, every pool.",
    )
    ip_address_pool_selectors: list[LabelSelector] | None = Field(
        default=None,
        alias="ipAddressPoolSelectors",
        max_length=SELECTOR_LIST_MAX,
        description="Labels of the IPAddressPools announced.",
    )
    node_selectors: list[LabelSelector] | None = Field(
        default=None,
        max_length=SELECTOR_LIST_MAX,
        description="Labels of the nodes that may announce. With none, every node.",
    )


class L2AdvertisementSpec(_PoolSelection):
    """Announce the selected pools' addresses with ARP (IPv4) and NDP (IPv6) from one node at a time."""

    interfaces: list[InterfaceName] | None = Field(
        default=None,
        max_length=NAME_LIST_MAX,
        json_schema_extra=list_set(),
        description="Interfaces to answer ARP/NDP on. With none, every interface of the node.",
    )


class BGPAdvertisementSpec(_PoolSelection):
    """Announce the selected pools' addresses to BGP peers from every eligible node."""

    aggregation_length: int | None = Field(
        default=32,
        ge=1,
        le=32,
        description="Prefix length of the IPv4 routes announced: 32 announces each address, shorter "
        "lengths aggregate.",
    )
    aggregation_length_v6: int | None = Field(
        default=128,
        ge=1,
        le=128,
        alias="aggregationLengthV6",
        description="Prefix length of the IPv6 routes announced.",
    )
    local_pref: int | None = Field(
        default=None, ge=0, le=UINT32_MAX, description="BGP LOCAL_PREF of the routes (iBGP sessions only)."
    )
    communities: list[CommunityOrAlias] | None = Field(
        default=None,
        max_length=64,
        json_schema_extra=list_set(),
        description="BGP communities attached to the routes: ASN:VALUE, large:GLOBAL:DATA1:DATA2, a "
        "well-known name, or an alias defined by a Community object.",
    )
    peers: list[ObjectName] | None = Field(
        default=None,
        max_length=NAME_LIST_MAX,
        json_schema_extra=list_set(),
        description="Names of the BGPPeers to announce to. With none, every peer.",
    )


class AdvertisementStatus(StatusBase):
    """What the operator found applying the advertisement (conditions: Ready; a referenced pool missing)."""
