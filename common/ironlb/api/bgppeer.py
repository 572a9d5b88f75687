"""BGPPeer: a BGP session each selected node opens to a router (MetalLB's v1beta2 field names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .common import (
    DNS_SUBDOMAIN_PATTERN,
    SELECTOR_LIST_MAX,
    UINT32_MAX,
    ApiModel,
    LabelSelector,
    StatusBase,
    cel,
    validations,
)

_DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"


Duration = Annotated[str, Field(max_length=32, pattern=_DURATION_PATTERN)]
_DURATION_HINT = " A Go duration such as 90s or 1m30s."


def _ip_address(field: str) -> dict[str, str]:
    return cel("isIP(self)", f"'{field} must be an IPv4 or IPv6 address, got \"' + self + '\"'")


IPAddress = Annotated[str, Field(max_length=45)]
# the keepalive interval exabgp uses (whole seconds, CEL): a third of the hold time, which defaults to 90 s
_KEEPALIVE = "((has(self.holdTime) ? duration(self.holdTime).getSeconds() : 90) / 3)"


class SecretReference(ApiModel):
    """A Secret holding the TCP MD5 password under the key ``password``."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.__namespace__)",
                "'passwordSecret.namespace \"' + self.__namespace__ + '\" is refused: IronLB reads the"
                " Secret in the namespace of the BGPPeer only (it may read no Secret elsewhere);"
                " leave namespace out'",
                field_path=".namespace",
            )
        )
    )

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Name of the Secret.")
    namespace: str | None = Field(
        default=None,
        max_length=63,
        description="Refused when set: the Secret must be in the BGPPeer's namespace (MetalLB's field).",
    )


