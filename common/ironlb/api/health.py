"""Liveness and readiness for the kubelet's probes, for the operator and the speaker alike.

Live: the main loop went round recently (a stuck loop is restarted); a standby operator waiting for the
lease is live too. Ready: the component can do its work: a speaker has read the published configuration
and, in BGP mode, has its sessions up (a rolling update waits for both: see ``sessions_settled``), an
operator holds the lease and has listed what it watches.
The speaker binds 127.0.0.1 (it shares the node's network); the operator's pod network is its own.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Health:
    def __init__(self, stale_after: float = 10.0) -> None:
        self.stale_after = stale_after
        self.last_tick = time.monotonic()
        self.configured = False

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def live(self) -> bool:
        return time.monotonic() - self.last_tick < self.stale_after

    def ready(self) -> bool:
        return self.live() and self.configured


def serve_health(health: Health, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve /healthz and /readyz in a daemon thread; returns the server (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            checks = {"/healthz": health.live, "/readyz": health.ready}
            check = checks.get(self.path)
            ok = check is not None and check()
            body = b"ok\n" if ok else b"not ready\n" if check else b"not found\n"
            self.send_response(200 if ok else 503 if check else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # the kubelet probes every 10 s: keep logs quiet
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server
