"""The allocator's rules, one behaviour per test (MetalLB's semantics are the floor)."""

from __future__ import annotations

from ironlb.api import IPAddressPoolSpec, LabelSelector
from ironlb.operator.allocator import (
    Allocation,
    AllocationRequest,
    Allocator,
    Failure,
    PoolConfig,
    Reason,
    SharingClaim,
    format_address,
    format_count,
    parse_address,
    parse_segment,
)


def pool(name: str, *addresses: str, created: str = "2026-01-01T00:00:00Z", **spec: object) -> PoolConfig:
    model = IPAddressPoolSpec.model_validate({"addresses": list(addresses), **spec})
    return PoolConfig.from_spec(name, model, created=created)


def ips(result: Allocation | Failure) -> list[str]:
    assert isinstance(result, Allocation), result
    return [format_address(address) for address in result.addresses]


def failure(result: Allocation | Failure) -> Failure:
    assert isinstance(result, Failure), result
    return result


def test_lowest_free_address_first_and_release_frees_it() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.1-203.0.113.3"))
    assert ips(allocator.assign(AllocationRequest("ns/one"))) == ["203.0.113.1"]
    assert ips(allocator.assign(AllocationRequest("ns/two"))) == ["203.0.113.2"]
    allocator.release("ns/one")
    assert ips(allocator.assign(AllocationRequest("ns/three"))) == ["203.0.113.1"]


def test_assign_is_idempotent_for_an_unchanged_service() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.0/30"))
    first = allocator.assign(AllocationRequest("ns/svc"))
    assert allocator.assign(AllocationRequest("ns/svc")) == first


def test_exhausted_pool_says_how_full_it_is() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("tiny", "203.0.113.7/32"))
    allocator.assign(AllocationRequest("ns/one"))
    result = failure(allocator.assign(AllocationRequest("ns/two")))
    assert result.reason is Reason.POOL_EXHAUSTED
    assert "'tiny' has no free IPv4 address (1 of 1 in use)" in result.message


def test_avoid_buggy_ips_skips_dot_zero_and_dot_255() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.255-203.0.114.1", avoidBuggyIPs=True))
    assert ips(allocator.assign(AllocationRequest("ns/one"))) == ["203.0.114.1"]
    assert failure(allocator.assign(AllocationRequest("ns/two"))).reason is Reason.POOL_EXHAUSTED
    assert allocator.usage("a").total[4] == 1


def test_pool_annotation_picks_the_pool_and_a_missing_pool_is_named() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("first", "203.0.113.0/30"))
    allocator.upsert_pool(pool("second", "203.0.113.64/30", autoAssign=False))
    assert ips(allocator.assign(AllocationRequest("ns/a", pool="second"))) == ["203.0.113.64"]
    missing = failure(allocator.assign(AllocationRequest("ns/b", pool="addresspool-sample1")))
    assert missing.reason is Reason.POOL_NOT_FOUND and "'addresspool-sample1'" in missing.message


def test_auto_assign_false_pools_are_only_used_on_request() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("manual", "203.0.113.0/30", autoAssign=False))
    assert failure(allocator.assign(AllocationRequest("ns/a"))).reason is Reason.NO_MATCHING_POOL
    requested = AllocationRequest("ns/b", requested=(parse_address("203.0.113.2"),))
    assert ips(allocator.assign(requested)) == ["203.0.113.2"]


def test_priority_orders_pools_and_unset_priority_comes_last() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("no-priority", "203.0.113.0/30"))
    allocator.upsert_pool(pool("second", "203.0.113.64/30", serviceAllocation={"priority": 20}))
    allocator.upsert_pool(pool("first", "203.0.113.128/30", serviceAllocation={"priority": 10}))
    assert allocator.assign(AllocationRequest("ns/a")).pool == "first"  # type: ignore[union-attr]


