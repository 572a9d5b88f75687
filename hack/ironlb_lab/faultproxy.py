"""A TCP proxy between a component and kube-apiserver that injects network faults for real.

The component's kubeconfig points at the proxy's port on 127.0.0.1 (the API server's certificate covers that
address whatever the port), or the lab's API bridge in a namespace connects to the proxy's Unix socket
(``unix_path``); the proxy forwards bytes to the API server. On command it:

- ``reset()``: closes every open connection with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox;
- ``refuse()`` / ``heal()``: new connections are reset at once (``refuse``), until healed;
- ``blackhole()`` / ``heal()``: accepts connections and never answers, and open ones stop moving bytes in
  both directions, as a partition that leaves TCP half-open (no RST, no FIN: only timeouts notice);
- ``delay(seconds)``: every chunk waits that long before it is forwarded;
- ``cut_older_than(seconds)``: resets the connections open longer than that (long-running watches).

It runs an asyncio loop in a daemon thread of the test (or chaos) process and binds loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    opened: float = field(default_factory=time.monotonic)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", unix_path: Path | None = None
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.unix_path = unix_path
        self.port = 0
        self.accepted = 0  # connections accepted since start (a test can see a component reconnect)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self._flowing = asyncio.Event()  # cleared while blackholed
        self._refusing = False
        self._delay = 0.0
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)

    # ------------------------------------------------------------------------------------------ control
    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset(self) -> int:
        """RST every open connection; returns how many there were."""
        return int(self._call(self._reset_matching, lambda c: True))

    def cut_older_than(self, seconds: float) -> int:
        now = time.monotonic()
        return int(self._call(self._reset_matching, lambda c: now - c.opened > seconds))

    def blackhole(self) -> None:
        self._call(self._set, flowing=False)

    def refuse(self) -> None:
        self._call(self._set, refusing=True)

    def delay(self, seconds: float) -> None:
        self._call(self._set, delay=seconds)

    def heal(self) -> None:
        """Back to a healthy network: no blackhole, no refusal, no delay."""
        self._call(self._set, flowing=True, refusing=False, delay=0.0)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------ in the loop
    def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            result = function(*args, **kwargs)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    async def _start(self) -> None:
        self._flowing.set()
        if self.unix_path is not None:
            self.unix_path.unlink(missing_ok=True)
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.unix_path))
            return
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_matching(lambda c: True)
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _set(
        self, flowing: bool | None = None, refusing: bool | None = None, delay: float | None = None
    ) -> None:
        if flowing is True:
            self._flowing.set()
        elif flowing is False:
            self._flowing.clear()
        if refusing is not None:
            self._refusing = refusing
        if delay is not None:
            self._delay = delay

    def _reset_matching(self, matches: Callable[[_Connection], bool]) -> int:
        chosen = [c for c in self._connections if matches(c)]
        for connection in chosen:
            connection.reset()
            self._connections.discard(connection)
        return len(chosen)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        connection = _Connection(writer)
        if self._refusing:
            connection.reset()
            return
        self._connections.add(connection)
        try:
            await self._flowing.wait()  # a blackholed proxy accepts and never answers
            upstream_reader, connection.upstream = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.CancelledError):
            connection.reset()
            self._connections.discard(connection)
            return
        connection.tasks = [
            asyncio.create_task(self._pump(reader, connection.upstream)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*connection.tasks, return_exceptions=True)
        self._connections.discard(connection)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                if self._delay:
                    await asyncio.sleep(self._delay)
                await self._flowing.wait()  # held while blackholed, delivered after: TCP retransmits it
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
