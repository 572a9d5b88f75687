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

from .api import GROUP, VERSION
from .controller import Controller
from .events import EventPoster
from .kube import ApiError
from .manifests import SPEAKER_NAME
from .speakers import SpeakerInstaller

log = logging.getLogger("ironlb.operator")
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


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
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

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
                    await controller.flush_pool_statuses()
                except Exception:  # keep reporting whatever one write did
                    log.exception("writing pool statuses")
                await asyncio.sleep(status_interval)

        async def keep_speakers() -> None:
            while True:  # self-heals objects deleted or edited without an event reaching us
                await _with_retries("installing the speakers", installer.reconcile)
                await asyncio.sleep(resync_seconds)

        controller.background = asyncio.create_task(write_pool_statuses())
        controller.speaker_keeper = asyncio.create_task(keep_speakers())

    def deleted(event: kopf.RawEvent) -> bool:
        return event.get("type") == "DELETED"

    @kopf.on.event("", "v1", "services", registry=registry)
    async def service_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        snapshot = dict(body)
        await _with_retries(
            f"Service {body.metadata.namespace}/{body.metadata.name}",
            lambda: controller.on_service(snapshot, deleted(event)),
        )

    @kopf.on.event(GROUP, VERSION, "ipaddresspools", registry=registry)
    async def pool_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        snapshot = dict(body)
        await _with_retries(
            f"IPAddressPool {body.metadata.name}", lambda: controller.on_pool(snapshot, deleted(event))
        )

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        snapshot = dict(body)
        await _with_retries(
            f"Namespace {body.metadata.name}", lambda: controller.on_namespace(snapshot, deleted(event))
        )

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        snapshot = dict(body)
        await controller.on_node(snapshot, deleted(event))

    @kopf.on.event(GROUP, VERSION, "bgppeers", registry=registry)
    async def peer_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        snapshot = dict(body)
        await _with_retries(
            f"BGPPeer {body.metadata.name}", lambda: controller.on_peer(snapshot, deleted(event))
        )

    @kopf.on.event("apps", "v1", "daemonsets", registry=registry)
    async def daemonset_event(body: kopf.Body, **_: Any) -> None:
        if body.metadata.namespace == controller.namespace and body.metadata.name == SPEAKER_NAME:
            await _with_retries("installing the speakers", installer.reconcile)

    @kopf.on.event(GROUP, VERSION, "ironlbconfigs", registry=registry)
    async def config_event(body: kopf.Body, **_: Any) -> None:
        if body.metadata.namespace == controller.namespace:
            await _with_retries("installing the speakers", installer.reconcile)

    for plural in ("l2advertisements", "bgpadvertisements"):

        @kopf.on.event(GROUP, VERSION, plural, registry=registry)
        async def advertisement_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
            snapshot = dict(body)
            await _with_retries(
                f"{body.get('kind')} {body.metadata.name}",
                lambda: controller.on_advertisement(snapshot, deleted(event)),
            )

    return registry
