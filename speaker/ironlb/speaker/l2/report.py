"""Who answers for each IP, told to the cluster off the speaker's loop: a ServiceL2Status object per (Service,
IP) in IronLB's namespace and an ``Announcing`` event on the Service. Speakers never write Services.

The node taking an IP over writes the object (a takeover rewrites the same object: its name comes from the
Service and the IP); the node letting it go deletes it, only if it still names this node (conditional on
its resourceVersion). One worker thread does it all: a survivor taking over 1,000 IPs must not start 1,000
threads competing with the loop while heartbeats matter most.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import queue
import threading
from collections.abc import Callable

from ironlb.api import GROUP, VERSION
from ironlb.api.events import ObjectRef, event_body
from ironlb.api.kube import ApiError, KubeClient, custom_path

from .responder import IPAddress

log = logging.getLogger("ironlb.speaker.l2")
KIND, PLURAL = "ServiceL2Status", "servicel2statuses"
Report = tuple[str, IPAddress, tuple[str, ...], bool]  # (Service, IP, interfaces, answering)


def status_name(service: str, ip: str) -> str:
    return "l2-" + hashlib.sha256(f"{service}/{ip}".encode()).hexdigest()[:20]


def status_object(
    namespace: str, service: str, ip: str, node: str, interfaces: tuple[str, ...]
) -> dict[str, object]:
    service_namespace, service_name = service.split("/", 1)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": status_name(service, ip),
            "namespace": namespace,
            "labels": {
                f"{GROUP}/service-namespace": service_namespace,
                f"{GROUP}/service-name": service_name,
            },
        },
        "spec": {},
        "status": {
            "serviceNamespace": service_namespace,
            "serviceName": service_name,
            "ip": ip,
            "node": node,
            "mode": "Layer2",
            "interfaces": list(interfaces),
        },
    }


class AnnouncementReporter:
    def __init__(
        self,
        kube: KubeClient,
        node: str,
        namespace: str,
        uid_of: Callable[[str], str | None],
        stop: threading.Event,
        pace: Callable[[], None] | None = None,
        answering_now: Callable[[str, IPAddress], bool] | None = None,
    ) -> None:
        self.kube, self.node, self.namespace, self.uid_of = kube, node, namespace, uid_of
        # whether this node answers for (Service, IP) now: a queued report the loop has since overtaken
        # (taken over, then handed back) is dropped, not written after the new owner's
        self._answering_now = answering_now
        self._pace = pace  # after each report: under a CPU quota, reports wait, heartbeats do not
        self.manager = f"ironlb-speaker-{node}"
        self.reports: queue.Queue[Report] = queue.Queue()
        self._stop = stop
        threading.Thread(target=self._work, name="announcing-reports", daemon=True).start()

    def answering(self, service: str, ip: IPAddress, interfaces: tuple[str, ...]) -> None:
        self.reports.put((service, ip, interfaces, True))

    def released(self, service: str, ip: IPAddress) -> None:
        self.reports.put((service, ip, (), False))

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                service, ip, interfaces, answering = self.reports.get(timeout=0.5)
            except queue.Empty:
                continue
            if self._answering_now is not None and self._answering_now(service, ip) != answering:
                continue  # overtaken: the report of what the loop does now is queued behind this one
            self._handle(service, ip, interfaces, answering)

    def _handle(self, service: str, ip: IPAddress, interfaces: tuple[str, ...], answering: bool) -> None:
        """The event does not wait for the report, nor depend on it."""
        steps: list[Callable[[], None]] = (
            [
                functools.partial(self._event, service, ip),
                functools.partial(self._write, service, str(ip), interfaces),
            ]
            if answering
            else [functools.partial(self._remove, service, str(ip))]
        )
        for step in steps:
            try:
                step()
            except ApiError as error:
                log.warning("reporting %s %s: %s", service, ip, error)
            if self._pace is not None:  # each request is a unit: a report is three, too long for one
                self._pace()

    def _path(self, service: str, ip: str) -> str:
        return custom_path(GROUP, VERSION, self.namespace, PLURAL, status_name(service, ip))

    def _write(self, service: str, ip: str, interfaces: tuple[str, ...]) -> None:
        if not self._still(service, ip, True):  # overtaken while the event was sent (paced)
            return
        body = status_object(self.namespace, service, ip, self.node, interfaces)
        status = body.pop("status")
        path = self._path(service, ip)
        self.kube.apply(path, body, field_manager=self.manager)
        if self._pace is not None:
            self._pace()
        if self._still(service, ip, True):
            self.kube.apply(path + "/status", {**body, "status": status}, field_manager=self.manager)

    def _still(self, service: str, ip: str, answering: bool) -> bool:
        """This node still answers (or still does not) for (Service, IP), as the queued entry said."""
        if self._answering_now is None:
            return True
        return self._answering_now(service, ipaddress.ip_address(ip)) == answering

    def _remove(self, service: str, ip: str) -> None:
        path = self._path(service, ip)
        try:
            current = self.kube.get(path)
        except ApiError as error:
            if error.status == 404:
                return
            raise
        if (current.get("status") or {}).get("node") != self.node:
            return  # another node took it over: it is that node's report now
        options = {"preconditions": {"resourceVersion": current["metadata"]["resourceVersion"]}}
        try:
            self.kube.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", **options})
        except ApiError as error:
            if error.status not in (404, 409):  # gone already, or rewritten by the new owner meanwhile
                raise

    def _event(self, service: str, ip: IPAddress) -> None:
        namespace, name = service.split("/", 1)
        reference = ObjectRef("v1", "Service", namespace, name, uid=self.uid_of(service))
        event = event_body(
            reference,
            "Normal",
            "Announcing",
            f"announcing {ip} from node {self.node} (Layer 2)",
            self.node,
            component="ironlb-speaker",
        )
        event["source"]["host"] = self.node
        self.kube.request("POST", f"/api/v1/namespaces/{namespace}/events", event)
