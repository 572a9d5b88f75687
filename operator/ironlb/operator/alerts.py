"""The alerts IronLB ships (a PrometheusRule): what an admin must hear about, in PromQL over our metrics.

The operator's metrics that describe the cluster (pools, pending Services, speaker readiness, the published
configuration) are the leader's alone: a standby replica's copies are stale, so every such expression is
joined with ``ironlb_operator_leader == 1`` on the scrape target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEADER = "(ironlb_operator_leader == 1)"
DOCS = "https://ironlb.io/docs/operations"  # docs/operations.md: one section per alert


def of_leader(expression: str) -> str:
    """``expression`` limited to the series the leading operator replica exports."""
    return f"({expression}) and on(instance) {LEADER}"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{DOCS}#{self.name.lower()}",
            },
        }


POOL_RATIO = "ironlb_address_pool_addresses_in_use / ironlb_address_pool_addresses_total"
ALERTS = (
    Alert(
        "IronLBAddressPoolNearlyFull",
        of_leader(f"{POOL_RATIO} > 0.9 < 1"),
        "5m",
        "warning",
        "IPAddressPool {{ $labels.pool }} is over 90 % used ({{ $labels.family }}).",
        "{{ $value | humanizePercentage }} of the pool's {{ $labels.family }} addresses are allocated; new "
        "Services will stay pending once it is full. Add addresses to the pool or another pool.",
    ),
    Alert(
        "IronLBAddressPoolExhausted",
        of_leader(
            "ironlb_address_pool_addresses_in_use >= ironlb_address_pool_addresses_total "
            "and ironlb_address_pool_addresses_total > 0"
        )
        + ' and on() (sum(ironlb_services_pending{reason="PoolExhausted"}) > 0)',
        "1m",
        "critical",
        "IPAddressPool {{ $labels.pool }} is full ({{ $labels.family }}) and Services wait for an address.",
        "Every {{ $labels.family }} address of the pool is allocated and at least one Service is pending "
        "with reason PoolExhausted (kubectl get events --field-selector reason=PoolExhausted -A).",
    ),
    Alert(
        "IronLBServicesPending",
        f"sum by (reason) ({of_leader('ironlb_services_pending')}) > 0",
        "5m",
        "warning",
        "LoadBalancer Services without an IP for 5 minutes ({{ $value }}): {{ $labels.reason }}.",
        "Each such Service has a Warning event with reason {{ $labels.reason }} saying why "
        "(kubectl get events -A --field-selector reason={{ $labels.reason }}).",
    ),
    Alert(
        "IronLBBGPSessionDown",
        "ironlb_speaker_bgp_session_up == 0",
        "2m",
        "critical",
        "BGP session from node {{ $labels.node }} to peer {{ $labels.peer }} is down.",
        "The node announces nothing to this router; kubectl get bgppeer {{ $labels.peer }} -o yaml says "
        "why (state, since when, last error).",
    ),
    Alert(
        "IronLBNodeWithoutReadySpeaker",
        of_leader("ironlb_node_speaker_ready == 0"),
        "2m",
        "critical",
        "Node {{ $labels.node }} is selected to announce but runs no ready speaker.",
        "An L2Advertisement, BGPAdvertisement or BGPPeer selects the node, but its speaker pod is missing "
        "or not ready: the node answers no ARP/NDP and opens no BGP session.",
    ),
    Alert(
        "IronLBLayer2TakeoversFlapping",
        "sum by (node) (changes(ironlb_speaker_takeovers_total[15m])) > 4",
        "5m",
        "warning",
        "Node {{ $labels.node }} keeps taking over Layer 2 IPs.",
        "IPs moved to this node more than 4 times in 15 minutes: a node or link flaps, or speakers lose "
        "each other's heartbeats (see ironlb_speaker_heartbeat_stalls_total and the speakers' logs).",
    ),
    Alert(
        "IronLBNoOperatorLeader",
        "(max(ironlb_operator_leader) or vector(0)) < 1",
        "2m",
        "critical",
        "No IronLB operator replica holds the leader lease.",
        "New Services get no IP and configuration changes are not applied (announcements already made "
        "go on). Check the operator pods in the IronLB namespace.",
    ),
    Alert(
        "IronLBSpeakerConfigStale",
        f"scalar(max({of_leader('ironlb_operator_config_published_timestamp_seconds')})) "
        "- ironlb_speaker_config_published_timestamp_seconds > 60",
        "5m",
        "warning",
        "Speaker {{ $labels.namespace }}/{{ $labels.pod }} runs a configuration older than the operator's.",
        "It acts on a configuration published {{ $value | humanizeDuration }} before the operator's "
        "latest: it cannot read the newest one (its watch is broken, or it is too old for the contract).",
    ),
)


def prometheus_rule_groups() -> list[dict[str, Any]]:
    return [{"name": "ironlb", "rules": [alert.rule() for alert in ALERTS]}]
