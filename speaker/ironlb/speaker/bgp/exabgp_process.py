"""Run and supervise one exabgp process; change its routes through the API relay without restarting it.

exabgp runs as a child with its stdout drained by a thread (a full pipe stalls every session). Its API
process is ``ironlb.speaker.bgp.exabgp_relay``, connected to a Unix socket in the run directory: a writer
thread sends route changes (level-triggered: what is wanted against what was sent, so the caller never
blocks), a reader thread turns exabgp's JSON neighbor events into session states. When the relay loses
the speaker it ends exabgp (SIGTERM), so a dead speaker's routes do not outlive it.
Acks stay on (exabgp's default), so errors are logged per command and ``stop`` knows when withdrawals landed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ironlb.api.contract import ExabgpConfig

from .exabgp_api import (
    command_for,
    diff_routes,
    end_of_rib_commands,
    parse_event,
    parse_negotiated,
    resend_routes,
)
from .exabgp_config import render_exabgp
from .routes import Route

log = logging.getLogger(__name__)

RESTART_BACKOFF_SECONDS = 1.0
# exabgp can drop an announcement that races with a session coming up: re-send after it settled.
RESYNC_AFTER_UP_SECONDS = 0.5
FULL_RESYNC_SECONDS = 10.0  # every Established session's routes are announced again (exabgp dedups)
# exabgp reports a session only once its TCP connection is up: one that never gets there is explained after
NO_CONNECTION_REPORT_SECONDS = 5.0
NOT_CONNECTED_YET = "not connected yet"
# exabgp drops a SIGUSR1 that arrives while a peer has updates queued; it logs this when it does reload
RELOAD_DONE = "performing reload of exabgp"
RELOAD_RETRY_SECONDS = 1.0
# BFD saw the peer go: exabgp's teardown sends Cease with this subcode (RFC 4486: Administrative Reset, the
# session comes back once BFD is Up again)
CEASE_ADMINISTRATIVE_RESET = 4
# the family a session carries when exabgp did not say (a peer without the multiprotocol capability)
DEFAULT_FAMILIES = ("ipv4 unicast",)


@dataclass(frozen=True)
class SessionState:
    state: str
    since: float
    reason: str = ""


def exabgp_environment(base: Mapping[str, str]) -> dict[str, str]:
    """exabgp's settings (environment variables): foreground, no CLI pipe, no listener, logs to stdout."""
    user = pwd.getpwuid(os.getuid()).pw_name
    return {
        **base,
        "exabgp.daemon.daemonize": "false",
        "exabgp.daemon.user": user,
        "exabgp.daemon.drop": "false",
        "exabgp.log.destination": "stdout",
        "exabgp.log.short": "true",
        "exabgp.api.cli": "false",
        "exabgp.api.ack": "true",
        "exabgp.api.respawn": "false",
        "exabgp.tcp.bind": "",
        "PYTHONUNBUFFERED": "1",
    }


def no_connection_reason(peer: str, port: int, seconds: float, password: bool) -> str:
    """Why a session that never got a TCP connection is down. The peer's kernel drops a segment whose MD5
    signature does not match (or that lacks one) without an answer, so neither side can tell a wrong
    password from an unreachable peer; the message names both."""
    where = f"no TCP connection to {peer}:{port} after {seconds:.0f} s"
    if password:
        return f"{where}: the TCP MD5 password does not match the peer's, or the peer is unreachable"
    return f"{where}: the peer is unreachable, refuses this node, or expects an MD5 password"


def redact(line: str) -> str:
    """exabgp prints its configuration at its debug level, the MD5 password too: never pass that on."""
    return line.split("md5-password", 1)[0] + "md5-password <redacted>" if "md5-password" in line else line


