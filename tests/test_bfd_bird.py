"""Our BFD against BIRD2's: two namespaces joined by one veth, BIRD in one and our transport in the other.

Both ends are real processes, so a cut is a SIGSTOP of one of them: its packets stop with no interface
event to shortcut detection, and the other side has to find out by its detection time alone. BIRD's view
is read with ``birdc show bfd sessions`` polled every 20 ms; ours is the state changes the agent prints,
stamped with CLOCK_MONOTONIC, which every process on the machine shares with this test.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from ironlb.speaker.bfd.packet import ControlPacket, State, decode
from ironlb.speaker.bfd.session import BfdProfile
from ironlb.speaker.bfd.transport import MULTIHOP_PORT, SINGLE_HOP_PORT, BfdTransport
from ironlb_lab.network import Host, LabNetwork, ip

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("bird") is None or shutil.which("birdc") is None, reason="no BIRD2"),
]

BIRD_V4, OURS_V4 = "192.0.2.1", "192.0.2.2"
BIRD_V6, OURS_V6 = "2001:db8:bfd::1", "2001:db8:bfd::2"
INTERVAL, MULTIPLIER = 0.3, 3
DETECTION = INTERVAL * MULTIPLIER
SLACK = 0.1
T = TypeVar("T")

BIRD_CONFIG = f"""\
router id {BIRD_V4};
log stderr all;
timeformat protocol iso long ms;
protocol device {{ scan time 10; }}
protocol bfd {{
  interface "eth0" {{ interval 300 ms; multiplier {MULTIPLIER}; }};
  neighbor {OURS_V4};
  neighbor {OURS_V6};
}}
"""

# Our side: a small entry point run inside its namespace, printing each state change as a JSON line.
AGENT = """
import json, sys, threading, time
from ironlb.speaker.bfd.session import BfdProfile
from ironlb.speaker.bfd.transport import BfdTransport

lock = threading.Lock()  # print() writes the line and its newline apart: two threads would interleave

def emit(line):
    with lock:
        sys.stdout.write(json.dumps(line) + "\\n")
        sys.stdout.flush()

def report(peer, change):
    emit({"peer": peer, "old": change.old.name, "new": change.new.name, "diag": int(change.diag),
          "at": change.at})

transport = BfdTransport()
profile = BfdProfile(receive_interval=300, transmit_interval=300, detect_multiplier=3)
for peer, local in json.loads(sys.argv[1]):
    transport.add_session(peer, local, profile, report)
emit({"ready": time.monotonic()})
while True:
    time.sleep(3600)
