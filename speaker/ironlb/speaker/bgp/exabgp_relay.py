"""exabgp's API process: relays lines between exabgp's pipes and the speaker's Unix socket.

exabgp only talks to processes it starts itself (commands on their stdout, events on their stdin). This relay
is that process: it connects to the socket the speaker listens on and copies bytes both ways, so the speaker
can change routes without restarting exabgp. It exits when either side closes; when the speaker's side closes
(the speaker died, even by kill -9) it first sends SIGTERM to exabgp, which then closes its sessions with a
Cease, so routers stop sending traffic to a node whose speaker is gone. It imports nothing from ironlb so
that it starts fast.

Usage: python -m ironlb.speaker.bgp.exabgp_relay SOCKET_PATH
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time


def _connect(path: str, timeout: float = 5.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        return sock


def relay(path: str) -> None:
    """Copy stdin -> socket and socket -> stdout until one side reaches end of file."""
    sock = _connect(path)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(stdin, selectors.EVENT_READ)
    selector.register(sock, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fd == stdin:
                data = os.read(stdin, 65536)
                if not data:
                    return
                sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    os.kill(os.getppid(), signal.SIGTERM)
                    return
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout, view) :]


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ironlb.speaker.bgp.exabgp_relay SOCKET_PATH")
    with contextlib.suppress(BrokenPipeError, ConnectionError, KeyboardInterrupt):
        relay(sys.argv[1])


if __name__ == "__main__":
    main()
