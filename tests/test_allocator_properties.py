"""Property tests of the pure allocation core (hypothesis), each against a brute-force model."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from ironlb.api import IPAddressPoolSpec
from ironlb.operator.allocator import (
    Address,
    Allocation,
    AllocationRequest,
    Allocator,
    PoolConfig,
    Segment,
    SharingClaim,
    sharing_conflict,
)
from ironlb.operator.allocator.runs import UsedRuns

# --- UsedRuns against a set ------------------------------------------------------------------------


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=200))
def test_used_runs_behave_like_a_set(operations: list[tuple[bool, int]]) -> None:
    runs, model = UsedRuns(), set()
    for add, index in operations:
        if add:
            runs.add(index)
            model.add(index)
        else:
            runs.discard(index)
            model.discard(index)
        assert runs.count == len(model)
        expected = next((i for i in range(41) if i not in model), None)
        assert runs.lowest_free(41) == expected
    assert all((i in runs) == (i in model) for i in range(42))


# --- Segment index arithmetic against enumeration ------------------------------------------------------


@given(st.integers(0, 2**32 - 1), st.integers(0, 1200), st.booleans())
def test_segment_indexing_matches_enumeration(first: int, length: int, avoid_buggy: bool) -> None:
    last = min(first + length, 2**32 - 1)
    segment = Segment(4, first, last, avoid_buggy)
    usable = [v for v in range(first, last + 1) if not (avoid_buggy and v % 256 in (0, 255))]
    assert segment.size == len(usable)
    for index in {0, len(usable) // 2, len(usable) - 1} if usable else set():
        assert segment.address_at(index) == (4, usable[index])
        assert segment.index_of((4, usable[index])) == index


# --- the allocator as a state machine -------------------------------------------------------------------

SERVICES = [f"ns{n % 2}/svc{n}" for n in range(8)]
POOLS = {
    "small": IPAddressPoolSpec.model_validate(
        {"addresses": ["203.0.113.254-203.0.114.2"], "avoidBuggyIPs": True}
    ),
    "dual": IPAddressPoolSpec.model_validate({"addresses": ["198.51.100.0/30", "2001:db8::/126"]}),
    "manual": IPAddressPoolSpec.model_validate({"addresses": ["192.0.2.0/31"], "autoAssign": False}),
}
claims = st.builds(
    SharingClaim,
    key=st.sampled_from([None, "k1", "k2"]),
    ports=st.frozensets(st.tuples(st.just("TCP"), st.sampled_from([80, 443, 53])), max_size=2),
    local_traffic=st.booleans(),
    selector=st.sampled_from([frozenset(), frozenset({("app", "a")})]),
)


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.allocator = Allocator()
        self.requests: dict[str, AllocationRequest] = {}  # the latest request that each allocation fits
        # Services whose allocation was chosen by their latest request (not kept from an earlier one, which
        # the allocator does on purpose: it never moves an IP the new request does not contradict)
        self.chosen_by_latest: set[str] = set()
        self.claims: dict[str, SharingClaim] = {}  # the claim each Service holds its IPs with now
        # what each Service's status shows: the allocation as of its last status write that landed (a write
        # may land long after the allocator moved the Service, or fail)
        self.shown: dict[str, set[Address]] = {}
        self.shown_claims: dict[str, SharingClaim] = {}
        # the claim a Service held an address with when it was moved away from it: the allocator keeps
        # that claim while the address lingers (the Service's annotations may change again meanwhile)
        self.released_claims: dict[tuple[str, Address], SharingClaim] = {}
        # addresses a Service was moved away from that the allocator must keep claimed until a settle
        self.lingering: dict[str, set[Address]] = defaultdict(set)
        for created, (name, spec) in enumerate(POOLS.items()):
            self.allocator.upsert_pool(PoolConfig.from_spec(name, spec, created=str(created)))

    @rule(
        service=st.sampled_from(SERVICES),
        families=st.sampled_from([(4,), (6,), (4, 6), (6, 4)]),
        require_all=st.booleans(),
        pool=st.sampled_from([None, "small", "dual", "manual"]),
        claim=claims,
    )
    def assign(
        self,
        service: str,
        families: tuple[int, ...],
        require_all: bool,
        pool: str | None,
        claim: SharingClaim,
    ) -> None:
        request = AllocationRequest(
            service,
            families=families,  # type: ignore[arg-type]
            require_all_families=require_all,
            pool=pool,
            sharing=claim,
        )
        self._settle(service)  # every reconcile starts from what the Service shows (handle_services)
        before = self.allocator.allocation_of(service)
        held_with = self.claims.get(service)
        result = self.allocator.assign(request)
        after = self.allocator.allocation_of(service)
        if before is not None and (after is None or after.addresses != before.addresses):
            moved_from = set(before.addresses) - set(after.addresses if after else ())
            self.lingering[service] |= moved_from
            for address in moved_from:
                assert held_with is not None
                self.released_claims[(service, address)] = held_with
        if isinstance(result, Allocation):
            self.claims[service] = claim
            self.requests[service] = request
            if before is None or result.addresses != before.addresses:
                self.chosen_by_latest.add(service)
            else:
                self.chosen_by_latest.discard(service)
            assert set(result.families) <= set(families)
            if require_all:
                assert result.families == set(families)
        elif self.allocator.allocation_of(service) is None:
            self.requests.pop(service, None)
            self.claims.pop(service, None)

    @rule(service=st.sampled_from(SERVICES))
    def release(self, service: str) -> None:
        """The Service is deleted: its status goes with it."""
        self.allocator.release(service)
        self.shown.pop(service, None)
        self._settle(service)
        self.requests.pop(service, None)
        self.claims.pop(service, None)

    @rule(service=st.sampled_from(SERVICES))
    def status_write_lands(self, service: str) -> None:
        allocation = self.allocator.allocation_of(service)
        self.shown[service] = set(allocation.addresses) if allocation else set()
        if service in self.claims:
            self.shown_claims[service] = self.claims[service]
        self._settle(service)

    def _settle(self, service: str) -> None:
        shown = self.shown.get(service, set())
        self.allocator.settle(service, shown)
        self.lingering[service] &= shown

    @invariant()
    def no_ip_is_shown_or_held_by_two_services_unless_sharing_allows(self) -> None:
        """What the API shows (statuses, some of them stale) never has one IP on two Services."""
        holders: dict[Address, dict[str, SharingClaim]] = defaultdict(dict)
        for service, addresses in self.shown.items():
            for address in addresses:  # a stale address is still claimed as it was held
                claim = self.released_claims.get((service, address), self.shown_claims[service])
                holders[address][service] = claim
        for service in self.allocator.services():
            for address in self.allocator.allocation_of(service).addresses:  # type: ignore[union-attr]
                holders[address][service] = self.claims[service]
        for address, services in holders.items():
            names = sorted(services)
            for position, first in enumerate(names):
                for second in names[position + 1 :]:
                    conflict = sharing_conflict(services[first], services[second], second)
                    assert conflict is None, (address, first, second)

    @rule(service=st.sampled_from(SERVICES))
    def release_then_reassign_is_stable(self, service: str) -> None:
        request = self.requests.get(service)
        if request is None or service not in self.chosen_by_latest:
            return
        before = self.allocator.allocation_of(service)
        self.allocator.release(service)
        after = self.allocator.assign(request)
        if before is not None and before.complete:
            assert after == before, (before, after)
        else:  # a PreferDualStack allocation missing a family may improve, never lose what it had
            assert isinstance(after, Allocation) and before is not None
            assert set(before.addresses) <= set(after.addresses), (before, after)
        self.claims[service] = request.sharing

    @invariant()
    def every_ip_is_usable_in_its_pool(self) -> None:
        for service in self.allocator.services():
            allocation = self.allocator.allocation_of(service)
            assert allocation is not None
            config = self.allocator.pool_config(allocation.pool)
            assert config is not None
            for address in allocation.addresses:
                assert any(segment.is_usable(address) for segment in config.segments), (service, address)

    @invariant()
    def an_ip_is_shared_only_when_sharing_allows(self) -> None:
        holders: dict[Address, list[str]] = defaultdict(list)
        for service in self.allocator.services():
            allocation = self.allocator.allocation_of(service)
            assert allocation is not None
            for address in allocation.addresses:
                holders[address].append(service)
        for address, services in holders.items():
            for position, first in enumerate(services):
                for second in services[position + 1 :]:
                    a, b = self.claims[first], self.claims[second]
                    assert sharing_conflict(a, b, second) is None, (address, first, second)

    @invariant()
    def counts_match_the_allocations(self) -> None:
        for name in POOLS:
            config = self.allocator.pool_config(name)
            assert config is not None
            held = {
                address
                for service in self.allocator.services()
                for address in self.allocator.allocation_of(service).addresses  # type: ignore[union-attr]
            }
            lingering = {address for addresses in self.lingering.values() for address in addresses}
            used = {a for a in held | lingering if any(segment.is_usable(a) for segment in config.segments)}
            usage = self.allocator.usage(name)
            for family in (4, 6):
                assert usage.assigned[family] == sum(1 for a in used if a[0] == family)
                assert usage.available[family] == usage.total[family] - usage.assigned[family]


AllocatorMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestAllocatorMachine = AllocatorMachine.TestCase


def test_a_service_that_drops_its_sharing_key_lingers_with_the_claim_it_held() -> None:
    """Found by the machine in CI: svc0 shares X with svc1 under k1, then drops the key. It is moved, and
    its stale status still shows X: with the claim it held X under (k1), which svc1 shares."""
    machine = AllocatorMachine()
    alone, shared = (
        SharingClaim(None, frozenset(), False, frozenset()),
        SharingClaim("k1", frozenset(), False, frozenset()),
    )
    machine.assign("ns0/svc0", (4,), False, None, alone)
    machine.status_write_lands("ns0/svc0")
    machine.assign("ns0/svc0", (4,), False, None, shared)
    machine.assign("ns1/svc1", (4,), False, None, shared)
    machine.assign("ns0/svc0", (4,), False, None, alone)
    assert machine.allocator.allocation_of("ns0/svc0") != machine.allocator.allocation_of("ns1/svc1")
    machine.no_ip_is_shown_or_held_by_two_services_unless_sharing_allows()
    machine.an_ip_is_shared_only_when_sharing_allows()
