"""The chaos run, in its two-minute version: zero invariant violations under real faults and churn.

The ten-minute run (``bash hack/chaos.sh --minutes 10 --services 1000``) gives docs/benchmarks.md its
figures; this one runs in CI with a fixed seed, so a failure can be replayed (``--seed``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

HACK = Path(__file__).resolve().parents[1] / "hack"


def test_two_minutes_of_faults_and_churn_break_no_invariant(tmp_path: Path) -> None:
    report = tmp_path / "chaos.json"
    argv = ["--minutes", "2", "--services", "200", "--fault-every", "5", "12", "--seed", "1129"]
    logs = tmp_path / "logs"
    result = subprocess.run(
        [sys.executable, "-m", "ironlb_lab.chaos", *argv, "--report", str(report), "--logs", str(logs)],
        cwd=HACK,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:] + _mentions(logs, report)
    outcome = json.loads(report.read_text())
    assert outcome["violations"] == []
    assert sum(len(times) for times in outcome["faults"].values()) >= 6, outcome["faults"]
    # (churn deletes about as many Services as it creates: some 200 hold an IP at the end)
    assert outcome["deletions_checked"] > 0 and outcome["wire_checked"] >= 150


def _mentions(logs: Path, report: Path) -> str:
    """What the operators' logs say about the Services named in the violations, to read a CI failure."""
    if not report.exists():
        return ""
    text = " ".join(v["message"] for v in json.loads(report.read_text())["violations"])
    names = set(re.findall(r"chaos/[\w-]+", text))
    lines = [
        f"{log.name}: {line}"
        for log in sorted(logs.glob("*operator*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if any(name in line for name in names) or "lease" in line or "stepp" in line
    ]
    return "\noperator logs:\n" + "\n".join(lines[-200:])
