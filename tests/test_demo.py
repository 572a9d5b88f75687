"""The README's main job (the seed scenario in the lab) runs end to end and says "URL exists"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HACK = Path(__file__).resolve().parents[1] / "hack"


def test_the_seed_scenario_runs_and_curl_reaches_the_vm_stand_in() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ironlb_lab.demo"], cwd=HACK, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "\nURL exists\n" in result.stdout
    assert "metallb-nginx-svc   LoadBalancer" in result.stdout and "203.0.113." in result.stdout
    assert "announcing 203.0.113." in result.stdout and "from node node2 (Layer 2)" in result.stdout
