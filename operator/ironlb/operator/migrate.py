"""MetalLB to IronLB: the legacy ConfigMap and ``metallb.io`` CRs as ``ironlb.io/v1beta1`` manifests (pure).

Field names are MetalLB's, so most of a migration is a rename; the rest is what IronLB lacks (BFD echo mode,
VRFs, unnumbered peers), which is reported naming the object and the field instead of being dropped quietly.
Every spec is built through IronLB's models and checked against the CRDs' CEL rules (``crdrules``), so what
is printed is what the API server accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml
from ironlb.api import (
    API_VERSION,
    BFDProfileSpec,
    BGPAdvertisementSpec,
    BGPPeerSpec,
    CommunitySpec,
    IPAddressPoolSpec,
    L2AdvertisementSpec,
    SecretReference,
)
from pydantic import BaseModel

from .crdrules import (
    Problem,
    bfd_profile_problems,
    community_problems,
    interface_problems,
    is_object_name,
    normalize_addresses,
    peer_problems,
    selector_problems,
    validated,
)
from .legacy import CONFIGMAP_KEY, YamlLoader, parse_legacy_config, resolve_communities

DEFAULT_NAMESPACE = "ironlb-system"
METALLB_GROUP = "metallb.io"
Manifest = dict[str, Any]

_MODELS: dict[str, type[BaseModel]] = {
    "IPAddressPool": IPAddressPoolSpec,
    "L2Advertisement": L2AdvertisementSpec,
    "BGPAdvertisement": BGPAdvertisementSpec,
    "BGPPeer": BGPPeerSpec,
    "BFDProfile": BFDProfileSpec,
    "Community": CommunitySpec,
}
_SELECTORS = ("ipAddressPoolSelectors", "nodeSelectors")
_PEER_V1BETA1 = (
    "myASN",
    "peerASN",
    "peerAddress",
    "sourceAddress",
    "peerPort",
    "holdTime",
    "keepaliveTime",
    "routerID",
    "nodeSelectors",
    "password",
    "ebgpMultiHop",
    "bfdProfile",
)
_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("IPAddressPool", "v1beta1"): frozenset(
        ("addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation")
    ),
    ("L2Advertisement", "v1beta1"): frozenset(("ipAddressPools", *_SELECTORS, "interfaces")),
    ("BGPAdvertisement", "v1beta1"): frozenset(
        (
            "ipAddressPools",
            *_SELECTORS,
            "aggregationLength",
            "aggregationLengthV6",
            "localPref",
            "communities",
            "peers",
        )
    ),
    ("BGPPeer", "v1beta1"): frozenset(_PEER_V1BETA1),
    ("BGPPeer", "v1beta2"): frozenset(
        (*_PEER_V1BETA1, "dynamicASN", "passwordSecret", "enableGracefulRestart")
    ),
    ("BFDProfile", "v1beta1"): frozenset(
        ("receiveInterval", "transmitInterval", "detectMultiplier", "passiveMode", "minimumTtl")
    ),
    ("Community", "v1beta1"): frozenset(("communities",)),
}
_NO_ECHO = "echo mode is not implemented by IronLB"
# MetalLB fields IronLB lacks, per kind: (value that means "not used", whether the object is converted, why)
_LACKING: dict[str, dict[str, tuple[object, bool, str]]] = {}
_LACKING["BFDProfile"] = {
    "echoMode": (False, True, f"{_NO_ECHO}; converted without echo mode"),
    "echoInterval": (None, True, f"{_NO_ECHO}; field dropped"),
}
_LACKING["BGPPeer"] = {
    "vrf": ("", False, "VRFs are not supported by IronLB; the peer is not converted"),
    "interface": (
        "",
        False,
        "unnumbered BGP (interface) is not supported by IronLB; the peer is not converted",
    ),
    "disableMP": (False, True, "IronLB always negotiates each family on its own session; field dropped"),
    "connectTime": (
        None,
        True,
        "exabgp, which opens IronLB's sessions, retries after 1 s, then longer up to 60 s; field dropped",
    ),
    "dualStackAddressFamily": (False, True, "IronLB announces only the peer's family; field dropped"),
}
_STATUS_KINDS = frozenset(("ServiceL2Status", "ServiceBGPStatus", "BGPSessionState", "ConfigurationState"))
_ORDER = (
    "Secret",
    "IPAddressPool",
    "L2Advertisement",
    "Community",
    "BGPAdvertisement",
    "BFDProfile",
    "BGPPeer",
)


class Migration(NamedTuple):
    manifests: list[Manifest]
    problems: list[Problem]


def load_documents(text: str) -> list[Any]:
    """Every YAML document of ``text`` (``64500:100`` stays text, as in Go); raises yaml.YAMLError."""
    return list(yaml.load_all(text, Loader=YamlLoader))  # a SafeLoader


def flatten(documents: Iterable[Any]) -> list[Any]:
    """Documents with every ``List`` (``kind: List``, ``ConfigMapList``…) replaced by its items."""
    flat: list[Any] = []
    for document in documents:
        if isinstance(document, dict) and str(document.get("kind", "")).endswith("List"):
            flat.extend(flatten(document.get("items") or []))
        elif document is not None:
            flat.append(document)
    return flat


@dataclass
class _Output:
    namespace: str
    objects: dict[str, dict[str, tuple[BaseModel, dict[str, str], str]]] = field(default_factory=dict)
    secrets: dict[str, Manifest] = field(default_factory=dict)

    def add(
        self,
        kind: str,
        name: str,
        spec: BaseModel,
        labels: Mapping[str, str],
        origin: str,
        problems: list[Problem],
    ) -> None:
        """One object; a second object of the same kind and name is reported and left out."""
        earlier = self.objects.setdefault(kind, {}).get(name)
        if earlier is not None:
            problems.append(
                Problem(f"{kind} {name}", f"defined by {earlier[2]} and {origin}; kept the first")
            )
            return
        self.objects[kind][name] = (spec, dict(labels), origin)

    def secret(self, name: str, password: str | None = None, source: Manifest | None = None) -> None:
        """A basic-auth Secret holding a BGP password, in the target namespace."""
        body: Manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.namespace},
            "type": "kubernetes.io/basic-auth",
        }
        if source is not None:
            body["type"] = source.get("type", body["type"])
            for key in ("data", "stringData"):
                if key in source:
                    body[key] = source[key]
        else:
            body["stringData"] = {"password": password}
        self.secrets[name] = body

    def manifests(self) -> list[Manifest]:
        result = list(self.secrets.values())
        for kind in _ORDER[1:]:
            for name, (spec, labels, _) in self.objects.get(kind, {}).items():
                metadata: dict[str, Any] = {"name": name, "namespace": self.namespace}
                if labels:
                    metadata["labels"] = labels
                result.append(
                    {
                        "apiVersion": API_VERSION,
                        "kind": kind,
                        "metadata": metadata,
                        "spec": spec.model_dump(by_alias=True, exclude_defaults=True, mode="json"),
                    }
                )
        return result


def migrate(documents: Iterable[Any], namespace: str = DEFAULT_NAMESPACE) -> Migration:
    """IronLB manifests for the MetalLB objects among ``documents``, and what could not be converted."""
    flat = flatten(documents)
    out, problems = _Output(namespace), list[Problem]()
    aliases = _community_aliases(flat, problems)
    secrets = {
        (str(d["metadata"].get("namespace", "")), str(d["metadata"].get("name", ""))): d
        for d in flat
        if isinstance(d, dict) and d.get("kind") == "Secret" and isinstance(d.get("metadata"), dict)
    }
    used_secrets: set[tuple[str, str]] = set()
    for document in flat:
        if not isinstance(document, dict):
            problems.append(Problem("document", f"{document!r} is not a Kubernetes object"))
            continue
        group, _, version = str(document.get("apiVersion", "")).rpartition("/")
        kind = str(document.get("kind", ""))
        metadata = document["metadata"] if isinstance(document.get("metadata"), dict) else {}
        where = f"{kind} {metadata.get('namespace', '')}/{metadata.get('name', '')}".replace(" /", " ")
        if kind == "ConfigMap" and document.get("apiVersion") == "v1":
            _from_configmap(document, where, out, problems)
        elif kind == "Secret" and document.get("apiVersion") == "v1":
            continue  # copied when a BGPPeer refers to it
        elif group != METALLB_GROUP:
            problems.append(Problem(where, f"not a MetalLB object ({document.get('apiVersion')}); skipped"))
        elif kind in _STATUS_KINDS:
            continue  # statuses are not configuration
        elif (kind, version) not in _FIELDS:
            problems.append(Problem(where, f"{group}/{version} {kind} is not converted by ironlb migrate"))
        else:
            _from_resource(document, kind, version, aliases, out, problems, (secrets, used_secrets))
    for key in sorted(set(secrets) - used_secrets):
        problems.append(Problem(f"Secret {key[0]}/{key[1]}", "no BGPPeer refers to it; skipped"))
    problems += _missing_bfd_profiles(flat, out)
    if not flat:
        problems.append(Problem("input", "no objects found"))
    return Migration(out.manifests(), problems)


def _community_aliases(documents: list[Any], problems: list[Problem]) -> dict[str, str]:
    """The names MetalLB's ``Community`` objects give to communities, usable in BGPAdvertisements."""
    aliases: dict[str, str] = {}
    for document in documents:
        if not (isinstance(document, dict) and document.get("kind") == "Community"):
            continue
        name = (document.get("metadata") or {}).get("name", "")
        for index, entry in enumerate((document.get("spec") or {}).get("communities") or []):
            alias, value = (
                (entry.get("name"), entry.get("value")) if isinstance(entry, dict) else (None, None)
            )
            where = f"Community {name} spec.communities[{index}]"
            if not isinstance(alias, str) or not isinstance(value, str):
                problems.append(Problem(where, f"{entry!r} needs a name and a value"))
            elif aliases.get(alias, value) != value:
                problems.append(Problem(where, f"{alias!r} is also defined as {aliases[alias]!r}"))
            else:
                aliases[alias] = value
    return aliases


