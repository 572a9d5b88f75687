"""Runs inside the client namespace: asks who has TARGET every 10 ms and prints, as JSON, each change of
the answering MAC with its wall-clock time (for failover measurements).

Usage (with hack/ on PYTHONPATH): python -m bench.arp_watch TARGET OUR_IP SECONDS
"""

from __future__ import annotations

import sys

from bench.arp_probe import ARP
from bench.l2probe import watch_main

if __name__ == "__main__":
    watch_main(ARP, sys.argv[1], sys.argv[2], float(sys.argv[3]))
