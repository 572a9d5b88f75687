"""Kubernetes Events on Services and IronLB objects, posted from a queue so no handler ever waits on them.

Posted by IronLB itself rather than through kopf: kopf's poster only works inside kopf's handler context,
and IronLB also reports from its own tasks (pool status, re-evaluation after a pool change).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from ironlb.api.events import ObjectRef, event_body
from ironlb.api.kube import ApiError, KubeClient, NotLeaderError

log = logging.getLogger("ironlb.events")
RETRY_CAP = 30.0  # a transient failure is retried for as long as it lasts, at most this far apart


class EventPoster:
    """A bounded queue drained by a few workers; when the API is slower than the events, the newest wait."""

    def __init__(self, kube: KubeClient, instance: str, workers: int = 4, limit: int = 20_000) -> None:
        self.kube = kube
        self.instance = instance
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(limit)
        self.workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0  # bumped when this replica steps down: retries of older events stop

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._drain()) for _ in range(self.workers)]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def drop_queued(self) -> None:
        """This replica stepped down: what it had to say, the next leader says again from its own state
        (events being retried now give up at their next attempt)."""
        self.generation += 1
        while not self.queue.empty():
            self.queue.get_nowait()
            self.queue.task_done()

    def post(self, obj: ObjectRef, kind: str, reason: str, message: str) -> None:
        """Queue an event; safe from the event loop and from worker threads (asyncio.to_thread)."""
        body = event_body(obj, kind, reason, message, self.instance)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is not None and running is not self._loop:
            self._loop.call_soon_threadsafe(self._enqueue, body)  # asyncio.Queue is not thread-safe
        else:
            self._enqueue(body)

    def _enqueue(self, body: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(body)
        except asyncio.QueueFull:
            log.warning("event queue full; dropped %s on %s", body["reason"], body["involvedObject"]["name"])

    async def _drain(self) -> None:
        while True:
            body = await self.queue.get()
            path = f"/api/v1/namespaces/{body['metadata']['namespace']}/events"
            try:
                await self._post(path, body)
            finally:
                self.queue.task_done()

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        """Until it lands, or is refused for good: the reconcilers de-duplicate their events, so one
        dropped during an outage would never be told again (a Service left without an IP and a word)."""
        attempt, generation = 0, self.generation
        while generation == self.generation:
            try:
                await asyncio.to_thread(self.kube.request, "POST", path, body)
                return
            except ApiError as error:
                # refused by the write guard while a lease renewal is late: it may land, so wait (a
                # replica that steps down drops its queue: the next leader tells it all again)
                if not error.transient and not isinstance(error, NotLeaderError):
                    log.warning("posting event %s: %s", body["reason"], error)
                    return
                if attempt == 3:
                    log.warning("posting event %s: %s; retrying until it lands", body["reason"], error)
                delay = min(RETRY_CAP, 0.5 * 2**attempt)
                await asyncio.sleep(max(error.retry_after or 0.0, random.uniform(delay / 2, delay)))
                attempt += 1
