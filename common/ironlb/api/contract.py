"""The typed contract between the operator and the speakers: what one node must announce and to whom.

The operator renders it from the CRDs (``ironlb.operator.speakerconfig``); speakers only read it. Secrets
are references, never values: a speaker resolves a BGP password itself, right before writing exabgp's
configuration file (mode 0600), so the password never travels in the contract, logs or events.

**Versions.** During a rolling upgrade the operator and the speakers run different versions. Readers
ignore fields they do not know (an added field never stops an older speaker), and every published object
carries ``contract_version`` (what the writer speaks) and ``min_contract_version`` (the oldest reader that
may act on it): a change an older speaker would get wrong if it ignored the new field raises
``min_contract_version``, and such a speaker keeps its last good configuration and says so, rather than
announcing something wrong. Additive changes keep ``min_contract_version`` as it is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# 1: the first contract (no version fields); 2: version fields, unknown fields ignored; 3: pools; 4: BFD.
# A speaker older than 4 ignores a session's BFD and opens it without (as before BFD existed): additive.
CONTRACT_VERSION = 4
MIN_CONTRACT_VERSION = 1  # the oldest speaker that reads what this version writes correctly


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Versioned(Frozen):
    contract_version: int = Field(default=1, description="The contract version of the writer.")
    min_contract_version: int = Field(default=1, description="The oldest reader that may act on it.")

    def readable(self) -> bool:
        """Whether this speaker's contract version may act on the object."""
        return self.min_contract_version <= CONTRACT_VERSION


# The one Secret the speakers may read: the operator gathers every BGPPeer's password into it, keyed by the
# peer's name (operator/passwords.py)
PASSWORDS_SECRET = "ironlb-speaker-bgp-passwords"
# on every published ConfigMap: when the operator wrote it (Unix seconds); speakers export the newest one
# they act on, so an admin sees a speaker running an older configuration than the operator's
PUBLISHED_AT_ANNOTATION = "ironlb.io/published-at"
# the speaker container's CPU limit in millicores (downward API), for pacing its background work
CPU_LIMIT_ENV = "IRONLB_CPU_LIMIT_MILLICORES"


class SecretRef(Frozen):
    namespace: str
    name: str
    key: str = "password"


class BfdSettings(Frozen):
    """A BFDProfile, resolved by the operator into each session that names it (milliseconds, as the CRD;
    the names of the speaker's ``bfd.session.BfdProfile``, which takes them as they are)."""

    receive_interval: int = 300
    transmit_interval: int = 300
    detect_multiplier: int = 3
    passive: bool = False
    minimum_ttl: int = 254


class BGPSession(Frozen):
    """One BGPPeer as one node opens it."""

    name: str = Field(description="The BGPPeer's name; routes refer to sessions by it.")
    peer_address: str
    peer_asn: int | None = Field(default=None, description="None with dynamic_asn set.")
    dynamic_asn: Literal["internal", "external"] | None = None
    my_asn: int
    peer_port: int = 179
    source_address: str | None = None
    router_id: str | None = None
    hold_time_seconds: int = 90
    keepalive_seconds: int | None = None
    connect_seconds: int | None = None
    password_secret: SecretRef | None = None
    ebgp_multihop: bool = False
    graceful_restart: bool = False
    bfd_profile: str | None = Field(default=None, description="The BFDProfile the BGPPeer names.")
    bfd: BfdSettings | None = Field(
        default=None,
        description="That profile, resolved. None with bfd_profile set: the profile does not exist, and the "
        "session stays closed until it does (MetalLB refuses such a peer).",
    )

    @property
    def is_ibgp(self) -> bool:
        if self.peer_asn is not None:
            return self.peer_asn == self.my_asn
        return self.dynamic_asn == "internal"

    @property
    def family(self) -> Literal[4, 6]:
        return 6 if ":" in self.peer_address else 4


class ExabgpNeighbor(Frozen):
    """A session with what only the speaker knows: its own addresses and the resolved password."""

    session: BGPSession
    local_address: str
    router_id: str
    password: SecretStr | None = Field(default=None, description="The TCP MD5 key, base64 (any bytes).")


class ExabgpConfig(Frozen):
    """Everything exabgp's configuration file holds for one node."""

    node: str
    neighbors: tuple[ExabgpNeighbor, ...] = ()
    api_command: str = Field(description="The process exabgp runs to receive route changes on its stdin.")


class L2Advertising(Frozen):
    """One L2Advertisement, resolved: the nodes allowed to answer ARP/NDP and on which interfaces."""

    name: str
    nodes: tuple[str, ...]
    interfaces: tuple[str, ...] = Field(default=(), description="Empty: every interface of the node.")


class BGPAdvertising(Frozen):
    """One BGPAdvertisement, resolved: announcing nodes, target sessions and route attributes."""

    name: str
    nodes: tuple[str, ...]
    peers: tuple[str, ...] = Field(default=(), description="Session names; empty: every session of the node.")
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    local_pref: int | None = None
    aggregation_length: int = 32
    aggregation_length_v6: int = 128


class PeerPlacement(Frozen):
    """A BGP session and the nodes that open it."""

    session: BGPSession
    nodes: tuple[str, ...]


class SpeakerGlobalConfig(Versioned):
    """What every speaker needs whatever the Services: advertisements and peers (small, rarely changes)."""

    l2: tuple[L2Advertising, ...] = ()
    bgp: tuple[BGPAdvertising, ...] = ()
    peers: tuple[PeerPlacement, ...] = ()
    node_addresses: dict[str, str] = Field(
        default_factory=dict, description="Each node's InternalIP: where speakers send each other heartbeats."
    )
    pools: dict[str, tuple[str, ...]] | None = Field(
        default=None,
        description="Each pool's addresses (CIDRs and ranges): speakers announce no IP outside its pool. "
        "None: written before version 3, nothing to check against.",
    )


class ServiceAnnouncement(Frozen):
    """One Service's IPs and the advertisements that announce them.

    Which node has a ready endpoint is not here: speakers watch EndpointSlices themselves (see
    docs/architecture.md), so pod churn never rewrites the published configuration.
    """

    service: str
    ips: tuple[str, ...]
    pool: str
    local_traffic: bool = Field(description="externalTrafficPolicy Local: only nodes with a ready endpoint.")
    l2: tuple[str, ...] = ()
    bgp: tuple[str, ...] = ()


class AnnouncementShard(Versioned):
    """The announcements of the Services whose key hashes to this shard."""

    shard: int
    services: tuple[ServiceAnnouncement, ...] = ()
