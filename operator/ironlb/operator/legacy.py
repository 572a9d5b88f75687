"""MetalLB's legacy ``config`` ConfigMap (v0.12 and earlier) read as IronLB specs (pure).

Clusters moving from old MetalLB releases carry a ConfigMap ``config`` whose key ``config`` is YAML with
``address-pools``, ``peers`` and ``bgp-communities``. The operator honours it (CRD objects of the same name
win) and ``ironlb migrate`` turns it into CRDs. Each pool becomes an IPAddressPool and, by protocol, an
L2Advertisement ``<pool>-l2`` or BGPAdvertisements ``<pool>-bgp-<n>`` selecting it by name; each peer becomes
a BGPPeer ``peer-<address>``. Anything unusable is reported with its path and value, never dropped quietly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from ironlb.api import (
    BFDProfileSpec,
    BGPAdvertisementSpec,
    BGPPeerSpec,
    IPAddressPoolSpec,
    L2AdvertisementSpec,
)

from .allocator import PoolConfig
from .crdrules import (
    Problem,
    is_community,
    is_object_name,
    join,
    normalize_addresses,
    peer_problems,
    selector_problems,
    validated,
)

CONFIGMAP_NAME = "config"
CONFIGMAP_KEY = "config"
EVENT_REASON = "LegacyConfigMap"

_TOP_KEYS = ("address-pools", "peers", "bgp-communities", "bfd-profiles")
_POOL_KEYS = {"addresses": "addresses", "auto-assign": "autoAssign", "avoid-buggy-ips": "avoidBuggyIPs"}
_ADVERTISEMENT_KEYS = {
    "aggregation-length": "aggregationLength",
    "aggregation-length-v6": "aggregationLengthV6",
    "localpref": "localPref",
    "communities": "communities",
}
_PEER_KEYS = {
    "my-asn": "myASN",
    "peer-asn": "peerASN",
    "peer-address": "peerAddress",
    "peer-port": "peerPort",
    "source-address": "sourceAddress",
    "router-id": "routerID",
    "hold-time": "holdTime",
    "keepalive-time": "keepaliveTime",
    "ebgp-multihop": "ebgpMultiHop",
    "node-selectors": "nodeSelectors",
    "bfd-profile": "bfdProfile",
}
_BFD_KEYS = {
    "receive-interval": "receiveInterval",
    "transmit-interval": "transmitInterval",
    "detect-multiplier": "detectMultiplier",
    "passive-mode": "passiveMode",
    "minimum-ttl": "minimumTtl",
}
# MetalLB's echo settings: IronLB's BFD has no echo mode, so a profile asking for it is used without it
_BFD_ECHO = {"echo-mode": False, "echo-interval": None}
_SELECTOR_KEYS = {"match-labels": "matchLabels", "match-expressions": "matchExpressions"}
_OPERATORS = {
    "in": "In",
    "notin": "NotIn",
    "exists": "Exists",
    "doesnotexist": "DoesNotExist",
    "!": "DoesNotExist",
}
_NOT_SUPPORTED: dict[str, str] = {}
_LEGACY_NAMES = {
    camel: legacy
    for table in (_POOL_KEYS, _ADVERTISEMENT_KEYS, _PEER_KEYS, _SELECTOR_KEYS, _BFD_KEYS)
    for legacy, camel in table.items()
}


class YamlLoader(yaml.SafeLoader):
    """YAML 1.1 without sexagesimal numbers: Go's parser reads ``64500:100`` as text, PyYAML as 3870100."""


def _int_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = loader.construct_scalar(node)
    if ":" in str(text):
        return text
    return loader.construct_yaml_int(node) if node.tag.endswith(":int") else loader.construct_yaml_float(node)


YamlLoader.add_constructor("tag:yaml.org,2002:int", _int_or_text)
YamlLoader.add_constructor("tag:yaml.org,2002:float", _int_or_text)


