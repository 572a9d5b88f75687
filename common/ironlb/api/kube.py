"""A thin JSON client for the Kubernetes API (urllib3 with the credentials the kubernetes package resolves).

The generated client validates every response into models, which costs more than the operator's own work at
thousands of Services; the operator only needs a few verbs on plain dicts. Authentication (kubeconfig,
in-cluster token with its refresh) still comes from the kubernetes package's Configuration.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client, config

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML
Json = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config).

    KUBECONFIG is read now, not when the kubernetes package was imported.
    """
    configuration = client.Configuration()
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except config.ConfigException:
            kubeconfig = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


class KubeClient:
    def __init__(self, configuration: client.Configuration, pool_size: int = 32) -> None:
        self.configuration = configuration
        self.host = configuration.host.rstrip("/")
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=pool_size, block=True, ssl_context=context)

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None) -> KubeClient:
        return cls(load_configuration(kubeconfig))

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        settings: dict[str, dict[str, Any]] = self.configuration.auth_settings()  # type: ignore[assignment]
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Json:
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        response = self.pool.request(
            method,
            url,
            body=None if body is None else json.dumps(body).encode(),
            headers=self._headers(content_type),
            timeout=timeout,
            retries=False,
        )
        if response.status >= 400:  # the body is a Status object, or plain text ("404 page not found")
            try:
                message = str(json.loads(response.data).get("message"))
            except (ValueError, AttributeError):
                message = response.data[:200].decode(errors="replace")
            raise ApiError(response.status, message)
        payload: Json = json.loads(response.data) if response.data else {}
        return payload

    def get(self, path: str, query: dict[str, str] | None = None) -> Json:
        return self.request("GET", path, query=query)

    def merge_patch(self, path: str, body: Json) -> Json:
        return self.request("PATCH", path, body, content_type=MERGE_PATCH)

    def watch(
        self, path: str, query: dict[str, str] | None = None, timeout: float | None = None
    ) -> Iterator[Json]:
        """Watch events of a collection (one JSON object per line) until the server ends the stream."""
        url = self.host + path + "?" + urlencode({**(query or {}), "watch": "1"})
        response = self.pool.request(
            "GET",
            url,
            headers=self._headers("application/json"),
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=timeout),
            retries=False,
        )
        try:
            if response.status >= 400:
                raise ApiError(response.status, response.data[:200].decode(errors="replace"))
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            response.release_conn()

    def apply(self, path: str, manifest: Json, field_manager: str = "ironlb-operator") -> Json:
        """Server-side apply: create or update the fields this manager owns, in one idempotent request."""
        return self.request(
            "PATCH",
            path,
            manifest,
            content_type=APPLY_PATCH,
            query={"fieldManager": field_manager, "force": "true"},
        )

    def list_all(self, path: str, page_size: int = 500) -> list[Json]:
        """Every item of a list, paging with `continue`; items get their kind back (lists omit it)."""
        items: list[Json] = []
        query = {"limit": str(page_size)}
        while True:
            page = self.get(path, query)
            kind = page.get("kind", "").removesuffix("List")
            for item in page.get("items", []):
                item.setdefault("apiVersion", page.get("apiVersion"))
                item.setdefault("kind", kind)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query = {"limit": str(page_size), "continue": token}


def service_path(namespace: str, name: str, subresource: str = "") -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/services/{quote(name)}" + (
        f"/{subresource}" if subresource else ""
    )


def custom_path(group: str, version: str, namespace: str, plural: str, name: str = "", sub: str = "") -> str:
    path = f"/apis/{group}/{version}/namespaces/{quote(namespace)}/{plural}"
    return path + (f"/{quote(name)}" if name else "") + (f"/{sub}" if sub else "")