def test_service_allocation_restricts_namespaces_and_labels() -> None:
    allocator = Allocator()
    allocator.upsert_pool(
        pool(
            "shop-only",
            "203.0.113.0/30",
            serviceAllocation={
                "namespaces": ["shop"],
                "serviceSelectors": [{"matchLabels": {"tier": "web"}}],
            },
        )
    )
    refused = failure(allocator.assign(AllocationRequest("payments/api", labels={"tier": "web"})))
    assert refused.reason is Reason.NO_MATCHING_POOL and "'payments'" in refused.message
    assert failure(allocator.assign(AllocationRequest("shop/db", labels={"tier": "db"}))).reason is (
        Reason.NO_MATCHING_POOL
    )
    assert ips(allocator.assign(AllocationRequest("shop/web", labels={"tier": "web"}))) == ["203.0.113.0"]


def test_namespace_selectors_use_the_namespace_labels() -> None:
    allocator = Allocator()
    selector = LabelSelector.model_validate(
        {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}
    )
    allocator.upsert_pool(
        pool(
            "prod",
            "203.0.113.0/30",
            serviceAllocation={"namespaceSelectors": [selector.model_dump(by_alias=True)]},
        )
    )
    assert isinstance(allocator.assign(AllocationRequest("a/svc", namespace_labels={"env": "dev"})), Failure)
    assert ips(allocator.assign(AllocationRequest("b/svc", namespace_labels={"env": "prod"}))) == [
        "203.0.113.0"
    ]


def test_requested_ip_outside_every_pool_and_in_use() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.0/30"))
    outside = failure(allocator.assign(AllocationRequest("ns/a", requested=(parse_address("198.51.100.9"),))))
    assert outside.reason is Reason.REQUESTED_IP_NOT_IN_POOL and "198.51.100.9" in outside.message
    allocator.assign(AllocationRequest("ns/b", requested=(parse_address("203.0.113.1"),)))
    taken = failure(allocator.assign(AllocationRequest("ns/c", requested=(parse_address("203.0.113.1"),))))
    assert taken.reason is Reason.REQUESTED_IP_IN_USE and "ns/b" in taken.message


def _shared(
    key: str | None, *ports: int, local: bool = False, selector: tuple[tuple[str, str], ...] = ()
) -> SharingClaim:
    return SharingClaim(key, frozenset(("TCP", port) for port in ports), local, frozenset(selector))


def test_sharing_needs_equal_keys_and_disjoint_ports() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.0/30"))
    web = ips(allocator.assign(AllocationRequest("ns/web", sharing=_shared("k", 80))))
    dns = ips(allocator.assign(AllocationRequest("ns/dns", sharing=_shared("k", 53))))
    assert web == dns == ["203.0.113.0"]
    clash = failure(
        allocator.assign(
            AllocationRequest("ns/web2", requested=(parse_address("203.0.113.0"),), sharing=_shared("k", 80))
        )
    )
    assert clash.reason is Reason.SHARING_CONFLICT and "port TCP/80" in clash.message
    other_key = allocator.assign(AllocationRequest("ns/other", sharing=_shared("other", 443)))
    assert ips(other_key) == ["203.0.113.1"]


def test_sharing_with_local_traffic_needs_the_same_selector() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.0/30"))
    allocator.assign(
        AllocationRequest("ns/a", sharing=_shared("k", 80, local=True, selector=(("app", "a"),)))
    )
    result = failure(
        allocator.assign(
            AllocationRequest(
                "ns/b",
                requested=(parse_address("203.0.113.0"),),
                sharing=_shared("k", 81, local=True, selector=(("app", "b"),)),
            )
        )
    )
    assert "same selector" in result.message


def test_require_dual_stack_takes_both_families_from_one_pool() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("v4", "203.0.113.0/30"))
    allocator.upsert_pool(pool("dual", "203.0.113.64/30", "2001:db8:100::/126"))
    result = allocator.assign(AllocationRequest("ns/a", families=(6, 4)))
    assert ips(result) == ["2001:db8:100::", "203.0.113.64"]
    assert result.pool == "dual"  # type: ignore[union-attr]


def test_require_dual_stack_fails_without_a_dual_pool() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("v4", "203.0.113.0/30"))
    assert failure(allocator.assign(AllocationRequest("ns/a", families=(4, 6)))).reason is (
        Reason.FAMILY_NOT_IN_POOL
    )


