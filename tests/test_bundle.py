"""deploy/ and the OLM bundle: generated from the typed sources, valid for OLM, and applicable for real."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from ironlb.operator.bundlegen import render_bundle, render_deploy, render_monitoring
from ironlb.operator.dashboard import render_dashboard
from ironlb.operator.manifests import SPEAKER_IMAGE, VERSION
from ironlb_lab.controlplane import ControlPlane

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE = REPO_ROOT / "bundle"


def test_checked_in_bundle_and_deploy_match_the_sources() -> None:
    for relative, text in render_bundle(REPO_ROOT / "docs" / "examples").items():
        assert (BUNDLE / relative).read_text() == text, f"bundle/{relative} drifted: run `ironlb generate`"
    generated = {str(p.relative_to(BUNDLE)) for p in BUNDLE.rglob("*") if p.is_file()}
    assert generated == set(render_bundle(REPO_ROOT / "docs" / "examples")), "stale files in bundle/"
    assert (REPO_ROOT / "deploy" / "ironlb.yaml").read_text() == render_deploy(), "deploy/ drifted"
    assert (REPO_ROOT / "deploy" / "monitoring.yaml").read_text() == render_monitoring(), "deploy/ drifted"
    assert (REPO_ROOT / "deploy" / "dashboard.json").read_text() == render_dashboard(), "deploy/ drifted"


def test_versions_images_and_crds_are_consistent() -> None:
    csv = yaml.safe_load((BUNDLE / "manifests" / "ironlb.clusterserviceversion.yaml").read_text())
    assert csv["metadata"]["name"] == f"ironlb.v{VERSION}" and csv["spec"]["version"] == VERSION
    deployment = csv["spec"]["install"]["spec"]["deployments"][0]["spec"]
    env = {e["name"]: e.get("value") for e in deployment["template"]["spec"]["containers"][0]["env"]}
    assert env["RELATED_IMAGE_SPEAKER"] == SPEAKER_IMAGE
    assert {"name": "speaker", "image": SPEAKER_IMAGE} in csv["spec"]["relatedImages"]
    owned = {crd["name"] for crd in csv["spec"]["customresourcedefinitions"]["owned"]}
    shipped = {
        yaml.safe_load(p.read_text())["metadata"]["name"] for p in (BUNDLE / "manifests").glob("ironlb.io_*")
    }
    assert (
        owned
        == shipped
        == {yaml.safe_load(p.read_text())["metadata"]["name"] for p in (REPO_ROOT / "crds").glob("*.yaml")}
    )


def _validate(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "validate-bundle.sh"), str(directory)],
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_operator_framework_validator_accepts_the_bundle() -> None:
    result = _validate(BUNDLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"level=(error|fatal)", result.stdout)


def test_the_validator_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "bundle"
    shutil.copytree(BUNDLE, broken)
    (broken / "manifests" / "ironlb.io_bgppeers.yaml").unlink()
    result = _validate(broken)
    assert result.returncode != 0
    assert "Kind=BGPPeer" in result.stdout and "not found in bundle" in result.stdout


def test_plain_manifests_apply_to_the_real_api_server(control_plane: ControlPlane) -> None:
    applied = control_plane.kubectl("apply", "-f", str(REPO_ROOT / "deploy" / "ironlb.yaml")).stdout
    for expected in (
        "namespace/ironlb-system",
        "customresourcedefinition.apiextensions.k8s.io/bgppeers.ironlb.io",
        "clusterrole.rbac.authorization.k8s.io/ironlb-speaker",
        "deployment.apps/ironlb-operator",
    ):
        assert expected in applied, applied
    assert (
        "apps/v1"
        in control_plane.kubectl(
            "get", "deployment", "-n", "ironlb-system", "ironlb-operator", "-o", "jsonpath={.apiVersion}"
        ).stdout
    )
    # the session's plane runs the controllers: leave no operator Deployment for later modules' labs
    control_plane.kubectl("delete", "deployment", "-n", "ironlb-system", "ironlb-operator", "--wait=false")


def test_runtime_lock_pins_the_same_versions_as_the_development_lock() -> None:
    def pins(name: str) -> dict[str, str]:
        return dict(re.findall(r"^([a-z0-9_.-]+)==([^ \\\n]+)", (REPO_ROOT / name).read_text(), re.MULTILINE))

    runtime, development = pins("requirements-runtime.lock"), pins("requirements.lock")
    assert {"kopf", "kubernetes", "pydantic", "exabgp", "jinja2"} <= set(runtime)
    assert (
        "scapy" in development and "scapy" not in runtime
    )  # the tests dissect frames with it; images do not
    assert {name: development.get(name) for name in runtime} == runtime
