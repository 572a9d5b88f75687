"""A thin JSON client for the Kubernetes API (urllib3 with the credentials the kubernetes package resolves).

The generated client validates every response into models, which costs more than the operator's own work at
thousands of Services; IronLB only needs a few verbs on plain dicts. Authentication (kubeconfig, in-cluster
token with its refresh) still comes from the kubernetes package's Configuration.

**One error model.** Every way a request can fail arrives as an ``ApiError``: an HTTP error status as
itself (with ``Retry-After`` when the server sent one), and everything that gives no usable HTTP answer
(refused, reset, timed out, TLS, a truncated or malformed body, a watch stream that breaks) as
``ApiUnavailableError`` (status 0). Callers catch ``ApiError`` and nothing else. Every request has a
timeout, and connections have TCP keepalive, so a dead or half-open connection is noticed rather than
waited on forever.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client, config
from urllib3.connection import HTTPConnection

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML
Json = dict[str, Any]
# connect quickly or not at all; a normal request answers well within the read timeout
DEFAULT_TIMEOUT = urllib3.Timeout(connect=5.0, read=20.0)
TRANSIENT_STATUSES = frozenset({0, 408, 429, 500, 502, 503, 504})
# noticed within ~25 s when the peer's kernel is gone (a blackholed proxy still answers: read timeouts)
KEEPALIVE = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
]
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)


class ApiError(Exception):
    """A request to the API server failed; ``status`` 0 means no usable HTTP answer came back."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying as it is: the same request may succeed later."""
        return self.status in TRANSIENT_STATUSES


class ApiUnavailableError(ApiError):
    """No usable answer: refused, reset, timed out, TLS, a broken or malformed response or stream."""

    def __init__(self, message: str) -> None:
        super().__init__(0, f"API server unavailable: {message}")


class NotLeaderError(ApiError):
    """A write refused before it was sent: this replica no longer holds the leader lease."""

    def __init__(self) -> None:
        super().__init__(0, "not the leader: writes are fenced off until the lease is held again")

    @property
    def transient(self) -> bool:
        return False


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


def _retry_after(response: urllib3.BaseHTTPResponse) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the caller's own back-off applies


def _error(response: urllib3.BaseHTTPResponse) -> ApiError:
    """The body of an error is a Status object, or plain text ("404 page not found")."""
    try:
        message = str(json.loads(response.data).get("message"))
    except (ValueError, AttributeError):
        message = response.data[:200].decode(errors="replace")
    return ApiError(response.status, message, _retry_after(response))


class KubeClient:
    """``write_guard``: checked before every request that is not a GET; when it returns False the request
    is not sent and ``NotLeaderError`` is raised (a replica that lost its lease stops writing at once)."""

    def __init__(
        self,
        configuration: client.Configuration,
        pool_size: int = 32,
        write_guard: Callable[[], bool] | None = None,
    ) -> None:
        self.configuration = configuration
        self.host = configuration.host.rstrip("/")
        self.write_guard = write_guard
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            block=True,
            ssl_context=context,
            socket_options=HTTPConnection.default_socket_options + KEEPALIVE,
        )

    @classmethod
    def from_environment(
        cls, kubeconfig: str | None = None, write_guard: Callable[[], bool] | None = None
    ) -> KubeClient:
        return cls(load_configuration(kubeconfig), write_guard=write_guard)

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
        timeout: float | urllib3.Timeout = DEFAULT_TIMEOUT,
    ) -> Json:
        if method != "GET" and self.write_guard is not None and not self.write_guard():
            raise NotLeaderError()
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        try:
            response = self.pool.request(
                method,
                url,
                body=None if body is None else json.dumps(body).encode(),
                headers=self._headers(content_type),
                timeout=timeout,
                retries=False,
            )
        except _TRANSPORT_ERRORS as error:
            raise ApiUnavailableError(f"{method} {path}: {error}") from error
        if response.status >= 400:
            raise _error(response)
        try:
            payload: Json = json.loads(response.data) if response.data else {}
        except ValueError as error:
            raise ApiUnavailableError(f"{method} {path}: malformed response: {error}") from error
        return payload

    def get(self, path: str, query: dict[str, str] | None = None) -> Json:
        return self.request("GET", path, query=query)

    def merge_patch(self, path: str, body: Json) -> Json:
        return self.request("PATCH", path, body, content_type=MERGE_PATCH)

    def watch(
        self, path: str, query: dict[str, str] | None = None, read_timeout: float = 330.0
    ) -> Iterator[Json]:
        """Watch events of a collection (one JSON object per line) until the server ends the stream.

        ``read_timeout`` bounds the silence between two lines: a half-open connection ends the iteration
        with ``ApiUnavailableError`` instead of freezing the watcher. Pass ``timeoutSeconds`` (server side)
        shorter than it, and ``allowWatchBookmarks`` so that quiet collections still send lines.
        """
        url = self.host + path + "?" + urlencode({**(query or {}), "watch": "1"})
        try:
            response = self.pool.request(
                "GET",
                url,
                headers=self._headers("application/json"),
                preload_content=False,
                timeout=urllib3.Timeout(connect=DEFAULT_TIMEOUT.connect_timeout, read=read_timeout),
                retries=False,
            )
        except _TRANSPORT_ERRORS as error:
            raise ApiUnavailableError(f"watch {path}: {error}") from error
        try:
            if response.status >= 400:
                raise _error(response)
            for line in response:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as error:
                        raise ApiUnavailableError(f"watch {path}: malformed event: {error}") from error
        except _TRANSPORT_ERRORS as error:
            raise ApiUnavailableError(f"watch {path}: {error}") from error
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

    def list_page(self, path: str, query: dict[str, str] | None = None) -> Json:
        """One list, every page joined (``continue``); items get their kind and apiVersion back."""
        items: list[Json] = []
        query = {"limit": "500", **(query or {})}
        while True:
            page = self.get(path, query)
            kind = page.get("kind", "").removesuffix("List")
            for item in page.get("items", []):
                item.setdefault("apiVersion", page.get("apiVersion"))
                item.setdefault("kind", kind)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return {**page, "items": items}
            query = {**query, "continue": token}
            query.pop("resourceVersion", None)  # continuing a list fixes its version already

    def list_all(self, path: str) -> list[Json]:
        """Every item of a list, paging with `continue`."""
        items: list[Json] = self.list_page(path)["items"]
        return items


def service_path(namespace: str, name: str, subresource: str = "") -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/services/{quote(name)}" + (
        f"/{subresource}" if subresource else ""
    )


def custom_path(group: str, version: str, namespace: str, plural: str, name: str = "", sub: str = "") -> str:
    path = f"/apis/{group}/{version}/namespaces/{quote(namespace)}/{plural}"
    return path + (f"/{quote(name)}" if name else "") + (f"/{sub}" if sub else "")