@dataclass(frozen=True)
class LegacyConfig:
    """What one legacy configuration describes, as IronLB specs keyed by the names they get."""

    pools: Mapping[str, IPAddressPoolSpec] = field(default_factory=dict)
    l2: Mapping[str, L2AdvertisementSpec] = field(default_factory=dict)
    bgp: Mapping[str, BGPAdvertisementSpec] = field(default_factory=dict)
    peers: Mapping[str, BGPPeerSpec] = field(default_factory=dict)
    passwords: Mapping[str, str] = field(default_factory=dict)  # peer name -> plaintext, not in its spec
    problems: tuple[Problem, ...] = ()
    readable: bool = True  # False: not YAML or not a mapping, so nothing in it can be trusted
    rejected_pools: frozenset[str] = frozenset()  # names of pool entries left out for their problems
    bfd_profiles: Mapping[str, BFDProfileSpec] = field(default_factory=dict)


def _legacy_name(key: str) -> str:
    return _LEGACY_NAMES.get(key, key)


def _renamed(
    raw: Mapping[str, Any], table: Mapping[str, str], where: str, problems: list[Problem]
) -> dict[str, Any]:
    """Legacy keys as the CRD's; every other key reported (a known-unsupported one with the reason)."""
    renamed = {}
    for key, value in raw.items():
        if key in table:
            renamed[table[key]] = value
        else:
            reason = _NOT_SUPPORTED.get(key, f"unknown key (known: {', '.join(table)})")
            problems.append(Problem(join(where, str(key)), reason))
    return renamed


def _mapping(value: Any, where: str, problems: list[Problem]) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    problems.append(Problem(where, f"{value!r} is not a mapping"))
    return None


def _sequence(value: Any, where: str, problems: list[Problem]) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    problems.append(Problem(where, f"{value!r} is not a list"))
    return []


def parse_legacy_config(text: str) -> LegacyConfig:
    """The ConfigMap's ``config`` text as IronLB specs, and problems with paths like ``peers[0].my-asn``."""
    problems: list[Problem] = []
    try:
        document = yaml.load(text, Loader=YamlLoader)  # a SafeLoader
    except yaml.YAMLError as error:  # PyYAML quotes the offending line, which may hold a peer's password
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return LegacyConfig(problems=(Problem(CONFIGMAP_KEY, f"not YAML{where}"),), readable=False)
    if document is None:
        return LegacyConfig()
    top = _mapping(document, CONFIGMAP_KEY, problems)
    if top is None:
        return LegacyConfig(problems=tuple(problems), readable=False)
    for key in top:
        if key not in _TOP_KEYS:
            reason = _NOT_SUPPORTED.get(key, f"unknown key (known: {', '.join(_TOP_KEYS)})")
            problems.append(Problem(str(key), reason))
    communities = _communities(top.get("bgp-communities"), problems)
    pools: dict[str, IPAddressPoolSpec] = {}
    l2: dict[str, L2AdvertisementSpec] = {}
    bgp: dict[str, BGPAdvertisementSpec] = {}
    named: set[str] = set()
    for index, raw in enumerate(_sequence(top.get("address-pools"), "address-pools", problems)):
        _pool(raw, f"address-pools[{index}]", communities, (pools, l2, bgp), problems)
        if isinstance(raw, dict) and is_object_name(raw.get("name")):
            named.add(raw["name"])
    profiles: dict[str, BFDProfileSpec] = {}
    for index, raw in enumerate(_sequence(top.get("bfd-profiles"), "bfd-profiles", problems)):
        _bfd_profile(raw, f"bfd-profiles[{index}]", profiles, problems)
    peers: dict[str, BGPPeerSpec] = {}
    passwords: dict[str, str] = {}
    for index, raw in enumerate(_sequence(top.get("peers"), "peers", problems)):
        _peer(raw, f"peers[{index}]", peers, passwords, problems)
        profile = raw.get("bfd-profile") if isinstance(raw, dict) else None
        if isinstance(profile, str) and profile and profile not in profiles:
            problems.append(
                Problem(
                    f"peers[{index}].bfd-profile",
                    f"{profile!r} is not among bfd-profiles: the peer's sessions stay closed until a BFD "
                    "profile of that name exists",
                )
            )
    rejected = frozenset(named - set(pools))
    return LegacyConfig(
        pools, l2, bgp, peers, passwords, tuple(problems), rejected_pools=rejected, bfd_profiles=profiles
    )


