"""Speaker heartbeats over real UDP between lab namespaces (the membership itself: test_membership.py)."""

from __future__ import annotations

import subprocess
import sys
import time

from ironlb_lab.network import LabNetwork

PROBE = """
import logging, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from ironlb.speaker.l2.heartbeat import HeartbeatLoop, HeartbeatSocket, boot_id
from ironlb.speaker.l2.membership import Membership
node, addresses, seconds = sys.argv[1], dict(a.split("=") for a in sys.argv[2].split(",")), float(sys.argv[3])
loop = HeartbeatLoop(HeartbeatSocket(17946), Membership(node, boot_id()), b"k" * 32)
loop.set_peers(addresses)
loop.start()
print("started", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    version, alive = loop.alive()
    print(",".join(sorted(alive)), round(time.monotonic(), 3), flush=True)
    time.sleep(0.02)
loop.stop()
"""


def test_heartbeats_cross_the_lab_network_and_a_killed_speaker_is_dead_within_the_timeout() -> None:
    """Three speakers' heartbeat loops in three lab nodes, real UDP between them: all see each other; then
    one is killed (-9) and the other two hold it dead within the timeout (300 ms) plus a heartbeat."""
    with LabNetwork(nodes=3) as lab:
        hosts = [lab.node(n) for n in (1, 2, 3)]
        addresses = ",".join(f"{host.role}={host.v4}" for host in hosts)
        python = [sys.executable, "-c", PROBE]
        runs = [
            subprocess.Popen(
                ["ip", "netns", "exec", host.namespace, *python, host.role, addresses, "3"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for host in hosts
        ]
        try:
            for run in runs:
                assert run.stdout is not None and run.stdout.readline().strip() == "started"
            time.sleep(1.5)
            runs[2].kill()
            killed_at = time.monotonic()
            results = [run.communicate(timeout=20) for run in runs[:2]]
            outputs = [out.splitlines() for out, _ in results]
        finally:
            for run in runs:
                run.kill()
                run.wait()
        for lines in outputs:
            assert all(len(line.split()) == 2 for line in lines), [
                line for line in lines if len(line.split()) != 2
            ]
            views = [(line.split()[0], float(line.split()[1])) for line in lines]
            assert any(alive == "node1,node2,node3" for alive, _ in views), views[:5]
            dead_at = min(at for alive, at in views if at > killed_at and alive == "node1,node2")
            assert dead_at - killed_at < 0.45, dead_at - killed_at
            assert views[-1][0] == "node1,node2"
        for _, logged in results:  # the survivors say whom they hold dead
            assert "node node3 held dead" in logged and "node node1 held dead" not in logged, logged
