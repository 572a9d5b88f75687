"""The IronLB API (ironlb.io/v1beta1): pydantic models, the single source of the CRDs."""

from .advertisements import AdvertisementStatus, BGPAdvertisementSpec, L2AdvertisementSpec
from .bfdprofile import BFDProfileSpec, BFDProfileStatus
from .bgppeer import BGPPeerSpec, BGPPeerStatus, NodeSession, SecretReference
from .common import API_VERSION, GROUP, VERSION, Condition, LabelSelector, LabelSelectorRequirement
from .community import CommunityAlias, CommunitySpec, CommunityStatus
from .ipaddresspool import IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation
from .kinds import (
    ALL_KINDS,
    BFD_PROFILE,
    BGP_ADVERTISEMENT,
    BGP_PEER,
    COMMUNITY,
    IP_ADDRESS_POOL,
    L2_ADVERTISEMENT,
    Kind,
)

__all__ = [
    "ALL_KINDS",
    "API_VERSION",
    "BFD_PROFILE",
    "BGP_ADVERTISEMENT",
    "BGP_PEER",
    "COMMUNITY",
    "GROUP",
    "IP_ADDRESS_POOL",
    "L2_ADVERTISEMENT",
    "VERSION",
    "AdvertisementStatus",
    "BFDProfileSpec",
    "BFDProfileStatus",
    "BGPAdvertisementSpec",
    "BGPPeerSpec",
    "BGPPeerStatus",
    "CommunityAlias",
    "CommunitySpec",
    "CommunityStatus",
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
