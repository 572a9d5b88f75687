"""Runs inside the client namespace: solicits TARGET every 10 ms and prints, as JSON, each change of the
advertised MAC with its wall-clock time (the IPv6 twin of arp_watch, for failover measurements).
Usage (with hack/ on PYTHONPATH): python -m bench.ndp_watch TARGET OUR_IP SECONDS
"""

from __future__ import annotations

import sys

from bench.l2probe import watch_main
from bench.ndp_probe import NDP

if __name__ == "__main__":
    watch_main(NDP, sys.argv[1], sys.argv[2], float(sys.argv[3]))
