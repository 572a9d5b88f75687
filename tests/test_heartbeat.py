"""Speaker heartbeats over real UDP between lab namespaces (the membership itself: test_membership.py).

The heartbeats run in a process of their own (``HeartbeatProcess``). These tests check what that is for:
heartbeats keep their pace under the pod's CPU quota while the speaker's threads are busy; a speaker whose
own loop hangs stops heartbeating (so peers take its IPs) and claims nothing until they heard it again; a
heartbeat process that dies is replaced, the speaker claiming nothing meanwhile.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ironlb.speaker.l2.wire import decode
from ironlb_lab.cpulimit import CpuCgroups
from ironlb_lab.network import Host, LabNetwork

KEY = b"k" * 32
PROBE = """
import json, logging, sys, threading, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from ironlb.speaker.l2.heartbeat_process import HeartbeatProcess
node, addresses = sys.argv[1], dict(a.split("=") for a in sys.argv[2].split(","))
seconds, busy, hung_after, work = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
sys.stdin.readline()  # (the test moves this process into a cgroup first)
heartbeats = HeartbeatProcess(node, 17946, b"k" * 32, hung_after=hung_after).start()
heartbeats.set_peers(addresses)
items = [{"metadata": {"name": f"s{i}", "labels": {"a": "b"}}, "spec": {"port": i}} for i in range(2000)]
document = json.dumps(items)

def parse_forever():  # what watch threads do with a burst of events: pure Python, holding the GIL
    while True:
        items = json.loads(document)
        {item["metadata"]["name"]: item for item in items}

for _ in range(busy):
    threading.Thread(target=parse_forever, daemon=True).start()
print("started", heartbeats.process.pid, flush=True)
end, work_at = time.monotonic() + seconds, time.monotonic() + 1.0
while (now := time.monotonic()) < end:  # the speaker's loop
    if work and now >= work_at:  # computing without a tick, as a first election of thousands of IPs
        while time.monotonic() < now + work:
            sum(range(1000))
        work = 0
        continue
    heartbeats.loop_ran(now)
    version, alive = heartbeats.alive()
    print(",".join(sorted(alive)), round(now, 3), int(heartbeats.may_claim(now)), flush=True)
    time.sleep(0.02)
