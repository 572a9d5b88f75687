"""Background work paced under the container's CPU quota, so that heartbeats and ARP/NDP answers are never
throttled.

Under a CFS quota (a CPU limit), once a period's quota is spent the kernel stops every thread of the
container until the next period, the heartbeat process included (it shares the pod's cgroup). A burst of
watch events or status writes then silences the node for longer than its peers wait, and they take its
IPs over (a false takeover). With a quota the total work a speaker can do is capped anyway: pacing only
decides who waits, the background work rather than the heartbeats.

Each background thread calls ``spend()`` after a unit of work. The CPU time its thread used since its last
call is taken from a bucket shared by all of them, refilled at ``share`` of the quota, and the thread sleeps
off any debt. Without a quota nothing throttles the container, and nothing is paced.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ironlb.api.contract import CPU_LIMIT_ENV
from prometheus_client import Counter

log = logging.getLogger("ironlb.speaker")
BACKGROUND_SHARE = 0.6  # of the quota; the rest is for heartbeats, ARP/NDP answers and the loop
BURST = 0.005  # seconds of CPU the bucket holds: less than a quota period of a 50m container
MAX_DEBT = 1.0  # seconds at the rate: the longest any background unit waits
PAUSED = Counter(
    "ironlb_speaker_paced_seconds",
    "Seconds background work (watch events, status reports) waited to stay under the CPU quota.",
)


def cgroup_quota(
    proc_self: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> float | None:
    """This process's CPU quota in cores (``cpu.max`` of cgroup v2, ``cpu.cfs_quota_us`` of v1), or None
    when unlimited or unknown. Inside a container the cgroup is often mounted as the root: both are tried."""
    try:
        lines = proc_self.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":
            for base in (root / relative, root):
                quota = _v2_quota(base / "cpu.max")
                if quota is not None:
                    return quota
        elif "cpu" in controllers.split(","):
            for mount in (root / controllers, root / "cpu"):
                for base in (mount / relative, mount):
                    quota = _v1_quota(base)
                    if quota is not None:
                        return quota
    return None


def _v2_quota(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(base: Path) -> float | None:
    try:
        quota = int((base / "cpu.cfs_quota_us").read_text())
        period = int((base / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 else quota / period


class CpuBudget:
    """A token bucket of CPU seconds, refilled at ``rate`` cores; ``rate`` None paces nothing."""

    def __init__(
        self,
        rate: float | None,
        burst: float = BURST,
        clock: Callable[[], float] = time.monotonic,
        thread_time: Callable[[], float] = time.thread_time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.burst = rate, burst
        self._clock, self._thread_time, self._sleep = clock, thread_time, sleep
        self._lock = threading.Lock()
        self._tokens, self._filled = burst, clock()
        self._last = threading.local()

    @classmethod
    def for_container(
        cls, share: float = BACKGROUND_SHARE, environ: Mapping[str, str] = os.environ
    ) -> CpuBudget:
        """The quota from the cgroup files, else from the limit the DaemonSet passes (``CPU_LIMIT_ENV``):
        a speaker whose /sys shows no cgroup (a network namespace's own sysfs) still knows its limit."""
        quota = cgroup_quota()
        if quota is None and environ.get(CPU_LIMIT_ENV, "").isdigit():
            quota = int(environ[CPU_LIMIT_ENV]) / 1000
        if quota is not None:
            log.info("CPU limit %.3f cores: background work paced to %.3f", quota, quota * share)
        return cls(None if quota is None else quota * share)

    def spend(self) -> None:
        """After a unit of work: pay for the CPU this thread used since its last call, sleeping off debt."""
        wait = self.charge()
        if wait > 0:
            PAUSED.inc(wait)
            self._sleep(wait)
            self._last.value = self._thread_time()  # sleeping costs nothing, but keep it exact

    def charge(self) -> float:
        """Pay for the CPU this thread used since its last call (or ``begin``) without waiting: for a thread
        that must not sleep (the loop answering ARP/NDP). Returns the debt, in seconds at the rate."""
        used_until = self._thread_time()
        used = used_until - getattr(self._last, "value", used_until)
        self._last.value = used_until
        if self.rate is None or used <= 0:
            return 0.0
        with self._lock:
            self._refill()
            # debt is capped: one long unit (the loop taking over thousands of IPs) must not make every
            # watch wait for many seconds, a deletion included
            self._tokens = max(self._tokens - used, -self.rate * MAX_DEBT)
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def begin(self) -> None:
        """Start this thread's account now: what it used before is not background work."""
        self._last.value = self._thread_time()

    def in_debt(self) -> bool:
        """Background work has used more than its share lately: work that can wait should."""
        if self.rate is None:
            return False
        with self._lock:
            self._refill()
            return self._tokens < 0

    def _refill(self) -> None:
        now = self._clock()
        assert self.rate is not None
        self._tokens = min(self.burst, self._tokens + (now - self._filled) * self.rate)
        self._filled = now