"""


class BfdLab(LabNetwork):
    """Just two namespaces, ``bird`` and ``ours``, and a veth between them (192.0.2.0/24, 2001:db8:bfd::/64);
    named, cleaned up and run like every lab network. Unlike ``LabNetwork.create`` it leaves other runs'
    namespaces alone, even stale ones: this test deletes only what it made."""

    removes_stale: ClassVar[bool] = False

    def _build(self) -> None:
        bird, ours = self._namespace("bird"), self._namespace("ours")
        ip("link", "add", "eth0", "netns", bird, "type", "veth", "peer", "name", "eth0", "netns", ours)
        for namespace, v4, v6 in ((bird, BIRD_V4, BIRD_V6), (ours, OURS_V4, OURS_V6)):
            ip("-n", namespace, "addr", "add", f"{v4}/24", "dev", "eth0")
            ip("-n", namespace, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
            ip("-n", namespace, "link", "set", "eth0", "up")
        self.hosts["bird"] = Host("bird", bird, IPv4Address(BIRD_V4), IPv6Address(BIRD_V6))
        self.hosts["ours"] = Host("ours", ours, IPv4Address(OURS_V4), IPv6Address(OURS_V6))


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what} not within {timeout} s")


@dataclass(frozen=True)
class BirdSession:
    state: str
    since: datetime
    interval: float
    timeout: float


@dataclass
class Bird:
    process: subprocess.Popen[bytes]
    socket: Path

    def sessions(self) -> dict[str, BirdSession]:
        """``birdc show bfd sessions``; birdc talks to BIRD's control socket, a file, from any namespace."""
        text = subprocess.run(
            ["birdc", "-s", str(self.socket), "show", "bfd", "sessions"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        sessions = {}
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 7 and re.match(r"^[0-9a-f:.]+$", fields[0]) and fields[0] != "IP":
                since = datetime.strptime(f"{fields[3]} {fields[4]}", "%Y-%m-%d %H:%M:%S.%f")
                sessions[fields[0]] = BirdSession(fields[2], since, float(fields[5]), float(fields[6]))
        return sessions

    def states(self) -> dict[str, str]:
        return {peer: session.state for peer, session in self.sessions().items()}


def read_events(log: Path) -> list[dict[str, Any]]:
    events = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def running(process: subprocess.Popen[bytes], name: str) -> Callable[[], bool]:
    comm = Path(f"/proc/{process.pid}/comm")
    return lambda: comm.read_text().strip() == name


def resume(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)


@pytest.fixture
def lab() -> Iterator[BfdLab]:
    network = BfdLab(nodes=0).create()
    try:
        yield network
    finally:
        network.destroy()


def test_bfd_with_bird_comes_up_and_each_side_detects_the_others_loss(lab: BfdLab, tmp_path: Path) -> None:
    config = tmp_path / "bird.conf"
    config.write_text(BIRD_CONFIG)
    control = tmp_path / "bird.ctl"
    argv = ["bird", "-f", "-c", str(config), "-s", str(control), "-P", str(tmp_path / "bird.pid")]
    bird = Bird(lab.spawn(lab.hosts["bird"], argv, tmp_path / "bird.log"), control)
    agent_log = tmp_path / "agent.log"
    peers = json.dumps([[BIRD_V4, OURS_V4], [BIRD_V6, OURS_V6]])
    agent = lab.spawn(lab.hosts["ours"], [sys.executable, "-c", AGENT, peers], agent_log)
    try:
        # the processes are the daemons themselves (ip netns exec execs), so their PIDs are what we stop
        for process, name in ((bird.process, "bird"), (agent, Path(sys.executable).name[:15])):
            wait_for(running(process, name), 5, f"{name} in place of ip netns exec")
        wait_for(lambda: any("ready" in e for e in read_events(agent_log)), 15, "our agent ready")

        # Up on both ends, with our 300 ms already in BIRD's timeout (our Poll Sequence after Up)
        def both_up() -> bool:
            sessions = wait_for(bird.sessions, 15, "birdc answers")
            ours = {e["peer"]: e["new"] for e in read_events(agent_log) if "peer" in e}
            bird_up = all(
                (s := sessions.get(peer)) is not None
                and s.state == "Up"
                and abs(s.timeout - DETECTION) < 0.001
                for peer in (OURS_V4, OURS_V6)
            )
            return bird_up and all(ours.get(peer) == "UP" for peer in (BIRD_V4, BIRD_V6))

        wait_for(both_up, 20, "BFD Up on both ends")
        print("\n" + "\n".join(f"BIRD: {peer} {s}" for peer, s in bird.sessions().items()))

        # cut our side: BIRD must see it within its detection time (+100 ms), by the clock and by birdc
        cut, cut_wall = time.monotonic(), datetime.now()
        os.kill(agent.pid, signal.SIGSTOP)
        seen: dict[str, float] = {}
        while len(seen) < 2 and time.monotonic() - cut < 5:
            sessions = bird.sessions()
            answered = time.monotonic()
            for peer in (OURS_V4, OURS_V6):
                if peer not in seen and sessions[peer].state != "Up":
                    seen[peer] = answered - cut
            time.sleep(0.02)
        sessions = bird.sessions()
        resume(agent)
        for peer in (OURS_V4, OURS_V6):
            by_since = (sessions[peer].since - cut_wall).total_seconds()
            polled = seen.get(peer, -1) * 1000
            print(f"BIRD saw {peer} Down: birdc {polled:.0f} ms, Since {by_since * 1000:.0f} ms")
            assert sessions[peer].state == "Down"
            assert seen[peer] <= DETECTION + SLACK
            assert DETECTION - INTERVAL - SLACK / 2 <= by_since <= DETECTION + SLACK

        # both come back: we learn BIRD's Down, go through Init and Up again
        wait_for(both_up, 20, "BFD Up again after our side resumed")
        ours_down = [
            e for e in read_events(agent_log) if "peer" in e and e["at"] > cut and e["new"] == "DOWN"
        ]
        assert {e["diag"] for e in ours_down} <= {1, 3}

        # cut BIRD: our side must see it within its detection time (+100 ms)
        cut = time.monotonic()
        os.kill(bird.process.pid, signal.SIGSTOP)
        try:

            def downs() -> dict[str, dict[str, Any]]:
                events = read_events(agent_log)
                found = {e["peer"]: e for e in events if "peer" in e and e["at"] > cut and e["new"] == "DOWN"}
                return found if len(found) == 2 else {}

            found = wait_for(downs, 5, "our side detecting BIRD's loss")
        finally:
            resume(bird.process)
        for peer, event in found.items():
            took = event["at"] - cut
            print(f"we saw {peer} Down after {took * 1000:.0f} ms (diag {event['diag']})")
            assert event["diag"] == 1  # Control Detection Time Expired
            assert DETECTION - INTERVAL - SLACK / 2 <= took <= DETECTION + SLACK
        wait_for(both_up, 20, "BFD Up again after BIRD resumed")
    finally:
        resume(agent)
        resume(bird.process)
        print((tmp_path / "bird.log").read_text()[-3000:])


def test_transport_sends_ttl_255_from_a_high_port_and_drops_packets_below_the_ttl_rules(lab: BfdLab) -> None:
    """RFC 5881/5883 on the wire, with forged packets from the other namespace: single hop takes only TTL
    255, multihop takes ``minimum_ttl`` and above (here over IPv6, so the hop limit path is checked too)."""
    ours, far = lab.hosts["ours"], lab.hosts["bird"]
    transport = BfdTransport(rng=random.Random(5))
    sockets: list[socket.socket] = []

    def udp(family: int, address: str, port: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sockets.append(sock)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.bind((address, port))
        sock.settimeout(5)
        return sock

    def first_packet(sock: socket.socket) -> tuple[ControlPacket, int, int]:
        data, ancillary, _, source = sock.recvmsg(128, socket.CMSG_SPACE(4))
        packet = decode(data)
        assert packet is not None
        return packet, int.from_bytes(ancillary[0][2][:4], sys.byteorder), source[1]

    try:
        with far.inside():
            single = udp(socket.AF_INET, BIRD_V4, SINGLE_HOP_PORT)
            multi = udp(socket.AF_INET6, BIRD_V6, MULTIHOP_PORT)
            send4, send6 = udp(socket.AF_INET, BIRD_V4, 0), udp(socket.AF_INET6, BIRD_V6, 0)
        with ours.inside():
            transport.add_session(BIRD_V4, OURS_V4, BfdProfile())
            transport.add_session(BIRD_V6, OURS_V6, BfdProfile(minimum_ttl=254), multihop=True)

        for sock, sender, peer, destination, option in (
            (single, send4, BIRD_V4, (OURS_V4, SINGLE_HOP_PORT), (socket.IPPROTO_IP, socket.IP_TTL)),
            (
                multi,
                send6,
                BIRD_V6,
                (OURS_V6, MULTIHOP_PORT),
                (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS),
            ),
        ):
            packet, ttl, port = first_packet(sock)
            assert ttl == 255 and 49152 <= port <= 65535
            assert packet.state is State.DOWN and packet.desired_min_tx == 1_000_000
            reply = ControlPacket(State.DOWN, 3, 4242, packet.my_discriminator, 1_000_000, 300_000).encode()
            too_low, enough = (254, 255) if sock is single else (253, 254)
            sender.setsockopt(*option, too_low)
            drops = transport.drops["ttl"]
            sender.sendto(reply, destination)
            wait_for(lambda: transport.drops["ttl"] > drops, 5, f"drop of TTL {too_low}")  # noqa: B023
            assert transport.state(peer) is State.DOWN
            sender.setsockopt(*option, enough)
            sender.sendto(reply, destination)
            wait_for(lambda: transport.state(peer) is State.INIT, 5, f"{peer} Init")  # noqa: B023
    finally:
        transport.stop()
        for sock in sockets:
            sock.close()
