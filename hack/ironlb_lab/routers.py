"""Real BGP routers for the lab: BIRD2 and GoBGP in the lab's router namespace, and their RIBs read back.

Both peer with a list of neighbors (address, ASN, optional MD5 password) and keep every path, so a test sees
the ECMP next hops of a prefix. BIRD also exports its best routes to the router namespace's kernel with
``merge paths on`` (ECMP), so the router forwards to the nodes; GoBGP has no kernel export without zebra
and is used for its RIB only. Control sockets are private: BIRD's is a file in the work directory, GoBGP's
gRPC port is on the loopback of the router namespace (its own loopback, unreachable from elsewhere).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .network import Host, LabNetwork


@dataclass(frozen=True)
class Neighbor:
    address: str
    asn: int
    password: str | None = None
    local_address: str | None = None  # BIRD: the router's address for this session (default: any)
    local_port: int | None = None  # BIRD: listen on this port for this session (default: 179)
    bfd: bool = (
        False  # BIRD: a BFD session under it (BFD_INTERVAL_MS x BFD_MULTIPLIER), restarting it on loss
    )
    multihop: bool = False  # BIRD: a multihop session (and multihop BFD; needs local_address)

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True)
class RouteInfo:
    """A prefix in a router's RIB: the next hops of all its paths and the attributes they carry."""

    next_hops: frozenset[str]
    communities: frozenset[str] = frozenset()
    large_communities: frozenset[str] = frozenset()
    local_pref: int | None = None


def _merge(routes: dict[str, RouteInfo], prefix: str, path: RouteInfo) -> None:
    old = routes.get(prefix)
    if old is None:
        routes[prefix] = path
        return
    routes[prefix] = RouteInfo(
        old.next_hops | path.next_hops,
        old.communities | path.communities,
        old.large_communities | path.large_communities,
        old.local_pref if old.local_pref is not None else path.local_pref,
    )


# ------------------------------------------------------------------------------------------------ BIRD2
BFD_INTERVAL_MS, BFD_MULTIPLIER = 300, 3  # the router's BFD timers (MetalLB's default profile)


def bird_config(
    router_id: str,
    asn: int,
    neighbors: Sequence[Neighbor],
    graceful_restart: bool = False,
    trace_packets: bool = False,
) -> str:
    """BIRD2 configuration: one BGP protocol per neighbor, all paths kept, ECMP into the kernel; a BFD
    protocol when a neighbor asks for BFD (on the LAN interface, and multihop). With ``graceful_restart``
    (RFC 4724) BIRD restarts keeping its forwarding table: the kernel protocols wait for the recovery to end
    (every graceful-restart peer's End-of-RIB) before they remove what was not learned again. With
    ``trace_packets`` the log says which BGP message came when (``peer0: Got UPDATE``, ``Got END-OF-RIB``)."""
    kernel = " graceful restart on;" if graceful_restart else ""
    lines = [
        f"router id {router_id};",
        "log stderr all;",
        "timeformat protocol iso long ms;",
        "protocol device { scan time 10; }",
        f"protocol kernel kernel4 {{ ipv4 {{ export all; }}; merge paths on;{kernel} }}",
        f"protocol kernel kernel6 {{ ipv6 {{ export all; }}; merge paths on;{kernel} }}",
    ]
    if any(neighbor.bfd for neighbor in neighbors):
        timers = f"interval {BFD_INTERVAL_MS} ms; multiplier {BFD_MULTIPLIER};"
        lines.append(f'protocol bfd {{ interface "eth0" {{ {timers} }}; multihop {{ {timers} }}; }}')
    if any(neighbor.multihop for neighbor in neighbors):  # next hops resolved recursively: the LAN's route
        lines.append("protocol direct { ipv4; ipv6; }")
    for number, neighbor in enumerate(neighbors):
        family = f"ipv{neighbor.family}"
        ibgp = neighbor.asn == asn
        local = "local"
        if neighbor.local_address is not None:
            local += f" {neighbor.local_address}"
        if neighbor.local_port is not None:
            local += f" port {neighbor.local_port}"
        options = [
            f"{local} as {asn};",
            f"neighbor {neighbor.address} as {neighbor.asn};",
            "hold time 9;",
            "connect retry time 1;",
            "error wait time 1, 2;",
        ]
        if neighbor.multihop:
            options.append("multihop;")
        elif ibgp:
            options.append("direct;")
        if neighbor.bfd:
            options.append("bfd on;")
        if graceful_restart:
            options.append("graceful restart on;")
        if trace_packets:
            options.append("debug { packets };")
        if neighbor.password is not None:
            options.append(f'password "{neighbor.password}";')
        channel = f"{family} {{ import all; export none;{' gateway direct;' if ibgp else ''} }};"
        lines.append(f"protocol bgp peer{number} {{ {' '.join(options)} {channel} }}")
    return "\n".join(lines) + "\n"


