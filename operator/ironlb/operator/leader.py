"""Leader election with a coordination.k8s.io Lease, so two operator replicas never both allocate.

Why a Lease rather than kopf peering: kopf peering only pauses an operator when it sees a peer of higher
priority, which leaves a window where two replicas both act, and it needs extra CRDs. A Lease is Kubernetes'
own mutual-exclusion primitive (optimistic concurrency on resourceVersion). The operator acquires it before
kopf starts and exits at once if it cannot renew, so a partitioned leader stops before the lease expires and
another replica takes over.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ironlb.api.kube import ApiError, KubeClient

log = logging.getLogger("ironlb.leader")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaseElector:
    api: KubeClient
    namespace: str
    name: str
    identity: str
    lease_seconds: int = 15
    renew_seconds: float = 5.0
    retry_seconds: float = 2.0

    def _spec(self, transitions: int, acquired: dt.datetime | None = None) -> dict[str, Any]:
        now = _now()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": _micro_time(acquired or now),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def try_acquire(self) -> bool:
        """One attempt; True when this process holds the lease afterwards."""
        try:
            lease = self.api.get(f"{self._path}/{self.name}")
        except ApiError as error:
            if error.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(0),
            }
            try:
                self.api.request("POST", self._path, body)
                return True
            except ApiError as create_error:
                if create_error.status == 409:
                    return False
                raise
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = spec.get("renewTime")
        duration = spec.get("leaseDurationSeconds") or self.lease_seconds
        expired = (
            renewed is None or dt.datetime.fromisoformat(renewed) + dt.timedelta(seconds=duration) < _now()
        )
        if holder not in (None, "", self.identity) and not expired:
            return False
        transitions = (spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        acquired = dt.datetime.fromisoformat(spec["acquireTime"]) if holder == self.identity else None
        lease["spec"] = self._spec(transitions, acquired)
        try:
            self.api.request("PUT", f"{self._path}/{self.name}", lease)  # resourceVersion guards the race
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Give the lease up on a graceful stop, so a standby replica takes over at once."""
        try:
            lease = self.api.get(f"{self._path}/{self.name}")
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = None
            lease["spec"]["renewTime"] = None
            self.api.request("PUT", f"{self._path}/{self.name}", lease)
            log.info("released lease %s/%s", self.namespace, self.name)
        except (ApiError, OSError) as error:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, error)

    def acquire(self, on_wait: Callable[[], None] | None = None) -> None:
        """Block until this process is the leader."""
        while True:
            try:
                if self.try_acquire():
                    log.info("acquired lease %s/%s as %s", self.namespace, self.name, self.identity)
                    return
            except (ApiError, OSError) as error:
                log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            if on_wait is not None:
                on_wait()
            time.sleep(self.retry_seconds)

    def keep(self, on_lost: Callable[[], None]) -> threading.Thread:
        """Renew in a daemon thread; call ``on_lost`` when renewal fails for longer than the lease lasts."""

        def renew_forever() -> None:
            last_renewed = time.monotonic()
            while True:
                time.sleep(self.renew_seconds)
                try:
                    if self.try_acquire():
                        last_renewed = time.monotonic()
                        continue
                    log.error("lease %s/%s was taken over", self.namespace, self.name)
                    on_lost()
                    return
                except (ApiError, OSError) as error:
                    log.warning("renewing lease %s/%s failed: %s", self.namespace, self.name, error)
                # stop acting before another replica may take over
                if time.monotonic() - last_renewed > self.lease_seconds - self.renew_seconds:
                    on_lost()
                    return

        thread = threading.Thread(target=renew_forever, name="lease-renewal", daemon=True)
        thread.start()
        return thread
