"""Leader election: client-go's rules (pure), its acquire/renew cases against the real API server, and the
real operator process under the faults that break leader election in practice: kill -9, SIGSTOP, a
network cut between the leader and the API server.

Before: expiry compared the holder's wall-clock renewTime with the local clock (a skewed clock took the
lease over), a connection error killed the renewal thread without stopping the leader, and the standby
blocked before serving its liveness port.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clusterhelpers import Cluster, wait_until
from hypothesis import given
from hypothesis import strategies as st
from ironlb.api.kube import KubeClient
from ironlb.operator.leader import LeaseElector, Observation, may_take, observe
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.faultproxy import FaultProxy
from ironlb_lab.operator import OperatorProcess

LEASE = 6.0  # the lab operator's --lease-duration
V6: dict[str, Any] = {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}
PATH = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


# ------------------------------------------------------------------------------------------------ pure
@given(
    duration=st.floats(1, 60),
    unchanged_for=st.floats(0, 120),
    holder=st.sampled_from(["other", "me", None, ""]),
)
def test_a_lease_may_be_taken_only_when_free_ours_or_unchanged_for_its_duration(
    duration: float, unchanged_for: float, holder: str | None
) -> None:
    seen = Observation("7", holder, duration, seen_at=1000.0)
    now = 1000.0 + unchanged_for
    assert may_take(seen, "me", now) == (holder != "other" or now - 1000.0 >= duration)


def test_the_observation_clock_restarts_only_when_the_lease_changes() -> None:
    lease = {
        "metadata": {"resourceVersion": "5"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    }
    first = observe(None, lease, now=10.0, default=15)
    assert observe(first, lease, now=20.0, default=15) is first
    renewed = {**lease, "metadata": {"resourceVersion": "6"}}
    assert observe(first, renewed, now=20.0, default=15).seen_at == 20.0


# --------------------------------------------------------------------------- against the API server
@pytest.fixture
def leases(crds_installed: ControlPlane) -> Iterator[tuple[KubeClient, str]]:
    kube = KubeClient.from_environment(str(crds_installed.kubeconfig))
    namespace = f"lease-{time.monotonic_ns() % 10**8}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    kube.request("POST", "/api/v1/namespaces", body)
    yield kube, namespace
    kube.request("DELETE", f"/api/v1/namespaces/{namespace}")


def elector(kube: KubeClient, namespace: str, identity: str, clock: list[float]) -> LeaseElector:
    return LeaseElector(kube, namespace, "lock", identity, 15, 10, 1, clock=lambda: clock[0])


def lease_spec(kube: KubeClient, namespace: str) -> dict[str, object]:
    spec: dict[str, object] = kube.get(PATH.format(namespace=namespace) + "/lock")["spec"]
    return spec


def test_no_lease_is_created_and_held(leases: tuple[KubeClient, str]) -> None:
    kube, namespace = leases
    a = elector(kube, namespace, "a", [0.0])
    assert a.try_acquire_or_renew() and a.leading()
    spec = lease_spec(kube, namespace)
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 0


def test_a_held_lease_that_keeps_changing_is_never_taken_whatever_its_timestamps(
    leases: tuple[KubeClient, str],
) -> None:
    """The holder's clock is an hour behind, so its renewTime looks expired; it keeps renewing: kept."""
    kube, namespace = leases
    clock = [0.0]
    a, b = elector(kube, namespace, "a", clock), elector(kube, namespace, "b", clock)
    assert a.try_acquire_or_renew()
    skewed = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for _ in range(5):
        clock[0] += 10.0  # 50 s in all, three lease durations and more
        assert a.try_acquire_or_renew()
        kube.merge_patch(PATH.format(namespace=namespace) + "/lock", {"spec": {"renewTime": skewed}})
        assert not b.try_acquire_or_renew()


