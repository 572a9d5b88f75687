"""``ironlb status``'s pure view: rows from the objects as the API server returns them, and text that
aligns, says why a Service is pending, and carries colour codes only when asked."""

from __future__ import annotations

import json

from ironlb.api.contract import (
    AnnouncementShard,
    BGPAdvertising,
    L2Advertising,
    ServiceAnnouncement,
    SpeakerGlobalConfig,
)
from ironlb.operator.statusview import (
    StatusView,
    pool_rows,
    render,
    service_rows,
    session_rows,
    speaker_rows,
)


def service(name: str, *ips: str, pool: str = "") -> dict[str, object]:
    return {
        "metadata": {
            "namespace": "apps",
            "name": name,
            "annotations": {"ironlb.io/ip-allocated-from-pool": pool} if pool else {},
        },
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


PUBLISHED = [
    {
        "data": {
            "config.json": SpeakerGlobalConfig(
                l2=(L2Advertising(name="l2", nodes=("node1", "node2")),),
                bgp=(BGPAdvertising(name="bgp", nodes=("node1", "node3")),),
            ).model_dump_json()
        }
    },
    {
        "data": {
            "announcements.json": AnnouncementShard(
                shard=0,
                services=(
                    ServiceAnnouncement(
                        service="apps/web", ips=("203.0.113.1",), pool="lan", local_traffic=False, l2=("l2",)
                    ),
                    ServiceAnnouncement(
                        service="apps/routed",
                        ips=("203.0.113.64",),
                        pool="wan",
                        local_traffic=False,
                        bgp=("bgp",),
                    ),
                ),
            ).model_dump_json()
        }
    },
]
L2_REPORT = {
    "status": {"serviceNamespace": "apps", "serviceName": "web", "ip": "203.0.113.1", "node": "node2"}
}


def warning(name: str, reason: str, at: str) -> dict[str, object]:
    return {"involvedObject": {"namespace": "apps", "name": name}, "reason": reason, "lastTimestamp": at}


def test_services_show_their_mode_and_nodes_and_the_pending_one_its_latest_reason() -> None:
    rows = service_rows(
        [
            service("web", "203.0.113.1", pool="lan"),
            service("routed", "203.0.113.64", pool="wan"),
            service("waiting"),
            service("unannounced", "203.0.113.9", pool="dark"),
            {"metadata": {"namespace": "apps", "name": "internal"}, "spec": {"type": "ClusterIP"}},
        ],
        PUBLISHED,
        [L2_REPORT],
        [
            warning("waiting", "NoMatchingPool", "2026-01-01T00:00:00Z"),
            warning("waiting", "PoolExhausted", "2026-01-01T00:01:00Z"),
        ],
    )
    assert [(r.name, r.mode, r.nodes, r.reason) for r in rows] == [
        ("routed", "BGP", ["node1", "node3"], ""),
        ("unannounced", "-", [], ""),
        ("waiting", "Pending", [], "PoolExhausted"),
        ("web", "Layer2", ["node2"], ""),
    ]


def test_pools_speakers_and_sessions_keep_what_needs_a_look() -> None:
    pools = pool_rows(
        [
            {
                "metadata": {"name": "lan"},
                "spec": {"addresses": ["203.0.113.0/28"]},
                "status": {
                    "assigned": 16,
                    "available": "0",
                    "conditions": [
                        {"type": "Ready", "status": "True"},
                        {"type": "Exhausted", "status": "True"},
                        {"type": "Overlapping", "status": "False"},
                    ],
                },
            }
        ]
    )
    assert pools[0].problems == ["Exhausted"] and pools[0].assigned == 16
    speakers = speaker_rows(
        [
            {
                "metadata": {"name": "s-1", "labels": {"pod-template-generation": "2"}},
                "spec": {"nodeName": "node1"},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{"restartCount": 3}],
                },
            },
            {
                "metadata": {"name": "s-2", "labels": {"pod-template-generation": "1"}},
                "spec": {"nodeName": "node2"},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]},
            },
        ],
        {"metadata": {"generation": 2}},
    )
    assert [(s.node, s.ready, s.restarts, s.current) for s in speakers] == [
        ("node1", True, 3, True),
        ("node2", False, 0, False),
    ]
    sessions = session_rows(
        [
            {
                "metadata": {"name": "router"},
                "status": {"nodes": [{"node": "node1", "state": "Active", "message": "Connection refused"}]},
            }
        ]
    )
    assert sessions[0].state == "Active" and sessions[0].message == "Connection refused"


def test_text_is_aligned_and_coloured_only_on_request() -> None:
    rows = service_rows(
        [service("web", "203.0.113.1", pool="lan"), service("waiting")], PUBLISHED, [L2_REPORT], []
    )
    view = StatusView("ironlb-system", services=rows)
    plain, coloured = render(view), render(view, color=True)
    assert "\033[" not in plain and "\033[31m" in coloured
    lines = plain.splitlines()
    header = next(line for line in lines if line.startswith("SERVICE "))
    web = next(line for line in lines if line.startswith("apps/web"))
    assert web.index("203.0.113.1") == header.index("IP") and web.index("Layer2") == header.index("MODE")
    assert "<pending: no event yet>" in plain
    assert json.loads(json.dumps(view.to_json()))["services"][0]["name"] == "waiting"
