"""The repository shape the design card asks for, and that it never shadows the standard library."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import ironlb.api
import ironlb.operator
import ironlb.speaker

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_standard_library_operator_is_not_shadowed_from_the_repository_root() -> None:
    result = subprocess.run(
        [sys.executable, "-S", "-c", "import operator; print(operator.__file__)"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    printed = Path(result.stdout.strip())
    assert not printed.is_relative_to(REPO_ROOT), printed
    assert printed.name == "operator.py"


def test_import_names_live_in_the_design_card_folders() -> None:
    assert Path(ironlb.api.__file__).is_relative_to(REPO_ROOT / "common")
    assert Path(ironlb.operator.__file__).is_relative_to(REPO_ROOT / "operator")
    assert Path(ironlb.speaker.__file__).is_relative_to(REPO_ROOT / "speaker")


def test_console_scripts_are_installed() -> None:
    bin_dir = Path(sys.executable).parent
    for script in ("ironlb", "ironlb-operator", "ironlb-speaker"):
        assert (bin_dir / script).exists(), script
    result = subprocess.run([str(bin_dir / "ironlb"), "--help"], capture_output=True, text=True, check=True)
    assert "generate" in result.stdout


def test_design_card_folders_exist() -> None:
    for name in (
        "pyproject.toml",
        "common",
        "operator",
        "crds",
        "speaker",
        "bundle",
        "tests",
        "hack",
        "README.md",
        "docs",
        ".ci/run",
        "requirements.lock",
    ):
        assert (REPO_ROOT / name).exists(), name


def test_every_package_is_listed_for_the_wheel() -> None:
    """setuptools installs only the listed packages: one left out installs nowhere but in editable mode
    (ironlb.operator.controller was missing: a wheel-built image would not have started)."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, directory in config["package-dir"].items():
        for init in (REPO_ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO_ROOT / directory)
            found.add(".".join([package, *relative.parts]))
    assert found == listed