def test_a_lease_unchanged_for_its_duration_is_taken_not_before(leases: tuple[KubeClient, str]) -> None:
    kube, namespace = leases
    clock = [0.0]
    a, b = elector(kube, namespace, "a", clock), elector(kube, namespace, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b starts observing now
    clock[0] = 14.9
    assert not b.try_acquire_or_renew()
    assert not a.leading(), "a did not renew for longer than its renew deadline: it stopped leading"
    clock[0] = 15.0
    assert b.try_acquire_or_renew()
    spec = lease_spec(kube, namespace)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew(), "a sees b's write: the lease was taken over"


def test_renewing_keeps_the_acquire_time_and_transitions(leases: tuple[KubeClient, str]) -> None:
    kube, namespace = leases
    clock = [0.0]
    a = elector(kube, namespace, "a", clock)
    assert a.try_acquire_or_renew()
    first = lease_spec(kube, namespace)
    clock[0] = 5.0
    assert a.try_acquire_or_renew()
    again = lease_spec(kube, namespace)
    assert again["acquireTime"] == first["acquireTime"] and again["leaseTransitions"] == 0
    assert again["renewTime"] != first["renewTime"]


def test_a_released_lease_is_taken_at_once(leases: tuple[KubeClient, str]) -> None:
    kube, namespace = leases
    clock = [0.0]
    a, b = elector(kube, namespace, "a", clock), elector(kube, namespace, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert not a.leading()
    assert b.try_acquire_or_renew()


def race(kube: KubeClient, namespace: str, name: str, count: int) -> list[bool]:
    """``count`` candidates try to acquire a free lease at the same moment."""
    candidates = [LeaseElector(kube, namespace, name, f"c{n}", 15, 10, 1) for n in range(count)]
    results: list[bool] = []
    barrier = threading.Barrier(count)

    def attempt(candidate: LeaseElector) -> None:
        barrier.wait()
        results.append(candidate.try_acquire_or_renew())

    threads = [threading.Thread(target=attempt, args=(c,)) for c in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_candidates_racing_for_a_free_lease_never_both_win(leases: tuple[KubeClient, str]) -> None:
    kube, namespace = leases
    for round_ in range(5):
        assert race(kube, namespace, f"race-{round_}", 4).count(True) == 1


# ----------------------------------------------------------------------- the real operator process
def _cluster(plane: ControlPlane, name: str) -> Cluster:
    cluster = Cluster(plane, namespace=name)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return cluster


def test_a_standby_serves_its_liveness_endpoint_while_it_waits(crds_installed: ControlPlane) -> None:
    args = ("--namespace", _cluster(crds_installed, "lease-live").namespace)
    leader = OperatorProcess(crds_installed, args=args).start()
    standby = OperatorProcess(crds_installed, args=args).start(wait_for="waiting for lease")
    try:
        wait_until(lambda: standby.healthz() == 200, 20, "the standby's /healthz")
        assert "acquired lease" not in standby.log_text()
        assert leader.healthz() == 200
    finally:
        leader.stop()
        standby.stop()


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_a_standby_takes_over_within_the_lease_duration_plus_2_s(
    crds_installed: ControlPlane, fault: str
) -> None:
    """kill -9, or SIGSTOP (the frozen leader later resumes: it must write nothing, and stop)."""
    cluster = _cluster(crds_installed, f"lease-{fault}")
    namespace = cluster.new_namespace()
    # IPv6: the IPv4 documentation ranges are shared by every operator test on this control plane
    cluster.pool(
        "takeover", f"2001:db8:1ea5:{fault == 'kill':x}::/125", serviceAllocation={"namespaces": [namespace]}
    )
    args = ("--namespace", cluster.namespace)
    leader = OperatorProcess(crds_installed, args=args).start()
    standby = OperatorProcess(crds_installed, args=args).start(wait_for="waiting for lease")
    try:
        cluster.service(namespace, "before", **V6)
        before = cluster.wait_ingress(namespace, "before")
        began = time.monotonic()
        leader.signal(signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        standby.wait_for_log("acquired lease", timeout=LEASE + 10)
        takeover = time.monotonic() - began
        print(f"{fault}: the standby took over {takeover:.1f} s later (lease {LEASE:.0f} s)")
        assert takeover < LEASE + 2
        for name in ("during-a", "during-b"):
            cluster.service(namespace, name, **V6)
        during = {name: cluster.wait_ingress(namespace, name) for name in ("during-a", "during-b")}
        if fault == "freeze":
            # the creations above wait in the frozen leader's sockets; its allocator does not know the new
            # leader's IPs, so one write from it would double-assign. It must write nothing, step down and
            # stand by (no restart needed)
            leader.signal(signal.SIGCONT)
            leader.wait_for_log("stepped down", timeout=15)
            time.sleep(2)
            assert leader.healthz() == 200
        ips = {name: cluster.ingress(namespace, name) for name in ("before", "during-a", "during-b")}
        assert ips == {"before": before, **during}
        every = [ip for addresses in ips.values() for ip in addresses]
        assert len(every) == len(set(every)) == 3
    finally:
        leader.kill()
        standby.stop()


def test_a_leader_cut_off_from_the_api_server_stops_before_its_lease_can_expire(
    crds_installed: ControlPlane,
) -> None:
    cluster = _cluster(crds_installed, "lease-cut")
    with FaultProxy(crds_installed.port) as proxy:
        args = ("--namespace", cluster.namespace)
        leader = OperatorProcess(crds_installed, args=args, proxy_port=proxy.port).start()
        standby = OperatorProcess(crds_installed, args=args).start(wait_for="waiting for lease")
        try:
            began = time.monotonic()
            proxy.blackhole()  # half-open: no RST, the leader only learns from its own timeouts
            leader.wait_for_log("stepped down", timeout=LEASE + 5)
            stopped = time.monotonic() - began
            standby.wait_for_log("acquired lease", timeout=LEASE + 10)
            took_over = time.monotonic() - began
            print(
                f"cut off: the leader stopped after {stopped:.1f} s, standby took over at {took_over:.1f} s"
            )
            assert "not renewed" in leader.log_text()
            assert stopped < took_over, "the old leader must stop acting before the standby starts"
        finally:
            leader.kill()
            standby.stop()
