"""Whether an IP lies in its pool's addresses (pure): a speaker announces nothing outside the pools.

The operator publishes each pool's addresses (CIDRs and ranges, as the IPAddressPool says them) in the
global configuration. A speaker checks every IP it is asked to announce against its pool and refuses the
rest, so no mistake or forgery upstream can put an address on the wire that no pool holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Span = tuple[int, int, int]  # (IP version, first, last) as integers


def spans(addresses: Iterable[str]) -> tuple[Span, ...]:
    """The spans of a pool's address entries; an entry that does not parse holds nothing."""
    parsed: list[Span] = []
    for entry in addresses:
        text = entry.replace(" ", "")
        try:
            if "-" in text:
                first, last = (ipaddress.ip_address(part) for part in text.split("-", 1))
                if first.version == last.version:
                    parsed.append((first.version, int(first), int(last)))
            else:
                network = ipaddress.ip_network(text, strict=False)
                parsed.append((network.version, int(network.network_address), int(network.broadcast_address)))
        except ValueError:
            continue
    return tuple(parsed)


@dataclass(frozen=True)
class PoolAddresses:
    """Each pool's spans; ``None`` pools: a configuration written before pools were published."""

    pools: Mapping[str, tuple[Span, ...]] | None

    @classmethod
    def of(cls, pools: Mapping[str, Iterable[str]] | None) -> PoolAddresses:
        return cls(None if pools is None else {name: spans(entries) for name, entries in pools.items()})

    def holds(self, pool: str, ip: str) -> bool:
        if self.pools is None:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        value = int(address)
        return any(
            version == address.version and first <= value <= last
            for version, first, last in self.pools.get(pool, ())
        )
