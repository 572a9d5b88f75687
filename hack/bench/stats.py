"""What every benchmark reports: nearest-rank percentiles and a process's memory."""

from __future__ import annotations

from pathlib import Path


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
