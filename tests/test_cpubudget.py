"""Background work paced under the CPU quota: the bucket's arithmetic, the quota read from cgroup v1 and v2
files, and, in a real cgroup with a 50m CFS quota, a heartbeat-like thread that keeps ticking while other
threads burn CPU (and does not when they are not paced: the fault is real)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ironlb.api.contract import CPU_LIMIT_ENV
from ironlb.speaker.cpubudget import CpuBudget, cgroup_quota
from ironlb_lab.cpulimit import CPU_ROOT, CpuCgroups


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.cpu = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(clock: Clock, rate: float | None, burst: float = 0.005) -> CpuBudget:
    return CpuBudget(rate, burst, lambda: clock.now, lambda: clock.cpu, clock.sleep)


def test_work_within_the_rate_never_waits_and_work_beyond_it_waits_its_debt() -> None:
    clock = Clock()
    paced = budget(clock, rate=0.03)
    paced.spend()  # the first call only starts the thread's account
    for _ in range(10):  # 1 ms of CPU every 100 ms: 1 % of a core, under 3 %
        clock.cpu += 0.001
        clock.now += 0.1
        paced.spend()
    assert clock.slept == []
    clock.now += 0.1  # the bucket is full again
    clock.cpu += 0.020  # a 20 ms burst: 5 ms from the full bucket, 15 ms of debt at 30 ms/s
    paced.spend()
    assert clock.slept == [pytest.approx(0.5)]


def test_the_bucket_holds_no_more_than_its_burst() -> None:
    clock = Clock()
    paced = budget(clock, rate=0.03)
    paced.spend()
    clock.now += 3600  # an idle hour earns 5 ms, not 108 s
    clock.cpu += 0.008
    paced.spend()
    assert clock.slept == [pytest.approx(0.1)]


def test_without_a_quota_nothing_waits() -> None:
    clock = Clock()
    unpaced = budget(clock, rate=None)
    for _ in range(100):
        clock.cpu += 0.1
        unpaced.spend()
    assert clock.slept == []


def test_the_quota_is_read_from_cgroup_v1_and_v2(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    (tmp_path / "cpu" / "pod1").mkdir(parents=True)
    (tmp_path / "cpu" / "pod1" / "cpu.cfs_quota_us").write_text("5000\n")
    (tmp_path / "cpu" / "pod1" / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:memory:/pod1\n1:cpu:/pod1\n0::/\n")
    assert cgroup_quota(proc, tmp_path) == pytest.approx(0.05)
    (tmp_path / "cpu" / "pod1" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_quota(proc, tmp_path) is None  # unlimited

    v2 = tmp_path / "v2"
    (v2 / "kubepods" / "pod2").mkdir(parents=True)
    (v2 / "kubepods" / "pod2" / "cpu.max").write_text("20000 100000\n")
    proc.write_text("0::/kubepods/pod2\n")
    assert cgroup_quota(proc, v2) == pytest.approx(0.2)
    (v2 / "kubepods" / "pod2" / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(proc, v2) is None

    inside = tmp_path / "container"  # a container's own cgroup mounted as the root
    inside.mkdir()
    (inside / "cpu.max").write_text("5000 100000\n")
    proc.write_text("0::/\n")
    assert cgroup_quota(proc, inside) == pytest.approx(0.05)
    assert cgroup_quota(tmp_path / "missing", tmp_path) is None


WORKLOAD = r"""
import json, sys, threading, time
from ironlb.speaker.cpubudget import CpuBudget
sys.stdin.readline()  # moved into the cgroup by now
budget = CpuBudget.for_container()
paced = sys.argv[1] == "paced"
blob = json.dumps([{"name": f"svc-{i}", "ip": f"2001:db8::{i:x}"} for i in range(200)])
stop = threading.Event()
def work():
    while not stop.is_set():
        json.loads(blob)  # about a millisecond
        if paced:
            budget.spend()
for _ in range(2):
    threading.Thread(target=work, daemon=True).start()
gaps, last, end = [], time.monotonic(), time.monotonic() + 4.0
while time.monotonic() < end:  # a heartbeat thread's rhythm: 12.5 ms
    time.sleep(0.0125)
    now = time.monotonic()
    gaps.append(now - last)
    last = now
stop.set()
print(json.dumps({"quota": budget.rate, "max_gap": max(gaps)}))
"""


def run_workload(cgroups: CpuCgroups, mode: str) -> dict[str, float]:
    cgroup = cgroups.limit(f"bench/{mode}", "50m")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", WORKLOAD, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        cgroups.attach(cgroup, child.pid)
        out, _ = child.communicate("go\n", timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    result: dict[str, float] = json.loads(out)
    return result


@pytest.mark.skipif(
    os.geteuid() != 0 or not CPU_ROOT.is_dir(), reason="needs root and the cgroup v1 cpu controller"
)
def test_under_a_real_50m_quota_paced_work_leaves_the_heartbeat_ticking() -> None:
    cgroups = CpuCgroups()
    try:
        unpaced = run_workload(cgroups, "unpaced")
        paced = run_workload(cgroups, "paced")
    finally:
        cgroups.close()
    assert paced["quota"] == pytest.approx(0.05 * 0.6)
    assert unpaced["max_gap"] > 0.25, f"the quota did not stall the unpaced heartbeat: {unpaced}"
    assert paced["max_gap"] < 0.25, f"paced work still stalled the heartbeat: {paced}"


def test_the_limit_the_daemonset_passes_is_used_where_no_cgroup_file_shows_one() -> None:
    if cgroup_quota() is not None:
        pytest.skip("this test process runs under a CPU quota of its own")
    assert CpuBudget.for_container(environ={CPU_LIMIT_ENV: "50"}).rate == pytest.approx(0.05 * 0.6)
    assert CpuBudget.for_container(environ={}).rate is None


def test_a_thread_that_must_not_sleep_is_charged_and_sees_the_debt() -> None:
    clock = Clock()
    paced = budget(clock, rate=0.03)
    paced.begin()
    clock.cpu += 0.5  # answering ARP before the work: not background, not charged
    paced.begin()
    assert not paced.in_debt()
    clock.cpu += 0.035  # a 35 ms recomputation: 30 ms of debt, a second at the rate
    assert paced.charge() == pytest.approx(1.0)
    assert clock.slept == [] and paced.in_debt()
    clock.now += 1.01
    assert not paced.in_debt()


def test_debt_is_capped_so_that_no_background_unit_waits_more_than_a_second() -> None:
    clock = Clock()
    paced = budget(clock, rate=0.03)
    paced.begin()
    clock.cpu += 10.0  # the loop taking over thousands of IPs at once
    assert paced.charge() <= 1.0 + 1e-9
