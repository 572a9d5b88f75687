"""The README's main job (the seed scenario in the lab, Layer 2 and BGP) runs end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HACK = Path(__file__).resolve().parents[1] / "hack"


def test_the_seed_scenario_runs_in_both_modes_and_curl_reaches_the_vm() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ironlb_lab.demo"], cwd=HACK, capture_output=True, text=True, timeout=480
    )
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-3000:]
    # installed from deploy/ironlb.yaml: the operator's pods installed the speakers, which run on every node
    assert len(re.findall(r"ironlb-speaker-\S+\s+1/1\s+Running", out)) >= 3, out
    assert re.search(r"ironlb-operator-\S+\s+1/1\s+Running", out), out
    # the seed's VirtualMachine ran as a virt-launcher pod; its Service got an IP from the ConfigMap's pool
    assert re.search(r"virt-launcher-fedora-nginx-\S+\s+1/1\s+Running", out), out
    assert "metallb-nginx-svc   LoadBalancer" in out and "203.0.113." in out
    assert out.count("\nURL exists\n") == 3, out  # Layer 2, Layer 2 failover Service, BGP through the router
    assert "announcing 203.0.113." in out and "from node node2 (Layer 2)" in out
    assert "LegacyConfigMap" in out, "the operator said it read MetalLB's ConfigMap"
    assert re.search(r"addresspool-sample1\s+\S+\s+true\s+1\s+15", out), "pool counts after the migration"
    assert re.search(r"answers for 203\.0\.113\.\d+ now .* outage \d+ ms", out), out
    assert re.search(r"lab-router\s+198\.51\.100\.126\s+64512\s+64513\s+3/3", out), out
    assert "next hop" in out and "Demo finished" in out