def _from_configmap(document: Manifest, where: str, out: _Output, problems: list[Problem]) -> None:
    text = (document.get("data") or {}).get(CONFIGMAP_KEY)
    if not isinstance(text, str):
        problems.append(Problem(where, f"has no data.{CONFIGMAP_KEY}: not MetalLB's configuration"))
        return
    config = parse_legacy_config(text)
    problems.extend(problem.under(where) for problem in config.problems)
    for kind, specs in (
        ("IPAddressPool", config.pools),
        ("L2Advertisement", config.l2),
        ("BGPAdvertisement", config.bgp),
    ):
        for name, spec in specs.items():
            out.add(kind, name, spec, {}, where, problems)
    for name, profile in config.bfd_profiles.items():
        out.add("BFDProfile", name, profile, {}, where, problems)
    for name, peer in config.peers.items():
        password = config.passwords.get(name)
        if password is not None:
            secret = f"{name}-password"
            out.secret(secret, password)
            peer = peer.model_copy(update={"password_secret": SecretReference(name=secret)})
        out.add("BGPPeer", name, peer, {}, where, problems)


_Secrets = Mapping[tuple[str, str], Manifest]  # (namespace, name) -> the Secrets in the input


def _from_resource(
    document: Manifest,
    kind: str,
    version: str,
    aliases: Mapping[str, str],
    out: _Output,
    problems: list[Problem],
    secrets: tuple[_Secrets, set[tuple[str, str]]],
) -> None:
    """One metallb.io object: its supported fields through the model and the CEL checks, the rest reported."""
    metadata = document.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not is_object_name(name):
        problems.append(Problem(f"{kind} {name!r}", "metadata.name is not a valid object name"))
        return
    where = f"{kind} {name}"
    raw = document.get("spec") or {}
    if not isinstance(raw, dict):
        problems.append(Problem(f"{where} spec", f"{raw!r} is not a mapping"))
        return
    data, convertible = {}, True
    for key, value in raw.items():
        if key in _FIELDS[(kind, version)]:
            data[key] = value
        elif key in _LACKING.get(kind, {}):
            unused, keep, reason = _LACKING[kind][key]
            if value not in (unused, None):
                problems.append(Problem(f"{where} spec.{key}", f"{value!r}: {reason}"))
                convertible = convertible and keep
        else:
            problems.append(
                Problem(f"{where} spec.{key}", f"not a field of {METALLB_GROUP}/{version} {kind}")
            )
    if kind == "IPAddressPool" and isinstance(data.get("addresses"), list):
        normalized = normalize_addresses(data["addresses"], f"{where} spec.addresses", problems)
        convertible = convertible and normalized is not None
        data["addresses"] = normalized or data["addresses"]
    if kind == "BGPAdvertisement" and isinstance(data.get("communities"), list):
        resolved = resolve_communities(data["communities"], f"{where} spec.communities", aliases, problems)
        convertible = convertible and resolved is not None
        data["communities"] = resolved or None
    secret: _PendingSecret | None = None
    if kind == "BGPPeer":
        data, secret = _peer_password(name, data, where, out.namespace, problems, secrets[0])
    spec = validated(_MODELS[kind], data, f"{where} spec", problems)
    if spec is None or not convertible:
        return
    rules = _rule_problems(spec, f"{where} spec")
    if rules:
        problems.extend(rules)
        return
    labels: dict[str, str] = metadata["labels"] if isinstance(metadata.get("labels"), dict) else {}
    out.add(kind, name, spec, labels, f"{METALLB_GROUP}/{version} {kind} {name}", problems)
    if secret is not None:
        out.secret(secret.name, secret.password, secret.source)
        if secret.key is not None:
            secrets[1].add(secret.key)


