"""The custom resource kinds: their models, names and how ``kubectl get`` shows them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from .advertisements import AdvertisementStatus, BGPAdvertisementSpec, L2AdvertisementSpec
from .bfdprofile import BFDProfileSpec, BFDProfileStatus
from .bgppeer import BGPPeerSpec, BGPPeerStatus
from .common import GROUP, VERSION
from .community import CommunitySpec, CommunityStatus
from .config import ROOT_VALIDATIONS, IronLBConfigSpec, IronLBConfigStatus
from .ipaddresspool import IPAddressPoolSpec, IPAddressPoolStatus
from .servicestatus import ServiceL2StatusSpec, ServiceL2StatusStatus

CATEGORY = "ironlb"


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since the object was created.")
POOLS_BY_NAME = PrinterColumn("IPAddressPools", "string", ".spec.ipAddressPools", "Pools announced by name.")
POOLS_BY_LABEL = PrinterColumn(
    "IPAddressPool Selectors", "string", ".spec.ipAddressPoolSelectors", "Pools announced by label."
)
NODE_SELECTORS = PrinterColumn(
    "Node Selectors", "string", ".spec.nodeSelectors", "Nodes that may announce.", priority=1
)


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[PrinterColumn, ...] = field(default_factory=tuple)
    root_validations: dict[str, object] = field(default_factory=dict)  # CEL on the whole object

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{VERSION}"


def _condition(kind: str) -> str:
    return f'.status.conditions[?(@.type=="{kind}")].status'


IP_ADDRESS_POOL = Kind(
    kind="IPAddressPool",
    plural="ipaddresspools",
    short_names=("ipool", "ippool"),
    spec=IPAddressPoolSpec,
    status=IPAddressPoolStatus,
    description="A set of addresses IronLB hands out to Services of type LoadBalancer.",
    columns=(
        PrinterColumn("Addresses", "string", ".spec.addresses", "The pool's CIDRs and ranges."),
        PrinterColumn(
            "Auto Assign", "boolean", ".spec.autoAssign", "Whether any Service may get an address."
        ),
        PrinterColumn("Assigned", "integer", ".status.assigned", "Addresses in use."),
        PrinterColumn("Available", "string", ".status.available", "Addresses still free."),
        AGE,
        PrinterColumn("Avoid Buggy IPs", "boolean", ".spec.avoidBuggyIPs", "Skips .0 and .255.", priority=1),
        PrinterColumn("Ready", "string", _condition("Ready"), "Whether the pool is usable.", priority=1),
    ),
)

L2_ADVERTISEMENT = Kind(
    kind="L2Advertisement",
    plural="l2advertisements",
    short_names=("l2adv",),
    spec=L2AdvertisementSpec,
    status=AdvertisementStatus,
    description="Announces pools' addresses on the local network with ARP and NDP, one node at a time.",
    columns=(
        POOLS_BY_NAME,
        POOLS_BY_LABEL,
        PrinterColumn("Interfaces", "string", ".spec.interfaces", "Interfaces answering ARP/NDP."),
        AGE,
        NODE_SELECTORS,
    ),
)

BGP_ADVERTISEMENT = Kind(
    kind="BGPAdvertisement",
    plural="bgpadvertisements",
    short_names=("bgpadv",),
    spec=BGPAdvertisementSpec,
    status=AdvertisementStatus,
    description="Announces pools' addresses to BGP peers from every eligible node.",
    columns=(
        POOLS_BY_NAME,
        POOLS_BY_LABEL,
        PrinterColumn("Peers", "string", ".spec.peers", "Peers announced to; all when empty."),
        AGE,
        NODE_SELECTORS,
        PrinterColumn("Communities", "string", ".spec.communities", "Communities attached.", priority=1),
    ),
)

BGP_PEER = Kind(
    kind="BGPPeer",
    plural="bgppeers",
    short_names=("bgpp",),
    spec=BGPPeerSpec,
    status=BGPPeerStatus,
    description="A BGP session that each selected node opens to a router.",
    columns=(
        PrinterColumn("Address", "string", ".spec.peerAddress", "The router's address."),
        PrinterColumn("Peer ASN", "integer", ".spec.peerASN", "The router's AS number."),
        PrinterColumn("My ASN", "integer", ".spec.myASN", "This cluster's AS number."),
        PrinterColumn("Sessions", "string", ".status.sessions", "Established sessions / selected nodes."),
        AGE,
        PrinterColumn("Port", "integer", ".spec.peerPort", "The router's TCP port.", priority=1),
        PrinterColumn("Hold Time", "string", ".spec.holdTime", "BGP hold time.", priority=1),
        PrinterColumn("BFD Profile", "string", ".spec.bfdProfile", "The BFD timers in use.", priority=1),
    ),
)

BFD_PROFILE = Kind(
    kind="BFDProfile",
    plural="bfdprofiles",
    short_names=("bfdp",),
    spec=BFDProfileSpec,
    status=BFDProfileStatus,
    description="BFD timers for the BGP sessions of the BGPPeers that name this profile in bfdProfile.",
    columns=(
        PrinterColumn("Passive Mode", "boolean", ".spec.passiveMode", "Waits for the peer's first packet."),
        PrinterColumn("Transmit Interval", "integer", ".spec.transmitInterval", "Milliseconds."),
        PrinterColumn("Receive Interval", "integer", ".spec.receiveInterval", "Milliseconds."),
        PrinterColumn("Multiplier", "integer", ".spec.detectMultiplier", "Missed packets before Down."),
        AGE,
        PrinterColumn(
            "Minimum TTL", "integer", ".spec.minimumTtl", "Lowest TTL accepted (multihop).", priority=1
        ),
    ),
)

COMMUNITY = Kind(
    kind="Community",
    plural="communities",
    short_names=("bgpcommunity",),
    spec=CommunitySpec,
    status=CommunityStatus,
    description="Names for BGP communities, usable in BGPAdvertisements' communities (MetalLB's aliases).",
    columns=(
        PrinterColumn("Communities", "string", ".spec.communities[*].name", "The aliases defined."),
        AGE,
    ),
)


IRONLB_CONFIG = Kind(
    kind="IronLBConfig",
    plural="ironlbconfigs",
    short_names=("ilbconfig",),
    spec=IronLBConfigSpec,
    status=IronLBConfigStatus,
    description="How IronLB's speakers run, and the operator's own state. One per cluster, named ironlb.",
    columns=(
        PrinterColumn("Available", "string", _condition("Available"), "Every speaker is ready."),
        PrinterColumn("Progressing", "string", _condition("Progressing"), "A speaker rollout is under way."),
        PrinterColumn("Degraded", "string", _condition("Degraded"), "Something needs attention."),
        PrinterColumn(
            "Speakers", "string", ".status.speakers", "Ready speakers / nodes that should run one."
        ),
        AGE,
        PrinterColumn("Image", "string", ".status.speakerImage", "The speaker image.", priority=1),
    ),
    root_validations=ROOT_VALIDATIONS,
)

SERVICE_L2_STATUS = Kind(
    kind="ServiceL2Status",
    plural="servicel2statuses",
    short_names=("l2status",),
    spec=ServiceL2StatusSpec,
    status=ServiceL2StatusStatus,
    description="Which node answers ARP/NDP for one IP of one Service (Layer 2), written by IronLB.",
    columns=(
        PrinterColumn("Service Namespace", "string", ".status.serviceNamespace", "The Service's namespace."),
        PrinterColumn("Service", "string", ".status.serviceName", "The Service."),
        PrinterColumn("IP", "string", ".status.ip", "The Service IP."),
        PrinterColumn("Node", "string", ".status.node", "The node answering for it."),
        PrinterColumn("Mode", "string", ".status.mode", "How it is announced."),
        AGE,
        PrinterColumn("Interfaces", "string", ".status.interfaces", "Interfaces answering.", priority=1),
    ),
)

ALL_KINDS: tuple[Kind, ...] = (
    IP_ADDRESS_POOL,
    L2_ADVERTISEMENT,
    BGP_ADVERTISEMENT,
    BGP_PEER,
    BFD_PROFILE,
    COMMUNITY,
    IRONLB_CONFIG,
    SERVICE_L2_STATUS,
)
