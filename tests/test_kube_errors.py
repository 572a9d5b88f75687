"""One error model for everything that talks to the API server, checked with real faults.

Every way a request can fail must arrive as an ``ApiError`` (callers catch nothing else), quickly: the
API server through a proxy that refuses, resets or blackholes connections; a real HTTP server that answers
429 with Retry-After or cuts its body short; a server whose certificate the client does not trust.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from ironlb.api.kube import ApiError, ApiUnavailableError, KubeClient, NotLeaderError, load_configuration
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.faultproxy import FaultProxy

pytestmark = pytest.mark.controlplane
QUICK = urllib3.Timeout(connect=2.0, read=2.0)


@pytest.fixture
def proxy(control_plane: ControlPlane) -> Iterator[FaultProxy]:
    with FaultProxy(control_plane.port) as running:
        yield running


def client_via(plane: ControlPlane, proxy: FaultProxy) -> KubeClient:
    return KubeClient.from_environment(str(plane.kubeconfig_via(proxy.port, f"errors-{proxy.port}")))


def fails_within(seconds: float, call: object) -> ApiError:
    began = time.monotonic()
    with pytest.raises(ApiError) as caught:
        call()  # type: ignore[operator]
    assert time.monotonic() - began < seconds, f"took {time.monotonic() - began:.1f} s"
    return caught.value


def test_a_healthy_proxy_passes_requests(control_plane: ControlPlane, proxy: FaultProxy) -> None:
    kube = client_via(control_plane, proxy)
    assert kube.get("/api/v1/namespaces/default")["metadata"]["name"] == "default"


def test_http_errors_keep_their_status(control_plane: ControlPlane, proxy: FaultProxy) -> None:
    kube = client_via(control_plane, proxy)
    error = fails_within(5, lambda: kube.get("/api/v1/namespaces/no-such-namespace"))
    assert error.status == 404 and not error.transient


def test_refused_connections_are_api_unavailable(control_plane: ControlPlane, proxy: FaultProxy) -> None:
    kube = client_via(control_plane, proxy)
    proxy.refuse()
    error = fails_within(5, lambda: kube.request("GET", "/api/v1/namespaces", timeout=QUICK))
    assert isinstance(error, ApiUnavailableError) and error.status == 0 and error.transient


def test_a_reset_in_the_middle_of_a_watch_is_api_unavailable(
    control_plane: ControlPlane, proxy: FaultProxy
) -> None:
    kube = client_via(control_plane, proxy)
    events = kube.watch("/api/v1/namespaces", {"timeoutSeconds": "60"}, read_timeout=30)
    next(events)  # the stream is open (the first ADDED event)
    threading.Timer(0.5, proxy.reset).start()

    def drain() -> None:
        for _ in events:
            pass

    assert isinstance(fails_within(10, drain), ApiUnavailableError)


def test_a_blackholed_request_times_out_instead_of_hanging(
    control_plane: ControlPlane, proxy: FaultProxy
) -> None:
    kube = client_via(control_plane, proxy)
    kube.get("/api/v1/namespaces")  # a pooled connection exists: the blackhole must stop it too
    proxy.blackhole()
    error = fails_within(6, lambda: kube.request("GET", "/api/v1/namespaces", timeout=QUICK))
    assert isinstance(error, ApiUnavailableError)


def test_a_silent_watch_ends_after_its_read_timeout(control_plane: ControlPlane, proxy: FaultProxy) -> None:
    """A half-open connection: no RST, no FIN, nothing arrives. The watcher must notice."""
    kube = client_via(control_plane, proxy)
    events = kube.watch("/api/v1/namespaces", {"timeoutSeconds": "300"}, read_timeout=2)
    next(events)
    proxy.blackhole()

    def drain() -> None:
        for _ in events:
            pass

    assert isinstance(fails_within(10, drain), ApiUnavailableError)


def test_an_untrusted_certificate_is_api_unavailable(control_plane: ControlPlane, tmp_path: Path) -> None:
    configuration = load_configuration(str(control_plane.kubeconfig))
    stranger = tmp_path / "other-ca.crt"
    from ironlb_lab.pki import CertificateAuthority

    stranger.write_bytes(CertificateAuthority(tmp_path).cert_path.read_bytes())
    configuration.ssl_ca_cert = str(stranger)
    kube = KubeClient(configuration)
    error = fails_within(10, lambda: kube.get("/api/v1/namespaces"))
    assert isinstance(error, ApiUnavailableError) and "CERTIFICATE" in error.message.upper()


def test_the_write_guard_stops_writes_before_they_are_sent(
    control_plane: ControlPlane, proxy: FaultProxy
) -> None:
    leading = threading.Event()
    kube = KubeClient(
        load_configuration(str(control_plane.kubeconfig_via(proxy.port, "guarded"))),
        write_guard=leading.is_set,
    )
    kube.get("/api/v1/namespaces/default")  # reads are never fenced
    before = proxy.accepted
    with pytest.raises(NotLeaderError):
        kube.merge_patch("/api/v1/namespaces/default", {"metadata": {"labels": {"fenced": "no"}}})
    assert proxy.accepted == before
    leading.set()
    kube.merge_patch("/api/v1/namespaces/default", {"metadata": {"labels": {"fenced": "no"}}})


class _Handler(http.server.BaseHTTPRequestHandler):
    """A real HTTP server with the answers the API server gives under load or mid-crash."""

    def do_GET(self) -> None:
        if self.path.startswith("/throttled"):
            body = b'{"kind":"Status","message":"too many requests","code":429}'
            self.send_response(429)
            self.send_header("Retry-After", "3")
        elif self.path.startswith("/cut"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"kind":"Na')  # the server dies mid-body
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        else:
            body = b"not json at all"
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def plain_client(url: str) -> KubeClient:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    return KubeClient(configuration)


def test_throttling_carries_retry_after(http_server: str) -> None:
    error = fails_within(5, lambda: plain_client(http_server).get("/throttled"))
    assert error.status == 429 and error.transient and error.retry_after == 3.0


def test_a_body_cut_short_is_api_unavailable(http_server: str) -> None:
    assert isinstance(fails_within(5, lambda: plain_client(http_server).get("/cut")), ApiUnavailableError)


def test_a_malformed_body_is_api_unavailable(http_server: str) -> None:
    assert isinstance(fails_within(5, lambda: plain_client(http_server).get("/other")), ApiUnavailableError)
