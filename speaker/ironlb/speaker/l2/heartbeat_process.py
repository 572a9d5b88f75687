"""The speaker's side of its heartbeat process (``heartbeat``): starts it, tells it the peers, and reads back
who is alive and whether this node may claim IPs, so the rest of the speaker sees what a membership shows.

The process is started again if it ends on its own (an error): meanwhile the claim window ages, so this
node claims nothing, and its peers take its IPs over as from any silent node.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time

from prometheus_client import Counter

from .channel import Channel, Message
from .membership import claimable, stall_limit
from .stamps import SharedStamps

log = logging.getLogger("ironlb.speaker.l2")
STALLS = Counter(
    "ironlb_speaker_heartbeat_stalls",
    "Times this speaker's heartbeat loop did not run for long enough that peers may have taken over.",
)
RESTARTS = Counter(
    "ironlb_speaker_heartbeat_restarts", "Times the heartbeat process ended and was started again."
)
HUNG_AFTER = 2.0  # seconds a speaker loop may neither tick nor use the CPU before it counts as hung
READY_TIMEOUT = 30.0  # seconds for the process to start (an interpreter, under the speaker's CPU quota)
RESTART_EVERY = 1.0  # seconds between starts of a process that keeps ending


class HeartbeatProcess:
    """Membership in a process of its own; the same questions as ``Membership`` asks, answered from what
    the process reports (``alive``, ``doubted``) and from shared memory (``may_claim``: no system call)."""

    def __init__(
        self,
        node: str,
        port: int,
        key: bytes,
        interval: float = 0.05,
        timeout: float = 0.3,
        bind: str = "::",
        hung_after: float = HUNG_AFTER,
    ) -> None:
        self.node, self.interval, self.timeout = node, interval, timeout
        self.stall_limit = stall_limit(interval, timeout)
        self._config = {
            "node": node,
            "port": port,
            "bind": bind,
            "key": key.hex(),
            "interval": interval,
            "timeout": timeout,
            "hung_after": hung_after,
            # the loop's thread is the one that starts its heartbeats: its CPU time tells busy from hung
            "loop_schedstat": f"/proc/{os.getpid()}/task/{threading.get_native_id()}/schedstat",
        }
        self.stamps = SharedStamps.create()
        self._addresses: dict[str, str] = {}
        self._dead = frozenset[str]()
        self._alive = frozenset([node])
        self._doubted = 0
        self.version = 0  # bumped whenever the live nodes change
        self.process: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._next_start = 0.0
        self._next_check = 0.0
        self._ending = False

    def start(self) -> HeartbeatProcess:
        """Start the process; raises when it cannot start (its port taken, say)."""
        self._spawn()
        return self

    # ------------------------------------------------------------------------------------------ reading
    def alive(self) -> tuple[int, frozenset[str]]:
        """(version, live nodes), after reading what the process reported since the last call."""
        self._poll()
        return self.version, self._alive

    def news(self) -> Channel | None:
        """What to watch for the process's reports (readable: call ``alive``); None while it has none."""
        channel = self._channel
        return channel if channel is not None and not channel.closed else None

    def doubted(self) -> int:
        """How many down reports on this node its peers have sent (each may have moved its IPs)."""
        return self._doubted

    def may_claim(self, now: float) -> bool:
        """Asked on every wake-up of the responders: two floats read from shared memory."""
        return claimable(now, *self.stamps.claim_window(), self.stall_limit)

    # ---------------------------------------------------------------------------------------- changing
    def loop_ran(self, now: float) -> None:
        """The speaker's loop runs: the process keeps heartbeating (see ``heartbeat.HeartbeatLoop``)."""
        self.stamps.mark_loop(now)

    def set_peers(self, addresses: dict[str, str]) -> None:
        """Every node's address (from the published configuration)."""
        if addresses != self._addresses:
            self._addresses = dict(addresses)
            if self._channel is not None:
                self._channel.send({"peers": self._addresses})
            self._recount()

    def leave(self) -> None:
        """A graceful stop: a goodbye goes to every node, then the process ends."""
        self._end({"leave": True})

    def stop(self) -> None:
        self._end({"stop": True})
        self.stamps.close()

    # ---------------------------------------------------------------------------------------- internals
    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ironlb.speaker.l2.heartbeat",
                    str(theirs.fileno()),
                    str(self.stamps.fd),
                ],
                pass_fds=(theirs.fileno(), self.stamps.fd),
            )
        finally:
            theirs.close()
        channel = Channel(ours)
        # a process replacing one that ended claims nothing until its peers have heard it again
        channel.send({"config": {**self._config, "replacing": self.process is not None}})
        if self._addresses:
            channel.send({"peers": self._addresses})
        deadline = time.monotonic() + READY_TIMEOUT
        early: list[Message] = []
        while not any("ready" in message for message in early):
            fatal = next((str(message["fatal"]) for message in early if "fatal" in message), None)
            if fatal is not None or channel.closed or time.monotonic() > deadline:
                process.kill()
                process.wait()
                channel.close()
                raise RuntimeError(
                    fatal or f"the heartbeat process did not start (exit code {process.returncode})"
                )
            select.select([channel], [], [], 0.1)
            early += channel.receive()
        self.process, self._channel = process, channel
        self._dead, self._doubted = frozenset(), 0
        self._recount()
        for message in early:
            self._handle(message)

    def _poll(self) -> None:
        """Take what the process reported; start it again if it ended (at most every RESTART_EVERY)."""
        process = self.process
        if process is None or self._ending:
            return
        now = time.monotonic()
        if self._channel is not None:
            self._channel.flush()
            for message in self._channel.receive():
                self._handle(message)
            if not self._channel.closed and now < self._next_check:
                return  # (its end closes the channel: the exit status is read once a second otherwise)
        self._next_check = now + RESTART_EVERY
        if process.poll() is None:
            return
        if now < self._next_start:
            return
        self._next_start = now + RESTART_EVERY
        log.error("the heartbeat process ended (exit code %s): starting it again", process.returncode)
        RESTARTS.inc()
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        try:
            self._spawn()
        except Exception:  # tried again after RESTART_EVERY; meanwhile this node claims nothing
            log.exception("starting the heartbeat process")

    def _handle(self, message: Message) -> None:
        if "dead" in message:
            self._dead, self._doubted = frozenset(message["dead"]), int(message["doubted"])
            self._recount()
        elif "stall" in message:
            STALLS.inc()
            log.warning(
                "this speaker's heartbeat loop stalled for %.0f ms: it answers nothing until its peers have "
                "heard it again",
                float(message["stall"]) * 1000,
            )
        elif "log" in message:
            level, text = message["log"]
            log.log(int(level), "%s", text)
        elif "fatal" in message:
            log.error("heartbeat process: %s", message["fatal"])

    def _recount(self) -> None:
        alive = frozenset(self._addresses) | {self.node}
        alive -= self._dead
        if alive != self._alive:
            self._alive = alive
            self.version += 1

    def _end(self, last: Message) -> None:
        """Say ``last``, give the process a second to act on it and end, then make sure it has."""
        self._ending = True
        channel, process = self._channel, self.process
        if channel is None or process is None:
            return
        channel.send(last)
        deadline = time.monotonic() + 1.0
        while channel.pending and not channel.closed and time.monotonic() < deadline:
            select.select([], [channel], [], 0.05)
            channel.flush()
        for message in channel.receive():
            self._handle(message)  # its last log lines
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for message in channel.receive():
            self._handle(message)
        channel.close()
        self._channel = None
