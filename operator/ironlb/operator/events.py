"""Kubernetes Events on Services and IronLB objects, posted from a queue so no handler ever waits on them.

Posted by IronLB itself rather than through kopf: kopf's poster only works inside kopf's handler context,
and IronLB also reports from its own tasks (pool status, re-evaluation after a pool change).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ironlb.api.events import ObjectRef, event_body
from ironlb.api.kube import ApiError, KubeClient

log = logging.getLogger("ironlb.events")
ATTEMPTS = 5  # a transient failure is retried (0.5 s, 1 s, 2 s, 4 s) before the event is dropped


class EventPoster:
    """A bounded queue drained by a few workers; when the API is slower than the events, the newest wait."""

    def __init__(self, kube: KubeClient, instance: str, workers: int = 4, limit: int = 20_000) -> None:
        self.kube = kube
        self.instance = instance
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(limit)
        self.workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._drain()) for _ in range(self.workers)]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

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
                for attempt in range(ATTEMPTS):
                    try:
                        await asyncio.to_thread(self.kube.request, "POST", path, body)
                        break
                    except ApiError as error:
                        if not error.transient or attempt == ATTEMPTS - 1:
                            log.warning("posting event %s: %s", body["reason"], error)
                            break
                        await asyncio.sleep(error.retry_after or 0.5 * 2**attempt)
            finally:
                self.queue.task_done()