_BIRD_PREFIX = re.compile(r"^([0-9a-fA-F:.]+/\d+)\s+unicast\s")
_BIRD_PATH = re.compile(r"^\s+unicast\s")
_BIRD_VIA = re.compile(r"^\s+via\s+(\S+)")
_PAIRS = re.compile(r"\(([0-9, ]+)\)")


def parse_bird_routes(text: str) -> dict[str, RouteInfo]:
    """Parse ``birdc show route all``: every path of every prefix, merged per prefix."""
    routes: dict[str, RouteInfo] = {}
    prefix: str | None = None
    hops: set[str] = set()
    communities: set[str] = set()
    large: set[str] = set()
    local_pref: int | None = None

    def flush() -> None:
        if prefix is not None and hops:
            _merge(
                routes,
                prefix,
                RouteInfo(frozenset(hops), frozenset(communities), frozenset(large), local_pref),
            )

    for line in text.splitlines():
        head = _BIRD_PREFIX.match(line)
        if head or _BIRD_PATH.match(line):
            flush()
            if head:
                prefix = str(ipaddress.ip_network(head.group(1)))
            hops, communities, large, local_pref = set(), set(), set(), None
            continue
        via = _BIRD_VIA.match(line)
        stripped = line.strip()
        if via:
            hops.add(via.group(1))
        elif stripped.startswith("BGP.local_pref:"):
            local_pref = int(stripped.split(":", 1)[1])
        elif stripped.startswith("BGP.community:"):
            communities |= {":".join(p.strip() for p in m.split(",")) for m in _PAIRS.findall(stripped)}
        elif stripped.startswith("BGP.large_community:"):
            large |= {":".join(p.strip() for p in m.split(",")) for m in _PAIRS.findall(stripped)}
    flush()
    return routes


