"""Small helpers for tests that drive a real control plane through kubectl."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import yaml
from ironlb.api import GROUP, VERSION
from ironlb.api.kube import ApiError, KubeClient, custom_path
from ironlb.speaker.l2.report import PLURAL, status_name
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.endpoints import family_of, ready_endpoint_slice
from ironlb_lab.l2lab import L2Lab

_names = itertools.count(1)


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


_created_namespaces: list[str] = []


def remove_created_namespaces(plane: ControlPlane) -> None:
    """End of a lab module: its Services go at once (an operator started later would adopt their IPs),
    then their namespaces (the namespace controller finishes in the background)."""
    for name in _created_namespaces:
        plane.kubectl("delete", "services", "--all", "-n", name, "--wait=true", check=False)
        plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
    _created_namespaces.clear()


class Cluster:
    def __init__(self, plane: ControlPlane, namespace: str = "ironlb-system") -> None:
        self.plane = plane
        self.namespace = namespace

    def apply(self, *documents: dict[str, Any]) -> None:
        self.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        result = self.plane.kubectl(
            "get", kind, name, "-n", namespace or self.namespace, "-o", "json", check=False
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    def new_namespace(self, labels: dict[str, str] | None = None) -> str:
        name = f"t{next(_names)}-{int(time.time() * 1000) % 100000}"
        self.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        )
        _created_namespaces.append(name)
        return name

    def pool(self, name: str, *addresses: str, labels: dict[str, str] | None = None, **spec: Any) -> None:
        self.apply(
            {
                "apiVersion": "ironlb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": {"announce": "yes"} if labels is None else labels,
                },
                "spec": {"addresses": list(addresses), **spec},
            }
        )

    def service(
        self,
        namespace: str,
        name: str,
        *,
        ports: tuple[int, ...] = (80,),
        annotations: dict[str, str] | None = None,
        ready_endpoint: bool = False,
        **spec: Any,
    ) -> None:
        """A LoadBalancer Service; with ``ready_endpoint``, an EndpointSlice giving it one ready endpoint
        too (speakers announce only Services with one)."""
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": name},
                "ports": [{"name": f"p{port}", "port": port, "protocol": "TCP"} for port in ports],
                **spec,
            },
        }
        self.apply(service)
        if ready_endpoint:
            self.apply(ready_endpoint_slice(namespace, name, family=family_of(service)))

    def ingress(self, namespace: str, name: str) -> list[str]:
        service = self.get("service", name, namespace) or {}
        return [
            entry["ip"] for entry in (service.get("status", {}).get("loadBalancer", {}).get("ingress") or [])
        ]

    def wait_ingress(self, namespace: str, name: str, count: int = 1, timeout: float = 30) -> list[str]:
        return wait_until(  # type: ignore[no-any-return]
            lambda: (ips := self.ingress(namespace, name)) and len(ips) >= count and ips,
            timeout,
            f"an IP on {namespace}/{name}",
        )

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        result = self.plane.kubectl(
            "get", "events", "-n", namespace, "-o", "json", "--field-selector", f"involvedObject.name={name}"
        )
        return list(json.loads(result.stdout)["items"])

    def wait_event(self, namespace: str, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
        return wait_until(  # type: ignore[no-any-return]
            lambda: next((e for e in self.events(namespace, name) if e["reason"] == reason), None),
            timeout,
            f"event {reason} on {namespace}/{name}",
        )

    def pool_status(self, name: str) -> dict[str, Any]:
        return dict((self.get("ipaddresspool", name) or {}).get("status", {}))

    def condition(self, pool: str, kind: str) -> dict[str, Any]:
        for condition in self.pool_status(pool).get("conditions", []):
            if condition["type"] == kind:
                return dict(condition)
        return {}


def answered_service(lab: L2Lab, name: str) -> str:
    """A new LoadBalancer Service in a new namespace; its IP, once a lab node answers ARP for it."""
    cluster = Cluster(lab.plane, namespace=lab.namespace)
    namespace = cluster.new_namespace()
    cluster.service(namespace, name, ready_endpoint=True)
    try:
        ip = cluster.wait_ingress(namespace, name, timeout=60)[0]
    except AssertionError as error:  # what a person would look at next
        events = lab.plane.kubectl("get", "events", "-n", namespace, check=False).stdout
        pools = lab.plane.kubectl(
            "get", "ipaddresspools", "-n", lab.namespace, "-o", "wide", check=False
        ).stdout
        raise AssertionError(f"{error}\nevents:\n{events}\npools:\n{pools}") from None
    wait_until(lambda: lab.arp(ip) != "", 30, f"a speaker to answer for {ip}")
    return ip


def report_exists(kube: KubeClient, namespace: str, service: str, ip: str) -> bool:
    """Whether the ServiceL2Status of (Service, IP) exists in ``namespace``."""
    try:
        kube.get(custom_path(GROUP, VERSION, namespace, PLURAL, status_name(service, ip)))
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True
