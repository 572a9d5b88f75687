"""Kubernetes Events as IronLB posts them (operator and speakers): one body shape, one reporting identity."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

COMPONENT = "ironlb-operator"


@dataclass(frozen=True)
class ObjectRef:
    """The object an event is about: read once from its body, enough to point at it."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None
    resource_version: str | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectRef:
        metadata = body["metadata"]
        return cls(
            api_version=str(body.get("apiVersion", "v1")),
            kind=str(body.get("kind", "")),
            namespace=str(metadata.get("namespace", "")),
            name=str(metadata["name"]),
            uid=metadata.get("uid"),
            resource_version=metadata.get("resourceVersion"),
        )

    @property
    def key(self) -> str:
        """One key per object (kind, namespace, name): events are de-duplicated per object."""
        return f"{self.kind}:{self.namespace}/{self.name}"


# (object, type, reason, message): queued, never blocking the caller
EventSink = Callable[[ObjectRef, str, str, str], None]


def event_body(
    obj: ObjectRef,
    kind: str,
    reason: str,
    message: str,
    instance: str,
    component: str = COMPONENT,
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{obj.name}.", "namespace": obj.namespace},
        "involvedObject": {
            "apiVersion": obj.api_version,
            "kind": obj.kind,
            "name": obj.name,
            "namespace": obj.namespace,
            "uid": obj.uid,
            "resourceVersion": obj.resource_version,
        },
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": component},
        "reportingComponent": f"ironlb.io/{component}",
        "reportingInstance": instance,
        "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": reason,
        "count": 1,
    }