heartbeats.stop()
"""


def start_probe(
    host: Host,
    addresses: str,
    seconds: float,
    busy: int = 0,
    hung_after: float = 2.0,
    cgroup: Path | None = None,
    wait: bool = True,
    work: float = 0.0,
) -> tuple[subprocess.Popen[str], int]:
    """A speaker's heartbeats (``HeartbeatProcess``) and a loop standing for its own, in ``host``'s namespace
    (``busy`` threads parsing JSON besides; ``work`` seconds of computing without a tick 1 s in); returns
    the probe and its heartbeat process's PID (0 unless ``wait``: then see ``started``)."""
    probe = subprocess.Popen(
        [
            *("ip", "netns", "exec", host.namespace, sys.executable, "-c", PROBE, host.role, addresses),
            *(str(seconds), str(busy), str(hung_after), str(work)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert probe.stdin is not None and probe.stdout is not None
    if cgroup is not None:
        CpuCgroups.attach(cgroup, probe.pid)
    probe.stdin.write("go\n")
    probe.stdin.flush()
    return probe, started(probe) if wait else 0


def started(probe: subprocess.Popen[str]) -> int:
    """Once the probe's heartbeats run: their process's PID."""
    assert probe.stdout is not None
    first = probe.stdout.readline().split()
    assert first[:1] == ["started"], (first, probe.stderr.read() if probe.stderr else "")
    return int(first[1])


def views(output: str) -> list[tuple[str, float, bool]]:
    """The probe's lines: (live nodes, when, may claim)."""
    rows = [line.split() for line in output.splitlines()]
    assert all(len(row) == 3 for row in rows), [row for row in rows if len(row) != 3]
    return [(alive, float(at), claim == "1") for alive, at, claim in rows]


@contextlib.contextmanager
def receiving(host: Host) -> Iterator[socket.socket]:
    """A socket on the heartbeat port in ``host``'s namespace: a peer that only listens."""
    with host.inside():
        receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        receiver.bind(("::", 17946))
    try:
        yield receiver
    finally:
        receiver.close()


def heartbeats_heard(receiver: socket.socket, seconds: float) -> list[float]:
    """When each heartbeat arrived (CLOCK_MONOTONIC, as the probes print) during ``seconds``."""
    arrivals: list[float] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if select.select([receiver], [], [], left)[0]:
            message = decode(KEY, receiver.recv(2048))
            if message is not None and not message.reports and not message.leaving:
                arrivals.append(time.monotonic())
    return arrivals


def gaps(arrivals: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(arrivals)]


def test_heartbeats_cross_the_lab_network_and_a_killed_speaker_is_dead_within_the_timeout() -> None:
    """Three speakers' heartbeat processes in three lab nodes, real UDP between them: all see each other;
    then one speaker is killed (-9, its heartbeat process left to notice) and the other two hold it dead
    within the timeout (300 ms) plus a heartbeat."""
    with LabNetwork(nodes=3) as lab:
        hosts = [lab.node(n) for n in (1, 2, 3)]
        addresses = ",".join(f"{host.role}={host.v4}" for host in hosts)
        runs = [start_probe(host, addresses, 3, wait=False)[0] for host in hosts]
        try:
            for run in runs:  # (started together: none outlives the others)
                started(run)
            time.sleep(1.5)
            runs[2].kill()
            killed_at = time.monotonic()
            results = [run.communicate(timeout=20) for run in runs[:2]]
        finally:
            for run in runs:
                run.kill()
                run.wait()
        for out, _ in results:
            seen = views(out)
            assert any(alive == "node1,node2,node3" for alive, _, _ in seen), seen[:5]
            dead_at = min(at for alive, at, _ in seen if at > killed_at and alive == "node1,node2")
            assert dead_at - killed_at < 0.45, dead_at - killed_at
            assert seen[-1][0] == "node1,node2"
        for _, logged in results:  # the survivors say whom they hold dead
            assert "node node3 held dead" in logged and "node node1 held dead" not in logged, logged


@pytest.fixture(scope="module")
def lab() -> Iterator[LabNetwork]:
    with LabNetwork(nodes=1) as network:
        yield network


def _addresses(lab: LabNetwork) -> str:
    return f"node1={lab.node(1).v4},client={lab.client.v4}"


def test_heartbeats_keep_their_pace_under_the_cpu_quota_while_the_speaker_is_busy(lab: LabNetwork) -> None:
    """The probe runs under 100m (a CFS quota of 10 ms per 100 ms, as the DaemonSet requests) with three
    threads parsing JSON. Heartbeats must keep coming at least every ``stall_limit`` (250 ms), or peers
    would take this node's IPs. Before, as a thread of the speaker, they went silent 300-400 ms at a time
    with one busy thread, up to 2.1 s with three: waiting for the GIL, they lost whole quota periods."""
    cgroups = CpuCgroups()
    try:
        cgroup = cgroups.limit("test/heartbeat-quota", "100m")
        with receiving(lab.client) as receiver:
            probe, child = start_probe(lab.node(1), _addresses(lab), 12, busy=3, cgroup=cgroup)
            try:
                assert cgroup.name in Path(f"/proc/{child}/cgroup").read_text()  # the pod's quota, shared
                time.sleep(1.0)
                arrivals = heartbeats_heard(receiver, 8.0)
            finally:
                probe.kill()
                probe.communicate()
        longest = max(gaps(arrivals), default=float("inf"))
        print(
            f"under 100m with 3 busy threads: {len(arrivals)} heartbeats in 8 s, "
            f"longest gap {longest * 1000:.0f} ms"
        )
        assert len(arrivals) >= 100, len(arrivals)
        assert longest < 0.25, f"a {longest * 1000:.0f} ms silence: peers would hold this node dead"
    finally:
        cgroups.close()


def test_a_hung_speaker_loop_stops_the_heartbeats_and_claims_only_once_heard_again(lab: LabNetwork) -> None:
    """The speaker's own process frozen (SIGSTOP; its heartbeat process runs on): heartbeats go on while it
    is merely slow, stop once it has not run for ``hung_after`` (peers then take its IPs over), and resume
    when it runs again; it claims nothing until its peers have heard it for a timeout."""
    probe, _ = start_probe(lab.node(1), _addresses(lab), 7, hung_after=1.0)
    try:
        with receiving(lab.client) as receiver:
            time.sleep(1.0)
            stopped = time.monotonic()
            probe.send_signal(signal.SIGSTOP)
            resume = threading.Timer(2.5, probe.send_signal, (signal.SIGCONT,))
            resume.start()
            arrivals = heartbeats_heard(receiver, 4.0)
            resume.join()
        resumed = stopped + 2.5
        out, err = probe.communicate(timeout=20)
    finally:
        probe.kill()
        probe.wait()
    assert any(stopped + 0.5 < at < stopped + 0.9 for at in arrivals), "a slow loop must not silence the node"
    silent = [at for at in arrivals if stopped + 1.45 < at < resumed]  # (its CPU time is read every 0.25 s)
    assert not silent, f"heartbeats {[round(at - stopped, 2) for at in silent]} s after the loop hung"
    assert any(at > resumed + 0.1 for at in arrivals), "heartbeats resume with the loop"
    after = [(at, claim) for _, at, claim in views(out) if at > resumed]
    assert after and not after[0][1], "a loop back from a hang claims nothing at once"
    first_claim = next(at for at, claim in after if claim)
    assert 0.3 < first_claim - resumed < 1.5, first_claim - resumed
    assert "the speaker's loop has not run for" in err, err


def test_a_speaker_loop_that_computes_for_long_is_busy_not_hung(lab: LabNetwork) -> None:
    """3 s of computing without a tick (hung_after is 1 s here): the loop's thread uses the CPU, so it is
    busy, not hung. Heartbeats go on, nothing moves, and it claims as soon as it ticks again."""
    probe, _ = start_probe(lab.node(1), _addresses(lab), 6, hung_after=1.0, work=3.0)
    try:
        with receiving(lab.client) as receiver:
            arrivals = heartbeats_heard(receiver, 5.0)
        out, err = probe.communicate(timeout=20)
    finally:
        probe.kill()
        probe.wait()
    longest = max(gaps(arrivals), default=float("inf"))
    assert longest < 0.25, f"a {longest * 1000:.0f} ms silence while the loop computed"
    assert "has not run for" not in err, err
    seen = views(out)
    assert seen[-1][1] - seen[0][1] > 4.0, "the loop ran again after its work"
    assert all(claim for _, at, claim in seen if at > seen[0][1] + 0.5), "claims throughout"


def test_a_heartbeat_process_that_dies_is_replaced_and_claims_nothing_meanwhile(lab: LabNetwork) -> None:
    """kill -9 of the heartbeat process alone: the speaker stops claiming once the claim window ages, starts
    a new process, and claims again only after a timeout of heartbeats from it."""
    probe, child = start_probe(lab.node(1), _addresses(lab), 5)
    try:
        with receiving(lab.client) as receiver:
            time.sleep(1.0)
            os.kill(child, signal.SIGKILL)
            killed = time.monotonic()
            arrivals = heartbeats_heard(receiver, 3.0)
        out, err = probe.communicate(timeout=20)
    finally:
        probe.kill()
        probe.wait()
    resumed = min((at for at in arrivals if at > killed + 0.1), default=float("inf"))
    assert resumed < float("inf"), err
    assert resumed - killed < 2.5, resumed - killed
    seen = views(out)
    assert all(claim for _, at, claim in seen if at < killed), "claims before the kill"
    held = [at for _, at, claim in seen if killed + 0.3 < at < resumed + 0.3 and claim]
    assert not held, f"claimed at {[round(at - killed, 2) for at in held]} s without heartbeats"
    assert any(claim for _, at, claim in seen if at > resumed + 0.5), "claims again once heard"
    assert "the heartbeat process ended" in err, err
