"""Speaker heartbeats: authenticated, replay-proof membership, and real UDP between lab namespaces."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st
from ironlb.speaker.l2.heartbeat import Membership, decode, encode
from ironlb_lab.network import LabNetwork

KEY = b"k" * 32


@given(st.text(min_size=1, max_size=60), st.integers(0, 2**63), st.floats(0, 2e9))
def test_a_genuine_heartbeat_decodes_and_any_change_is_refused(
    node: str, sequence: int, sent_at: float
) -> None:
    message = encode(KEY, node, sequence, sent_at)
    assert decode(KEY, message) == (node.encode().decode(), sequence, sent_at, False)
    assert decode(KEY, encode(KEY, node, sequence, sent_at, leaving=True)) == (node, sequence, sent_at, True)
    assert decode(b"other-key", message) is None
    tampered = bytearray(message)
    tampered[0] ^= 1
    assert decode(KEY, bytes(tampered)) is None
    assert decode(KEY, message[:10]) is None


def test_membership_times_out_and_refuses_replays() -> None:
    members = Membership("node-1", timeout=0.3)
    assert members.receive("node-2", 1, 1000.0, False, now=10.0, wall_now=1000.0)
    assert not members.receive("node-2", 1, 1000.0, False, now=10.1, wall_now=1000.1), "a replay"
    assert not members.receive("node-3", 1, 900.0, False, now=10.1, wall_now=1000.1), "too old"
    assert not members.receive("node-1", 5, 1000.0, False, now=10.1, wall_now=1000.1), "our own"
    assert members.alive(10.2) == {"node-1", "node-2"}
    assert members.alive(10.31) == {"node-1"}
    assert members.receive("node-2", 2, 1000.4, False, now=10.4, wall_now=1000.4)
    assert members.alive(10.5) == {"node-1", "node-2"}
    assert members.receive("node-2", 3, 1000.5, True, now=10.5, wall_now=1000.5), "a graceful goodbye"
    assert members.alive(10.5) == {"node-1"}


PROBE = """
import sys, time
from ironlb.speaker.l2.heartbeat import HeartbeatSocket, Membership
node, peer, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
sock, members = HeartbeatSocket(b"k" * 32, node, 17946), Membership(node, timeout=0.3)
end = time.monotonic() + seconds
while time.monotonic() < end:
    sock.send([peer]); sock.receive_all(members); time.sleep(0.05)
print(",".join(sorted(members.alive(time.monotonic()))))
"""


def test_heartbeats_cross_the_lab_network() -> None:
    with LabNetwork(nodes=2) as lab:
        one, two = lab.node(1), lab.node(2)
        runs = [
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    host.namespace,
                    sys.executable,
                    "-c",
                    PROBE,
                    host.role,
                    str(peer.v4),
                    "1.5",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for host, peer in ((one, two), (two, one))
        ]
        outputs = [run.communicate(timeout=20)[0].strip() for run in runs]
        assert outputs == ["node1,node2", "node1,node2"]
