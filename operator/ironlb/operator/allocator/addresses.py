"""Pool address arithmetic on integers: no address is ever enumerated, so a /64 costs what a /30 costs.

A pool's ``addresses`` become ``Segment``s. With ``avoidBuggyIPs`` an IPv4 segment is addressed through a
compressed index that leaves out every .0 and .255 (each /24 block keeps its 254 addresses .1-.254), so
finding, counting and skipping those addresses is arithmetic rather than a search.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

Family = Literal[4, 6]
Address = tuple[Family, int]  # (family, integer value): hashable, ordered, cheap


def parse_address(text: str) -> Address:
    parsed = ipaddress.ip_address(text.strip())
    return (4 if parsed.version == 4 else 6), int(parsed)


def format_address(address: Address) -> str:
    family, value = address
    return str(ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value))


def _usable_below(value: int) -> int:
    """How many addresses below ``value`` do not end in .0 or .255 (IPv4)."""
    return value - ((value + 255) // 256 + value // 256)


@dataclass(frozen=True)
class Segment:
    """An inclusive range of one family, indexed 0..size-1 (skipping .0/.255 when ``avoid_buggy``)."""

    family: Family
    first: int
    last: int
    avoid_buggy: bool = False

    @property
    def compressed(self) -> bool:
        return self.avoid_buggy and self.family == 4

    @property
    def _base(self) -> int:
        return _usable_below(self.first) if self.compressed else self.first

    @property
    def size(self) -> int:
        if not self.compressed:
            return self.last - self.first + 1
        return _usable_below(self.last + 1) - _usable_below(self.first)

    def contains(self, address: Address) -> bool:
        family, value = address
        return family == self.family and self.first <= value <= self.last

    def is_usable(self, address: Address) -> bool:
        """In the segment and, when avoiding buggy IPs, not a .0 or .255 address."""
        return self.contains(address) and not (self.compressed and address[1] % 256 in (0, 255))

    def index_of(self, address: Address) -> int:
        """Position of a usable address in the segment."""
        value = address[1]
        return (_usable_below(value) if self.compressed else value) - self._base

    def address_at(self, index: int) -> Address:
        if not self.compressed:
            return self.family, self.first + index
        position = self._base + index
        block, offset = divmod(position, 254)
        return self.family, block * 256 + 1 + offset

    def overlaps(self, other: Segment) -> bool:
        return self.family == other.family and self.first <= other.last and other.first <= self.last

    def describe(self) -> str:
        first, last = format_address((self.family, self.first)), format_address((self.family, self.last))
        return first if first == last else f"{first}-{last}"


def parse_segment(entry: str, avoid_buggy: bool = False) -> Segment:
    """One ``addresses`` entry (CIDR or ``start-end``) as a segment; the CRD already checked its syntax."""
    if "/" in entry:
        network = ipaddress.ip_network(entry.strip(), strict=False)
        family: Family = 4 if network.version == 4 else 6
        return Segment(family, int(network.network_address), int(network.broadcast_address), avoid_buggy)
    start_text, end_text = entry.split("-", 1)
    (family, start), (end_family, end) = parse_address(start_text), parse_address(end_text)
    if family != end_family or start > end:
        raise ValueError(f"invalid range {entry!r}")
    return Segment(family, start, end, avoid_buggy)


def format_count(count: int) -> str:
    """Exact, short: 4094, 2^64, 2^64+10 (for pools too large to print digit by digit)."""
    if count < 10**12:
        return str(count)
    power = count.bit_length() - 1
    rest = count - (1 << power)
    return f"2^{power}" if rest == 0 else f"2^{power}+{rest}" if rest < 10**6 else f"~2^{power}"
