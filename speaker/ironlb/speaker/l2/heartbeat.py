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
CPU_SAMPLE_EVERY = 0.25  # seconds between reads of the speaker loop's CPU time (a hang is seen this late)


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


class LoopWatch:
    """Is the speaker's loop hung? Only if it has not marked the stamps for ``hung_after`` seconds *and* its
    thread has not run on a CPU meanwhile (``schedstat``: nanoseconds on a CPU): a loop computing for long
    (the first election of thousands of IPs under a CPU quota) is busy, not hung. Blocked on a lock or a
    socket, or frozen, it uses no CPU. Without a readable ``schedstat``, silence alone decides."""

    def __init__(self, stamps: SharedStamps, schedstat: Path | None, hung_after: float) -> None:
        self.stamps, self.schedstat, self.hung_after = stamps, schedstat, hung_after
        self._cpu: int | None = None
        self._cpu_changed = float("-inf")
        self._next_sample = float("-inf")

    def hung_for(self, now: float) -> float | None:
        """Seconds the loop has been hung, or None while it runs (or merely works)."""
        if now >= self._next_sample:
            self._sample(now)
        silent, idle = now - self.stamps.loop_ran(), now - self._cpu_changed
        if silent > self.hung_after and idle > self.hung_after:
            return min(silent, idle)
        return None

    def _sample(self, now: float) -> None:
        self._next_sample = now + CPU_SAMPLE_EVERY
        try:
            cpu = int(self.schedstat.read_text().split()[0]) if self.schedstat is not None else None
        except (OSError, ValueError, IndexError):
            cpu = None
        if cpu is not None and cpu != self._cpu:
            self._cpu, self._cpu_changed = cpu, now


class HeartbeatLoop:
    """The process's one loop: membership ticked every quarter of an interval and fed what arrives. What the
    speaker needs is published as it changes: the claim window in shared memory (``stamps``), the dead
    nodes, the down reports on this node, stalls and log lines over ``channel``.

    The loop follows the speaker's: while the speaker's loop is hung (``LoopWatch``), no heartbeat goes out
    (as if this loop had stalled), so that peers take over the IPs of a hung speaker instead of leaving them
    unanswered."""

    def __init__(
        self,
        sock: HeartbeatSocket,
        membership: Membership,
        key: bytes,
        channel: Channel,
        stamps: SharedStamps,
        speaker_loop: LoopWatch,
    ) -> None:
        self.sock, self.membership, self.key = sock, membership, key
        self.channel, self.stamps, self.speaker_loop = channel, stamps, speaker_loop
        self._addresses: dict[str, str] = {}
        self._reported: tuple[int, int] | None = None  # (membership version, doubted) told to the speaker
        self._dead = frozenset[str]()
        self._hung = False
        self._busy = False  # the last wait ended with a datagram

    def run(self, early: list[Message]) -> int:
        """Until the speaker says stop or leave, or is gone (then this node falls silent, as it did).
        ``early``: what the speaker sent after the configuration, before this loop ran."""
        received = early
        while True:
            for message in received:
                if not self._obey(message):
                    return 0
            if self.channel.closed:
                return 0
            try:
                received = self._round()
            except Exception:
                self._log(logging.ERROR, f"heartbeats: {traceback.format_exc()}")
                time.sleep(self.membership.interval)
                received = self.channel.receive()

    def _obey(self, message: Message) -> bool:
        if "peers" in message and message["peers"] != self._addresses:
            self._addresses = dict(message["peers"])
            self.membership.configure(self._addresses)
        if message.get("leave"):  # a graceful stop: a goodbye to every node, so they take over at once
            self._send(self.membership.leave(time.monotonic_ns()))
            return False
        return not message.get("stop")

    def _round(self) -> list[Message]:
        """Tick, then sleep until the membership has work (``next_due``) or something arrives; returns what
        the speaker sent meanwhile. Each wake-up costs CPU (tens of µs in a VM, under the pod's quota), so
        rounds come only when due, and at most every ``interval / 4``: datagrams arriving faster are read
        together (a silence is then noticed at most that late, as with the fixed ticks this replaced)."""
        started = time.monotonic()
        interval = self.membership.interval
        hung = self.speaker_loop.hung_for(started)
        if hung is not None:
            if not self._hung:
                self._hung = True
                self._log(
                    logging.WARNING,
                    f"the speaker's loop has not run for {hung * 1000:.0f} ms: no heartbeat goes out until "
                    "it runs again, so that peers take its IPs over",
                )
            return self._wait(None, interval / 4)[1]
        self._hung = False
        outgoing = self.membership.tick(started, time.monotonic_ns())
        self.stamps.publish_claim(*self.membership.claim_window())
        for gap in self.membership.stalls:
            self.channel.send({"stall": gap})
        self.membership.stalls = []
        self._send(outgoing)
        self._report()
        rest = started + interval / 4 - time.monotonic()
        if self._busy and rest > 0:  # datagrams are flowing: let those of the next moments come together
            time.sleep(rest)
        until = min(self.membership.next_due(), started + interval)  # (the claim window stays fresh)
        datagrams, received = self._wait(self.sock.sock, max(0.0, until - time.monotonic()))
        self._busy = datagrams
        if datagrams:
            messages = [m for data in self.sock.receive_all() if (m := decode(self.key, data))]
            now = time.monotonic()
            for message in messages:
                self.membership.receive(message, now)
            self._report()  # a death the reports just confirmed: at once, not at the next tick
        return received

    def _wait(self, datagrams: socket.socket | None, timeout: float) -> tuple[bool, list[Message]]:
        """Up to ``timeout`` for a datagram or the speaker: (a datagram is waiting, what the speaker sent)."""
        watched: list[socket.socket | Channel] = (
            [self.channel] if datagrams is None else [datagrams, self.channel]
        )
        readable, writable, _ = select.select(
            watched, [self.channel] if self.channel.pending else [], [], timeout
        )
        if writable:
            self.channel.flush()
        received = self.channel.receive() if self.channel in readable else []
        return datagrams is not None and datagrams in readable, received

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
    schedstat = Path(str(config["loop_schedstat"])) if config.get("loop_schedstat") else None
    speaker_loop = LoopWatch(stamps, schedstat, float(config["hung_after"]))
    return HeartbeatLoop(sock, membership, key, channel, stamps, speaker_loop).run(early)


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2])))
