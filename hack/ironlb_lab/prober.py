"""Asks the wire who answers for many IPs at once: ARP requests and Neighbor Solicitations from a lab host.

Runs inside a lab namespace (``python -m ironlb_lab.prober OUR_V4 OUR_V6``, with hack/ on PYTHONPATH) and
answers JSON lines on stdin (``{"ips": [...], "wait": 0.5}``) with ``{"answers": {ip: [mac, ...]}}`` on
stdout: every MAC that answered for each IP within ``wait`` seconds. Frames are built by the benchmarks'
probes (hack/bench), independently of the speaker's own code. ``Prober`` starts and drives it.
"""

from __future__ import annotations

import ipaddress
import json
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.arp_probe import ETH_P_ARP, replied_mac, request
from bench.ndp_probe import ETH_P_IPV6, advertised_mac, solicitation

from .network import Host

ETH_P_ALL = 0x0003
HACK = Path(__file__).resolve().parents[1]


def answers(
    ips: list[str], wait: float, our_v4: str, our_v6: str, interface: str = "eth0", pace: int = 20
) -> dict[str, list[str]]:
    """Send one request per IP, ``pace`` per 20 ms (a burst of a thousand would overrun the receivers'
    socket buffers, the prober's and the speakers', which no real client does), collecting every answer
    as it comes and for ``wait`` seconds after the last request."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((interface, 0))
        our_mac = Path(f"/sys/class/net/{interface}/address").read_text().strip()
        mac = bytes.fromhex(our_mac.replace(":", ""))
        targets = {ipaddress.ip_address(ip).packed: ip for ip in ips}
        found: dict[str, set[str]] = {ip: set() for ip in ips}
        for start in range(0, len(ips), pace):
            for ip in ips[start : start + pace]:
                version = ipaddress.ip_address(ip).version
                sock.send(request(mac, our_v4, ip) if version == 4 else solicitation(mac, our_v6, ip))
            _collect(sock, targets, found, our_mac, 0.02)
        _collect(sock, targets, found, our_mac, wait)
        return {ip: sorted(macs) for ip, macs in found.items()}
    finally:
        sock.close()


def _collect(
    sock: socket.socket, targets: dict[bytes, str], found: dict[str, set[str]], our_mac: str, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], remaining)
        if not ready:
            return
        frame = sock.recv(2048)
        kind = frame[12:14]
        if kind == ETH_P_ARP.to_bytes(2, "big") and len(frame) >= 32:
            target = frame[28:32]
            answered = replied_mac(frame, target) if target in targets else None
        elif kind == ETH_P_IPV6.to_bytes(2, "big") and len(frame) >= 78:
            target = frame[62:78]
            answered = advertised_mac(frame, target) if target in targets else None
        else:
            continue
        if answered is not None and answered != our_mac:
            found[targets[target]].add(answered)


def main(argv: list[str]) -> int:
    our_v4, our_v6 = argv[0], argv[1]
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        asked = json.loads(line)
        print(
            json.dumps({"answers": answers(asked["ips"], float(asked["wait"]), our_v4, our_v6)}), flush=True
        )
    return 0


class Prober:
    """The prober process in a lab host's namespace, one question at a time (thread-safe)."""

    def __init__(self, host: Host) -> None:
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                host.namespace,
                sys.executable,
                "-m",
                "ironlb_lab.prober",
                str(host.v4),
                str(host.v6),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={"PYTHONPATH": str(HACK), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        assert self._process.stdout is not None
        if "ready" not in self._process.stdout.readline():
            raise RuntimeError("the prober did not start")

    def ask(self, ips: list[str], wait: float = 0.5) -> dict[str, list[str]]:
        if not ips:
            return {}
        with self._lock:
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps({"ips": ips, "wait": wait}) + "\n")
            self._process.stdin.flush()
            reply: dict[str, list[str]] = json.loads(self._process.stdout.readline())["answers"]
            return reply

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
