"""The Grafana dashboard IronLB ships (deploy/dashboard.json), one typed list of panels.

Grafana is not run here (AGPL); a lab test runs every panel's query against a real Prometheus scraping the
real components instead, and fails on one that errors or returns no series.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .alerts import POOL_RATIO, of_leader

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's variables a query may use, and what the test substitutes for them
VARIABLES = {"$__rate_interval": "1m"}


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""


PANELS = (
    Panel(
        "Pool usage",
        (Query(of_leader(POOL_RATIO), "{{pool}} {{family}}"),),
        "percentunit",
        "Share of each pool's addresses allocated, per family.",
    ),
    Panel(
        "Addresses in use",
        (Query(of_leader("ironlb_address_pool_addresses_in_use"), "{{pool}} {{family}}"),),
    ),
    Panel(
        "IPs announced per node (Layer 2)",
        (Query("sum by (node) (ironlb_speaker_announced_ips)", "{{node}}"),),
    ),
    Panel(
        "Prefixes announced per node (BGP)",
        (Query("sum by (node) (ironlb_speaker_bgp_announced_prefixes)", "{{node}}"),),
    ),
    Panel(
        "Layer 2 takeovers",
        (Query("sum by (node) (increase(ironlb_speaker_takeovers_total[$__rate_interval]))", "{{node}}"),),
        description="IPs a node started answering for: bursts are failovers, a steady rate is flapping.",
    ),
    Panel(
        "BGP sessions established",
        (Query("sum by (peer) (ironlb_speaker_bgp_session_up)", "{{peer}}"),),
    ),
    Panel(
        "Allocation failures by reason",
        (
            Query(
                "sum by (reason) (increase(ironlb_allocation_failures_total[$__rate_interval]))", "{{reason}}"
            ),
        ),
    ),
    Panel(
        "Services pending by reason",
        (Query(f"sum by (reason) ({of_leader('ironlb_services_pending')})", "{{reason}}"),),
    ),
    Panel(
        "CPU",
        (
            Query(
                'sum by (pod) (rate(process_cpu_seconds_total{job=~"ironlb-.*"}[$__rate_interval]))',
                "{{pod}}",
            ),
        ),
        "percentunit",
    ),
    Panel(
        "Memory (RSS)",
        (Query('sum by (pod) (process_resident_memory_bytes{job=~"ironlb-.*"})', "{{pod}}"),),
        "bytes",
    ),
)


def _panel(number: int, panel: Panel) -> dict[str, Any]:
    return {
        "id": number + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (number % 2), "y": 8 * (number // 2)},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
            for i, q in enumerate(panel.queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    return {
        "title": "IronLB",
        "uid": "ironlb",
        "tags": ["ironlb", "load-balancer"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}
            ]
        },
        "panels": [_panel(number, panel) for number, panel in enumerate(PANELS)],
    }


def render_dashboard() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def queries() -> list[str]:
    """Every panel's query as Prometheus receives it (Grafana's variables substituted)."""
    result = []
    for panel in PANELS:
        for query in panel.queries:
            expr = query.expr
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            result.append(expr)
    return result
