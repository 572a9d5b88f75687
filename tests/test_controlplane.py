"""The lab's control plane helper: real binaries, /version right, and nothing left running afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ironlb_lab.controlplane import ControlPlane

HACK = Path(__file__).resolve().parents[1] / "hack"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def _wait_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


def test_version_is_the_pinned_release(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == "v1.34.12"
    assert version["minor"] == "34"


def test_components_are_stopped_by_pid_even_when_the_body_fails() -> None:
    plane = ControlPlane()
    with pytest.raises(RuntimeError, match="boom"), plane:
        pids = [component.process.pid for component in plane.components]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        raise RuntimeError("boom")
    assert _wait_gone(pids) == []
    assert plane.components == []


def test_components_die_with_a_parent_killed_by_sigkill() -> None:
    script = (
        "import sys, time\n"
        "from ironlb_lab.controlplane import ControlPlane\n"
        "plane = ControlPlane().start()\n"
        "print(' '.join(str(c.process.pid) for c in plane.components), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=HACK, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert _wait_gone(pids) == [], "etcd / kube-apiserver outlived their parent"


def test_controllers_start_and_run_the_daemonset_controller() -> None:
    with ControlPlane(with_controllers=True) as plane:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            accounts = plane.kubectl("get", "serviceaccounts", "-n", "kube-system", "-o", "name").stdout
            if "serviceaccount/daemon-set-controller" in accounts:
                break
            time.sleep(0.5)
        assert "serviceaccount/daemon-set-controller" in accounts
        names = [component.name for component in plane.components]
        assert names == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
