"""Runs inside the client namespace: asks for one IP every EVERY seconds for SECONDS (ARP, or NDP for an
IPv6 target) and prints each answer's latency, the unanswered queries and the answering MACs as JSON.

Usage (with hack/ on PYTHONPATH): python -m bench.l2sample TARGET OUR_IP SECONDS EVERY
"""

from __future__ import annotations

import sys

from bench.arp_probe import ARP
from bench.l2probe import sample_main
from bench.ndp_probe import NDP

if __name__ == "__main__":
    target, our_ip, seconds, every = sys.argv[1:5]
    sample_main(NDP if ":" in target else ARP, target, our_ip, float(seconds), float(every))
