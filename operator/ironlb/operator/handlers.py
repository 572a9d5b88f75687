"""kopf wiring: every handler is a one-line translation into the Controller.

Only ``on.event`` handlers are used: kopf stores no progress annotations and adds no finalizers for them,
so users' Services carry nothing of kopf's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from ironlb.api import GROUP, VERSION
from ironlb.api.config import SINGLETON_NAME
from ironlb.api.kube import ApiError

from .controller import Controller
from .events import EventPoster
from .manifests import SPEAKER_NAME
from .speakers import SpeakerInstaller

log = logging.getLogger("ironlb.operator")
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
EventHandler = Callable[[dict[str, Any], bool], Awaitable[None]]  # (body snapshot, deleted)


async def _with_retries(what: str, work: Callable[[], Awaitable[None]]) -> None:
    """kopf does not retry event handlers: transient API errors are retried here with back-off."""
    for attempt, delay in enumerate((*RETRY_DELAYS, None)):
        try:
            await work()
            return
        except (ApiError, OSError) as error:
            if delay is None:
                log.error("%s failed after %d attempts: %s", what, attempt + 1, error)
                return
            log.warning("%s failed (%s); retrying in %.1f s", what, error, delay)
            await asyncio.sleep(delay)


def build_registry(
    controller: Controller,
    events: EventPoster,
    installer: SpeakerInstaller,
    status_interval: float = 0.5,
    resync_seconds: float = 30.0,
    legacy_seconds: float = 5.0,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    background: list[asyncio.Task[None]] = []  # the periodic tasks, kept referenced

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In a pod, the service account; elsewhere the kubeconfig (as KubeClient does)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True  # mutual exclusion comes from the Lease (see leader.py)
        settings.posting.level = logging.WARNING  # kopf's own log lines become events only if they matter
        settings.watching.server_timeout = 300
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="kube"))
        events.start()
        await asyncio.to_thread(controller.rebuild)

        async def write_pool_statuses() -> None:
            while True:
                try:
                    await controller.flush_statuses()
                except Exception:  # keep reporting whatever one write did
                    log.exception("writing pool statuses")
                await asyncio.sleep(status_interval)

        async def keep_speakers() -> None:
            while True:  # self-heals objects deleted or edited without an event reaching us
                await _with_retries("installing the speakers", installer.reconcile)
                await asyncio.sleep(resync_seconds)

        async def poll_legacy_configmaps() -> None:
            """Two GETs per period: a kopf watch would need list/watch on every ConfigMap in the cluster."""
            while True:
                await asyncio.sleep(legacy_seconds)
                try:
                    await _with_retries("reading the legacy ConfigMaps", controller.poll_legacy)
                except Exception:  # a surprise in one reading must not end the polling
                    log.exception("reading the legacy ConfigMaps")

        background.extend(
            asyncio.create_task(work())
            for work in (write_pool_statuses, keep_speakers, poll_legacy_configmaps)
        )

    def forward(group: str, version: str, plural: str, handle: EventHandler) -> None:
        """Every watched kind the same way: a snapshot of the body, DELETED or not, retried on API errors."""

        @kopf.on.event(group, version, plural, id=plural, registry=registry)
        async def handler(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
            snapshot, deleted = dict(body), event.get("type") == "DELETED"
            await _with_retries(
                f"{plural} {body.metadata.namespace or ''}/{body.metadata.name}",
                lambda: handle(snapshot, deleted),
            )

    forward("", "v1", "services", controller.on_service)
    forward(GROUP, VERSION, "ipaddresspools", controller.on_pool)
    forward("", "v1", "namespaces", controller.on_namespace)
    forward("", "v1", "nodes", controller.on_node)
    forward(GROUP, VERSION, "bgppeers", controller.on_peer)
    forward(GROUP, VERSION, "l2advertisements", controller.on_advertisement)
    forward(GROUP, VERSION, "bgpadvertisements", controller.on_advertisement)

    async def speakers_changed(body: dict[str, Any], deleted: bool) -> None:
        name = body["metadata"]["name"]
        if body["metadata"].get("namespace") == controller.state.namespace and name in (
            SPEAKER_NAME,
            SINGLETON_NAME,
        ):
            await installer.reconcile()

    forward("apps", "v1", "daemonsets", speakers_changed)
    forward(GROUP, VERSION, "ironlbconfigs", speakers_changed)

    return registry
