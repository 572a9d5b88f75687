"""The invariants IronLB never breaks, checked from outside while faults are injected (the chaos run).

``InvariantChecker`` is fed every Service change and every Warning event (by informers of the chaos run,
with the admin's credentials, never through a fault proxy) and keeps, purely:

1. no IP held by two Services, unless their sharing keys allow it (checked at every change);
2. no Service's IP changes unless its own request changed (pool, requested IPs, sharing key, families);
3. which Services have neither an IP nor a Warning event saying why (``unconverged``), for the
   convergence deadline after the faults stop.

The wire invariants (4: answered by exactly one node, nothing unallocated answered; 5: a deleted Service's
IP silent within 5 s) need a prober and live in the chaos run; their findings are recorded here too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]
REQUEST_ANNOTATIONS = ("address-pool", "loadBalancerIPs", "allow-shared-ip")


@dataclass(frozen=True)
class Violation:
    invariant: int
    at: float
    message: str


@dataclass(frozen=True)
class Seen:
    uid: str
    ips: frozenset[str]
    request: tuple[Any, ...]
    sharing: str | None
    request_changed: bool  # the request changed since these IPs were first shown


def request_of(service: Json) -> tuple[Any, ...]:
    """Everything a Service asks of the allocator: a change of any of it may move its IP."""
    annotations = service["metadata"].get("annotations") or {}
    asked = tuple(
        sorted((k, v) for k, v in annotations.items() if k.rsplit("/", 1)[-1] in REQUEST_ANNOTATIONS)
    )
    spec = service.get("spec") or {}
    keys = ("type", "loadBalancerClass", "loadBalancerIP", "ipFamilies", "ipFamilyPolicy")
    return (asked, tuple(str(spec.get(k)) for k in keys))


def sharing_of(service: Json) -> str | None:
    annotations = service["metadata"].get("annotations") or {}
    return next((v for k, v in annotations.items() if k.endswith("/allow-shared-ip")), None)


def ips_of(service: Json) -> frozenset[str]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return frozenset(entry["ip"] for entry in ingress if entry.get("ip"))


@dataclass
class InvariantChecker:
    clock: Callable[[], float] = time.monotonic
    services: dict[str, Seen] = field(default_factory=dict)
    holders: dict[str, set[str]] = field(default_factory=dict)  # IP -> Services showing it
    warned: dict[str, float] = field(default_factory=dict)  # Service -> time of its last Warning event
    violations: list[Violation] = field(default_factory=list)
    deleted: list[tuple[str, frozenset[str], float]] = field(default_factory=list)  # (Service, IPs, when)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._told: set[tuple[Any, ...]] = set()
        self.context = ""  # what was going on (the last fault), added to each violation's message

    def on_service(self, kind: str, service: Json) -> None:
        key = f"{service['metadata']['namespace']}/{service['metadata']['name']}"
        with self.lock:
            before = self.services.pop(key, None)
            for ip in before.ips if before else ():
                self.holders.get(ip, set()).discard(key)
            if kind == "DELETED":
                if before and before.ips:
                    self.deleted.append((key, before.ips, self.clock()))
                self.warned.pop(key, None)
                return
            uid, ips, request = str(service["metadata"].get("uid")), ips_of(service), request_of(service)
            same = before is not None and before.uid == uid
            changed = same and before is not None and (before.request_changed or before.request != request)
            kept = before is not None and before.ips == ips
            seen = Seen(uid, ips, request, sharing_of(service), changed and kept)
            self.services[key] = seen
            lost = before.ips - ips if same and before is not None else frozenset()
            if lost and not changed:
                self._violate(2, f"{key} lost {sorted(lost)} (now {sorted(ips)}) with its request unchanged")
            for ip in seen.ips:
                holders = self.holders.setdefault(ip, set())
                holders.add(key)
                sharing = {self.services[h].sharing for h in holders}
                if len(holders) > 1 and (None in sharing or len(sharing) > 1):
                    self._violate(1, f"{ip} is held by {sorted(holders)}")

    def relist(self, services: list[Json]) -> list[str]:
        """The Services as a fresh list shows them (what is gone is deleted); returns those whose IPs or
        presence the checker had wrong."""
        listed = {f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in services}
        with self.lock:
            known = {key: seen.ips for key, seen in self.services.items()}
        corrected = sorted(
            [key for key in known if key not in listed]
            + [key for key, body in listed.items() if known.get(key) != ips_of(body)]
        )
        for key in known:
            if key not in listed:
                namespace, name = key.split("/", 1)
                self.on_service("DELETED", {"metadata": {"namespace": namespace, "name": name}})
        for body in listed.values():
            self.on_service("MODIFIED", body)
        return corrected

    def on_event(self, kind: str, event: Json) -> None:
        involved = event.get("involvedObject") or {}
        if kind == "DELETED" or event.get("type") != "Warning" or involved.get("kind") != "Service":
            return
        with self.lock:
            self.warned[f"{involved.get('namespace')}/{involved.get('name')}"] = self.clock()

    def unconverged(self, among: Iterable[str] | None = None) -> list[str]:
        """Services (of ``among``, or all) with neither an IP nor a Warning event saying why."""
        with self.lock:
            keys = self.services if among is None else [k for k in among if k in self.services]
            return sorted(k for k in keys if not self.services[k].ips and k not in self.warned)

    def allocated(self) -> dict[str, str]:
        """IP -> the Service showing it."""
        with self.lock:
            return {ip: next(iter(keys)) for ip, keys in self.holders.items() if keys}

    def record(self, invariant: int, message: str) -> None:
        with self.lock:
            self._violate(invariant, message)

    def _violate(self, invariant: int, message: str) -> None:
        if (invariant, message) in self._told:
            return
        self._told.add((invariant, message))
        context = f" [{self.context}]" if self.context else ""
        self.violations.append(Violation(invariant, self.clock(), message + context))
