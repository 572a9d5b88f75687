"""The lab's network: Linux network namespaces joined by a bridge, standing in for a bare-metal LAN.

Topology (all addresses from documentation ranges; nothing touches the host's own interfaces):

    client ─┐                                   LAN 198.51.100.0/25, 2001:db8:100::/64
    node1  ─┤                                   nodes .11, .12, …   client .100   router .126
    node2  ─┼─ switch (Linux bridge) ─ router ─ remote    outside 198.51.100.192/26, 2001:db8:200::/64
    node3  ─┘

Namespaces are named ``ilb<owner pid>-<lab number>-<role>``: a lab deletes its own on exit, and removes
those of owners that are no longer alive (a crashed run), never anyone else's.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

PREFIX = "ilb"
LAN_V4 = ipaddress.IPv4Network("198.51.100.0/25")
LAN_V6 = ipaddress.IPv6Network("2001:db8:100::/64")
OUTSIDE_V4 = ipaddress.IPv4Network("198.51.100.192/26")
OUTSIDE_V6 = ipaddress.IPv6Network("2001:db8:200::/64")
ROUTER_LAN = 126
ROUTER_OUTSIDE = 1
CLIENT = 100
POD_OFFSET = 40  # LAN offsets 41..99: pods on the lab's pod network (nodes are 11.., the client 100)
REMOTE = 8
_OWNED = re.compile(rf"^{PREFIX}(\d+)-\d+-[a-z0-9]+$")
_instances = itertools.count(1)


def _v4(network: ipaddress.IPv4Network, offset: int) -> ipaddress.IPv4Address:
    return network[offset]


def _v6(network: ipaddress.IPv6Network, offset: int) -> ipaddress.IPv6Address:
    return network[offset]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def process_alive(pid: int) -> bool:
    """Whether a process exists (left-overs of a lab are removed only once their owner is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


CLONE_NEWNET = 0x40000000


def remove_stale_namespaces() -> list[str]:
    """Delete lab namespaces whose owning process is gone (only names of this lab's own pattern)."""
    removed = []
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _OWNED.match(name)
        if match and not process_alive(int(match.group(1))):
            ip("netns", "delete", name, check=False)
            removed.append(name)
    return removed


@dataclass
class Host:
    role: str
    namespace: str
    v4: ipaddress.IPv4Address
    v6: ipaddress.IPv6Address

    def run(self, *argv: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def mac(self, interface: str = "eth0") -> str:
        return self.run("cat", f"/sys/class/net/{interface}/address", check=True).stdout.strip()

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """Run this thread in the host's network namespace: sockets opened meanwhile stay in it."""
        libc = ctypes.CDLL(None, use_errno=True)
        original_path, target_path = Path("/proc/thread-self/ns/net"), Path(f"/run/netns/{self.namespace}")
        with original_path.open() as original, target_path.open() as target:
            if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.namespace}")
            try:
                yield
            finally:
                libc.setns(original.fileno(), CLONE_NEWNET)


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit in the main thread, so every lab's ``with`` block ends its processes and
    deletes its namespaces (a lab tool stopped by ``timeout`` or ``kill`` leaves nothing behind)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


@dataclass
class LabNetwork:
    nodes: int = 3
    owner: int = field(default_factory=os.getpid)
    instance: int = field(default_factory=lambda: next(_instances))
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    removes_stale: ClassVar[bool] = True  # namespaces of crashed runs go first (a lab that owns none: False)

    @property
    def stem(self) -> str:
        return f"{PREFIX}{self.owner}-{self.instance}-"

    def name(self, role: str) -> str:
        return f"{self.stem}{role}"

    @property
    def switch(self) -> str:
        return self.name("switch")

    def node(self, number: int) -> Host:
        return self.hosts[f"node{number}"]

    @property
    def client(self) -> Host:
        return self.hosts["client"]

    @property
    def router(self) -> Host:
        return self.hosts["router"]

    @property
    def remote(self) -> Host:
        return self.hosts["remote"]

    # -------------------------------------------------------------------------------------- lifecycle
    def create(self) -> Self:
        if self.removes_stale:
            remove_stale_namespaces()
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def _namespace(self, role: str) -> str:
        namespace = self.name(role)
        ip("netns", "add", namespace)
        for setting in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"):
            subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-qw", setting], check=True)
        ip("-n", namespace, "link", "set", "lo", "up")
        return namespace

    def _build(self) -> None:
        self._namespace("switch")
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        lan_hosts = [(f"node{n}", 10 + n) for n in range(1, self.nodes + 1)]
        lan_hosts += [("client", CLIENT), ("router", ROUTER_LAN)]
        for role, offset in lan_hosts:
            self.hosts[role] = self._plug_into_lan(role, self._namespace(role), offset)
        remote = self._namespace("remote")
        ip(
            "link",
            "add",
            "eth1",
            "netns",
            self.router.namespace,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            remote,
        )
        self.hosts["remote"] = Host("remote", remote, _v4(OUTSIDE_V4, REMOTE), _v6(OUTSIDE_V6, REMOTE))
        for namespace, device, v4, v6 in (
            (self.router.namespace, "eth1", OUTSIDE_V4[ROUTER_OUTSIDE], OUTSIDE_V6[ROUTER_OUTSIDE]),
            (remote, "eth0", OUTSIDE_V4[REMOTE], OUTSIDE_V6[REMOTE]),
        ):
            ip("-n", namespace, "addr", "add", f"{v4}/{OUTSIDE_V4.prefixlen}", "dev", device)
            ip("-n", namespace, "addr", "add", f"{v6}/{OUTSIDE_V6.prefixlen}", "dev", device, "nodad")
            ip("-n", namespace, "link", "set", device, "up")
        for setting in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            self.router.run("sysctl", "-qw", setting, check=True)
        for role, host in self.hosts.items():
            if role == "router":
                continue
            gateway_v4 = OUTSIDE_V4[ROUTER_OUTSIDE] if role == "remote" else LAN_V4[ROUTER_LAN]
            gateway_v6 = OUTSIDE_V6[ROUTER_OUTSIDE] if role == "remote" else LAN_V6[ROUTER_LAN]
            ip("-n", host.namespace, "route", "add", "default", "via", str(gateway_v4))
            ip("-n", host.namespace, "-6", "route", "add", "default", "via", str(gateway_v6))

    def _plug_into_lan(self, role: str, namespace: str, offset: int) -> Host:
        """A cable from the namespace's eth0 to the switch, with the LAN addresses at ``offset``."""
        port = self.switch_port(role)
        ip(
            "link",
            "add",
            "eth0",
            "netns",
            namespace,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            self.switch,
        )
        ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        host = Host(role, namespace, _v4(LAN_V4, offset), _v6(LAN_V6, offset))
        ip("-n", namespace, "addr", "add", f"{host.v4}/{LAN_V4.prefixlen}", "dev", "eth0")
        ip("-n", namespace, "addr", "add", f"{host.v6}/{LAN_V6.prefixlen}", "dev", "eth0", "nodad")
        ip("-n", namespace, "link", "set", "eth0", "up")
        return host

    def pod_network(self, role: str, namespace: str, number: int) -> Host:
        """Give a pod's namespace (made by the caller) an address of the pod network: the LAN's offsets
        POD_OFFSET + number, so a monitoring host on the LAN reaches it, as a cluster's pod network would."""
        if not 0 < number < CLIENT - POD_OFFSET:
            raise ValueError(f"pod network full: pod {number}")
        host = self._plug_into_lan(role, namespace, POD_OFFSET + number)
        ip("-n", namespace, "route", "add", "default", "via", str(LAN_V4[ROUTER_LAN]))
        ip("-n", namespace, "-6", "route", "add", "default", "via", str(LAN_V6[ROUTER_LAN]))
        return host

    @staticmethod
    def switch_port(role: str) -> str:
        """The bridge port a LAN host's cable is plugged into (the switch's end of its veth): ``n1`` ...
        ``n10`` ... for the nodes (one port per node whatever their number), ``cl``, ``ro``."""
        if role.startswith("ipod"):  # pods on the pod network: p1, p2, ...
            return "p" + role.removeprefix("ipod")
        return "n" + role.removeprefix("node") if role.startswith("node") else role[:2]

    def unplug(self, role: str) -> None:
        """Pull the host's cable at the switch: it loses carrier but keeps its addresses and routes, as a
        real machine does (setting its own eth0 down would also drop its default route)."""
        ip("-n", self.switch, "link", "set", self.switch_port(role), "down")

    def plug(self, role: str) -> None:
        ip("-n", self.switch, "link", "set", self.switch_port(role), "up")

    def spawn(
        self, host: Host, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process inside a host's namespace; the lab ends it by PID on exit."""
        return self.spawn_here(["ip", "netns", "exec", host.namespace, *argv], log, env)

    def spawn_here(
        self, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process in this process's own namespace (a container runtime naming the namespace of the
        container itself); the lab ends it by PID on exit."""
        with log.open("ab") as output:
            process = subprocess.Popen(
                argv,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def destroy(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        for line in ip("netns", "list").stdout.splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith(self.stem):
                ip("netns", "delete", name, check=False)
        self.hosts.clear()

    def __enter__(self) -> Self:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
