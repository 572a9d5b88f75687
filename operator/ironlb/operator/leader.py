"""Leader election with a coordination.k8s.io Lease, so two operator replicas never both allocate.

It follows client-go's leaderelection, because the kubernetes package's port compares wall-clock times,
sets no request timeouts and dies on a connection error:

- **Expiry is observed, never computed from another machine's clock.** A candidate remembers, on its own
  monotonic clock, when it last saw the lease *change* (its resourceVersion). It may take a lease held by
  another only after seeing no change for the lease's whole duration. Clock skew between nodes cannot
  cause a takeover.
- **A leader stops acting before anyone may take over.** It renews every ``retry_seconds``; every request
  has a timeout well inside the deadline; if no renewal has succeeded for ``renew_deadline`` (shorter than
  the lease) it stops leading. ``leading()`` turns False at that same moment, and it is the write guard of
  the operator's API client, so not one write leaves a replica that may have lost the lease, even one that
  was frozen (SIGSTOP) and resumes.
- **Optimistic concurrency** on the Lease's resourceVersion decides races between candidates.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from ironlb.api.kube import ApiError, KubeClient

log = logging.getLogger("ironlb.leader")


def _micro_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Observation:
    """What a candidate last saw of the lease, and when (its own monotonic clock)."""

    resource_version: str
    holder: str | None
    duration: float
    seen_at: float


def may_take(observation: Observation | None, me: str, now: float) -> bool:
    """Whether ``me`` may write the lease now (pure): it is free, ours, or unchanged for its duration."""
    if observation is None or observation.holder in (None, "", me):
        return True
    return now - observation.seen_at >= observation.duration


def observe(previous: Observation | None, lease: dict[str, Any], now: float, default: float) -> Observation:
    """Update the observation from a read of the lease: the clock restarts only when the lease changed."""
    version = str(lease["metadata"]["resourceVersion"])
    if previous is not None and previous.resource_version == version:
        return previous
    spec = lease.get("spec") or {}
    return Observation(
        version, spec.get("holderIdentity"), float(spec.get("leaseDurationSeconds") or default), now
    )


@dataclass
class LeaseElector:
    api: KubeClient
    namespace: str
    name: str
    identity: str
    lease_seconds: float = 15.0
    renew_deadline: float = 10.0  # no renewal for this long: stop leading (< lease_seconds)
    retry_seconds: float = 2.0
    clock: Callable[[], float] = time.monotonic
    observation: Observation | None = field(default=None, init=False)
    renewed_at: float | None = field(default=None, init=False)  # start of the last successful renewal

    def __post_init__(self) -> None:
        self._released = threading.Event()  # set by release(): the renewal thread must not take it back
        self._term_over = threading.Event()  # set by step_down(): this term's renewal thread ends
        self._renewing = threading.Lock()  # a renewal and the release never interleave
        if not self.renew_deadline < self.lease_seconds:
            raise ValueError("the renew deadline must be shorter than the lease")
        # every request ends well inside the deadline, so one stuck request cannot outlive the lease
        budget = min(5.0, self.renew_deadline / 3)
        self.timeout = urllib3.Timeout(connect=budget / 2, read=budget)

    @classmethod
    def for_lease(
        cls, api: KubeClient, namespace: str, name: str, identity: str, seconds: float
    ) -> LeaseElector:
        """client-go's proportions: renew deadline 2/3 of the lease, retry period 2/15 of it."""
        return cls(api, namespace, name, identity, seconds, seconds * 2 / 3, max(0.5, seconds * 2 / 15))

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def leading(self) -> bool:
        """True while the last successful renewal is younger than the renew deadline (the write guard)."""
        renewed = self.renewed_at
        return renewed is not None and self.clock() - renewed < self.renew_deadline

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this process holds the lease afterwards."""
        started = self.clock()
        try:
            lease = self.api.request("GET", f"{self._path}/{self.name}", timeout=self.timeout)
        except ApiError as error:
            if error.status != 404:
                raise
            return self._create(started)
        self.observation = observe(self.observation, lease, started, self.lease_seconds)
        if not may_take(self.observation, self.identity, started):
            return False
        spec = lease.get("spec") or {}
        mine = spec.get("holderIdentity") == self.identity
        now = dt.datetime.now(dt.UTC)  # informational only: nobody compares these across machines
        lease["spec"] = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_seconds),
            "acquireTime": spec.get("acquireTime") if mine else _micro_time(now),
            "renewTime": _micro_time(now),
            "leaseTransitions": (spec.get("leaseTransitions") or 0) + (0 if mine else 1),
        }
        try:
            written = self.api.request("PUT", f"{self._path}/{self.name}", lease, timeout=self.timeout)
        except ApiError as error:
            if error.status == 409:  # another candidate wrote first
                return False
            raise
        self._won(written, started)
        return True

    def _create(self, started: float) -> bool:
        now = _micro_time(dt.datetime.now(dt.UTC))
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_seconds),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            written = self.api.request("POST", self._path, body, timeout=self.timeout)
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        self._won(written, started)
        return True

    def _won(self, lease: dict[str, Any], started: float) -> None:
        self.observation = observe(None, lease, started, self.lease_seconds)
        self.renewed_at = started

    def acquire(self, stop: threading.Event, on_wait: Callable[[], None] | None = None) -> bool:
        """Block until this process leads (True) or ``stop`` is set (False); survives every API error."""
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    log.info("acquired lease %s/%s as %s", self.namespace, self.name, self.identity)
                    return True
            except ApiError as error:
                log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            if on_wait is not None:
                on_wait()
            stop.wait(self.retry_seconds)
        return False

    def keep(self, on_lost: Callable[[], object]) -> threading.Thread:
        """Renew in a daemon thread; call ``on_lost`` once leading ended (taken over, or no renewal for the
        renew deadline), which is before another candidate may take the lease."""

        term_over = self._term_over = threading.Event()

        def renew_forever() -> None:
            while not term_over.wait(self.retry_seconds):
                try:
                    with self._renewing:
                        if self._released.is_set() or term_over.is_set():
                            return
                        renewed = self.try_acquire_or_renew()
                    if renewed:
                        continue
                    log.error("lease %s/%s was taken over", self.namespace, self.name)
                    self.renewed_at = None
                    on_lost()
                    return
                except ApiError as error:
                    log.warning("renewing lease %s/%s failed: %s", self.namespace, self.name, error)
                if not self.leading():
                    log.error(
                        "lease %s/%s not renewed for %.1f s: stopping before it can expire",
                        self.namespace,
                        self.name,
                        self.renew_deadline,
                    )
                    on_lost()
                    return

        thread = threading.Thread(target=renew_forever, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def step_down(self) -> None:
        """End this term (the work failed): stop renewing, and lead no more until acquired again."""
        self._term_over.set()
        self.renewed_at = None

    def release(self) -> None:
        """Give the lease up on a graceful stop, so a standby replica takes over at once."""
        self._released.set()
        self._term_over.set()
        with self._renewing:
            if self.leading():
                self._give_up()

    def _give_up(self) -> None:
        try:
            lease = self.api.request("GET", f"{self._path}/{self.name}", timeout=self.timeout)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = None
            lease["spec"]["renewTime"] = None
            self.api.request("PUT", f"{self._path}/{self.name}", lease, timeout=self.timeout)
            self.renewed_at = None
            log.info("released lease %s/%s", self.namespace, self.name)
        except ApiError as error:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, error)
