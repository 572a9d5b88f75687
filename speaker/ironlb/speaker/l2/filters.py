"""Classic BPF programs for the responder's sockets: the kernel hands over only requests for the IPs this
node answers for, so a flood at any other address (a busy segment, or an attack on a neighbour's IP) costs
the speaker nothing, and a flood at an owned IP reaches only the owner.

Every test jumps over at most one instruction (classic BPF offsets are 8 bits): a failed header test falls
onto a ``ret drop``, and each owned address is a compare followed by its own ``ret accept``. A Neighbor
Solicitation is matched on the low 32 bits of its target (the responder checks the whole address): two
instructions per address for both families. Past ``MAX_TARGETS`` addresses, or if the kernel refuses the
program (its socket option memory, ``net.core.optmem_max``), every request is handed over and the speaker
still answers only for what it owns.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Instruction = tuple[int, int, int, int]  # (code, jt, jf, k)
LD_W, LD_H, LD_B = 0x20, 0x28, 0x30  # absolute loads of 4, 2, 1 bytes
JEQ, RET = 0x15, 0x06
ACCEPT, DROP = 0xFFFF, 0
MAX_TARGETS = 1000  # 2,000 instructions: replacing one such program by another fits in the default optmem

ARP_OPERATION, ARP_TARGET = 20, 38  # offsets in the Ethernet frame
IPV6_NEXT_HEADER, ICMPV6_TYPE, NS_TARGET_LOW = 20, 54, 74  # the target's last 4 bytes: 62 + 12


def _targets(words: set[int] | None) -> list[Instruction]:
    """Accept when the loaded word is one of ``words`` (all, when None), else drop."""
    if words is None or len(words) > MAX_TARGETS:
        return [(RET, 0, 0, ACCEPT)]
    body: list[Instruction] = []
    for word in sorted(words):
        body += [(JEQ, 0, 1, word), (RET, 0, 0, ACCEPT)]
    return [*body, (RET, 0, 0, DROP)]


def arp_requests(targets: Iterable[ipaddress.IPv4Address] | None) -> list[Instruction]:
    """ARP requests (for ``targets`` only, unless None: all of them)."""
    words = None if targets is None else {int(address) for address in targets}
    return [
        (LD_H, 0, 0, ARP_OPERATION),
        (JEQ, 1, 0, 1),  # a request, else drop
        (RET, 0, 0, DROP),
        (LD_W, 0, 0, ARP_TARGET),
        *_targets(words),
    ]


def neighbor_solicitations(targets: Iterable[ipaddress.IPv6Address] | None) -> list[Instruction]:
    """ICMPv6 Neighbor Solicitations (for ``targets`` only, unless None: all of them)."""
    words = None if targets is None else {int(address) & 0xFFFFFFFF for address in targets}
    return [
        (LD_B, 0, 0, IPV6_NEXT_HEADER),
        (JEQ, 1, 0, 58),  # ICMPv6, else drop
        (RET, 0, 0, DROP),
        (LD_B, 0, 0, ICMPV6_TYPE),
        (JEQ, 1, 0, 135),  # a Neighbor Solicitation, else drop
        (RET, 0, 0, DROP),
        (LD_W, 0, 0, NS_TARGET_LOW),
        *_targets(words),
    ]
