"""JSON objects, one per line, over a stream socket between the speaker and its heartbeat process.

Neither side may ever wait on the other: a stalled speaker must not stall the heartbeats, nor the reverse.
So the socket is non-blocking both ways; what cannot be sent yet waits in a buffer that the owner flushes
when the socket is writable, and a peer that stopped reading (hung) costs at most ``MAX_BUFFERED`` bytes.
"""

from __future__ import annotations

import json
import socket
from typing import Any

Message = dict[str, Any]
MAX_BUFFERED = 1 << 20  # bytes waiting to be sent: beyond, new messages are dropped (send returns False)


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self._incoming = bytearray()
        self._outgoing = bytearray()
        self.closed = False  # the other side is gone (end of file, or the socket broke)

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def pending(self) -> bool:
        """Bytes are waiting to be sent: flush when the socket is writable."""
        return bool(self._outgoing)

    def send(self, message: Message) -> bool:
        """Queue ``message`` and send what the socket takes now; False when dropped (buffer full, closed)."""
        if self.closed or len(self._outgoing) > MAX_BUFFERED:
            return False
        self._outgoing += json.dumps(message, separators=(",", ":")).encode() + b"\n"
        self.flush()
        return True

    def flush(self) -> None:
        while self._outgoing and not self.closed:
            try:
                sent = self.sock.send(self._outgoing)
            except BlockingIOError:
                return
            except OSError:
                self._lost()
                return
            del self._outgoing[:sent]

    def receive(self) -> list[Message]:
        """Every complete message that arrived; sets ``closed`` at end of file."""
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                self._lost()
                break
            if not data:
                self._lost()
                break
            self._incoming += data
        messages: list[Message] = []
        while (end := self._incoming.find(b"\n")) >= 0:
            line = bytes(self._incoming[:end])
            del self._incoming[: end + 1]
            messages.append(json.loads(line))
        return messages

    def _lost(self) -> None:
        self.closed = True
        self._outgoing.clear()

    def close(self) -> None:
        self.closed = True
        self.sock.close()