@dataclass
class _Router:
    lab: LabNetwork
    workdir: Path
    asn: int
    neighbors: list[Neighbor]
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def host(self) -> Host:
        return self.lab.router

    def _run(self, *argv: str, timeout: float = 10) -> str:
        result = self.host.run(*argv, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {result.stdout}{result.stderr}")
        return result.stdout

    def stop(self) -> None:
        """Stop by PID (the process group of ``ip netns exec`` and the daemon)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sessions()
                return
            except (RuntimeError, subprocess.TimeoutExpired, ValueError):
                if time.monotonic() > deadline or (self.process and self.process.poll() is not None):
                    raise
                time.sleep(0.05)

    def sessions(self) -> dict[str, str]:
        raise NotImplementedError

    def routes(self) -> dict[str, RouteInfo]:
        raise NotImplementedError


@dataclass
class Bird(_Router):
    """BIRD2 in the router namespace (``bird -f``, foreground, so the lab owns its PID)."""

    graceful_restart: bool = False
    trace_packets: bool = False

    @property
    def log(self) -> Path:
        return self.workdir / "bird.log"

    @property
    def socket(self) -> Path:
        return self.workdir / "bird.ctl"

    def start(self, recovering: bool = False) -> Bird:
        """Start BIRD; ``recovering``: after ``shut_down_for_graceful_restart`` (``bird -R``)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "bird.conf"
        config.write_text(
            bird_config(
                str(self.host.v4), self.asn, self.neighbors, self.graceful_restart, self.trace_packets
            )
        )
        config.chmod(0o600)
        argv = ["bird", "-f", "-c", str(config), "-s", str(self.socket), "-P", str(self.workdir / "bird.pid")]
        self.process = self.lab.spawn(self.host, [*argv, *(["-R"] if recovering else [])], self.log)
        self.wait_ready()
        return self

    def shut_down_for_graceful_restart(self) -> None:
        """``birdc graceful restart``: BIRD exits without telling its peers (the sessions just close) and
        leaves its routes in the kernel, to be taken over by the next ``start(recovering=True)``."""
        assert self.process is not None
        self.host.run("birdc", "-s", str(self.socket), "graceful", "restart", timeout=10)
        self.process.wait(timeout=10)

    def birdc(self, *command: str) -> str:
        return self._run("birdc", "-s", str(self.socket), *command)

    def routes(self) -> dict[str, RouteInfo]:
        return parse_bird_routes(self.birdc("show", "route", "all"))

    def sessions(self) -> dict[str, str]:
        """BGP state per neighbor address (Established, Active, Connect, ...); with several protocols to
        one address, the last one's (use ``state`` for one protocol)."""
        return {neighbor.address: self.state(neighbor) for neighbor in self.neighbors}

    def protocol(self, neighbor: Neighbor) -> str:
        """The name of the BGP protocol for a neighbor of this router's configuration."""
        return f"peer{self.neighbors.index(neighbor)}"

    def show(self, neighbor: Neighbor) -> str:
        """``birdc show protocols all`` of a neighbor's protocol (state, hold timer, ...)."""
        return self.birdc("show", "protocols", "all", self.protocol(neighbor))

    def state(self, neighbor: Neighbor) -> str:
        """The BGP state of one neighbor's session (Established, Active, Connect, ...)."""
        text = self.show(neighbor)
        match = re.search(r"BGP state:\s+(\S+)", text)
        if match is None:
            raise ValueError(f"no BGP state in {text!r}")
        return match.group(1)

    def hold_time(self, neighbor: Neighbor) -> int | None:
        """The negotiated hold time of an established session (``Hold timer: left/negotiated``)."""
        match = re.search(r"Hold timer:\s+\S+/(\d+)", self.show(neighbor))
        return int(match.group(1)) if match else None

    def since(self, neighbor: Neighbor) -> datetime:
        """When the protocol last changed state (the Since column): the same moment means no session flap.
        BIRD keeps monotonic times and renders them as wall-clock time when asked, so two readings of one
        moment can differ by a millisecond: compare them with ``same_moment``."""
        lines = self.show(neighbor).splitlines()
        row = next(line for line in lines if line.startswith(self.protocol(neighbor) + " "))
        # date and time (``timeformat protocol iso long ms``)
        return datetime.strptime(" ".join(row.split()[4:6]), "%Y-%m-%d %H:%M:%S.%f")

    def bfd_sessions(self) -> dict[str, str]:
        """``birdc show bfd sessions``: BFD state per neighbor address (Up, Down, Init, ...)."""
        states = {}
        for line in self.birdc("show", "bfd", "sessions").splitlines():
            fields = line.split()
            if (
                len(fields) >= 3
                and re.match(r"^[0-9a-fA-F:.]+$", fields[0])
                and ("." in fields[0] or ":" in fields[0])
            ):
                states[fields[0]] = fields[2]
        return states

    def kernel_routes(self, family: int = 4) -> str:
        """The router's forwarding table, as ``ip route`` prints it (ECMP shows as nexthop lines)."""
        return self._run("ip", f"-{family}", "route", "show", "proto", "bird")


def same_moment(first: datetime, second: datetime, tolerance: float = 0.1) -> bool:
    """Two readings of BIRD's Since column that name one state change (see ``Bird.since``)."""
    return abs((first - second).total_seconds()) <= tolerance


# ------------------------------------------------------------------------------------------------ GoBGP
def gobgp_config(router_id: str, asn: int, neighbors: Sequence[Neighbor]) -> str:
    """gobgpd TOML: one neighbor each, the family of its address."""
    lines = ["[global.config]", f"  as = {asn}", f'  router-id = "{router_id}"', ""]
    for neighbor in neighbors:
        lines += [
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{neighbor.address}"',
            f"    peer-as = {neighbor.asn}",
        ]
        if neighbor.password is not None:
            lines.append(f'    auth-password = "{neighbor.password}"')
        lines += [
            "  [neighbors.timers.config]",
            "    hold-time = 9",
            "    keepalive-interval = 3",
            "    connect-retry = 1",
            "  [[neighbors.afi-safis]]",
            "    [neighbors.afi-safis.config]",
            f'      afi-safi-name = "ipv{neighbor.family}-unicast"',
            "",
        ]
    return "\n".join(lines)


def parse_gobgp_rib(data: object) -> dict[str, RouteInfo]:
    """Parse ``gobgp global rib -j``: {prefix: [path, ...]} with attrs by BGP attribute type code."""
    routes: dict[str, RouteInfo] = {}
    if not isinstance(data, dict):
        return routes
    for prefix, paths in data.items():
        for path in paths:
            hops: set[str] = set()
            communities: set[str] = set()
            large: set[str] = set()
            local_pref: int | None = None
            for attribute in path.get("attrs", []):
                kind = attribute.get("type")
                if kind == 3 or kind == 14:  # NEXT_HOP
                    hops.add(attribute["nexthop"])
                elif kind == 5:  # LOCAL_PREF
                    local_pref = int(attribute["value"])
                elif kind == 8:  # COMMUNITIES, as 32-bit numbers
                    communities |= {f"{c >> 16}:{c & 0xFFFF}" for c in attribute["communities"]}
                elif kind == 32:  # LARGE_COMMUNITY
                    large |= {f"{v['ASN']}:{v['LocalData1']}:{v['LocalData2']}" for v in attribute["value"]}
            _merge(
                routes,
                str(ipaddress.ip_network(prefix)),
                RouteInfo(frozenset(hops), frozenset(communities), frozenset(large), local_pref),
            )
    return routes


_GOBGP_STATES = {1: "Idle", 2: "Connect", 3: "Active", 4: "OpenSent", 5: "OpenConfirm", 6: "Established"}


class GoBGP(_Router):
    """gobgpd in the router namespace; its gRPC API on the namespace's own loopback."""

    api = "127.0.0.1:50051"

    def start(self) -> GoBGP:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "gobgpd.toml"
        config.write_text(gobgp_config(str(self.host.v4), self.asn, self.neighbors))
        config.chmod(0o600)
        argv = ["gobgpd", "-f", str(config), "-p", "--api-hosts", self.api, "--pprof-disable"]
        self.process = self.lab.spawn(self.host, argv, self.workdir / "gobgpd.log")
        self.wait_ready()
        return self

    def gobgp(self, *command: str) -> str:
        host, port = self.api.split(":")
        return self._run("gobgp", "-u", host, "-p", port, *command)

    def routes(self) -> dict[str, RouteInfo]:
        routes: dict[str, RouteInfo] = {}
        for family in ("ipv4", "ipv6"):
            for prefix, info in parse_gobgp_rib(
                json.loads(self.gobgp("global", "rib", "-a", family, "-j"))
            ).items():
                _merge(routes, prefix, info)
        return routes

    def sessions(self) -> dict[str, str]:
        states: dict[str, str] = {}
        for peer in json.loads(self.gobgp("neighbor", "-j")):
            address = peer["conf"]["neighbor_address"]
            states[address] = _GOBGP_STATES.get(peer["state"].get("session_state", 0), "Unknown")
        return states