@dataclass(frozen=True)
class _PendingSecret:
    """The Secret a converted BGPPeer needs: from a plaintext password, or a copy of one in the input."""

    name: str
    password: str | None = None
    source: Manifest | None = None
    key: tuple[str, str] | None = None


def _peer_password(
    name: str,
    data: dict[str, Any],
    where: str,
    namespace: str,
    problems: list[Problem],
    secrets: _Secrets,
) -> tuple[dict[str, Any], _PendingSecret | None]:
    """A plaintext password becomes a Secret; a referenced Secret is copied when given, else reported."""
    data = dict(data)
    password, reference = data.pop("password", None), data.pop("passwordSecret", None)
    if password not in (None, ""):
        data["passwordSecret"] = {"name": f"{name}-password"}
        return data, _PendingSecret(f"{name}-password", password=str(password))
    if not (isinstance(reference, dict) and isinstance(reference.get("name"), str)):
        if reference is not None:
            data["passwordSecret"] = reference  # pydantic reports what is wrong with it
        return data, None
    wanted_namespace, wanted = reference.get("namespace") or "", reference["name"]
    data["passwordSecret"] = {"name": wanted}
    for key, body in secrets.items():
        if key[1] == wanted and wanted_namespace in ("", key[0]):
            return data, _PendingSecret(wanted, source=body, key=key)
    problems.append(
        Problem(
            f"{where} spec.passwordSecret",
            f"Secret {wanted_namespace or '(its namespace)'}/{wanted} was not in the input: copy it to"
            f" namespace {namespace} (IronLB reads BGP passwords only there)",
        )
    )
    return data, None


