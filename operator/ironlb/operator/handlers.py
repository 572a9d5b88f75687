"""kopf runs the operator process: login, start-up and clean-up, signals, and the liveness endpoint.

No resource is watched through kopf (see ``runtime``: informers do that); so kopf stores nothing on any
object, and the liveness probe says whether this replica leads or stands by.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .runtime import OperatorRuntime


def build_registry(runtime: OperatorRuntime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In a pod, the service account; elsewhere the kubeconfig (as KubeClient does)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True  # mutual exclusion comes from the Lease (see leader.py)
        settings.posting.level = logging.WARNING  # kopf's own log lines become events only if they matter
        settings.scanning.disabled = True  # nothing is watched through kopf: no resource discovery
        await runtime.start()

    @kopf.on.probe(id="lease", registry=registry)
    def lease(**_: Any) -> str:
        return runtime.probe()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await runtime.cleanup()

    return registry