def _drain(stream: IO[bytes], prefix: str, on_reload: Callable[[], None]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").strip()
        if line:
            log.debug("%s: %s", prefix, redact(line))
            if RELOAD_DONE in line:
                on_reload()


class ExabgpSupervisor:
    """One exabgp per speaker; call ``poll()`` on every tick of the speaker's loop (returns at once)."""

    def __init__(
        self,
        config: ExabgpConfig,
        run_dir: Path,
        exabgp: Path | None = None,
    ) -> None:
        """``config`` carries the MD5 passwords already (the speaker reads them from its Secret watch)."""
        self._config = config
        self._run_dir = run_dir
        self._exabgp = exabgp or Path(sys.executable).parent / "exabgp"
        self._lock = threading.Condition()
        self._wanted: dict[str, frozenset[Route]] = {}
        self._sent: dict[str, frozenset[Route]] = {}
        self._resync: dict[str, float] = {}
        self._resend: set[str] = set()  # sessions whose unchanged routes are announced once more
        self._commands: list[str] = []  # other API commands (teardowns), sent before route changes
        self._families: dict[str, tuple[str, ...]] = {}  # session -> families it negotiated
        self._end_of_rib_due: set[str] = set()  # sessions up, whose End-of-RIB follows their routes
        self._next_full_resync = time.monotonic() + FULL_RESYNC_SECONDS
        self._states: dict[str, SessionState] = {}
        self._connection: socket.socket | None = None
        self._pending_acks = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._listener: socket.socket | None = None
        self._stopping = False
        self._last_start = 0.0
        self._reload_sent: float | None = None  # when a SIGUSR1 was sent that exabgp has not acted on yet
        self.restarts = 0

    # ------------------------------------------------------------------------------------- public API
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def socket_path(self) -> Path:
        return self._run_dir / "api.sock"

    @property
    def config_path(self) -> Path:
        return self._run_dir / "exabgp.conf"

    def start(self) -> None:
        self._run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.socket_path))
        self._listener.listen(4)
        threading.Thread(target=self._accept_loop, name="exabgp-accept", daemon=True).start()
        threading.Thread(target=self._write_loop, name="exabgp-writer", daemon=True).start()
        self._spawn()

    def set_routes(self, routes_by_session: Mapping[str, frozenset[Route]]) -> None:
        """The routes wanted now; the writer thread sends only the changes."""
        with self._lock:
            self._wanted = {name: routes for name, routes in routes_by_session.items() if routes}
            self._lock.notify_all()

    def teardown(self, peer_address: str) -> None:
        """Close the sessions to a peer now, from any thread (BFD lost it). exabgp would open them again
        after a second: leave them out of the next ``reconfigure`` to keep them closed."""
        with self._lock:
            self._commands.append(f"neighbor {peer_address} teardown {CEASE_ADMINISTRATIVE_RESET}")
            self._lock.notify_all()

    def sessions(self) -> dict[str, SessionState]:
        with self._lock:
            return dict(self._states)

    def reconfigure(self, config: ExabgpConfig) -> None:
        """New peers: rewrite the file and let exabgp reload it (SIGUSR1, repeated by ``poll`` until exabgp
        says it reloaded). A changed session keeps what was sent on it (exabgp keeps that session's routes
        and re-sends them when it is up again); its changes follow once it is up."""
        if config == self._config:
            return
        old = {n.session.name: n for n in self._config.neighbors}
        new = {n.session.name: n for n in config.neighbors}
        with self._lock:
            previous, self._config = self._config, config
            try:
                self._write_config()
            except Exception:
                self._config = previous  # a bad configuration is refused and retried, never half-applied
                raise
            for name in set(old) | set(new):
                if old.get(name) != new.get(name):
                    self._states.pop(name, None)
                if name not in new:  # exabgp drops a removed peer with its routes: nothing to withdraw
                    self._sent.pop(name, None)
            self._initial_states()
            self._lock.notify_all()
        self._signal_reload()

    def _signal_reload(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._reload_sent = time.monotonic()
            self._process.send_signal(signal.SIGUSR1)

    def _reloaded(self) -> None:
        self._reload_sent = None

    def poll(self) -> None:
        """Restart exabgp when it died (its routes are re-announced); resend after sessions came up; explain
        sessions that never got a TCP connection."""
        now = time.monotonic()
        with self._lock:
            self._explain_unconnected(time.time())
        if self._reload_sent is not None and now - self._reload_sent >= RELOAD_RETRY_SECONDS:
            log.info("exabgp did not reload its configuration yet: signalling it again")
            self._signal_reload()
        with self._lock:
            due = [name for name, at in self._resync.items() if at <= now]
            for name in due:
                del self._resync[name]
            if now >= self._next_full_resync:  # a safety net: an update exabgp lost is sent again
                self._next_full_resync = now + FULL_RESYNC_SECONDS
                due += [name for name, state in self._states.items() if state.state == "Established"]
            if due:
                self._resend.update(due)
                self._lock.notify_all()
        process = self._process
        if self._stopping or process is None or process.poll() is None:
            return
        if now - self._last_start < RESTART_BACKOFF_SECONDS:
            return
        log.warning("exabgp exited with status %s; restarting it", process.returncode)
        self.restarts += 1
        self._spawn()

    def stop(self, timeout: float = 1.0) -> None:
        """Withdraw everything, then end exabgp (it closes its sessions with a Cease notification)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._wanted = {}
            self._lock.notify_all()
            self._lock.wait_for(
                lambda: (
                    self._connection is None
                    or (self._wanted_here() == self._sent and self._pending_acks <= 0)
                ),
                timeout=timeout / 2,
            )
            self._stopping = True
            self._lock.notify_all()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._listener is not None:
            self._listener.close()
        self.socket_path.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------------------- internals
    def _initial_states(self) -> None:
        now = time.time()
        for neighbor in self._config.neighbors:
            self._states.setdefault(neighbor.session.name, SessionState("Idle", now, NOT_CONNECTED_YET))

    def _explain_unconnected(self, now: float) -> None:
        """A session still Idle without any event from exabgp is trying to connect: Active, and why."""
        for neighbor in self._config.neighbors:
            session = neighbor.session
            state = self._states.get(session.name)
            if state is None or state.reason != NOT_CONNECTED_YET:
                continue
            if now - state.since >= NO_CONNECTION_REPORT_SECONDS:
                password = neighbor.password is not None or session.password_secret is not None
                reason = no_connection_reason(
                    session.peer_address, session.peer_port, now - state.since, password
                )
                self._states[session.name] = SessionState("Active", now, reason)
                log.info("BGP session %s is Active: %s", session.name, reason)

    def _write_config(self) -> None:
        relay = f"{sys.executable} -m ironlb.speaker.bgp.exabgp_relay {self.socket_path}"
        text = render_exabgp(self._config.model_copy(update={"api_command": relay}))
        temporary = self.config_path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        temporary.replace(self.config_path)

    def _spawn(self) -> None:
        self._reload_sent = None  # a new exabgp reads the current file
        self._last_start = time.monotonic()  # first: a failing start is retried after the back-off only
        with self._lock:
            self._initial_states()
            self._write_config()
        self._process = subprocess.Popen(
            [str(self._exabgp), str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=exabgp_environment(os.environ),
        )
        assert self._process.stdout is not None
        threading.Thread(
            target=_drain,
            args=(self._process.stdout, f"exabgp[{self._process.pid}]", self._reloaded),
            daemon=True,
        ).start()

    def _peer_addresses(self) -> dict[str, str]:
        return {n.session.name: n.session.peer_address for n in self._config.neighbors}

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._connection is not None:
                    self._connection.close()
                self._connection = connection
                self._sent = {}
                self._commands = []  # for the sessions of an exabgp that is gone
                self._pending_acks = 0
                self._lock.notify_all()
            threading.Thread(target=self._read_loop, args=(connection,), daemon=True).start()

    def _read_loop(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection.makefile("rb") as stream:
            for raw in stream:
                self._handle_line(raw.decode(errors="replace").strip())
        with self._lock:
            if self._connection is connection:
                self._connection = None
                self._sent = {}
                now = time.time()
                for name in self._states:
                    self._states[name] = SessionState("Idle", now, "exabgp stopped")
            self._lock.notify_all()

    def _handle_line(self, line: str) -> None:
        if line in ("done", "error"):
            with self._lock:
                self._pending_acks -= 1
                self._lock.notify_all()
            if line == "error":
                log.warning("exabgp refused a route command (see exabgp's log)")
            return
        negotiated = parse_negotiated(line)
        if negotiated is not None:
            with self._lock:
                families = negotiated.families
                for name, address in self._peer_addresses().items():
                    if address == negotiated.peer_address and self._families.get(name) != families:
                        self._families[name] = families
                        log.info("BGP session %s carries %s", name, ", ".join(families) or "nothing")
            return
        event = parse_event(line)
        if event is None:
            return
        names = [name for name, address in self._peer_addresses().items() if address == event.peer_address]
        with self._lock:
            for name in names:
                old = self._states.get(name)
                if old is None or old.state != event.state:
                    self._states[name] = SessionState(event.state, time.time(), event.reason)
                    log.info(
                        "BGP session %s (%s) is %s %s", name, event.peer_address, event.state, event.reason
                    )
                if event.state == "Established":
                    self._resync[name] = time.monotonic() + RESYNC_AFTER_UP_SECONDS
                    self._end_of_rib_due.add(name)
            self._lock.notify_all()  # an Established session gets the changes held back while it was down

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(
                    lambda: (
                        self._stopping
                        or (
                            self._connection is not None
                            and (
                                self._wanted_here() != self._sent
                                or bool(self._resend)
                                or bool(self._commands)
                                or bool(self._end_of_rib_due)
                            )
                        )
                    )
                )
                if self._stopping:
                    return
                connection = self._connection
                wanted = self._wanted_here()
                changes = diff_routes(self._sent, wanted) + resend_routes(self._sent, wanted, self._resend)
                self._resend = set()
                commands, self._commands = self._commands, []
                addresses = self._peer_addresses()
                self._sent = wanted
                ends = self._end_of_rib_after(addresses)
                self._pending_acks += len(commands) + len(changes) + len(ends)
            commands += [command_for(c, addresses[c.session]) for c in changes] + ends
            payload = "".join(command + "\n" for command in commands)
            try:
                assert connection is not None
                connection.sendall(payload.encode())
            except OSError as error:
                log.warning("exabgp's API relay is gone (%s); routes are sent again on reconnect", error)

    def _end_of_rib_after(self, addresses: Mapping[str, str]) -> list[str]:
        """End-of-RIB for the sessions that came up, to follow the routes sent with it (exabgp handles
        commands in order, and sends an End-of-RIB only once the routes before it are out)."""
        due, self._end_of_rib_due = self._end_of_rib_due, set()
        up = {name for name, state in self._states.items() if state.state == "Established"}
        return [
            command
            for name in sorted(due & up & addresses.keys())
            for command in end_of_rib_commands(addresses[name], self._families.get(name) or DEFAULT_FAMILIES)
        ]

    def _wanted_here(self) -> dict[str, frozenset[Route]]:
        """Wanted routes of the sessions exabgp knows (commands for others would fail). A session that is
        not Established keeps what it was sent: commands for it would stay queued in exabgp, and exabgp
        ignores SIGUSR1 (peer changes) while anything is queued, so a down session could never be fixed."""
        wanted: dict[str, frozenset[Route]] = {}
        for name in self._peer_addresses():
            state = self._states.get(name)
            routes = (
                self._wanted.get(name) if state and state.state == "Established" else self._sent.get(name)
            )
            if routes:
                wanted[name] = routes
        return wanted
