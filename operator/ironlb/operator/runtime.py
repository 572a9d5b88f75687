"""The operator at run time: wait for the lease, keep informers, dispatch their events to the controller.

kopf runs the process (login, start-up and clean-up, signals, and the liveness endpoint with a probe saying
whether this replica leads). It does not watch anything: kopf re-lists after a watch gap without
delivering the deletions it missed (``continuous_watch`` yields the listed objects and nothing for those
gone), so every watch is an ``ironlb.api.informer.Informer``, namespaced wherever the objects live.

The lease is acquired after kopf started, in a thread, so a standby replica serves its liveness endpoint
while it waits. A leader that loses the lease (taken over, or not renewed in time) steps down in-process:
its work is cancelled (the write guard already refuses every write), and it stands by again with fresh
state, without the restart (and the kubelet's back-off) an exit would cost.

Events are handled in the asyncio loop, one task each (per-Service locks keep their order); a handling that
fails is retried with jittered back-off, from the informer's latest copy of the object, for as long as it
fails: nothing is given up on. A periodic resync re-delivers every object (level-triggered).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ironlb.api import GROUP, VERSION
from ironlb.api.config import SINGLETON_NAME
from ironlb.api.health import Health
from ironlb.api.informer import Handler, Informer, informers_synced, object_key, strip_managed_fields
from ironlb.api.kube import ApiError, Json, KubeClient, NotLeaderError, custom_path

from .controller import Controller
from .events import EventPoster
from .leader import LeaseElector
from .manifests import SPEAKER_NAME
from .orphanreports import remove_orphan_reports
from .publisher import CONFIG_LABEL
from .speakers import SpeakerInstaller

log = logging.getLogger("ironlb.operator")
EventHandler = Callable[[Json, bool], Awaitable[None]]  # (object, deleted)
RETRY_CAP = 30.0


@dataclass
class Watch:
    name: str
    path: str
    handle: EventHandler
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Intervals:
    status: float = 0.5  # pool and advertisement statuses, the published speaker configuration
    speakers: float = 30.0  # re-apply the speaker DaemonSet and its settings (self-healing)
    legacy: float = 5.0  # poll MetalLB's legacy ConfigMaps
    resync: float = 60.0  # re-deliver every object to its handler


class Dispatcher:
    """Informer events into the loop; a failed handling is retried with back-off until it succeeds."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[Watch, str, Json]] = asyncio.Queue()
        self.informers: dict[str, Informer] = {}
        self.failures: dict[tuple[str, str], int] = {}  # (watch, object) -> failed attempts in a row
        self._tasks: set[asyncio.Task[None]] = set()
        self._retries: set[asyncio.TimerHandle] = set()

    def handler_for(self, watch: Watch) -> Handler:
        def handle(kind: str, obj: Json) -> None:  # called from the informer's thread
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (watch, kind, obj))

        return handle

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for retry in self._retries:
            retry.cancel()
        self._retries.clear()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        while True:
            watch, kind, obj = await self.queue.get()
            self.spawn(self._handle(watch, kind, obj))

    async def _handle(self, watch: Watch, kind: str, obj: Json) -> None:
        key = (watch.name, object_key(obj))
        try:
            await watch.handle(obj, kind == "DELETED")
        except ApiError as error:
            # NotLeaderError too: the write guard refuses while a renewal is late, and the renewal may
            # still land; if the term ends instead, this dispatcher is cancelled with it
            attempt = self.failures.get(key, 0) + 1
            self.failures[key] = attempt
            ceiling = min(RETRY_CAP, 0.5 * 2 ** (attempt - 1))
            delay = max(random.uniform(ceiling / 2, ceiling), error.retry_after or 0.0)
            log.log(
                # ordinary: a late renewal, or the object changed meanwhile (optimistic concurrency)
                logging.INFO if isinstance(error, NotLeaderError) or error.status == 409 else logging.WARNING,
                "%s %s: %s (attempt %d); retrying in %.1f s",
                watch.name,
                key[1],
                error,
                attempt,
                delay,
            )
            self._retries.add(self.loop.call_later(delay, self._retry, watch, kind, obj))
        else:
            self.failures.pop(key, None)

    def _retry(self, watch: Watch, kind: str, obj: Json) -> None:
        """Again, with the latest object: deleted meanwhile means handled as deleted."""
        self._retries = {r for r in self._retries if not r.cancelled() and r.when() > self.loop.time()}
        current = self.informers[watch.name].get(object_key(obj))
        if current is None:
            self.queue.put_nowait((watch, "DELETED", obj))
        else:
            self.queue.put_nowait((watch, "MODIFIED", current))


