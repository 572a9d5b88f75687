"""Shared fixtures: one real control plane per test session, with IronLB's CRDs installed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ironlb_lab.controlplane import ControlPlane

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE_MANIFEST = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ironlb-system\n"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """Real etcd, kube-apiserver, controller manager and scheduler on loopback; stopped by PID at the end."""
    plane = ControlPlane(with_controllers=True, audit=True).start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def crds_installed(control_plane: ControlPlane) -> ControlPlane:
    control_plane.install_crds(REPO_ROOT / "crds")
    control_plane.kubectl("apply", "-f", "-", input=NAMESPACE_MANIFEST)
    return control_plane


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_rbac.py last: it checks every request the components made during the whole suite."""
    items.sort(key=lambda item: item.path.name == "test_rbac.py")


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    """An event a test's threads (informers, loops) end on; set when the test ends."""
    event = threading.Event()
    yield event
    event.set()
