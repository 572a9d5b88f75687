"""What every benchmark reports: nearest-rank percentiles, and a process's memory and CPU (with those of
the processes it started: the speaker's heartbeats run in a child process)."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def proc_status_mib(status: str, field: str) -> float:
    """A kB field of a /proc/PID/status text (``VmRSS``, ``VmHWM``) in MiB (0 when it is missing)."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) / 1024
    return 0.0


def _status(pid: int) -> str:
    """/proc/PID/status, empty when the process is gone."""
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""


def rss_mib(pid: int) -> float:
    """VmRSS (resident memory now) of a process in MiB (0 when it is gone)."""
    return proc_status_mib(_status(pid), "VmRSS")


def hwm_mib(pid: int) -> float:
    """VmHWM (peak resident memory) of a process in MiB (0 when it is gone)."""
    return proc_status_mib(_status(pid), "VmHWM")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live process it started, theirs included."""
    tree, index = [pid], 0
    while index < len(tree):
        for task in Path(f"/proc/{tree[index]}/task").glob("*/children"):
            try:
                tree += [int(child) for child in task.read_text().split()]
            except OSError:
                continue  # a thread that ended meanwhile
        index += 1
    return tree


def tree_rss_mib(pid: int) -> float:
    """VmRSS of a process and its descendants, in MiB."""
    return sum(rss_mib(member) for member in process_tree(pid))


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live descendants (one that ended takes its seconds with it)."""
    return sum(cpu_seconds(member) for member in process_tree(pid))
