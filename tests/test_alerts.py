"""The shipped alerts, evaluated by Prometheus's own rule engine (``promtool test rules``) on series shaped
like those the lab's real components export: each alert fires when it should and stays quiet otherwise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from ironlb.operator.alerts import ALERTS, prometheus_rule_groups
from ironlb_lab.prometheus import prometheus_tools

CASES = Path(__file__).parent / "data" / "promtool" / "alerts_test.yaml"


def test_every_alert_fires_and_stays_quiet_as_its_promtool_cases_say(tmp_path: Path) -> None:
    tools = prometheus_tools()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": prometheus_rule_groups()}))
    shutil.copy(CASES, tmp_path / "alerts_test.yaml")
    checked = subprocess.run(
        [str(tools / "promtool"), "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = subprocess.run(
        [str(tools / "promtool"), "test", "rules", "alerts_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_it() -> None:
    cases = yaml.safe_load(CASES.read_text())["tests"]
    fired = {
        check["alertname"]
        for case in cases
        for check in case.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    assert fired == {alert.name for alert in ALERTS}


def test_every_alert_has_a_runbook_section_in_the_docs() -> None:
    text = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    missing = [alert.name for alert in ALERTS if f"### {alert.name}" not in text]
    assert not missing, missing