@dataclass
class Term:
    """One term as the leader: fresh state, informers that end with it, their dispatcher."""

    controller: Controller
    installer: SpeakerInstaller
    stop: threading.Event = field(default_factory=threading.Event)
    dispatcher: Dispatcher | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


class OperatorRuntime:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        build: Callable[[], tuple[Controller, SpeakerInstaller]],
        events: EventPoster,
        elector: LeaseElector,
        health: Health,
        intervals: Intervals | None = None,
    ) -> None:
        self.kube, self.namespace, self.build = kube, namespace, build
        self.events, self.elector, self.health = events, elector, health
        self.intervals = intervals or Intervals()
        self.stop = threading.Event()
        self.synced = False
        self._tasks: list[asyncio.Task[None]] = []
        self._term: Term | None = None

    def watches(self, term: Term) -> list[Watch]:
        c, ns = term.controller, self.namespace

        def ours(plural: str) -> str:
            return custom_path(GROUP, VERSION, ns, plural)

        async def speakers_changed(_: Json, __: bool) -> None:
            await term.installer.reconcile()

        async def config_changed(body: Json, deleted: bool) -> None:
            await c.on_config(body, deleted)
            await term.installer.reconcile()

        async def published(_: Json, __: bool) -> None:
            """Kept in an informer's store only: the published configuration (read back at start-up), the
            speakers' reports (collected when their Service is gone)."""

        return [
            Watch("namespaces", "/api/v1/namespaces", c.on_namespace),
            Watch("nodes", "/api/v1/nodes", c.on_node),
            Watch(  # which node runs a ready speaker (a metric's input)
                "speakerpods",
                f"/api/v1/namespaces/{ns}/pods",
                c.on_speaker_pod,
                {"labelSelector": f"app.kubernetes.io/name={SPEAKER_NAME}"},
            ),
            Watch("ipaddresspools", ours("ipaddresspools"), c.on_pool),
            Watch("l2advertisements", ours("l2advertisements"), c.on_advertisement),
            Watch("bgpadvertisements", ours("bgpadvertisements"), c.on_advertisement),
            Watch("bgppeers", ours("bgppeers"), c.on_peer),
            Watch("bfdprofiles", ours("bfdprofiles"), c.on_bfd_profile),
            Watch("communities", ours("communities"), c.on_community),
            Watch("services", "/api/v1/services", c.on_service),
            Watch(
                "speakerconfigs",
                f"/api/v1/namespaces/{ns}/configmaps",
                published,
                {"labelSelector": CONFIG_LABEL},
            ),
            Watch("servicel2statuses", ours("servicel2statuses"), published),
            # BGP passwords, gathered into the speakers' one Secret (passwords.py)
            Watch("secrets", f"/api/v1/namespaces/{ns}/secrets", c.on_secret),
            Watch(
                "ironlbconfigs",
                ours("ironlbconfigs"),
                config_changed,
                {"fieldSelector": f"metadata.name={SINGLETON_NAME}"},
            ),
            Watch(
                "daemonsets",
                f"/apis/apps/v1/namespaces/{ns}/daemonsets",
                speakers_changed,
                {"fieldSelector": f"metadata.name={SPEAKER_NAME}"},
            ),
        ]

    # ------------------------------------------------------------------------------------ kopf's hooks
    async def start(self) -> None:
        """kopf's start-up handler: returns at once, so kopf serves liveness while the lease is awaited."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="kube"))
        self.events.start()
        self._tasks.append(loop.create_task(self._lead()))
        self._tasks.append(loop.create_task(self._heartbeat()))

    def probe(self) -> str:
        """kopf's liveness probe: the loop answers (or kopf could not call this); says who leads."""
        return "leading" if self.elector.leading() else "standby"

    async def cleanup(self) -> None:
        """kopf's clean-up handler (SIGTERM): stop everything, then hand the lease over."""
        self.stop.set()
        for task in self._tasks:
            task.cancel()
        if self._term is not None:
            self._end(self._term)
        self.events.stop()
        await asyncio.to_thread(self.elector.release)

    # -------------------------------------------------------------------------------------------- work
    async def _heartbeat(self) -> None:
        while True:
            self.health.tick()
            self.health.configured = self.synced and self.elector.leading()
            await asyncio.sleep(1.0)

    async def _lead(self) -> None:
        """Stand by, lead, step down when the lease is lost, stand by again: until the process stops."""
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            if not await asyncio.to_thread(self.elector.acquire, self.stop, self.health.tick):
                return
            lost = asyncio.Event()
            self.elector.keep(on_lost=functools.partial(loop.call_soon_threadsafe, lost.set))
            controller, installer = self.build()
            term = self._term = Term(controller, installer)
            work, losing = loop.create_task(self._operate(term)), loop.create_task(lost.wait())
            term.tasks += [work, losing]
            done, _ = await asyncio.wait({work, losing}, return_when=asyncio.FIRST_COMPLETED)
            if work in done and not work.cancelled() and work.exception() is not None:
                log.error("the operator's work failed; stepping down", exc_info=work.exception())
            self.elector.step_down()
            self._end(term)
            self.events.drop_queued()
            log.warning("stepped down as the leader; standing by with fresh state")

    def _end(self, term: Term) -> None:
        term.stop.set()
        for task in term.tasks:
            task.cancel()
        if term.dispatcher is not None:
            term.dispatcher.cancel()
        self.synced = False

    async def _operate(self, term: Term) -> None:
        loop = asyncio.get_running_loop()
        dispatcher = term.dispatcher = Dispatcher(loop)
        watches = self.watches(term)
        for watch in watches:
            informer = Informer(
                self.kube, watch.path, dispatcher.handler_for(watch), watch.query, strip_managed_fields
            )
            dispatcher.informers[watch.name] = informer.start(term.stop)
        informers = list(dispatcher.informers.values())
        await asyncio.to_thread(informers_synced, informers, term.stop)
        # adopt what Services already show before anything new is allocated; then the listed objects'
        # ADDED events (queued meanwhile) are handled like any other
        listed = {w.name: dispatcher.informers[w.name].items() for w in watches}
        await asyncio.to_thread(term.controller.rebuild, listed)
        self.synced = True
        periodic: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
            ("writing statuses", term.controller.flush_statuses, self.intervals.status),
            ("installing the speakers", term.installer.reconcile, self.intervals.speakers),
            ("reading the legacy ConfigMaps", term.controller.poll_legacy, self.intervals.legacy),
            ("resyncing", self._resync(informers), self.intervals.resync),
            ("removing reports of deleted Services", self._collect(dispatcher), self.intervals.speakers),
        ]
        for what, work, every in periodic:
            dispatcher.spawn(_every(what, work, every, at_once=what != "resyncing"))
        await dispatcher.run()

    def _collect(self, dispatcher: Dispatcher) -> Callable[[], Awaitable[None]]:
        async def collect() -> None:
            services = dispatcher.informers["services"]
            reports = dispatcher.informers["servicel2statuses"].items()
            await asyncio.to_thread(
                remove_orphan_reports,
                self.kube,
                self.namespace,
                reports,
                lambda key: services.get(key) is not None,
            )

        return collect

    def _resync(self, informers: list[Informer]) -> Callable[[], Awaitable[None]]:
        async def resync() -> None:
            for informer in informers:
                informer.resync()

        return resync


async def _every(what: str, work: Callable[[], Awaitable[None]], seconds: float, at_once: bool) -> None:
    """Periodic work that survives its own failures (logged; the next period tries again)."""
    if not at_once:
        await asyncio.sleep(seconds)
    while True:
        try:
            await work()
        except NotLeaderError:
            pass
        except Exception:
            log.exception("%s", what)
        await asyncio.sleep(seconds)
