"""The operator's own state, from the speaker DaemonSet's status (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .conditions import condition


def install_status(
    daemonset: Mapping[str, Any] | None,
    error: str | None,
    image: str,
    previous_conditions: Sequence[Mapping[str, Any]],
    generation: int | None,
    now: str,
) -> dict[str, Any]:
    """Available / Progressing / Degraded with reasons, and the speaker counts for ``kubectl get``."""
    previous = {c["type"]: c for c in previous_conditions}
    status = (daemonset or {}).get("status") or {}
    desired = int(status.get("desiredNumberScheduled") or 0)
    ready = int(status.get("numberReady") or 0)
    updated = int(status.get("updatedNumberScheduled") or 0)
    available = int(status.get("numberAvailable") or 0)
    observed = status.get("observedGeneration")
    current = observed is not None and observed >= ((daemonset or {}).get("metadata") or {}).get(
        "generation", 0
    )

    if daemonset is None:
        available_reason, available_message = "NotInstalled", "the speaker DaemonSet does not exist yet"
    elif desired == 0:
        available_reason, available_message = "NoNodes", "no node matches the speakers' node selector"
    elif available < desired:
        available_reason = "SpeakersNotReady"
        available_message = f"{ready} of {desired} speakers ready"
    else:
        available_reason, available_message = "AllSpeakersReady", f"{ready} of {desired} speakers ready"
    rolling = daemonset is not None and (not current or updated < desired or available < desired)
    conditions = [
        condition(
            "Available",
            available_reason == "AllSpeakersReady",
            available_reason,
            available_message,
            previous,
            now,
            generation,
        ),
        condition(
            "Progressing",
            rolling,
            "RollingOut" if rolling else "Stable",
            f"{updated} of {desired} speakers run the current pod template, {available} available"
            if rolling
            else "every speaker runs the current pod template",
            previous,
            now,
            generation,
        ),
        condition(
            "Degraded",
            error is not None,
            "ApplyFailed" if error else "AsExpected",
            error or "the speaker DaemonSet, its ServiceAccount and settings are as configured",
            previous,
            now,
            generation,
        ),
    ]
    return {
        "conditions": conditions,
        "observedGeneration": generation,
        "speakerImage": image,
        "speakersDesired": desired,
        "speakersReady": ready,
        "speakersUpdated": updated,
        "speakers": f"{ready}/{desired}",
    }
