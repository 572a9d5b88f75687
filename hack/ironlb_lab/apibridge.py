"""Make the lab's API server reachable from inside node namespaces without giving the host a lab address.

A network namespace has its own loopback, so a speaker in a node namespace cannot reach kube-apiserver on the
host's 127.0.0.1. Unix sockets live in the file system, not in a network namespace, so the bridge is two
forwarders joined by one: host side ``unix socket -> 127.0.0.1:PORT``, and in each node namespace
``127.0.0.1:PORT -> unix socket``. The node's kubeconfig then names https://127.0.0.1:PORT, which the API
server's certificate already covers.

Run as ``python -m ironlb_lab.apibridge host SOCKET PORT`` or ``... node SOCKET PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .controlplane import _die_with_parent
from .faultproxy import FaultProxy

if TYPE_CHECKING:
    from .controlplane import ControlPlane
    from .network import Host, LabNetwork

HACK = Path(__file__).resolve().parents[1]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connect: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> None:
    try:
        upstream_reader, upstream_writer = await connect
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def serve_host(socket_path: Path, port: int) -> None:
    """Host side: connections on the Unix socket go to the API server on the host's loopback."""
    socket_path.unlink(missing_ok=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _splice(reader, writer, asyncio.ensure_future(asyncio.open_connection("127.0.0.1", port)))

    server = await asyncio.start_unix_server(handle, path=str(socket_path))
    async with server:
        await server.serve_forever()


async def serve_node(socket_path: Path, port: int, address: str = "127.0.0.1") -> None:
    """Node side (run inside the node's namespace): ADDRESS:PORT goes to the Unix socket."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _splice(reader, writer, asyncio.ensure_future(asyncio.open_unix_connection(str(socket_path))))

    server = await asyncio.start_server(handle, address, port)
    print(f"bridging {address}:{port} to {socket_path}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    side, socket_path, port = argv[0], Path(argv[1]), int(argv[2])
    with contextlib.suppress(KeyboardInterrupt):
        if side == "host":
            asyncio.run(serve_host(socket_path, port))
        else:
            asyncio.run(serve_node(socket_path, port, *argv[3:4]))
    return 0


class ApiBridge:
    """Starts the host forwarder and one node forwarder per lab node; the lab ends them with itself.

    With ``faults``, every namespace (node or pod) reaches the API server through a ``FaultProxy`` of its
    own (its Unix socket is the namespace's way out), so a test can cut, reset or blackhole one node's or
    one operator replica's connection to the API server without touching the others.
    """

    def __init__(self, lab: LabNetwork, plane: ControlPlane, workdir: Path, faults: bool = False) -> None:
        self.lab, self.plane, self.workdir, self.faults = lab, plane, workdir, faults
        self.socket = workdir / "apiserver.sock"
        self.host: subprocess.Popen[bytes] | None = None
        self.proxies: dict[str, FaultProxy] = {}

    def proxy(self, role: str) -> FaultProxy:
        """The fault proxy between ``role``'s namespace and the API server (``faults`` labs only)."""
        return self.proxies[role]

    def socket_for(self, role: str) -> Path:
        if not self.faults:
            return self.socket
        if role not in self.proxies:
            path = self.workdir / f"api-{role}.sock"
            self.proxies[role] = FaultProxy(self.plane.port, unix_path=path).start()
        return self.proxies[role].unix_path  # type: ignore[return-value]

    def start(self) -> ApiBridge:
        if self.faults:
            for role, host in self.lab.hosts.items():
                if role.startswith("node"):
                    self.forward_into(host)
            return self
        env = {**os.environ, "PYTHONPATH": str(HACK)}
        port = str(self.plane.port)
        with (self.workdir / "apibridge-host.log").open("ab") as log:
            self.host = subprocess.Popen(
                [sys.executable, "-m", "ironlb_lab.apibridge", "host", str(self.socket), port],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the host side of the API bridge did not start")
            time.sleep(0.05)
        for role, host in self.lab.hosts.items():
            if role.startswith("node"):
                self.forward_into(host)
        return self

    def forward_into(
        self, host: Host, timeout: float = 10, listen: tuple[str, int] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start the forwarder that makes 127.0.0.1:PORT (or ``listen``, an address and port) inside
        ``host``'s namespace the API server; returns once it listens (the lab ends it with itself, or the
        caller by PID)."""
        address, port = listen or ("127.0.0.1", self.plane.port)
        log_path = self.workdir / f"apibridge-{host.role}-{address}-{port}.log"
        process = self.lab.spawn(
            host,
            [
                sys.executable,
                "-m",
                "ironlb_lab.apibridge",
                "node",
                str(self.socket_for(host.role)),
                str(port),
                address,
            ],
            log_path,
            env={**os.environ, "PYTHONPATH": str(HACK)},
        )
        deadline = time.monotonic() + timeout
        while "bridging" not in (log_path.read_text() if log_path.exists() else ""):
            if time.monotonic() > deadline or process.poll() is not None:
                raise TimeoutError(f"the API bridge in {host.role} did not start")
            time.sleep(0.05)
        return process

    def stop(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
        if self.host is not None and self.host.poll() is None:
            self.host.terminate()
            self.host.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
