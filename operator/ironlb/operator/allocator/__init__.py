"""IP allocation for LoadBalancer Services: pure, synchronous, property-tested."""

from .addresses import Address, Family, Segment, format_address, format_count, parse_address, parse_segment
from .core import Allocation, AllocationRequest, Allocator, Failure, PoolUsage, Reason
from .pools import PoolConfig
from .sharing import SharingClaim, sharing_conflict

__all__ = [
    "Address",
    "Allocation",
    "AllocationRequest",
    "Allocator",
    "Failure",
    "Family",
    "PoolConfig",
    "PoolUsage",
    "Reason",
    "Segment",
    "SharingClaim",
    "format_address",
    "format_count",
    "parse_address",
    "parse_segment",
    "sharing_conflict",
]
