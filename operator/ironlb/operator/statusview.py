"""``ironlb status``: one screen instead of five ``kubectl get`` (pure: objects in, a view out).

Built from what the API server already holds, read-only: pools and their statuses, LoadBalancer Services
and their Warning events, the published speaker configuration (which advertisements announce a Service),
the ServiceL2Statuses (which node answers), the BGPPeers' per-node sessions, and the speaker pods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ironlb.api.contract import AnnouncementShard, ServiceAnnouncement, SpeakerGlobalConfig

Json = Mapping[str, Any]


@dataclass(frozen=True)
class PoolRow:
    name: str
    addresses: list[str]
    assigned: int
    available: str
    problems: list[str]  # conditions that need a look: Exhausted, Overlapping, not Ready, ...


@dataclass(frozen=True)
class ServiceRow:
    namespace: str
    name: str
    ips: list[str]
    pool: str
    mode: str  # Layer2, BGP, Layer2+BGP, "-" (not announced), or Pending
    nodes: list[str]  # Layer 2: the node answering; BGP: the nodes announcing
    reason: str = ""  # why it has no IP (its latest Warning event)


@dataclass(frozen=True)
class SpeakerRow:
    node: str
    pod: str
    ready: bool
    restarts: int
    current: bool  # runs the DaemonSet's current template (settings, image)


@dataclass(frozen=True)
class SessionRow:
    peer: str
    node: str
    state: str
    prefixes: int
    bfd: str
    message: str


@dataclass(frozen=True)
class StatusView:
    namespace: str
    pools: list[PoolRow] = field(default_factory=list)
    services: list[ServiceRow] = field(default_factory=list)
    speakers: list[SpeakerRow] = field(default_factory=list)
    sessions: list[SessionRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ready(conditions: Iterable[Json]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pool_rows(pools: Iterable[Json]) -> list[PoolRow]:
    rows = []
    for pool in pools:
        status = pool.get("status") or {}
        conditions = status.get("conditions") or []
        problems = [
            c["type"]
            for c in conditions
            if (c.get("type") == "Ready") != (c.get("status") == "True") and c.get("type")
        ]
        rows.append(
            PoolRow(
                pool["metadata"]["name"],
                list((pool.get("spec") or {}).get("addresses") or []),
                int(status.get("assigned") or 0),
                str(status.get("available", "?")),
                sorted("NotReady" if p == "Ready" else p for p in problems),
            )
        )
    return sorted(rows, key=lambda row: row.name)


def _modes(announcement: ServiceAnnouncement, config: SpeakerGlobalConfig) -> tuple[str, list[str]]:
    """How the Service is announced and the nodes allowed to announce it over BGP."""
    modes = [mode for mode, names in (("Layer2", announcement.l2), ("BGP", announcement.bgp)) if names]
    bgp_nodes = sorted({n for a in config.bgp if a.name in announcement.bgp for n in a.nodes})
    return "+".join(modes) or "-", bgp_nodes


def service_rows(
    services: Iterable[Json],
    published: Iterable[Json],
    l2_statuses: Iterable[Json],
    warnings: Iterable[Json],
) -> list[ServiceRow]:
    config, announcements = SpeakerGlobalConfig(), dict[str, ServiceAnnouncement]()
    for body in published:
        data = body.get("data") or {}
        if "config.json" in data:
            config = SpeakerGlobalConfig.model_validate_json(data["config.json"])
        elif "announcements.json" in data:
            for announcement in AnnouncementShard.model_validate_json(data["announcements.json"]).services:
                announcements[announcement.service] = announcement
    answering: dict[tuple[str, str], str] = {}
    for report in l2_statuses:
        status = report.get("status") or {}
        key = f"{status.get('serviceNamespace')}/{status.get('serviceName')}"
        answering[(key, str(status.get("ip")))] = str(status.get("node"))
    latest: dict[str, Json] = {}
    for event in sorted(warnings, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or "")):
        involved = event.get("involvedObject") or {}
        latest[f"{involved.get('namespace')}/{involved.get('name')}"] = event
    rows = []
    for service in services:
        if (service.get("spec") or {}).get("type") != "LoadBalancer":
            continue
        metadata = service["metadata"]
        key = f"{metadata['namespace']}/{metadata['name']}"
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ips = [entry["ip"] for entry in ingress if entry.get("ip")]
        pool = (metadata.get("annotations") or {}).get("ironlb.io/ip-allocated-from-pool", "")
        if not ips:
            reason = str((latest.get(key) or {}).get("reason", ""))
            rows.append(ServiceRow(metadata["namespace"], metadata["name"], [], "", "Pending", [], reason))
            continue
        announced = announcements.get(key)
        mode, nodes = _modes(announced, config) if announced else ("-", [])
        l2_nodes = sorted({answering[(key, ip)] for ip in ips if (key, ip) in answering})
        rows.append(ServiceRow(metadata["namespace"], metadata["name"], ips, pool, mode, l2_nodes + nodes))
    return sorted(rows, key=lambda row: (row.namespace, row.name))


def speaker_rows(pods: Iterable[Json], daemonset: Json | None) -> list[SpeakerRow]:
    generation = str(((daemonset or {}).get("metadata") or {}).get("generation", ""))
    rows = []
    for pod in pods:
        metadata, status = pod["metadata"], pod.get("status") or {}
        restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
        template = str((metadata.get("labels") or {}).get("pod-template-generation", ""))
        rows.append(
            SpeakerRow(
                str((pod.get("spec") or {}).get("nodeName") or "-"),
                metadata["name"],
                _ready(status.get("conditions") or []),
                restarts,
                not generation or template == generation,
            )
        )
    return sorted(rows, key=lambda row: row.node)


def session_rows(peers: Iterable[Json]) -> list[SessionRow]:
    rows = []
    for peer in peers:
        for entry in (peer.get("status") or {}).get("nodes") or []:
            rows.append(
                SessionRow(
                    peer["metadata"]["name"],
                    str(entry.get("node")),
                    str(entry.get("state")),
                    int(entry.get("announcedPrefixes") or 0),
                    str(entry.get("bfd") or "-"),
                    str(entry.get("message") or ""),
                )
            )
    return sorted(rows, key=lambda row: (row.peer, row.node))


# ---------------------------------------------------------------------------------------------- text
GREEN, YELLOW, RED, BOLD, RESET = "\033[32m", "\033[33m", "\033[31m", "\033[1m", "\033[0m"


def _table(headers: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]], color: bool) -> list[str]:
    """Rows of (text, colour) cells, aligned on the text alone (colour codes take no width)."""
    widths = [max([len(h), *(len(row[i][0]) for row in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        cells = []
        for (text, tint), width in zip(row, widths, strict=True):
            padded = text.ljust(width)
            cells.append(f"{tint}{padded}{RESET}" if color and tint else padded)
        lines.append("  ".join(cells).rstrip())
    return lines


def render(view: StatusView, color: bool = False) -> str:
    def title(text: str) -> str:
        return f"{BOLD}{text}{RESET}" if color else text

    def ok(good: bool, text: str) -> tuple[str, str]:
        return text, GREEN if good else RED

    out = [title(f"IronLB in namespace {view.namespace}"), "", title("POOLS")]
    out += _table(
        ("NAME", "ASSIGNED", "AVAILABLE", "ADDRESSES", "PROBLEMS"),
        [
            (
                (p.name, ""),
                (str(p.assigned), ""),
                ok(p.available not in ("0", "?"), p.available),
                (",".join(p.addresses), ""),
                ok(not p.problems, ",".join(p.problems) or "-"),
            )
            for p in view.pools
        ],
        color,
    )
    out += ["", title("SERVICES")]
    out += _table(
        ("SERVICE", "IP", "POOL", "MODE", "NODES"),
        [
            (
                (f"{s.namespace}/{s.name}", ""),
                ok(bool(s.ips), ",".join(s.ips) or f"<pending: {s.reason or 'no event yet'}>"),
                (s.pool or "-", ""),
                (s.mode, YELLOW if s.mode == "-" else ""),
                (",".join(s.nodes) or "-", ""),
            )
            for s in view.services
        ],
        color,
    )
    out += ["", title("SPEAKERS")]
    out += _table(
        ("NODE", "POD", "READY", "RESTARTS", "TEMPLATE"),
        [
            (
                (s.node, ""),
                (s.pod, ""),
                ok(s.ready, "yes" if s.ready else "no"),
                (str(s.restarts), YELLOW if s.restarts else ""),
                ok(s.current, "current" if s.current else "old"),
            )
            for s in view.speakers
        ],
        color,
    )
    out += ["", title("BGP SESSIONS")]
    out += _table(
        ("PEER", "NODE", "STATE", "PREFIXES", "BFD", "MESSAGE"),
        [
            (
                (s.peer, ""),
                (s.node, ""),
                ok(s.state == "Established", s.state),
                (str(s.prefixes), ""),
                (s.bfd, ""),
                (s.message[:60], ""),
            )
            for s in view.sessions
        ],
        color,
    )
    return "\n".join(out) + "\n"
