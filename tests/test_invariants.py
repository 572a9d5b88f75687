"""The chaos run's invariant checker (pure): it must catch what it is there to catch, and nothing else."""

from __future__ import annotations

from typing import Any

from ironlb_lab.invariants import InvariantChecker


def svc(
    name: str, ips: list[str], uid: str = "u1", pool: str = "a", sharing: str | None = None
) -> dict[str, Any]:
    annotations = {"ironlb.io/address-pool": pool}
    if sharing:
        annotations["ironlb.io/allow-shared-ip"] = sharing
    return {
        "metadata": {"namespace": "chaos", "name": name, "uid": uid, "annotations": annotations},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def invariants(checker: InvariantChecker) -> list[int]:
    return [v.invariant for v in checker.violations]


def test_two_services_holding_one_ip_is_a_violation_unless_they_share() -> None:
    checker = InvariantChecker()
    checker.on_service("ADDED", svc("a", ["203.0.113.1"], uid="1"))
    checker.on_service("ADDED", svc("b", ["203.0.113.1"], uid="2"))
    assert invariants(checker) == [1]
    sharing = InvariantChecker()
    sharing.on_service("ADDED", svc("a", ["203.0.113.1"], uid="1", sharing="k"))
    sharing.on_service("ADDED", svc("b", ["203.0.113.1"], uid="2", sharing="k"))
    assert invariants(sharing) == []


def test_an_ip_freed_by_a_deletion_may_go_to_another_service() -> None:
    checker = InvariantChecker()
    checker.on_service("ADDED", svc("a", ["203.0.113.1"], uid="1"))
    checker.on_service("DELETED", svc("a", ["203.0.113.1"], uid="1"))
    checker.on_service("ADDED", svc("b", ["203.0.113.1"], uid="2"))
    assert invariants(checker) == [] and [d[0] for d in checker.deleted] == ["chaos/a"]


def test_an_ip_that_changes_without_a_new_request_is_a_violation() -> None:
    checker = InvariantChecker()
    checker.on_service("ADDED", svc("a", []))
    checker.on_service("MODIFIED", svc("a", ["203.0.113.1"]))
    checker.on_service("MODIFIED", svc("a", ["203.0.113.2"]))
    assert invariants(checker) == [2]


def test_an_ip_may_change_after_the_request_changed_even_when_seen_in_two_steps() -> None:
    """The annotation changes first (same IP), the operator moves the IP next: allowed."""
    checker = InvariantChecker()
    checker.on_service("ADDED", svc("a", ["203.0.113.1"], pool="a"))
    checker.on_service("MODIFIED", svc("a", ["203.0.113.1"], pool="b"))
    checker.on_service("MODIFIED", svc("a", ["203.0.113.1"], pool="a"))  # and back, before the operator acted
    checker.on_service("MODIFIED", svc("a", ["2001:db8::1"], pool="a"))
    assert invariants(checker) == []
    checker.on_service("MODIFIED", svc("a", ["2001:db8::2"], pool="a"))  # then a move nobody asked for
    assert invariants(checker) == [2]


def test_a_recreated_service_may_get_another_ip() -> None:
    checker = InvariantChecker()
    checker.on_service("ADDED", svc("a", ["203.0.113.1"], uid="1"))
    checker.on_service("MODIFIED", svc("a", ["203.0.113.2"], uid="2"))
    assert invariants(checker) == []


def test_a_service_without_ip_converges_only_with_a_warning() -> None:
    checker = InvariantChecker()
    checker.on_service("ADDED", svc("a", []))
    checker.on_service("ADDED", svc("b", ["203.0.113.1"], uid="2"))
    assert checker.unconverged() == ["chaos/a"]
    event = {"type": "Warning", "involvedObject": {"kind": "Service", "namespace": "chaos", "name": "a"}}
    checker.on_event("ADDED", event)
    assert checker.unconverged() == []
    assert checker.unconverged(["chaos/b", "chaos/gone"]) == []


def test_a_fresh_list_corrects_a_lagging_view_and_says_what_it_corrected() -> None:
    checker = InvariantChecker()
    checker.on_service("ADDED", svc("a", [], uid="1"))
    checker.on_service("ADDED", svc("gone", ["203.0.113.9"], uid="2"))
    assert checker.unconverged() == ["chaos/a"]
    corrected = checker.relist([svc("a", ["203.0.113.1"], uid="1"), svc("b", ["203.0.113.2"], uid="3")])
    assert corrected == ["chaos/a", "chaos/b", "chaos/gone"]
    assert checker.unconverged() == [] and sorted(checker.allocated()) == ["203.0.113.1", "203.0.113.2"]
    assert [key for key, _, _ in checker.deleted] == ["chaos/gone"]  # its IP is then checked on the wire
    assert invariants(checker) == []
