"""An informer: a collection's objects kept in a local store by list-then-watch, in a thread of its own.

It does what client-go's reflector does, because the kubernetes package has no informer:

- **A list replaces the store**: objects gone from a new list are delivered as DELETED, so nothing deleted
  during a watch gap stays behind.
- **Watches resume** from the last resourceVersion seen (events and bookmarks), so a broken stream costs
  one request, not a re-list; a ``410 Gone`` (the version was compacted away) leads to a re-list.
- **Nothing waits forever**: watches ask the server to end them after a jittered few minutes, and a
  connection silent for longer than ``read_timeout`` (bookmarks arrive about every minute) is dropped and
  re-opened; TCP keepalive is on (``KubeClient``). Failures back off exponentially with jitter, honouring
  ``Retry-After``.
- Handlers see ``(type, object)`` with type ADDED, MODIFIED or DELETED; an exception in a handler is logged
  and never ends the informer. ``transform`` trims objects before they are stored and delivered.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .kube import ApiError, Json, KubeClient

log = logging.getLogger("ironlb.api.informer")
Handler = Callable[[str, Json], None]


class GoneError(Exception):
    """The watch's resourceVersion is too old: list again."""


@dataclass
class Backoff:
    """Exponential back-off with full jitter (client-go's 800 ms to 30 s shape), reset after success."""

    initial: float = 0.8
    cap: float = 30.0
    attempt: int = 0

    def next(self, at_least: float | None = None) -> float:
        ceiling = min(self.cap, self.initial * 2**self.attempt)
        self.attempt += 1
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, at_least or 0.0)

    def reset(self) -> None:
        self.attempt = 0


def object_key(obj: Json) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))


@dataclass
class Informer:
    kube: KubeClient
    path: str
    handle: Handler
    query: dict[str, str] = field(default_factory=dict)
    transform: Callable[[Json], Json] | None = None
    watch_seconds: tuple[int, int] = (240, 360)  # the server ends each watch after this long (jittered)
    read_timeout: float = 90.0  # silence on a watch longer than this: the connection is presumed dead
    backoff: Backoff = field(default_factory=Backoff)
    pace: Callable[[], None] | None = None  # called after each delivered event (a CPU budget's ``spend``)

    def __post_init__(self) -> None:
        self.resource_version = ""
        self.synced = threading.Event()  # set once the first list has been delivered
        self.last_contact = 0.0  # monotonic time of the last successful list or watch line
        self.lists = 0  # how many lists (the first and every re-list): tests and metrics read it
        self._store: dict[str, Json] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------- public
    def start(self, stop: threading.Event) -> Informer:
        self._thread = threading.Thread(
            target=self.run, args=(stop,), name=f"informer {self.path}", daemon=True
        )
        self._thread.start()
        return self

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end (after ``stop``); True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def items(self) -> list[Json]:
        with self._lock:
            return list(self._store.values())

    def get(self, key: str) -> Json | None:
        with self._lock:
            return self._store.get(key)

    def resync(self) -> None:
        """Deliver every stored object again as MODIFIED (level-triggered: handlers converge on it)."""
        for obj in self.items():
            self._deliver("MODIFIED", obj)

    def run(self, stop: threading.Event) -> None:
        """List, then watch, until ``stop``; survives every API error."""
        relist = True
        while not stop.is_set():
            try:
                if relist:
                    self._list()
                    relist = False
                self._watch(stop)
            except GoneError:
                log.info("%s: resourceVersion %s is gone; listing again", self.path, self.resource_version)
                relist = True
            except ApiError as error:
                relist = relist or error.status == 410
                delay = self.backoff.next(error.retry_after)
                log.warning("%s: %s; retrying in %.1f s", self.path, error, delay)
                stop.wait(delay)

    # ----------------------------------------------------------------------------------------- inside
    def _list(self) -> None:
        listed = self.kube.list_page(self.path, self.query)
        objects = {object_key(o): self._trim(o) for o in listed.get("items", [])}
        with self._lock:
            previous, self._store = self._store, dict(objects)
            self.resource_version = str(listed["metadata"]["resourceVersion"])
        self.lists += 1
        self.last_contact = time.monotonic()
        self.backoff.reset()
        for key, old in previous.items():
            if key not in objects:
                self._deliver("DELETED", old)
        for key, obj in objects.items():
            before = previous.get(key)
            if before is None:
                self._deliver("ADDED", obj)
            elif _version(before) != _version(obj):
                self._deliver("MODIFIED", obj)
        self.synced.set()

    def _watch(self, stop: threading.Event) -> None:
        query = {
            **self.query,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(random.randint(*self.watch_seconds)),
        }
        for event in self.kube.watch(self.path, query, read_timeout=self.read_timeout):
            if stop.is_set():
                return
            self.last_contact = time.monotonic()
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 0)
                if code == 410:
                    raise GoneError()
                raise ApiError(code, str(obj.get("message", "watch error")))
            version = _version(obj)
            if kind == "BOOKMARK":
                if version:
                    self.resource_version = version
                continue
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            obj = self._trim(obj)
            key = object_key(obj)
            with self._lock:
                if kind == "DELETED":
                    self._store.pop(key, None)
                else:
                    self._store[key] = obj
                if version:
                    self.resource_version = version
            self.backoff.reset()
            self._deliver(kind, obj)

    def _trim(self, obj: Json) -> Json:
        return self.transform(obj) if self.transform is not None else obj

    def _deliver(self, kind: str, obj: Json) -> None:
        try:
            self.handle(kind, obj)
        except Exception:  # a handler's bug must not end the informer
            log.exception("%s: handling %s %s", self.path, kind, object_key(obj))
        if self.pace is not None:
            self.pace()


def strip_managed_fields(obj: Json) -> Json:
    """client-go's ``TransformStripManagedFields``: server-side apply's bookkeeping is a large part of each
    stored object (one entry per writer) and no handler reads it."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        obj = {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}
    return obj


def _version(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def informers_synced(informers: list[Informer], stop: threading.Event, timeout: float | None = None) -> bool:
    """Wait until every informer has delivered its first list (or ``stop``); True when all have."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for informer in informers:
        while not informer.synced.wait(0.1):
            if stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                return False
    return True