def _missing_bfd_profiles(documents: list[Any], out: _Output) -> list[Problem]:
    """BGPPeers naming a BFDProfile the input does not hold: converted, but closed until it exists."""
    given = {
        (d.get("metadata") or {}).get("name")
        for d in documents
        if isinstance(d, dict) and d.get("kind") == "BFDProfile"
    } | set(out.objects.get("BFDProfile", {}))  # the legacy ConfigMap's bfd-profiles too
    return [
        Problem(
            f"BGPPeer {name} spec.bfdProfile",
            f"BFDProfile {spec.bfd_profile!r} was not in the input: convert it too (until it exists in"
            f" namespace {out.namespace}, the peer's sessions stay closed)",
        )
        for name, (spec, _, _) in out.objects.get("BGPPeer", {}).items()
        if isinstance(spec, BGPPeerSpec) and spec.bfd_profile and spec.bfd_profile not in given
    ]


def _rule_problems(spec: BaseModel, where: str) -> list[Problem]:
    if isinstance(spec, CommunitySpec):
        return community_problems(spec, where)
    if isinstance(spec, BFDProfileSpec):
        return bfd_profile_problems(spec, where)
    if isinstance(spec, BGPPeerSpec):
        return peer_problems(spec, where) + selector_problems(spec.node_selectors, f"{where}.nodeSelectors")
    if isinstance(spec, IPAddressPoolSpec):
        allocation = spec.service_allocation
        if allocation is None:
            return []
        return selector_problems(
            allocation.namespace_selectors, f"{where}.serviceAllocation.namespaceSelectors"
        ) + selector_problems(allocation.service_selectors, f"{where}.serviceAllocation.serviceSelectors")
    assert isinstance(spec, L2AdvertisementSpec | BGPAdvertisementSpec)
    found = selector_problems(spec.node_selectors, f"{where}.nodeSelectors") + selector_problems(
        spec.ip_address_pool_selectors, f"{where}.ipAddressPoolSelectors"
    )
    if isinstance(spec, L2AdvertisementSpec):
        found += interface_problems(spec.interfaces, f"{where}.interfaces")
    return found
