"""What a client on the LAN sees: which MAC answers ARP or NDP for an IP, once or every 10 ms."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .network import Host

HACK = Path(__file__).resolve().parents[1]


def arp(client: Host, ip: str) -> str:
    """The MAC that answers ``who has ip`` on the client's segment ('' when nobody does)."""
    result = client.run("arping", "-c", "1", "-w", "1", "-I", "eth0", ip)
    match = re.search(r"from ([0-9a-f:]{17})", result.stdout.lower())
    return match.group(1) if match else ""


def ndp(client: Host, ip: str) -> str:
    """The MAC that answers a Neighbor Solicitation for ``ip`` on the client's segment ('' if none)."""
    result = client.run("ndisc6", "-1", "-r", "1", "-w", "1000", ip, "eth0")
    match = re.search(r"link-layer address: ([0-9a-f:]{17})", result.stdout.lower())
    return match.group(1) if match else ""


def watch_answers(client: Host, ip: str, seconds: float) -> subprocess.Popen[str]:
    """Start asking for ``ip`` every 10 ms from the client (ARP, or NDP for an IPv6 ``ip``); read the JSON
    of MAC changes at the end."""
    v6 = ":" in ip
    watch = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            client.namespace,
            "env",
            f"PYTHONPATH={HACK}",
            sys.executable,
            "-m",
            "bench.ndp_watch" if v6 else "bench.arp_watch",
            ip,
            str(client.v6 if v6 else client.v4),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    if watch.stdout.readline().strip() != "watching":
        raise RuntimeError("the ARP watcher did not start")
    return watch
