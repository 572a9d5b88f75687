"""The responders of every interface that answers for an owned IP, served by one selector."""

from __future__ import annotations

import logging
import os
import selectors
import time
from collections.abc import Callable
from typing import Protocol

from .responder import IPAddress, L2Responder

log = logging.getLogger("ironlb.speaker.l2")


class Readable(Protocol):
    def fileno(self) -> int: ...


class Responders:
    """One L2Responder per interface in use, opened on first use and kept (sockets are cheap to keep)."""

    def __init__(self) -> None:
        self.by_interface: dict[str, L2Responder] = {}
        self._retry_at: dict[str, float] = {}  # interfaces that could not be opened: when to try again
        self._selector = selectors.DefaultSelector()  # every responder's sockets, kept across ticks
        # (a file, our duplicate of its descriptor): readable, answer_for returns at once (news for the loop)
        self._wake: tuple[Readable, int] | None = None

    def get(self, interface: str) -> L2Responder | None:
        responder = self.by_interface.get(interface)
        if responder is None:
            if time.monotonic() < self._retry_at.get(interface, 0.0):
                return None
            try:
                responder = L2Responder(interface)
            except OSError as error:  # an L2Advertisement names an interface this node lacks (yet)
                if interface not in self._retry_at:
                    log.warning("cannot answer on interface %s: %s (retrying every 10 s)", interface, error)
                self._retry_at[interface] = time.monotonic() + 10.0
                return None
            self._retry_at.pop(interface, None)
            self.by_interface[interface] = responder
            for sock in (responder.arp, responder.ndp):
                self._selector.register(sock, selectors.EVENT_READ, responder)
        return responder

    def set_owned(self, owned: dict[IPAddress, frozenset[str]]) -> list[tuple[L2Responder, IPAddress]]:
        """Answer for each IP on its interfaces only; returns (responder, IP) pairs to announce now."""
        wanted: dict[str, set[IPAddress]] = {name: set() for name in self.by_interface}
        for address, interfaces in owned.items():
            for interface in interfaces:
                wanted.setdefault(interface, set()).add(address)
        fresh: list[tuple[L2Responder, IPAddress]] = []
        for interface, addresses in wanted.items():
            responder = self.get(interface) if addresses else self.by_interface.get(interface)
            if responder is None:
                continue
            try:
                fresh += [(responder, address) for address in responder.set_owned(addresses)]
            except OSError as error:  # the interface went away (a VLAN or bond re-created): reopen later
                log.warning("interface %s: %s; reopening it", interface, error)
                for sock in (responder.arp, responder.ndp):
                    self._selector.unregister(sock)
                responder.close()
                del self.by_interface[interface]
        return fresh

    def wake_on(self, readable: Readable | None) -> None:
        """``answer_for`` returns as soon as ``readable`` has something to read, so the loop acts on it
        (a peer's death) at once rather than at its next tick; None: no such file."""
        if (self._wake[0] if self._wake else None) is readable:
            return
        self._unwake()
        if readable is not None:
            # a duplicate, closed only once unregistered: the file itself may be closed first, and its
            # number reused by a responder's socket that unregistering it would then silence
            duplicate = os.dup(readable.fileno())
            self._selector.register(duplicate, selectors.EVENT_READ, None)
            self._wake = (readable, duplicate)

    def _unwake(self) -> None:
        if self._wake is not None:
            self._selector.unregister(self._wake[1])
            os.close(self._wake[1])
            self._wake = None

    def owned(self) -> list[tuple[L2Responder, IPAddress]]:
        return [(r, address) for r in self.by_interface.values() for address in r.owned]

    def answer_for(self, seconds: float, may_answer: Callable[[], bool] = lambda: True) -> None:
        """Answer on every interface during ``seconds`` (one select over all sockets), or until the file
        given to ``wake_on`` is readable; what arrives while ``may_answer`` says no is read, not answered."""
        if not self._selector.get_map():
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            ready = self._selector.select(remaining)
            answering = may_answer() if ready else True
            woken = False
            for key, _ in ready:
                if key.data is None:
                    woken = True
                else:
                    key.data.drain(key.fileobj, answering)
            if woken:
                return

    def close(self) -> None:
        self._unwake()
        self._selector.close()
        for responder in self.by_interface.values():
            responder.close()