def test_prefer_dual_stack_is_best_effort_and_completes_later() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.0/30"))
    request = AllocationRequest("ns/a", families=(4, 6), require_all_families=False)
    partial = allocator.assign(request)
    assert ips(partial) == ["203.0.113.0"] and not partial.complete  # type: ignore[union-attr]
    allocator.upsert_pool(pool("a", "203.0.113.0/30", "2001:db8:100::/126"))
    completed = allocator.assign(request)
    assert ips(completed) == ["203.0.113.0", "2001:db8:100::"] and completed.complete  # type: ignore[union-attr]


def test_a_changed_request_moves_the_service() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.0/30"))
    allocator.upsert_pool(pool("b", "203.0.113.64/30", autoAssign=False))
    allocator.assign(AllocationRequest("ns/a"))
    assert ips(allocator.assign(AllocationRequest("ns/a", pool="b"))) == ["203.0.113.64"]
    old = parse_address("203.0.113.0")
    # until its status no longer shows the old IP, nobody else gets it (invariant 1 in the API, not only
    # in memory: the move's status write may land late, or fail)
    assert allocator.holders(old) == ["ns/a"]
    assert ips(allocator.assign(AllocationRequest("ns/b"))) == ["203.0.113.1"]
    allocator.settle("ns/a", [old])
    assert allocator.holders(old) == ["ns/a"]
    allocator.settle("ns/a", [parse_address("203.0.113.64")])
    assert allocator.holders(old) == []
    assert ips(allocator.assign(AllocationRequest("ns/c"))) == ["203.0.113.0"]


def test_overlapping_pools_the_younger_is_blocked_and_existing_ips_keep_working() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("young", "203.0.113.0/29", created="2026-02-01T00:00:00Z"))
    kept = allocator.assign(AllocationRequest("ns/kept", pool="young"))
    allocator.upsert_pool(pool("old", "203.0.113.4-203.0.113.20", created="2026-01-01T00:00:00Z"))
    assert allocator.is_blocked("young") and not allocator.is_blocked("old")
    assert allocator.overlaps("old") == {"young": "203.0.113.4-203.0.113.7"}
    assert allocator.allocation_of("ns/kept") == kept
    blocked = failure(allocator.assign(AllocationRequest("ns/new", pool="young")))
    assert blocked.reason is Reason.POOL_NOT_READY and "overlaps older pool(s) old" in blocked.message
    # the older pool never hands out an address the younger one already gave away
    for number in range(5):
        result = allocator.assign(AllocationRequest(f"ns/o{number}", pool="old"))
        assert ips(result) != ips(kept)


def test_a_shrunk_pool_reports_services_outside_it_without_moving_them() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.0/29"))
    for number in range(4):
        allocator.assign(AllocationRequest(f"ns/s{number}"))
    allocator.upsert_pool(pool("a", "203.0.113.0/31"))
    assert allocator.services_outside_pool("a") == ["ns/s2", "ns/s3"]
    assert ips(allocator.allocation_of("ns/s3")) == ["203.0.113.3"]  # type: ignore[arg-type]
    allocator.remove_pool("a")
    assert allocator.services_outside_pool("a") == ["ns/s0", "ns/s1", "ns/s2", "ns/s3"]


def test_restore_rejects_a_second_holder_of_one_ip() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.0/30"))
    address = parse_address("203.0.113.1")
    assert isinstance(allocator.restore(AllocationRequest("ns/old"), [address], None), Allocation)
    clash = failure(allocator.restore(AllocationRequest("ns/new"), [address], None))
    assert clash.reason is Reason.REQUESTED_IP_IN_USE
    assert ips(allocator.assign(AllocationRequest("ns/new"))) == ["203.0.113.0"]