def _bfd_profile(raw: Any, where: str, profiles: dict[str, BFDProfileSpec], problems: list[Problem]) -> None:
    """One ``bfd-profiles`` entry, as a BFDProfile of its name; echo settings are reported and left out."""
    entry = _mapping(raw, where, problems)
    if entry is None:
        return
    entry = dict(entry)
    name = entry.pop("name", None)
    if not is_object_name(name):
        problems.append(Problem(join(where, "name"), f"{name!r} is not a valid object name"))
        return
    for key, unused in _BFD_ECHO.items():
        value = entry.pop(key, None)
        if value not in (unused, None):
            problems.append(
                Problem(
                    join(where, key),
                    f"{value!r}: echo mode is not implemented by IronLB; profile used without it",
                )
            )
    spec = validated(
        BFDProfileSpec, _renamed(entry, _BFD_KEYS, where, problems), where, problems, _legacy_name
    )
    if spec is None:
        return
    if name in profiles:
        problems.append(Problem(join(where, "name"), f"{name!r} is defined twice; the first one is used"))
        return
    profiles[str(name)] = spec


def _communities(raw: Any, problems: list[Problem]) -> dict[str, str]:
    if raw is None:
        return {}
    table = _mapping(raw, "bgp-communities", problems) or {}
    communities = {}
    for name, value in table.items():
        if isinstance(value, str) and is_community(value):
            communities[str(name)] = value
        else:
            problems.append(
                Problem(
                    join("bgp-communities", str(name)),
                    f"{value!r} is not a community (ASN:VALUE or large:GLOBAL:DATA1:DATA2)",
                )
            )
    return communities


_Specs = tuple[dict[str, IPAddressPoolSpec], dict[str, L2AdvertisementSpec], dict[str, BGPAdvertisementSpec]]


def _pool(
    raw: Any, where: str, communities: Mapping[str, str], specs: _Specs, problems: list[Problem]
) -> None:
    """One ``address-pools`` entry: the pool and its advertisements, or problems and nothing."""
    pools, l2, bgp = specs
    entry = _mapping(raw, where, problems)
    if entry is None:
        return
    entry = dict(entry)
    name, protocol = entry.pop("name", None), entry.pop("protocol", None)
    raw_advertisements = entry.pop("bgp-advertisements", None)
    ok = True
    if not is_object_name(name):
        problems.append(
            Problem(join(where, "name"), f"{name!r} is not a DNS subdomain name (lower case, at most 253)")
        )
        ok = False
    elif name in pools:
        problems.append(Problem(join(where, "name"), f"{name!r} names an earlier pool too"))
        ok = False
    if protocol not in ("layer2", "bgp"):
        problems.append(Problem(join(where, "protocol"), f"{protocol!r} is not layer2 or bgp"))
        ok = False
    if raw_advertisements is not None and protocol != "bgp":
        problems.append(
            Problem(join(where, "bgp-advertisements"), f"only valid with protocol bgp, not {protocol!r}")
        )
    data = _renamed(entry, _POOL_KEYS, where, problems)
    addresses = data.get("addresses")
    if isinstance(addresses, list):
        normalized = normalize_addresses(addresses, join(where, "addresses"), problems)
        ok = ok and normalized is not None
        data["addresses"] = addresses if normalized is None else normalized
    spec = validated(IPAddressPoolSpec, data, where, problems, _legacy_name)
    if spec is None or not ok:
        return
    assert isinstance(name, str)
    advertisements: dict[str, L2AdvertisementSpec | BGPAdvertisementSpec] = {}
    if protocol == "layer2":
        advertisements[f"{name}-l2"] = L2AdvertisementSpec.model_validate({"ipAddressPools": [name]})
    else:
        raws = _sequence(raw_advertisements, join(where, "bgp-advertisements"), problems) or [{}]
        for number, advertisement in enumerate(raws):
            here = join(where, "bgp-advertisements", number)
            made = _bgp_advertisement(advertisement, name, here, communities, problems)
            if made is not None:
                advertisements[f"{name}-bgp-{number + 1}"] = made
    pools[name] = spec
    for advertisement_name, advertisement_spec in advertisements.items():
        if not is_object_name(advertisement_name):
            problems.append(
                Problem(where, f"the advertisement name {advertisement_name!r} would be too long")
            )
        elif isinstance(advertisement_spec, L2AdvertisementSpec):
            l2[advertisement_name] = advertisement_spec
        else:
            bgp[advertisement_name] = advertisement_spec


