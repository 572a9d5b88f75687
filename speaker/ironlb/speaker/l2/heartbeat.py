"""The heartbeat process: speakers watch each other directly, so a dead owner is replaced in well under a
second without waiting for the API server (node leases take 40 s). Who talks to whom, and what a message
means, is ``membership`` (pure); this process only moves its messages over UDP.

Why a process of its own, not a thread: the speaker's threads share one GIL, and under a CPU quota (the
DaemonSet's request) a heartbeat thread waiting for the GIL behind a thread parsing watch events lost whole
quota periods. In the lab, 5,000 Services created under 100m stalled it 250-490 ms, past the peers' 300 ms,
and they took its IPs over (docs/benchmarks.md). A process has its own interpreter: the kernel runs it at
the start of the next period, whatever the speaker's threads do (``tests/test_heartbeat.py`` measures both).

Started by ``heartbeat_process`` as ``python -m ironlb.speaker.l2.heartbeat CONTROL_FD STAMPS_FD``: the
speaker sends its configuration, the key included, over the control socket (never on the command line).
"""

from __future__ import annotations

import logging
import select
import signal
import socket
import sys
import time
import traceback
import uuid
from pathlib import Path

from .channel import Channel, Message
from .membership import Membership, Outgoing
from .stamps import SharedStamps
from .wire import decode, encode

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
CONFIG_TIMEOUT = 30.0  # seconds the process waits for its configuration before it gives up


def boot_id() -> bytes:
    """The kernel's boot id: with CLOCK_MONOTONIC, a stamp that only grows while this node runs."""
    try:
        return uuid.UUID(BOOT_ID.read_text().strip()).bytes
    except (OSError, ValueError):
        return uuid.uuid4().bytes  # no /proc: a restart then looks like a reboot to the peers


class HeartbeatSocket:
    """One UDP socket on the node network; datagrams in and out, nothing else."""

    def __init__(self, port: int, bind: str = "::") -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 peers as mapped addresses
        self.sock.bind((bind, port))
        self.sock.setblocking(False)

    def send(self, data: bytes, addresses: list[str]) -> None:
        for address in addresses:
            target = f"::ffff:{address}" if ":" not in address else address
            try:
                self.sock.sendto(data, (target, self.port))
            except OSError:
                continue  # an unreachable peer is simply not heard from

    def receive_all(self, limit: int = 256) -> list[bytes]:
        received: list[bytes] = []
        while len(received) < limit:
            try:
                received.append(self.sock.recv(2048))
            except BlockingIOError:
                break
            except OSError:  # an ICMP error queued on the socket, a link going down: next round
                break
        return received

    def close(self) -> None:
        self.sock.close()


