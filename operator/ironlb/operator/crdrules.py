"""The CRDs' CEL rules, checked in Python for specs that never pass through the API server (pure).

The legacy ConfigMap is read by the operator directly, and ``ironlb migrate`` should print only objects the
API server will accept; pydantic checks types and bounds, these functions check what the CEL rules check
and normalise what MetalLB normalised (CIDRs with host bits, spaces in ranges).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ironlb.api import BFDProfileSpec, BGPPeerSpec, CommunitySpec, LabelSelector
from ironlb.api.advertisements import WELL_KNOWN_COMMUNITIES
from ironlb.api.common import DNS_SUBDOMAIN_PATTERN, UINT32_MAX
from ironlb.api.durations import duration_seconds
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """Something that could not be read or converted: where (object and field path) and why."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def under(self, prefix: str) -> Problem:
        """The same problem, placed inside an object (``ConfigMap metallb-system/config``)."""
        return Problem(f"{prefix} {self.where}" if self.where else prefix, self.message)


def join(path: str, *parts: str | int) -> str:
    """``a.b[0].c`` from a path and keys or indexes."""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else part)
    return path


def is_object_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 253 and re.match(DNS_SUBDOMAIN_PATTERN, name) is not None


# ------------------------------------------------------------------------------------------------ pydantic
def validated(
    model: type[Model],
    data: Mapping[str, Any],
    where: str,
    problems: list[Problem],
    rename: Callable[[str], str] = lambda key: key,
) -> Model | None:
    """The model, or None with one problem per pydantic error, its path spelled by ``rename``."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        for detail in error.errors():
            loc = [rename(part) if isinstance(part, str) else part for part in detail["loc"]]
            path = join(where, *loc)
            if detail["type"] == "missing":
                problems.append(Problem(path, "required"))
            else:
                problems.append(Problem(path, f"{detail['input']!r} is invalid ({detail['msg']})"))
        return None


# ----------------------------------------------------------------------------------------------- addresses
def normalize_address(entry: str) -> str:
    """One pool entry as MetalLB read it: a CIDR (host bits cleared, as Go's ParseCIDR does) or a range.

    Raises ValueError naming the value: not a CIDR or range, mixed families, reversed.
    """
    text = entry.strip()
    if "/" in text:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not a CIDR such as 198.51.100.0/24") from None
    start_text, _, end_text = text.partition("-")
    try:
        start, end = ipaddress.ip_address(start_text.strip()), ipaddress.ip_address(end_text.strip())
    except ValueError:
        raise ValueError(
            f"{entry!r} is neither a CIDR such as 198.51.100.0/24 nor a range such as "
            "198.51.100.10-198.51.100.20"
        ) from None
    if start.version != end.version:
        raise ValueError(f"range {entry!r} mixes IPv4 and IPv6")
    if int(start) > int(end):
        raise ValueError(f"range {entry!r} is reversed: its start is after its end")
    return f"{start}-{end}"


def normalize_addresses(entries: Sequence[Any], where: str, problems: list[Problem]) -> list[str] | None:
    """Every entry normalised and de-duplicated, or None when any entry is bad (each one reported)."""
    normalized: list[str] = []
    bad = False
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):  # pydantic reports it
            bad = True
            continue
        try:
            value = normalize_address(entry)
        except ValueError as error:
            problems.append(Problem(join(where, index), str(error)))
            bad = True
            continue
        if value not in normalized:
            normalized.append(value)
    return None if bad else normalized


# --------------------------------------------------------------------------------------------- communities
_STANDARD = re.compile(r"^([0-9]{1,5}):([0-9]{1,5})$")
_LARGE = re.compile(r"^large:([0-9]{1,10}):([0-9]{1,10}):([0-9]{1,10})$")


def is_community(text: str) -> bool:
    """ASN:VALUE (each 0-65535), large:GLOBAL:DATA1:DATA2 (each 0-4294967295) or a well-known name."""
    if text in WELL_KNOWN_COMMUNITIES:
        return True
    if match := _STANDARD.match(text):
        return all(int(part) <= 65535 for part in match.groups())
    if match := _LARGE.match(text):
        return all(int(part) <= UINT32_MAX for part in match.groups())
    return False


def community_problems(spec: CommunitySpec, where: str) -> list[Problem]:
    """The Community CRD's CEL rules: an alias may not take a well-known name; its value is a community."""
    problems = []
    for index, alias in enumerate(spec.communities or ()):
        if alias.name in WELL_KNOWN_COMMUNITIES:
            problems.append(
                Problem(
                    join(where, "communities", index, "name"),
                    f"{alias.name!r} is a well-known community already",
                )
            )
        if not is_community(alias.value):
            problems.append(
                Problem(join(where, "communities", index, "value"), f"{alias.value!r} is not a community")
            )
    return problems


# ----------------------------------------------------------------------------------------------- selectors
def selector_problems(selectors: Iterable[LabelSelector] | None, where: str) -> list[Problem]:
    """Values are required for In/NotIn and forbidden for Exists/DoesNotExist (the CRD's rule)."""
    problems = []
    for index, selector in enumerate(selectors or ()):
        for number, requirement in enumerate(selector.match_expressions or ()):
            has_values = bool(requirement.values)
            if has_values != (requirement.operator in ("In", "NotIn")):
                problems.append(
                    Problem(
                        join(where, index, "matchExpressions", number, "values"),
                        f"values must be non-empty for operator In/NotIn and empty for Exists/DoesNotExist;"
                        f" operator is {requirement.operator}",
                    )
                )
    return problems


def interface_problems(interfaces: Iterable[str] | None, where: str) -> list[Problem]:
    return [
        Problem(join(where, index), f"{name!r} is not a network interface name")
        for index, name in enumerate(interfaces or ())
        if len(name) > 15 or re.search(r"[/\s:]", name) or name in (".", "..")
    ]


# ------------------------------------------------------------------------------------------------- peers
def _seconds(text: str | None) -> float | None:
    return None if text is None else duration_seconds(text)


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return None if text is None else ipaddress.ip_address(text)
    except ValueError:
        return None


def peer_problems(spec: BGPPeerSpec, where: str) -> list[Problem]:
    """The BGPPeer CRD's CEL rules; paths use the CRD's field names."""
    problems = []

    def fail(field: str, message: str) -> None:
        problems.append(Problem(join(where, field), message))

    if (spec.peer_asn is None) == (spec.dynamic_asn is None):
        fail("peerASN", "one of peerASN and dynamicASN is required, not both")
    if spec.password is not None and spec.password_secret is not None:
        fail("password", "set only one of password and passwordSecret")
    peer = _ip(spec.peer_address)
    if peer is None:
        fail("peerAddress", f"{spec.peer_address!r} is not an IPv4 or IPv6 address")
    if spec.source_address is not None:
        source = _ip(spec.source_address)
        if source is None:
            fail("sourceAddress", f"{spec.source_address!r} is not an IPv4 or IPv6 address")
        elif peer is not None and source.version != peer.version:
            fail(
                "sourceAddress",
                f"{spec.source_address!r} and peerAddress {spec.peer_address!r} are of different families",
            )
    if spec.router_id is not None and not isinstance(_ip(spec.router_id), ipaddress.IPv4Address):
        fail("routerID", f"{spec.router_id!r} is not a dotted IPv4 address")
    hold, keepalive = _seconds(spec.hold_time), _seconds(spec.keepalive_time)
    if hold is not None and (hold != int(hold) or (hold != 0 and not 3 <= hold <= 65535)):
        fail("holdTime", f"{spec.hold_time!r} is neither 0s nor whole seconds between 3s and 65535s")
    every = int(90 if hold is None else hold) // 3  # exabgp's keepalive interval
    if keepalive is not None and keepalive != every:
        fail(
            "keepaliveTime",
            f"{spec.keepalive_time!r} cannot be honoured: exabgp sends keepalives every third of holdTime"
            f" ({every}s here)",
        )
    if spec.connect_time is not None:
        fail("connectTime", f"{spec.connect_time!r} cannot be honoured: exabgp retries after 1s, up to 60s")
    if spec.password_secret is not None and spec.password_secret.namespace is not None:
        fail(
            "passwordSecret.namespace",
            f"{spec.password_secret.namespace!r} is refused: the Secret must be in the BGPPeer's namespace",
        )
    if spec.vrf:
        fail("vrf", f"{spec.vrf!r} is refused: exabgp cannot bind a session to a VRF")
    if spec.interface:
        fail("interface", f"{spec.interface!r} is refused: unnumbered BGP sessions are not supported")
    if spec.disable_mp is False:
        fail("disableMP", "false is refused: IronLB announces each family only over sessions of that family")
    if spec.dual_stack_address_family:
        fail("dualStackAddressFamily", "true is refused: IronLB announces each family only over its sessions")
    internal = spec.peer_asn == spec.my_asn if spec.peer_asn is not None else spec.dynamic_asn == "internal"
    if spec.ebgp_multi_hop and internal:
        fail("ebgpMultiHop", "applies to eBGP sessions only, but this session is iBGP")
    return problems


# ----------------------------------------------------------------------------------------------- BFD
def bfd_profile_problems(spec: BFDProfileSpec, where: str) -> list[Problem]:
    """The BFDProfile CRD's CEL rules: echo mode is not implemented, so neither echo field is accepted."""
    problems = []
    if spec.echo_mode:
        problems.append(Problem(join(where, "echoMode"), "true is refused: echo mode is not implemented"))
    if spec.echo_interval is not None:
        problems.append(
            Problem(
                join(where, "echoInterval"), f"{spec.echo_interval} is refused: echo mode is not implemented"
            )
        )
    return problems
