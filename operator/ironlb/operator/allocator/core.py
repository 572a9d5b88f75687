"""The allocator: which IP each Service gets. Pure and synchronous; the operator only translates to it.

State is three maps: pools (with their used-index runs), address -> claims (one per Service holding it, more
than one only when sharing allows), and Service -> allocation. Every decision is a method returning a value;
nothing here performs I/O, so restart-safety is "replay the Services' current IPs through ``restore``".
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from .addresses import Address, Family, Segment, format_address
from .pools import PoolConfig
from .runs import UsedRuns
from .sharing import SharingClaim, sharing_conflict


class Reason(StrEnum):
    """Why a Service got no IP: the event reason shown to users and the metric label."""

    POOL_NOT_FOUND = "PoolNotFound"
    POOL_NOT_ALLOWED = "PoolNotAllowed"
    POOL_NOT_READY = "PoolNotReady"
    NO_MATCHING_POOL = "NoMatchingPool"
    POOL_EXHAUSTED = "PoolExhausted"
    FAMILY_NOT_IN_POOL = "FamilyNotInPool"
    REQUESTED_IP_NOT_IN_POOL = "RequestedIPNotInPool"
    REQUESTED_IP_IN_USE = "RequestedIPInUse"
    SHARING_CONFLICT = "SharingConflict"


@dataclass(frozen=True)
class AllocationRequest:
    """Everything about a Service that decides its IPs."""

    service: str  # namespace/name
    families: tuple[Family, ...] = (4,)  # wanted families, primary first
    require_all_families: bool = True  # False for PreferDualStack: best effort, completed later
    requested: tuple[Address, ...] = ()  # spec.loadBalancerIP / loadBalancerIPs annotation
    pool: str | None = None  # address-pool annotation
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    sharing: SharingClaim = field(default_factory=SharingClaim)

    @property
    def namespace(self) -> str:
        return self.service.split("/", 1)[0]


@dataclass(frozen=True)
class Allocation:
    pool: str
    addresses: tuple[Address, ...]
    complete: bool = True  # False when PreferDualStack got only some of its families

    @property
    def families(self) -> frozenset[Family]:
        return frozenset(family for family, _ in self.addresses)

    def describe(self) -> str:
        return ", ".join(format_address(address) for address in self.addresses)


@dataclass(frozen=True)
class Failure:
    reason: Reason
    message: str


@dataclass
class _Pool:
    config: PoolConfig
    runs: list[UsedRuns]
    overlaps: dict[str, str] = field(default_factory=dict)  # other pool -> first overlapping segment
    blocked: bool = False  # overlaps an older pool: allocates nothing new until the overlap is gone


@dataclass(frozen=True)
class PoolUsage:
    assigned: dict[Family, int]
    available: dict[Family, int]
    total: dict[Family, int]


class Allocator:
    # Released addresses remembered per Service, so a Service that is deleted and re-created, or briefly
    # stops being a LoadBalancer, gets its old IP back while nobody else took it (DNS keeps working).
    RECENT_LIMIT = 65_536

    def __init__(self) -> None:
        self._pools: dict[str, _Pool] = {}
        self._claims: dict[Address, dict[str, SharingClaim]] = {}
        self._allocations: dict[str, Allocation] = {}
        self._recent: OrderedDict[str, tuple[Address, ...]] = OrderedDict()
        self._by_sharing_key: dict[str, set[Address]] = {}  # addresses held under each sharing key
        # Addresses a Service was moved away from but may still show (its status write has not landed, or
        # failed): still claimed by it, so no other Service gets them until ``settle`` sees them gone.
        self._lingering: dict[str, set[Address]] = {}

    # ------------------------------------------------------------------------------------------ pools
    def upsert_pool(self, config: PoolConfig) -> None:
        """Add or replace a pool; existing allocations are never moved, only re-indexed."""
        pool = _Pool(config, [UsedRuns() for _ in config.segments])
        self._pools[config.name] = pool
        for address in self._claims:
            self._mark_in(pool, address, used=True)
        self._recompute_overlaps()

    def remove_pool(self, name: str) -> None:
        self._pools.pop(name, None)
        self._recompute_overlaps()

    def pool_names(self) -> list[str]:
        return sorted(self._pools)

    def pool_config(self, name: str) -> PoolConfig | None:
        pool = self._pools.get(name)
        return pool.config if pool else None

    def overlaps(self, name: str) -> dict[str, str]:
        """Other pools overlapping this one, with the first shared segment."""
        pool = self._pools.get(name)
        return dict(pool.overlaps) if pool else {}

    def is_blocked(self, name: str) -> bool:
        pool = self._pools.get(name)
        return bool(pool and pool.blocked)

    def usage(self, name: str) -> PoolUsage:
        pool = self._pools[name]
        assigned: dict[Family, int] = {4: 0, 6: 0}
        total: dict[Family, int] = {4: 0, 6: 0}
        for segment, runs in zip(pool.config.segments, pool.runs, strict=True):
            assigned[segment.family] += runs.count
            total[segment.family] += segment.size
        available: dict[Family, int] = {family: total[family] - assigned[family] for family in total}
        return PoolUsage(assigned, available, total)

    def services_outside_pool(self, name: str) -> list[str]:
        """Services allocated from this pool whose IPs it no longer contains (after an edit)."""
        pool = self._pools.get(name)
        outside = []
        for service, allocation in self._allocations.items():
            if allocation.pool != name:
                continue
            if pool is None or not all(self._pool_holds(pool, a) for a in allocation.addresses):
                outside.append(service)
        return sorted(outside)

    # ------------------------------------------------------------------------------------ allocation
    def allocation_of(self, service: str) -> Allocation | None:
        return self._allocations.get(service)

    def services(self) -> list[str]:
        return sorted(self._allocations)

    def holders(self, address: Address) -> list[str]:
        return sorted(self._claims.get(address, {}))

    def assign(self, request: AllocationRequest) -> Allocation | Failure:
        """Give the Service its IPs, keeping what it already has whenever that still fits the request."""
        current = self._allocations.get(request.service)
        if current is not None:
            if self._still_fits(current, request):
                for address in current.addresses:  # ports or selector may have changed: keep them current
                    self._add_claim(address, request.service, request.sharing)
                if current.families != set(request.families):
                    current = self._complete(current, request) or replace(current, complete=False)
                elif not current.complete:
                    current = replace(current, complete=True)
                self._allocations[request.service] = current
                return current
            self.release(request.service, linger=True)

        candidates = self._candidate_pools(request)
        if isinstance(candidates, Failure):
            return candidates
        recent = self._recent.get(request.service, ())
        candidates.sort(key=lambda pool: not any(self._pool_holds(pool, a) for a in recent))  # stable sort
        failures: list[Failure] = []
        for allow_partial in (False, True) if not request.require_all_families else (False,):
            for pool in candidates:
                result = self._try_pool(pool, request, allow_partial)
                if isinstance(result, Allocation):
                    self._commit(request, result)
                    return result
                failures.append(result)
        return self._summarise(failures, candidates)

    def release(self, service: str, linger: bool = False) -> Allocation | None:
        """Free the Service's addresses. ``linger``: the Service still shows them (it was moved, or is no
        longer a LoadBalancer): they stay claimed by it until ``settle`` sees its status without them."""
        allocation = self._allocations.pop(service, None)
        if allocation is not None:
            if linger:
                self._lingering.setdefault(service, set()).update(allocation.addresses)
            else:
                for address in allocation.addresses:
                    self._drop_claim(address, service)
            self._recent[service] = allocation.addresses
            self._recent.move_to_end(service)
            if len(self._recent) > self.RECENT_LIMIT:
                self._recent.popitem(last=False)
        return allocation

    def lingering(self, service: str) -> frozenset[Address]:
        return frozenset(self._lingering.get(service, ()))

    def settle(self, service: str, shown: Iterable[Address] = ()) -> None:
        """The Service's status now shows ``shown`` (nothing: it is gone): what lingered and is no longer
        shown, nor allocated to it again, is free."""
        lingering = self._lingering.get(service)
        if not lingering:
            return
        still = set(shown)
        allocation = self._allocations.get(service)
        kept = set(allocation.addresses) if allocation else set()
        for address in [a for a in lingering if a not in still]:
            lingering.discard(address)
            if address not in kept:
                self._drop_claim(address, service)
        if not lingering:
            del self._lingering[service]

    def restore(
        self, request: AllocationRequest, addresses: Iterable[Address], recorded_pool: str | None
    ) -> Allocation | Failure:
        """Re-adopt IPs a Service already shows (start-up). A Service's status is writable by whoever may
        write ``services/status``, so it is trusted only where it agrees with IronLB: the IPs are in a pool
        that accepts the Service, or IronLB's own published record (``recorded_pool``) lists them for it.
        Fails too if another Service already holds them."""
        addresses = tuple(addresses)
        shown = ", ".join(format_address(a) for a in addresses)
        for address in addresses:
            conflict = self._conflict(address, request.service, request.sharing)
            if conflict is not None:
                return Failure(Reason.REQUESTED_IP_IN_USE, conflict)
        pool_name = recorded_pool
        if pool_name is None:
            holder = self._senior_pool_holding(addresses)
            if holder is None:
                return Failure(
                    Reason.REQUESTED_IP_NOT_IN_POOL,
                    f"{shown} is in no IPAddressPool and IronLB did not allocate it to this Service",
                )
            refusal = holder.config.refusal(request.namespace, request.namespace_labels, request.labels)
            if refusal is not None:
                return Failure(Reason.POOL_NOT_ALLOWED, f"{refusal}: {shown} was not allocated by IronLB")
            pool_name = holder.config.name
        allocation = Allocation(pool_name, addresses)
        for address in addresses:
            self._add_claim(address, request.service, request.sharing)
        self._allocations[request.service] = allocation
        return allocation

    # ------------------------------------------------------------------------------------- internals
    def _candidate_pools(self, request: AllocationRequest) -> list[_Pool] | Failure:
        """The pools the request may use. ``serviceAllocation`` applies on every path: a named pool, a
        requested IP and (through them) a sharing key joining another Service's IP, not only automatic
        allocation: a pool is a boundary between teams."""
        if request.pool is not None:
            pool = self._pools.get(request.pool)
            if pool is None:
                return Failure(Reason.POOL_NOT_FOUND, f"IPAddressPool {request.pool!r} does not exist")
            if pool.blocked:
                return Failure(Reason.POOL_NOT_READY, self._blocked_message(pool))
            return self._allowed(pool, request, "the ironlb.io/address-pool annotation names it")
        if request.requested:
            holder = self._senior_pool_holding(request.requested)
            if holder is None:
                wanted = ", ".join(format_address(a) for a in request.requested)
                return Failure(
                    Reason.REQUESTED_IP_NOT_IN_POOL,
                    f"requested IP {wanted} is not in any IPAddressPool (requested IPs must share one pool)",
                )
            if holder.blocked:
                return Failure(Reason.POOL_NOT_READY, self._blocked_message(holder))
            wanted = ", ".join(format_address(a) for a in request.requested)
            return self._allowed(holder, request, f"the requested IP {wanted} is in it")
        pools = [
            pool
            for pool in self._pools.values()
            if pool.config.auto_assign
            and not pool.blocked
            and pool.config.accepts(request.namespace, request.namespace_labels, request.labels)
        ]
        if not pools:
            return Failure(
                Reason.NO_MATCHING_POOL,
                f"no IPAddressPool with autoAssign accepts Services in namespace {request.namespace!r} "
                "(check the pools' serviceAllocation, or name a pool with the ironlb.io/address-pool "
                "annotation)",
            )
        return sorted(pools, key=lambda pool: pool.config.order_key)

    @staticmethod
    def _allowed(pool: _Pool, request: AllocationRequest, why: str) -> list[_Pool] | Failure:
        refusal = pool.config.refusal(request.namespace, request.namespace_labels, request.labels)
        if refusal is None:
            return [pool]
        return Failure(Reason.POOL_NOT_ALLOWED, f"{refusal}: the Service may not use it, though {why}")

    def _try_pool(self, pool: _Pool, request: AllocationRequest, allow_partial: bool) -> Allocation | Failure:
        chosen: list[Address] = []
        for family in request.families:
            requested = [a for a in request.requested if a[0] == family]
            if requested:
                result = self._take_requested(pool, requested[0], request)
            elif family not in pool.config.families:
                result = Failure(
                    Reason.FAMILY_NOT_IN_POOL,
                    f"IPAddressPool {pool.config.name!r} has no IPv{family} addresses",
                )
            else:
                result = self._take_free(pool, family, request)
            if isinstance(result, Failure):
                if allow_partial and not requested:
                    continue
                return result
            chosen.append(result)
        if not chosen:
            return Failure(
                Reason.FAMILY_NOT_IN_POOL,
                f"IPAddressPool {pool.config.name!r} has none of the families "
                + "/".join(f"IPv{f}" for f in request.families),
            )
        complete = len(chosen) == len(request.families)
        return Allocation(pool.config.name, tuple(chosen), complete)

    def _take_requested(self, pool: _Pool, address: Address, request: AllocationRequest) -> Address | Failure:
        if not self._pool_holds(pool, address):
            return Failure(
                Reason.REQUESTED_IP_NOT_IN_POOL,
                f"requested IP {format_address(address)} is not a usable address of IPAddressPool "
                f"{pool.config.name!r}",
            )
        conflict = self._conflict(address, request.service, request.sharing)
        if conflict is not None:
            reason = Reason.SHARING_CONFLICT if request.sharing.key else Reason.REQUESTED_IP_IN_USE
            return Failure(reason, f"requested IP {format_address(address)}: {conflict}")
        return address

    def _take_free(self, pool: _Pool, family: Family, request: AllocationRequest) -> Address | Failure:
        for address in self._recent.get(request.service, ()):
            if (
                address[0] == family
                and self._pool_holds(pool, address)
                and self._conflict(address, request.service, request.sharing) is None
            ):
                return address
        if request.sharing.key is not None:
            shared = self._shareable(pool, family, request)
            if shared is not None:
                return shared
        for segment, runs in zip(pool.config.segments, pool.runs, strict=True):
            if segment.family != family:
                continue
            index = runs.lowest_free(segment.size)
            if index is not None:
                return segment.address_at(index)
        usage = self.usage(pool.config.name)
        return Failure(
            Reason.POOL_EXHAUSTED,
            f"IPAddressPool {pool.config.name!r} has no free IPv{family} address "
            f"({usage.assigned[family]} of {usage.total[family]} in use)",
        )

    def _shareable(self, pool: _Pool, family: Family, request: AllocationRequest) -> Address | None:
        """An IP of this pool already held by Services with the same sharing key, if it can be shared."""
        key = request.sharing.key
        for address in sorted(self._by_sharing_key.get(key, ())) if key is not None else ():
            if address[0] != family or not self._pool_holds(pool, address):
                continue
            if self._conflict(address, request.service, request.sharing) is None:
                return address
        return None

    def _complete(self, current: Allocation, request: AllocationRequest) -> Allocation | None:
        """Add the families a PreferDualStack Service is still missing, from its own pool."""
        pool = self._pools.get(current.pool)
        if pool is None or pool.blocked:
            return None
        added = list(current.addresses)
        for family in request.families:
            if family in current.families or family not in pool.config.families:
                continue
            result = self._take_free(pool, family, request)
            if not isinstance(result, Failure):
                added.append(result)
        if len(added) == len(current.addresses):
            return None
        ordered = tuple(sorted(added, key=lambda a: request.families.index(a[0])))
        completed = Allocation(current.pool, ordered, len(ordered) == len(request.families))
        self.release(request.service)
        self._commit(request, completed)
        return completed

    def _still_fits(self, current: Allocation, request: AllocationRequest) -> bool:
        if request.pool is not None and current.pool != request.pool:
            return False
        if request.requested and set(request.requested) != set(current.addresses):
            return False
        if not current.families <= set(request.families):
            return False
        if request.require_all_families and current.families != set(request.families):
            return False
        return all(
            self._conflict(address, request.service, request.sharing) is None for address in current.addresses
        )

    def _summarise(self, failures: list[Failure], candidates: list[_Pool]) -> Failure:
        if len(candidates) == 1 or len({f.reason for f in failures}) > 1:
            return failures[0]
        names = ", ".join(pool.config.name for pool in candidates)
        return Failure(failures[0].reason, f"{failures[0].message}; every matching pool failed ({names})")

    def _commit(self, request: AllocationRequest, allocation: Allocation) -> None:
        for address in allocation.addresses:
            self._add_claim(address, request.service, request.sharing)
        self._allocations[request.service] = allocation

    def _conflict(self, address: Address, service: str, claim: SharingClaim) -> str | None:
        for holder, existing in self._claims.get(address, {}).items():
            if holder == service:
                continue
            reason = sharing_conflict(claim, existing, holder)
            if reason is not None:
                return reason
        return None

    def _add_claim(self, address: Address, service: str, claim: SharingClaim) -> None:
        claims = self._claims.setdefault(address, {})
        if not claims:
            for pool in self._pools.values():
                self._mark_in(pool, address, used=True)
        previous = claims.get(service)
        claims[service] = claim
        self._index_sharing(address, previous, claims)

    def _drop_claim(self, address: Address, service: str) -> None:
        claims = self._claims.get(address)
        if claims is None:
            return
        previous = claims.pop(service, None)
        self._index_sharing(address, previous, claims)
        if not claims:
            del self._claims[address]
            for pool in self._pools.values():
                self._mark_in(pool, address, used=False)

    def _index_sharing(
        self, address: Address, previous: SharingClaim | None, claims: Mapping[str, SharingClaim]
    ) -> None:
        """Keep ``_by_sharing_key`` in step with the claims on one address."""
        keys = {claim.key for claim in claims.values() if claim.key is not None}
        if previous is not None and previous.key is not None and previous.key not in keys:
            holders = self._by_sharing_key.get(previous.key)
            if holders is not None:
                holders.discard(address)
                if not holders:
                    del self._by_sharing_key[previous.key]
        for key in keys:
            self._by_sharing_key.setdefault(key, set()).add(address)

    @staticmethod
    def _mark_in(pool: _Pool, address: Address, used: bool) -> None:
        for segment, runs in zip(pool.config.segments, pool.runs, strict=True):
            if segment.is_usable(address):
                index = segment.index_of(address)
                if used:
                    runs.add(index)
                else:
                    runs.discard(index)

    @staticmethod
    def _pool_holds(pool: _Pool, address: Address) -> bool:
        return any(segment.is_usable(address) for segment in pool.config.segments)

    def _senior_pool_holding(self, addresses: tuple[Address, ...]) -> _Pool | None:
        holders = [pool for pool in self._pools.values() if all(self._pool_holds(pool, a) for a in addresses)]
        return min(holders, key=lambda pool: pool.config.seniority) if holders else None

    def _recompute_overlaps(self) -> None:
        pools = sorted(self._pools.values(), key=lambda pool: pool.config.seniority)
        for pool in pools:
            pool.overlaps, pool.blocked = {}, False
        for position, pool in enumerate(pools):
            for older in pools[:position]:
                shared = _first_overlap(pool.config.segments, older.config.segments)
                if shared is not None:
                    pool.overlaps[older.config.name] = shared
                    older.overlaps[pool.config.name] = shared
                    pool.blocked = True

    @staticmethod
    def _blocked_message(pool: _Pool) -> str:
        others = ", ".join(f"{name} ({where})" for name, where in sorted(pool.overlaps.items()))
        return (
            f"IPAddressPool {pool.config.name!r} overlaps older pool(s) {others}; it hands out no new "
            "addresses until the overlap is removed"
        )


def _first_overlap(ours: tuple[Segment, ...], theirs: tuple[Segment, ...]) -> str | None:
    for segment in ours:
        for other in theirs:
            if segment.overlaps(other):
                first, last = max(segment.first, other.first), min(segment.last, other.last)
                return Segment(segment.family, first, last).describe()
    return None