def resolve_communities(
    values: list[Any], where: str, aliases: Mapping[str, str], problems: list[Problem]
) -> list[str] | None:
    """Community names resolved through ``aliases``, literals checked; None when any is bad."""
    resolved: list[str] = []
    bad = False
    for index, value in enumerate(values):
        community = aliases.get(value, value) if isinstance(value, str) else value
        if isinstance(community, str) and is_community(community):
            if community not in resolved:
                resolved.append(community)
        else:
            problems.append(
                Problem(join(where, index), f"{value!r} is neither a defined community name nor a community")
            )
            bad = True
    return None if bad else resolved


def _bgp_advertisement(
    raw: Any, pool: str, where: str, communities: Mapping[str, str], problems: list[Problem]
) -> BGPAdvertisementSpec | None:
    entry = _mapping(raw or {}, where, problems)
    if entry is None:
        return None
    data = _renamed(entry, _ADVERTISEMENT_KEYS, where, problems)
    if "communities" in data:
        values = _sequence(data["communities"], join(where, "communities"), problems)
        resolved = resolve_communities(values, join(where, "communities"), communities, problems)
        if resolved is None:
            return None
        data["communities"] = resolved or None
    return validated(BGPAdvertisementSpec, {**data, "ipAddressPools": [pool]}, where, problems, _legacy_name)


def _selectors(raw: Any, where: str, problems: list[Problem]) -> list[dict[str, Any]] | None:
    """``node-selectors`` with CRD keys (``matchLabels``…), operators spelled as Kubernetes spells them."""
    selectors = []
    for index, item in enumerate(_sequence(raw, where, problems)):
        here = join(where, index)
        selector = _mapping(item, here, problems)
        if selector is None:
            return None
        renamed = _renamed(selector, _SELECTOR_KEYS, here, problems)
        expressions = [
            _with_operator(expression)
            for expression in _sequence(
                renamed.get("matchExpressions"), join(here, "match-expressions"), problems
            )
        ]
        if expressions:
            renamed["matchExpressions"] = expressions
        selectors.append(renamed)
    return selectors


def _with_operator(expression: Any) -> Any:
    """MetalLB lower-cased operators before use, so ``in`` and ``In`` both worked."""
    if isinstance(expression, dict) and isinstance(expression.get("operator"), str):
        operator = expression["operator"]
        return {**expression, "operator": _OPERATORS.get(operator.lower(), operator)}
    return expression


def peer_name(address: str, taken: Mapping[str, object]) -> str:
    """``peer-<address>`` (dots and colons as dashes), with ``-2``, ``-3``… for a repeated address."""
    try:
        text = str(ipaddress.ip_address(address))
    except ValueError:
        text = address
    base = ("peer-" + "".join(c if c.isalnum() else "-" for c in text.lower())).rstrip("-")
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}-{number}"
    return name


def _peer(
    raw: Any, where: str, peers: dict[str, BGPPeerSpec], passwords: dict[str, str], problems: list[Problem]
) -> None:
    entry = _mapping(raw, where, problems)
    if entry is None:
        return
    entry = dict(entry)
    password = entry.pop("password", None)
    data = _renamed(entry, _PEER_KEYS, where, problems)
    if "nodeSelectors" in data:
        selectors = _selectors(data["nodeSelectors"], join(where, "node-selectors"), problems)
        if selectors is None:
            return
        data["nodeSelectors"] = selectors or None
    spec = validated(BGPPeerSpec, data, where, problems, _legacy_name)
    if spec is None:
        return
    rules = peer_problems(spec, where) + selector_problems(spec.node_selectors, join(where, "node-selectors"))
    if rules:
        problems.extend(Problem(_legacy_path(p.where), p.message) for p in rules)
        return
    name = peer_name(spec.peer_address, peers)
    peers[name] = spec
    if password not in (None, ""):
        passwords[name] = str(password)


def _legacy_path(path: str) -> str:
    """A CRD path (``peers[0].nodeSelectors[0].matchExpressions``) in the legacy spelling."""
    parts = []
    for part in path.split("."):
        key, bracket, rest = part.partition("[")
        parts.append(_legacy_name(key) + bracket + rest)
    return ".".join(parts)


