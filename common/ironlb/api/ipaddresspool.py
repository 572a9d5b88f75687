"""IPAddressPool: the addresses IronLB may hand to LoadBalancer Services (MetalLB's field names)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .celexpr import is_range, ordered_range, range_end, range_start
from .common import (
    DNS_LABEL_PATTERN,
    NAME_LIST_MAX,
    SELECTOR_LIST_MAX,
    ApiModel,
    LabelSelector,
    StatusBase,
    cel,
    list_set,
    validations,
)

_START, _END = range_start("self"), range_end("self")
_SAME_FAMILY = f"ip({_START}).family() == ip({_END}).family()"

ADDRESS_RULES = (
    cel(
        f"isCIDR(self) || {is_range('self')}",
        "'must be a CIDR such as 198.51.100.0/24 or a range such as 198.51.100.10-198.51.100.20"
        " (IPv4 or IPv6), got \"' + self + '\"'",
    ),
    cel(
        "!isCIDR(self) || cidr(self).masked() == cidr(self)",
        "'\"' + self + '\" has bits set after its prefix length: write the network address"
        " (for example 198.51.100.0/24, not 198.51.100.5/24)'",
    ),
    cel(
        f"!{is_range('self')} || {_SAME_FAMILY}",
        "'range \"' + self + '\" mixes IPv4 and IPv6; both ends must be of one family'",
    ),
    cel(
        f"!({is_range('self')} && {_SAME_FAMILY}) || {ordered_range('self')}",
        "'range \"' + self + '\" is reversed: its start is after its end'",
    ),
)

AddressRange = Annotated[
    str, Field(min_length=1, max_length=81, json_schema_extra=validations(*ADDRESS_RULES))
]
NamespaceName = Annotated[str, Field(max_length=63, pattern=DNS_LABEL_PATTERN)]


class ServiceAllocation(ApiModel):
    """Which Services may take addresses from the pool, and in which order pools are tried."""

    priority: int | None = Field(
        default=None,
        ge=0,
        le=2_147_483_647,
        description="Order among the pools a Service matches: lower numbers are tried first; pools without "
        "a priority (or 0) come last.",
    )
    namespaces: list[NamespaceName] | None = Field(
        default=None,
        max_length=NAME_LIST_MAX,
        json_schema_extra=list_set(),
        description="Namespaces whose Services may use the pool.",
    )
    namespace_selectors: list[LabelSelector] | None = Field(
        default=None,
        max_length=SELECTOR_LIST_MAX,
        description="Labels of namespaces whose Services may use the pool.",
    )
    service_selectors: list[LabelSelector] | None = Field(
        default=None,
        max_length=SELECTOR_LIST_MAX,
        description="Labels of Services that may use the pool.",
    )


class IPAddressPoolSpec(ApiModel):
    """The addresses of the pool and how they are handed out."""

    addresses: list[AddressRange] = Field(
        min_length=1,
        max_length=32,
        json_schema_extra=list_set(),
        description="Up to 32 CIDRs (198.51.100.0/24, 2001:db8::/120) or inclusive ranges "
        "(198.51.100.10-198.51.100.20) the pool hands out, IPv4 and IPv6 alike.",
    )
    auto_assign: bool = Field(
        default=True,
        description="Whether Services that do not ask for this pool or one of its IPs may get an address.",
    )
    avoid_buggy_ips: bool = Field(
        default=False,
        alias="avoidBuggyIPs",
        description="Skip IPv4 addresses ending in .0 and .255, which some old clients mishandle.",
    )
    service_allocation: ServiceAllocation | None = Field(
        default=None, description="Restricts the pool to some Services and orders it among pools."
    )


class IPAddressPoolStatus(StatusBase):
    """Allocation counts and health, written by the operator (conditions: Ready, Overlapping, Exhausted).

    Counts are exact for IPv4. An IPv6 pool can hold more than 2^63 addresses, so ``availableIPv6``
    saturates at 2^63-1; the ``available`` string is always exact (a power of two is written ``2^N``).
    """

    assigned_ipv4: int = Field(default=0, ge=0, alias="assignedIPv4", description="IPv4 addresses in use.")
    assigned_ipv6: int = Field(default=0, ge=0, alias="assignedIPv6", description="IPv6 addresses in use.")
    available_ipv4: int = Field(
        default=0, ge=0, alias="availableIPv4", description="IPv4 addresses still free."
    )
    available_ipv6: int = Field(
        default=0,
        ge=0,
        alias="availableIPv6",
        description="IPv6 addresses still free, saturated at 2^63-1.",
    )
    assigned: int = Field(default=0, ge=0, description="Addresses in use, both families.")
    available: str = Field(
        default="", max_length=64, description="Addresses still free, both families, exact."
    )
