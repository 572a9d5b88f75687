"""The IronLB API (ironlb.io/v1beta1): pydantic models, the single source of the CRDs."""

from .advertisements import AdvertisementStatus, BGPAdvertisementSpec, L2AdvertisementSpec
from .bgppeer import BGPPeerSpec, BGPPeerStatus, NodeSession, SecretReference
from .common import API_VERSION, GROUP, VERSION, Condition, LabelSelector, LabelSelectorRequirement
from .ipaddresspool import IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation
from .kinds import ALL_KINDS, BGP_ADVERTISEMENT, BGP_PEER, IP_ADDRESS_POOL, L2_ADVERTISEMENT, Kind

__all__ = [
    "ALL_KINDS",
    "API_VERSION",
    "BGP_ADVERTISEMENT",
    "BGP_PEER",
    "GROUP",
    "IP_ADDRESS_POOL",
    "L2_ADVERTISEMENT",
    "VERSION",
    "AdvertisementStatus",
    "BGPAdvertisementSpec",
    "BGPPeerSpec",
    "BGPPeerStatus",
    "Condition",
    "IPAddressPoolSpec",
    "IPAddressPoolStatus",
    "Kind",
    "L2AdvertisementSpec",
    "LabelSelector",
    "LabelSelectorRequirement",
    "NodeSession",
    "SecretReference",
    "ServiceAllocation",
]
