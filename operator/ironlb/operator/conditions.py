"""Standard Kubernetes conditions, keeping lastTransitionTime while the status does not change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any


def now() -> str:
    """The current time as Kubernetes writes condition times (RFC 3339, seconds, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    previous: Mapping[str, Mapping[str, Any]],
    now: str,
    generation: int | None,
) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = previous.get(kind)
    changed = before is None or before.get("status") != status
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now if changed else before.get("lastTransitionTime", now),  # type: ignore[union-attr]
        "observedGeneration": generation,
    }
