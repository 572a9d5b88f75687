"""The speakers' membership messages on the wire: signed with HMAC-SHA256 (key from a Secret shared by the
speakers), stamped with the sender's boot and a sequence that only grows, never with a wall clock.

A stamp is (boot, sequence): ``boot`` is the kernel's boot id, ``sequence`` the sender's CLOCK_MONOTONIC in
nanoseconds when it sent. Both survive a restart of the speaker on the same boot and neither depends on NTP,
so a replayed message is recognised by its stamp alone (see ``membership``).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

VERSION = 2
MAC_SIZE = 32
BOOT_SIZE = 16
MAX_REPORTS = 24  # per message: keeps a message under 1,500 bytes with 253-byte node names
_HEADER = struct.Struct("!BBB16sqH")  # version, flags, name length, boot, sequence, number of reports
_REPORT = struct.Struct("!BB16sq")  # subject length, down, subject's boot, subject's sequence (-1: none)
LEAVING, SYNCING = 1, 2


@dataclass(frozen=True)
class Report:
    """What a watcher says of a node it watches: silent since (down) or heard again at (up) that stamp."""

    subject: str
    down: bool
    boot: bytes
    sequence: int


@dataclass(frozen=True)
class Message:
    """A heartbeat (no reports) or a broadcast of reports; ``leaving``: the sender is stopping."""

    sender: str
    boot: bytes
    sequence: int
    leaving: bool = False
    reports: tuple[Report, ...] = ()
    syncing: bool = False  # the sender just started: its neighbours tell it who is dead


def encode(key: bytes, message: Message) -> bytes:
    name = message.sender.encode()
    parts = [
        _HEADER.pack(
            VERSION,
            (LEAVING if message.leaving else 0) | (SYNCING if message.syncing else 0),
            len(name),
            message.boot,
            message.sequence,
            len(message.reports),
        ),
        name,
    ]
    for report in message.reports:
        subject = report.subject.encode()
        parts += [_REPORT.pack(len(subject), int(report.down), report.boot, report.sequence), subject]
    body = b"".join(parts)
    return body + hmac.new(key, body, hashlib.sha256).digest()


def decode(key: bytes, data: bytes) -> Message | None:
    """The message, if genuine and well formed; None for anything else (never raises)."""
    if len(data) < _HEADER.size + MAC_SIZE:
        return None
    body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    try:
        version, flags, length, boot, sequence, count = _HEADER.unpack_from(body)
        if version != VERSION:
            return None
        offset = _HEADER.size + length
        sender = body[_HEADER.size : offset].decode()
        reports = []
        for _ in range(count):
            size, down, subject_boot, subject_sequence = _REPORT.unpack_from(body, offset)
            offset += _REPORT.size
            subject = body[offset : offset + size].decode()
            offset += size
            reports.append(Report(subject, bool(down), subject_boot, subject_sequence))
    except (struct.error, UnicodeDecodeError):
        return None
    if offset != len(body) or not sender:
        return None
    return Message(sender, boot, sequence, bool(flags & LEAVING), tuple(reports), bool(flags & SYNCING))
