"""CPU limits for the lab's pods: a cgroup v1 ``cpu`` cgroup per pod whose CFS quota is the container's CPU
request, so a pod gets at most the share of a core a cluster reserves for it (a request of ``50m`` is 5 ms of
CPU time per 100 ms period; a container that wants more is throttled, as one with that limit would be).

The cgroups live under ``/sys/fs/cgroup/cpu/ironlb-lab-<owner pid>-<number>/`` (weighted as 64 busy threads
against the control plane's processes, which a cluster runs on machines of their own), one directory per
pod; a process is moved in by writing its PID to ``cgroup.procs`` (its future children inherit the
cgroup). The owner removes them when a pod goes and when it stops; those of owners no longer alive (a
crashed run) are removed by the next one. Only directories of this pattern are ever touched.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .network import process_alive

log = logging.getLogger("ironlb_lab.cpulimit")
CPU_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000  # the kernel's and the kubelet's default CFS period
MIN_QUOTA_US = 1_000  # the smallest quota the kernel accepts (and the kubelet's floor)
PREFIX = "ironlb-lab-"
PARENT_SHARES = 64 * 1024  # the weight of 64 busy threads at nice 0
_OWNED = re.compile(rf"^{PREFIX}(\d+)-\d+$")
_instances = itertools.count(1)


def quota_us(cpu: str, period_us: int = PERIOD_US) -> int:
    """The CFS quota (microseconds per ``period_us``) a Kubernetes CPU quantity allows: ``50m`` -> 5,000,
    ``0.5`` -> 50,000, ``1`` -> 100,000 per 100 ms; never less than the kernel's 1 ms."""
    text = cpu.strip()
    try:
        cores = Decimal(text[:-1]) / 1000 if text.endswith("m") else Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a CPU quantity: {cpu!r}") from None
    if not cores.is_finite() or cores <= 0:
        raise ValueError(f"not a positive CPU quantity: {cpu!r}")
    return max(MIN_QUOTA_US, int(cores * period_us))


def read_quota(cgroup: Path) -> tuple[int, int]:
    """(quota, period) in microseconds of a cpu cgroup; quota -1 means unlimited."""
    return int((cgroup / "cpu.cfs_quota_us").read_text()), int((cgroup / "cpu.cfs_period_us").read_text())


def throttling(cgroup: Path) -> dict[str, int]:
    """The cgroup's ``cpu.stat``: ``nr_periods``, ``nr_throttled``, ``throttled_time`` (ns), ...; empty when
    the cgroup is gone."""
    try:
        text = (cgroup / "cpu.stat").read_text()
    except OSError:
        return {}
    return {name: int(value) for name, value in (line.split() for line in text.splitlines() if line.strip())}


def _remove(cgroup: Path, timeout: float = 5.0) -> bool:
    """rmdir a cgroup (its children first) once its processes are gone: a killed process leaves it a
    moment after it was reaped. False when it still holds processes after ``timeout``."""
    for child in (path for path in cgroup.iterdir() if path.is_dir()) if cgroup.is_dir() else ():
        _remove(child, timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            cgroup.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                log.warning("cannot remove cgroup %s: %s", cgroup, error)
                return False
        time.sleep(0.05)


def remove_stale_cgroups(root: Path = CPU_ROOT) -> list[str]:
    """Remove the lab cgroups whose owning process is gone (only names of this module's pattern)."""
    removed = []
    for path in root.iterdir() if root.is_dir() else ():
        match = _OWNED.match(path.name)
        if path.is_dir() and match and not process_alive(int(match.group(1))) and _remove(path, timeout=0):
            removed.append(path.name)
    return removed


@dataclass
class CpuCgroups:
    """The cpu cgroups of one owner (a pod runner): one parent directory, one child per pod."""

    root: Path = CPU_ROOT
    name: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{next(_instances)}")
    created: set[Path] = field(default_factory=set)

    @property
    def parent(self) -> Path:
        return self.root / self.name

    def limit(self, pod: str, cpu: str) -> Path:
        """Create (or reuse) the cgroup of ``pod`` (a namespace/name key) with the quota of ``cpu``."""
        quota = quota_us(cpu)
        if not self.parent.is_dir():
            remove_stale_cgroups(self.root)
            self.parent.mkdir()
            # the lab's nodes share this machine's cores with the control plane, which a cluster runs
            # elsewhere: as one group, the pods would weigh as much as a single thread of kube-apiserver
            # and wait behind all of them. Their quotas still cap each pod at its request.
            (self.parent / "cpu.shares").write_text(str(PARENT_SHARES))
        cgroup = self.parent / pod.replace("/", "_")
        cgroup.mkdir(exist_ok=True)
        (cgroup / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cgroup / "cpu.cfs_quota_us").write_text(str(quota))
        self.created.add(cgroup)
        return cgroup

    @staticmethod
    def attach(cgroup: Path, pid: int) -> None:
        """Move process ``pid`` into ``cgroup`` (the children it starts from now on follow it)."""
        (cgroup / "cgroup.procs").write_text(str(pid))

    def remove(self, cgroup: Path) -> None:
        """Remove a pod's cgroup once its processes are gone."""
        if _remove(cgroup):
            self.created.discard(cgroup)

    def close(self) -> None:
        """Remove every cgroup of this owner, then the parent."""
        for cgroup in list(self.created):
            self.remove(cgroup)
        if self.parent.is_dir():
            _remove(self.parent)