def test_restore_trusts_a_status_only_where_it_agrees_with_the_pools_or_the_record() -> None:
    """services/status is writable by others: an IP outside every pool, or in a pool that refuses the
    Service, is adopted only when IronLB's own record lists it (a pool shrunk under a live Service)."""
    allocator = Allocator()
    allocator.upsert_pool(pool("team-a", "203.0.113.0/30", serviceAllocation={"namespaces": ["team-a"]}))
    gateway, team_a_ip = parse_address("198.51.100.126"), parse_address("203.0.113.2")
    outside = failure(allocator.restore(AllocationRequest("team-b/forger"), [gateway], None))
    assert outside.reason is Reason.REQUESTED_IP_NOT_IN_POOL and "198.51.100.126" in outside.message
    refused = failure(allocator.restore(AllocationRequest("team-b/forger"), [team_a_ip], None))
    assert refused.reason is Reason.POOL_NOT_ALLOWED and "team-a" in refused.message
    assert allocator.holders(gateway) == allocator.holders(team_a_ip) == []
    kept = allocator.restore(AllocationRequest("team-b/old"), [parse_address("198.51.100.7")], "shrunk")
    assert isinstance(kept, Allocation) and kept.pool == "shrunk"
    assert isinstance(allocator.restore(AllocationRequest("team-a/web"), [team_a_ip], None), Allocation)


def test_huge_ipv6_pool_counts_exactly_without_enumerating() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("v6", "2001:db8:1::/64", "2001:db8:2::/48"))
    allocator.assign(AllocationRequest("ns/a", families=(6,)))
    usage = allocator.usage("v6")
    assert usage.total[6] == 2**64 + 2**80 and usage.available[6] == 2**64 + 2**80 - 1
    assert format_count(usage.available[6]) == "~2^80"
    assert format_count(2**64) == "2^64" and format_count(2**64 + 5) == "2^64+5"


def test_segments_inside_one_pool_are_merged() -> None:
    config = pool("a", "203.0.113.0/28", "203.0.113.8-203.0.113.20")
    assert [segment.describe() for segment in config.segments] == ["203.0.113.0-203.0.113.20"]
    assert parse_segment("2001:db8::/127").size == 2


def test_released_service_gets_its_old_ip_back_while_it_is_free() -> None:
    allocator = Allocator()
    allocator.upsert_pool(pool("a", "203.0.113.0/30"))
    allocator.assign(AllocationRequest("ns/low"))
    assert ips(allocator.assign(AllocationRequest("ns/svc"))) == ["203.0.113.1"]
    allocator.release("ns/low")
    allocator.release("ns/svc")
    assert ips(allocator.assign(AllocationRequest("ns/svc"))) == ["203.0.113.1"]
    assert ips(allocator.assign(AllocationRequest("ns/other"))) == ["203.0.113.0"]


def test_service_allocation_holds_on_every_path_to_a_pool() -> None:
    """A pool of team-a: the pool annotation, a requested IP and a sharing key joining team-a's IP all fail
    for team-b, naming the rule; team-a itself may use all three."""
    allocator = Allocator()
    allocator.upsert_pool(pool("team-a-pool", "203.0.113.0/30", serviceAllocation={"namespaces": ["team-a"]}))
    web = SharingClaim(key="k", ports=frozenset({("TCP", 80)}))
    joined = SharingClaim(key="k", ports=frozenset({("TCP", 443)}))
    assert ips(allocator.assign(AllocationRequest("team-a/web", sharing=web))) == ["203.0.113.0"]
    taken, free = parse_address("203.0.113.0"), parse_address("203.0.113.3")
    for request in (
        AllocationRequest("team-b/named", pool="team-a-pool"),
        AllocationRequest("team-b/requested", requested=(free,)),
        AllocationRequest("team-b/joins", requested=(taken,), sharing=joined),
    ):
        refused = failure(allocator.assign(request))
        assert refused.reason is Reason.POOL_NOT_ALLOWED, refused
        assert "serviceAllocation.namespaces of IPAddressPool 'team-a-pool' (team-a) excludes 'team-b'" in (
            refused.message
        )
    assert allocator.holders(taken) == ["team-a/web"]
    assert ips(allocator.assign(AllocationRequest("team-a/named", pool="team-a-pool"))) == ["203.0.113.1"]
    assert ips(allocator.assign(AllocationRequest("team-a/requested", requested=(free,)))) == ["203.0.113.3"]
    joining = AllocationRequest("team-a/joins", requested=(taken,), sharing=joined)
    assert ips(allocator.assign(joining)) == ["203.0.113.0"]
