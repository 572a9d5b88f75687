"""Installs and keeps the speaker DaemonSet, its ServiceAccount and settings; reports the operator's state.

Objects are written with server-side apply (field manager ``ironlb-operator``), so a reconcile is one
idempotent request per object, and a user's edit to a field IronLB owns is put back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ironlb.api import GROUP, VERSION
from ironlb.api.config import SINGLETON_NAME, IronLBConfigSpec
from ironlb.api.events import EventSink, ObjectRef
from ironlb.api.kube import ApiError, KubeClient, custom_path

from .conditions import now
from .installstatus import install_status
from .manifests import (
    HEARTBEAT_SECRET,
    SPEAKER_NAME,
    heartbeat_secret,
    service_account,
    speaker_daemonset,
    speaker_settings_configmap,
)

log = logging.getLogger("ironlb.speakers")


def object_path(manifest: Mapping[str, Any]) -> str:
    kind, metadata = manifest["kind"], manifest["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    if kind == "DaemonSet":
        return f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}"
    plural = {"ConfigMap": "configmaps", "ServiceAccount": "serviceaccounts", "Secret": "secrets"}[kind]
    return f"/api/v1/namespaces/{namespace}/{plural}/{name}"


@dataclass
class SpeakerInstaller:
    kube: KubeClient
    namespace: str
    image: str
    post_event: EventSink
    enabled: bool = True
    _last_status: dict[str, Any] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def config_path(self) -> str:
        return custom_path(GROUP, VERSION, self.namespace, "ironlbconfigs")

    def _config(self) -> dict[str, Any]:
        """The IronLBConfig singleton, created with defaults when missing (so its status has a home)."""
        try:
            return self.kube.get(f"{self.config_path}/{SINGLETON_NAME}")
        except ApiError as error:
            if error.status != 404:
                raise
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "IronLBConfig",
            "metadata": {"name": SINGLETON_NAME, "namespace": self.namespace},
            "spec": {},
        }
        try:
            return self.kube.request("POST", self.config_path, body)
        except ApiError as error:
            if error.status == 409:
                return self.kube.get(f"{self.config_path}/{SINGLETON_NAME}")
            raise

    def _apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return self.kube.apply(object_path(manifest), dict(manifest))

    def _get(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            return self.kube.get(object_path(manifest))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def _exists(self, manifest: Mapping[str, Any]) -> bool:
        return self._get(manifest) is not None

    def _ensure_heartbeat_key(self) -> None:
        """Create the heartbeat key once, never rewrite it: speakers with different keys ignore each other."""
        stub = {"kind": "Secret", "metadata": {"name": HEARTBEAT_SECRET, "namespace": self.namespace}}
        if self._exists(stub):
            return
        try:
            manifest = heartbeat_secret(secrets.token_hex(32), self.namespace)
            self.kube.request("POST", f"/api/v1/namespaces/{self.namespace}/secrets", manifest)
            log.info("created the speakers' heartbeat key (Secret %s)", HEARTBEAT_SECRET)
        except ApiError as error:
            if error.status != 409:  # another replica created it first
                raise

    def reconcile_sync(self) -> None:
        config = self._config()
        error: str | None = None
        daemonset: dict[str, Any] | None = None
        stub = speaker_daemonset_stub(self.namespace)
        existed = self._exists(stub)
        try:
            settings = IronLBConfigSpec.model_validate(config.get("spec") or {}).speaker
            self._ensure_heartbeat_key()
            self._apply(service_account(SPEAKER_NAME, self.namespace, "speaker"))
            self._apply(speaker_settings_configmap(settings, self.namespace))
            daemonset = self._apply(speaker_daemonset(settings, self.image, self.namespace))
        except (ApiError, ValueError) as failure:
            error = f"applying the speaker objects failed: {failure}"
            log.error("%s", error)
            daemonset = self._get(stub)
        if daemonset is not None and not existed:
            self.post_event(
                ObjectRef.of(config),
                "Normal",
                "SpeakerDaemonSetCreated",
                f"created DaemonSet {SPEAKER_NAME} with image {self.image}",
            )
        status = install_status(
            daemonset,
            error,
            self.image,
            (config.get("status") or {}).get("conditions") or [],
            config["metadata"].get("generation"),
            now(),
        )
        comparable = json.dumps(
            {**status, "conditions": [{**c, "lastTransitionTime": None} for c in status["conditions"]]},
            sort_keys=True,
        )
        if comparable == self._last_status.get("comparable"):
            return
        self._report_transitions(config, status)
        self.kube.merge_patch(f"{self.config_path}/{SINGLETON_NAME}/status", {"status": status})
        self._last_status = {"comparable": comparable, "status": status}

    def _report_transitions(self, config: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        before = {c["type"]: c for c in (self._last_status.get("status") or {}).get("conditions", [])}
        for condition in status["conditions"]:
            old = before.get(condition["type"])
            if old is not None and (old["status"], old["reason"]) == (
                condition["status"],
                condition["reason"],
            ):
                continue
            bad = (condition["type"] == "Degraded") == (condition["status"] == "True")
            self.post_event(
                ObjectRef.of(config),
                "Warning" if bad else "Normal",
                condition["reason"],
                f"{condition['type']}={condition['status']}: {condition['message']}",
            )

    async def reconcile(self) -> None:
        if not self.enabled:
            return
        async with self._lock:  # DaemonSet and IronLBConfig events may arrive together
            await asyncio.to_thread(self.reconcile_sync)


def speaker_daemonset_stub(namespace: str) -> dict[str, Any]:
    return {"kind": "DaemonSet", "metadata": {"name": SPEAKER_NAME, "namespace": namespace}}