# ------------------------------------------------------------------------------------------ the operator
@dataclass(frozen=True)
class LegacyObjects:
    """The legacy ConfigMap as the operator merges it: CRD objects of the same name win over these."""

    source: str = ""  # namespace/name of the ConfigMap
    created: str = ""  # its creationTimestamp: the pools' seniority in overlaps
    pools: Mapping[str, IPAddressPoolSpec] = field(default_factory=dict)
    advertisements: Mapping[tuple[str, str], L2AdvertisementSpec | BGPAdvertisementSpec] = field(
        default_factory=dict
    )  # keyed (kind, name) like Controller.advertisements
    peers: Mapping[str, BGPPeerSpec] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    readable: bool = True
    rejected_pools: frozenset[str] = frozenset()
    bfd_profiles: Mapping[str, BFDProfileSpec] = field(default_factory=dict)

    def pool_config(self, name: str) -> PoolConfig:
        """One pool as the allocator takes it (no labels: advertisements select it by name)."""
        return PoolConfig.from_spec(name, self.pools[name], {}, self.created)

    def pool_configs(self) -> dict[str, PoolConfig]:
        """The pools as the allocator takes them."""
        return {name: self.pool_config(name) for name in self.pools}

    def warning(self) -> str:
        """The Warning event on the ConfigMap: use the CRDs; and what was not understood."""
        counts = (
            f"{len(self.pools)} pools, {len(self.advertisements)} advertisements, {len(self.peers)} peers"
        )
        message = (
            f"MetalLB's legacy ConfigMap {self.source} is honoured ({counts}), but IronLB's CRDs are "
            "recommended: run `ironlb migrate -f` on it and apply the output"
        )
        if self.problems:
            message += "; not used: " + "; ".join(str(p) for p in self.problems)
        return message[:1024]


def legacy_objects(body: Mapping[str, Any]) -> LegacyObjects:
    """The operator's live reading. Plaintext passwords are used as a BGPPeer's inline ``password`` is:
    gathered into the speakers' Secret, never written into an event (the warning still recommends Secrets)."""
    metadata = body.get("metadata") or {}
    source = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
    text = (body.get("data") or {}).get(CONFIGMAP_KEY)
    if not isinstance(text, str):
        return LegacyObjects(source, problems=(Problem(f"data.{CONFIGMAP_KEY}", "missing"),), readable=False)
    config = parse_legacy_config(text)
    problems = list(config.problems)
    peers = {
        name: spec.model_copy(update={"password": config.passwords[name]})
        if name in config.passwords
        else spec
        for name, spec in config.peers.items()
    }
    advertisements: dict[tuple[str, str], L2AdvertisementSpec | BGPAdvertisementSpec] = {
        ("L2Advertisement", name): spec for name, spec in config.l2.items()
    }
    advertisements.update({("BGPAdvertisement", name): spec for name, spec in config.bgp.items()})
    return LegacyObjects(
        source,
        str(metadata.get("creationTimestamp", "")),
        dict(config.pools),
        advertisements,
        peers,
        tuple(problems),
        config.readable,
        config.rejected_pools,
        dict(config.bfd_profiles),
    )


def carried_over(previous: LegacyObjects, current: LegacyObjects) -> LegacyObjects:
    """What the operator applies after an edit: a broken edit must not take away what worked.

    The API server rejects a broken CRD edit and the old spec stays; a ConfigMap has no such guard, so
    the operator keeps the last reading when the new text cannot be read at all, and keeps the last good
    version of a pool (and its advertisements) whose entry is now rejected. Everything else is applied.
    """
    if not current.readable:
        kept = bool(previous.pools or previous.advertisements or previous.peers)
        note = Problem(CONFIGMAP_KEY, "unreadable; the last readable version stays in force")
        notes: tuple[Problem, ...] = (note,) if kept else ()
        return replace(previous, source=current.source, problems=current.problems + notes, readable=False)
    kept_pools = sorted(name for name in current.rejected_pools if name in previous.pools)
    if not kept_pools:
        return current
    pools = {**current.pools, **{name: previous.pools[name] for name in kept_pools}}
    advertisements = dict(current.advertisements)
    for key, spec in previous.advertisements.items():
        if set(spec.ip_address_pools or ()) & set(kept_pools) and key not in advertisements:
            advertisements[key] = spec
    notes = tuple(
        Problem(f"pool {name}", "its entry is rejected; its last good version stays in force")
        for name in kept_pools
    )
    return replace(current, pools=pools, advertisements=advertisements, problems=current.problems + notes)