class HeartbeatLoop:
    """The process's one loop: membership ticked every quarter of an interval and fed what arrives. What the
    speaker needs is published as it changes: the claim window in shared memory (``stamps``), the dead
    nodes, the down reports on this node, stalls and log lines over ``channel``.

    The loop follows the speaker's: once the speaker's loop has not run for ``hung_after`` seconds, no
    heartbeat goes out (as if this loop had stalled), so that peers take over the IPs of a hung speaker
    instead of leaving them unanswered."""

    def __init__(
        self,
        sock: HeartbeatSocket,
        membership: Membership,
        key: bytes,
        channel: Channel,
        stamps: SharedStamps,
        hung_after: float,
    ) -> None:
        self.sock, self.membership, self.key = sock, membership, key
        self.channel, self.stamps, self.hung_after = channel, stamps, hung_after
        self._addresses: dict[str, str] = {}
        self._reported: tuple[int, int] | None = None  # (membership version, doubted) told to the speaker
        self._dead = frozenset[str]()
        self._hung = False

    def run(self, early: list[Message]) -> int:
        """Until the speaker says stop or leave, or is gone (then this node falls silent, as it did).
        ``early``: what the speaker sent after the configuration, before this loop ran."""
        pause = self.membership.interval / 4
        while True:
            for message in [*early, *self.channel.receive()]:
                if not self._obey(message):
                    return 0
            early = []
            if self.channel.closed:
                return 0
            try:
                self._round(pause)
            except Exception:
                self._log(logging.ERROR, f"heartbeats: {traceback.format_exc()}")
                time.sleep(pause)

    def _obey(self, message: Message) -> bool:
        if "peers" in message and message["peers"] != self._addresses:
            self._addresses = dict(message["peers"])
            self.membership.configure(self._addresses)
        if message.get("leave"):  # a graceful stop: a goodbye to every node, so they take over at once
            self._send(self.membership.leave(time.monotonic_ns()))
            return False
        return not message.get("stop")

    def _round(self, pause: float) -> None:
        now = time.monotonic()
        silent = now - self.stamps.loop_ran()
        if silent > self.hung_after:
            if not self._hung:
                self._hung = True
                self._log(
                    logging.WARNING,
                    f"the speaker's loop has not run for {silent * 1000:.0f} ms: no heartbeat goes out until "
                    "it runs again, so that peers take its IPs over",
                )
            self._wait(None, pause)
            return
        self._hung = False
        outgoing = self.membership.tick(now, time.monotonic_ns())
        self.stamps.publish_claim(*self.membership.claim_window())
        for gap in self.membership.stalls:
            self.channel.send({"stall": gap})
        self.membership.stalls = []
        self._send(outgoing)
        if self._wait(self.sock.sock, pause):
            messages = [m for data in self.sock.receive_all() if (m := decode(self.key, data))]
            now = time.monotonic()
            for message in messages:
                self.membership.receive(message, now)
        self._report()

    def _wait(self, datagrams: socket.socket | None, pause: float) -> bool:
        """Up to ``pause`` for a datagram or the speaker; True when a datagram is waiting."""
        watched: list[socket.socket | Channel] = (
            [self.channel] if datagrams is None else [datagrams, self.channel]
        )
        readable, writable, _ = select.select(
            watched, [self.channel] if self.channel.pending else [], [], pause
        )
        if writable:
            self.channel.flush()
        return datagrams is not None and datagrams in readable

    def _send(self, outgoing: Outgoing) -> None:
        """Each message on its own: one that cannot be sent must not silence the heartbeats after it."""
        for nodes, message in outgoing:
            addresses = [self._addresses[node] for node in nodes if node in self._addresses]
            try:
                self.sock.send(encode(self.key, message), addresses)
            except Exception:
                self._log(logging.ERROR, f"sending {message}: {traceback.format_exc()}")

    def _report(self) -> None:
        """Tell the speaker who is dead when that changes (and log who is held dead or alive again: the
        first thing to read after a takeover nobody expected)."""
        state = (self.membership.version, self.membership.doubted)
        if state == self._reported:
            return
        dead = self.membership.dead()
        if self.channel.send({"dead": sorted(dead), "doubted": self.membership.doubted}):
            self._reported = state  # (dropped while the speaker does not read: sent again next round)
        timeout_ms = self.membership.timeout * 1000
        for node in sorted(dead - self._dead):
            self._log(
                logging.INFO,
                f"node {node} held dead (silent past {timeout_ms:.0f} ms, as its watchers report)",
            )
        for node in sorted(self._dead - dead):
            self._log(logging.INFO, f"node {node} alive again")
        self._dead = dead

    def _log(self, level: int, text: str) -> None:
        """The speaker logs it, in its own format (this process has no log of its own)."""
        self.channel.send({"log": [level, text]})


def _configuration(channel: Channel) -> tuple[Message | None, list[Message]]:
    """The speaker's first message, and any that came with it (its peers, when this process replaces one)."""
    deadline = time.monotonic() + CONFIG_TIMEOUT
    received: list[Message] = []
    while not channel.closed and (left := deadline - time.monotonic()) > 0:
        received += channel.receive()
        for index, message in enumerate(received):
            if "config" in message:
                return dict(message["config"]), received[index + 1 :]
        select.select([channel], [], [], left)
    return None, []


def serve(control_fd: int, stamps_fd: int) -> int:
    # the speaker decides when this process ends: a SIGTERM to the process group (a graceful stop) must not
    # silence this node before the speaker has said goodbye
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)
    channel = Channel(socket.socket(fileno=control_fd))
    stamps = SharedStamps(stamps_fd)
    config, early = _configuration(channel)
    if config is None:
        return 1
    try:
        sock = HeartbeatSocket(int(config["port"]), str(config["bind"]))
    except OSError as error:
        channel.send({"fatal": f"cannot listen for heartbeats on UDP port {config['port']}: {error}"})
        return 1
    membership = Membership(
        str(config["node"]), boot_id(), interval=float(config["interval"]), timeout=float(config["timeout"])
    )
    if config.get("replacing"):
        membership.hold(time.monotonic())
    channel.send({"ready": True})
    key = bytes.fromhex(str(config["key"]))
    return HeartbeatLoop(sock, membership, key, channel, stamps, float(config["hung_after"])).run(early)


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2])))
