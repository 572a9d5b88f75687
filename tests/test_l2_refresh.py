"""The periodic re-announcement spreads each round over half its period: every owned IP once per round, a
few per tick, never a burst of all of them (``l2/refresh.py``)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from ironlb.speaker.l2.refresh import SpreadRefresh


@given(st.integers(0, 20_000), st.integers(1, 120), st.sampled_from([0.02, 0.05, 0.1]))
def test_a_round_announces_each_owned_ip_once_within_half_its_period(
    owned: int, period: int, tick: float
) -> None:
    refresh = SpreadRefresh[int](period, tick, now=0.0)
    items = list(range(owned))
    sent: list[tuple[float, list[int]]] = []
    now = period - 3 * tick  # the first round starts at ``period``
    while now < period * 1.5 + 3 * tick:
        sent.append((now, refresh.due(now, lambda: items)))
        now += tick
    announced = Counter(item for _, batch in sent for item in batch)
    assert announced == Counter(items)  # each once
    assert all(at >= period - tick / 2 for at, batch in sent if batch)  # not before the round
    assert all(at <= period + period / 2 + tick for at, batch in sent if batch)  # within half the period
    ticks = max(1, int(period / 2 / tick))
    assert max((len(batch) for _, batch in sent), default=0) <= max(1, -(-owned // ticks))  # no burst


def test_ten_thousand_ips_go_out_a_few_per_tick_and_a_zero_period_stops_the_refresh() -> None:
    refresh = SpreadRefresh[int](30, 0.05, now=0.0)
    batches = [refresh.due(30.0 + n * 0.05, lambda: list(range(10_000))) for n in range(300)]
    assert [len(batch) for batch in batches[:2]] == [34, 34] and sum(map(len, batches)) == 10_000
    refresh.set_period(0, now=40.0)
    assert refresh.due(100.0, lambda: [1, 2, 3]) == []
    refresh.set_period(5, now=100.0)
    assert refresh.due(104.9, lambda: [1]) == [] and refresh.due(105.0, lambda: [1]) == [1]