class BGPPeerSpec(ApiModel):
    """One BGP session per selected node, to ``peerAddress``."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.peerASN) != has(self.dynamicASN)",
                "has(self.peerASN) ? 'set only one of peerASN and dynamicASN, not both'"
                " : 'one of peerASN and dynamicASN is required'",
            ),
            cel(
                "!(has(self.password) && has(self.passwordSecret))",
                "'set only one of password and passwordSecret (prefer passwordSecret)'",
            ),
            cel(
                "!has(self.sourceAddress) || !isIP(self.sourceAddress) || !isIP(self.peerAddress)"
                " || ip(self.sourceAddress).family() == ip(self.peerAddress).family()",
                "'sourceAddress \"' + self.sourceAddress + '\" and peerAddress \"' + self.peerAddress"
                " + '\" must be of the same IP family'",
                field_path=".sourceAddress",
            ),
            cel(
                "!has(self.keepaliveTime)"
                f" || duration(self.keepaliveTime).getMilliseconds() == {_KEEPALIVE} * 1000",
                "'keepaliveTime ' + self.keepaliveTime + ' cannot be honoured: exabgp, which opens the"
                " sessions, sends keepalives every third of holdTime (' + (has(self.holdTime) ? self.holdTime"
                " : '90s') + '); set keepaliveTime to that third, or leave it out'",
                field_path=".keepaliveTime",
            ),
            cel(
                "!self.ebgpMultiHop || (has(self.peerASN) ? self.peerASN != self.myASN"
                " : self.dynamicASN == 'external')",
                "'ebgpMultiHop applies to eBGP sessions only, but this session is iBGP (same ASN on both"
                " sides)'",
                field_path=".ebgpMultiHop",
            ),
        )
    )

    my_asn: int = Field(alias="myASN", ge=1, le=UINT32_MAX, description="This cluster's AS number.")
    peer_asn: int | None = Field(
        default=None, alias="peerASN", ge=1, le=UINT32_MAX, description="The router's AS number."
    )
    dynamic_asn: Literal["internal", "external"] | None = Field(
        default=None,
        alias="dynamicASN",
        description="Instead of peerASN: accept the router's ASN as long as it is iBGP (internal) or eBGP "
        "(external).",
    )
    peer_address: IPAddress = Field(
        json_schema_extra=validations(_ip_address("peerAddress")),
        description="The router's address.",
    )
    peer_port: int = Field(default=179, ge=1, le=65535, description="The router's TCP port.")
    source_address: IPAddress | None = Field(
        default=None,
        json_schema_extra=validations(_ip_address("sourceAddress")),
        description="The local address to open the session from; the node's address on the route to "
        "the peer when empty.",
    )
    router_id: str | None = Field(
        default=None,
        alias="routerID",
        max_length=15,
        json_schema_extra=validations(
            cel(
                "isIP(self) && ip(self).family() == 4",
                "'routerID must be a dotted IPv4 address (a 32-bit id), got \"' + self + '\"'",
            )
        ),
        description="BGP router ID; the node's IPv4 address when empty.",
    )
    hold_time: Duration | None = Field(
        default=None,
        json_schema_extra=validations(
            cel(
                "duration(self).getMilliseconds() == duration(self).getSeconds() * 1000"
                " && (duration(self) == duration('0s') || (duration(self) >= duration('3s')"
                " && duration(self) <= duration('65535s')))",
                "'holdTime must be 0s or whole seconds between 3s and 65535s (BGP carries seconds,"
                " RFC 4271), got ' + self",
            )
        ),
        description="BGP hold time in whole seconds: 0s turns keepalives off, otherwise at least 3s "
        "(RFC 4271). Default 90s." + _DURATION_HINT,
    )
    keepalive_time: Duration | None = Field(
        default=None,
        description="Interval between keepalives: only holdTime/3 (whole seconds) is accepted, the interval "
        "exabgp always uses." + _DURATION_HINT,
    )
    connect_time: Duration | None = Field(
        default=None,
        json_schema_extra=validations(
            cel(
                "false",
                "'connectTime ' + self + ' cannot be honoured: exabgp, which opens the sessions, retries a"
                " closed session after 1s, waiting longer each time up to 60s; leave connectTime out'",
            )
        ),
        description="Refused when set: exabgp retries a closed session after 1 s, then longer each time "
        "up to 60 s (MetalLB's field)." + _DURATION_HINT,
    )
    password: str | None = Field(
        default=None,
        max_length=80,
        description="TCP MD5 password in clear text; prefer passwordSecret, which keeps it out of sight.",
    )
    password_secret: SecretReference | None = Field(
        default=None,
        description="A kubernetes.io/basic-auth Secret whose key 'password' is the MD5 password.",
    )
    ebgp_multi_hop: bool = Field(
        default=False, alias="ebgpMultiHop", description="Allow an eBGP peer that is not directly connected."
    )
    enable_graceful_restart: bool = Field(
        default=False,
        description="Advertise graceful restart so the router keeps the routes while a speaker restarts.",
    )
    bfd_profile: str | None = Field(
        default=None,
        max_length=253,
        pattern=f"^$|{DNS_SUBDOMAIN_PATTERN}",
        description="The BFDProfile (in this namespace) whose timers a BFD session to the peer uses: when "
        "BFD goes Down after having been Up, the session is closed at once and stays closed until BFD is Up "
        "again. While the profile does not exist the session stays closed (the BGPPeer's status says so). "
        "Empty: no BFD.",
    )
    node_selectors: list[LabelSelector] | None = Field(
        default=None,
        max_length=SELECTOR_LIST_MAX,
        description="Labels of the nodes that open this session. With none, every node.",
    )
    # MetalLB's fields IronLB cannot honour: present so that the API server refuses them with the reason,
    # instead of pruning them as unknown (accepted, then ignored)
    vrf: str | None = Field(
        default=None,
        max_length=15,
        json_schema_extra=validations(
            cel(
                "self == ''",
                "'vrf \"' + self + '\" is refused: exabgp, which opens the sessions, cannot bind one to a"
                " VRF; peer from the default VRF'",
            )
        ),
        description="Refused unless empty: IronLB opens sessions in the default VRF only (MetalLB's field).",
    )
    interface: str | None = Field(
        default=None,
        max_length=15,
        json_schema_extra=validations(
            cel(
                "self == ''",
                "'interface \"' + self + '\" is refused: unnumbered BGP sessions are not supported; set"
                " peerAddress'",
            )
        ),
        description="Refused unless empty: no unnumbered BGP sessions (MetalLB's field).",
    )
    disable_mp: bool | None = Field(
        default=None,
        alias="disableMP",
        json_schema_extra=validations(
            cel(
                "self",
                "'disableMP: false is refused: IronLB announces each address family only over sessions of"
                " that family, as disableMP: true does; set true or leave it out'",
            )
        ),
        description="Only true (or absent) is accepted: IronLB announces IPv4 prefixes over IPv4 sessions "
        "and IPv6 over IPv6 sessions, never both over one (MetalLB's field).",
    )
    dual_stack_address_family: bool | None = Field(
        default=None,
        json_schema_extra=validations(
            cel(
                "!self",
                "'dualStackAddressFamily: true is refused: IronLB announces each address family only over"
                " sessions of that family; leave it out'",
            )
        ),
        description="Only false (or absent) is accepted, for the same reason as disableMP (MetalLB's field).",
    )


BfdState = Literal["AdminDown", "Down", "Init", "Up"]
SessionState = Literal["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established", "Unknown"]


class NodeSession(ApiModel):
    """The session of one node to this peer, as its speaker reports it."""

    node: str = Field(max_length=253, description="Node name.")
    state: SessionState = Field(description="BGP finite-state-machine state.")
    since: datetime | None = Field(default=None, description="When the session entered this state.")
    message: str = Field(default="", max_length=1024, description="Why the session is not Established.")
    announced_prefixes: int = Field(default=0, ge=0, description="Prefixes announced on this session.")
    bfd: BfdState | None = Field(
        default=None, description="The state of the BFD session to the peer, with a bfdProfile only."
    )
    bfd_message: str = Field(
        default="", max_length=1024, description="Since when BFD is Up, or why it is not."
    )


class BGPPeerStatus(StatusBase):
    """Per-node session state, written by the speakers and summarised by the operator."""

    nodes: list[NodeSession] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["node"]},
        description="One entry per selected node.",
    )
    selected_nodes: int = Field(default=0, ge=0, description="Nodes the peer's nodeSelectors select.")
    established_nodes: int = Field(
        default=0, ge=0, description="Selected nodes whose session is Established."
    )
    sessions: str = Field(default="", max_length=32, description="established/selected, for kubectl get.")
