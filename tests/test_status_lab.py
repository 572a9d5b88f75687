"""``ironlb status --watch`` on a terminal (tmux) against a running lab, with only the read-only
``ironlb-status-reader`` ClusterRole: the screen shows which node answers for a Layer 2 Service, and shows
the failover as it happens when that node's speaker is killed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterhelpers import Cluster, remove_created_namespaces, wait_until
from ironlb.operator.manifests import STATUS_READER
from ironlb_lab.accounts import account_kubeconfig
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.l2lab import L2Lab

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="no tmux"),
]
NAMESPACE = "status-lab"
IRONLB = str(Path(sys.executable).parent / "ironlb")
MINE = {"matchLabels": {"ironlb-test": "status"}}


@pytest.fixture(scope="module")
def lab(
    crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[L2Lab, Path]]:
    workdir = tmp_path_factory.mktemp("status")
    with L2Lab(crds_installed, workdir, namespace=NAMESPACE, nodes=2) as l2:
        try:
            cluster = Cluster(crds_installed, NAMESPACE)
            # only this test's namespaces: Services other tests left on the shared control plane may still
            # show addresses of this range, and would be adopted into the pool
            cluster.pool("lan", "203.0.113.16/29", serviceAllocation={"namespaceSelectors": [MINE]})
            cluster.apply(
                {
                    "apiVersion": "ironlb.io/v1beta1",
                    "kind": "L2Advertisement",
                    "metadata": {"name": "lan", "namespace": NAMESPACE},
                    "spec": {"ipAddressPools": ["lan"]},
                },
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "viewer", "namespace": NAMESPACE},
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": f"viewer-{NAMESPACE}"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": STATUS_READER,
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": NAMESPACE}],
                },
            )
            viewer = account_kubeconfig(crds_installed, NAMESPACE, "viewer", workdir / "viewer.kubeconfig")
            yield l2, viewer
        finally:
            remove_created_namespaces(crds_installed)


def answering(screen: str, service: str) -> str | None:
    """The NODES column of the Service's line on the screen."""
    line = next((line for line in screen.splitlines() if line.startswith(service + " ")), None)
    return line.split()[-1] if line else None


def test_the_watch_screen_shows_the_failover_as_it_happens(lab: tuple[L2Lab, Path], tmp_path: Path) -> None:
    l2, viewer = lab
    cluster = Cluster(l2.plane, NAMESPACE)
    namespace = cluster.new_namespace(labels=MINE["matchLabels"])
    cluster.service(namespace, "web", ready_endpoint=True)
    try:  # the operator may first work through what earlier tests left on the shared control plane
        ip = cluster.wait_ingress(namespace, "web", timeout=120)[0]
    except AssertionError as error:
        events = [(e["reason"], e["message"]) for e in cluster.events(namespace, "web")]
        operator = l2.operator.log_text()[-3000:]
        raise AssertionError(f"{error}; events {events}; operator:\n{operator}") from None
    key = f"{namespace}/web"

    socket = f"ironlb-status-{os.getpid()}"  # a tmux server of this test's own, ended by its socket
    tmux = ["tmux", "-L", socket]
    command = f"env KUBECONFIG={viewer} {IRONLB} status --watch --interval 0.5 -n {NAMESPACE}"
    subprocess.run([*tmux, "new-session", "-d", "-s", "status", "-x", "200", "-y", "60", command], check=True)
    try:

        def screen() -> str:
            return subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "status"], capture_output=True, text=True, check=True
            ).stdout

        owner = wait_until(
            lambda: answering(screen(), key) not in (None, "-") and answering(screen(), key),
            30,
            "an answering node",
        )
        assert ip in screen() and "Layer2" in screen()
        survivor = "node2" if owner == "node1" else "node1"
        killed = time.monotonic()
        l2.kill_speaker(owner)
        wait_until(lambda: answering(screen(), key) == survivor, 15, f"{survivor} answering on the screen")
        print(f"\nthe screen showed {survivor} answering {time.monotonic() - killed:.1f} s after the kill")

        def victim_not_ready() -> bool:
            speakers = screen().split("SPEAKERS", 1)[-1]
            return any(line.startswith(owner) and " no " in line for line in speakers.splitlines())

        wait_until(victim_not_ready, 10, f"{owner}'s speaker shown not ready")
        final = screen()
        assert "\033[" not in final  # capture-pane without -e: no escapes; colours are checked below
        coloured = subprocess.run(
            [*tmux, "capture-pane", "-p", "-e", "-t", "status"], capture_output=True, text=True, check=True
        ).stdout
        assert "\033[" in coloured  # a terminal gets colours
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
        l2.ensure_speakers()

    listed = subprocess.run(
        [IRONLB, "status", "-o", "json", "-n", NAMESPACE],
        env={**os.environ, "KUBECONFIG": str(viewer)},
        capture_output=True,
        text=True,
        check=True,
    )
    view = json.loads(listed.stdout)
    web = next(s for s in view["services"] if s["namespace"] == namespace and s["name"] == "web")
    assert web["ips"] == [ip] and web["pool"] == "lan" and web["mode"] == "Layer2"
    assert {s["node"] for s in view["speakers"]} == {"node1", "node2"}
    assert "\033[" not in listed.stdout
