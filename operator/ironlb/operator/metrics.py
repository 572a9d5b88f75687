"""Prometheus metrics of the operator (served on --metrics-port, 7472 like MetalLB's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

POOL_ADDRESSES = Gauge(
    "ironlb_address_pool_addresses_total",
    "Usable addresses in the pool (saturated at 2^63).",
    ["pool", "family"],
)
POOL_IN_USE = Gauge(
    "ironlb_address_pool_addresses_in_use", "Addresses of the pool in use.", ["pool", "family"]
)
ALLOCATION_FAILURES = Counter(
    "ironlb_allocation_failures", "Service IP allocations that failed, by reason.", ["reason"]
)
ALLOCATIONS = Counter("ironlb_allocations", "Service IP allocations made (new or changed).")
SERVICES_WITH_IP = Gauge("ironlb_services_with_ip", "LoadBalancer Services holding an IronLB address.")
SERVICES_PENDING = Gauge(
    "ironlb_services_pending",
    "LoadBalancer Services without an IP, by the reason of their Warning event (leader only).",
    ["reason"],
)
SPEAKER_READY = Gauge(
    "ironlb_node_speaker_ready",
    "1 when a node an advertisement or BGPPeer selects runs a ready speaker, else 0 (leader only).",
    ["node"],
)
CONFIG_PUBLISHED = Gauge(
    "ironlb_operator_config_published_timestamp_seconds",
    "When this replica last wrote the speakers' configuration (the ironlb.io/published-at it stamped).",
)
LEADER = Gauge("ironlb_operator_leader", "1 on the replica holding the leader lease, 0 on a standby.")
