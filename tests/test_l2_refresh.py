"""The periodic re-announcement is spread out: every owned IP once per round, over half the period, a few per
tick and never more than ``MAX_RATE`` per second; never a burst of all of them (``l2/refresh.py``)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from ironlb.speaker.l2.refresh import MAX_RATE, SpreadRefresh


@settings(deadline=None)
@given(st.integers(0, 20_000), st.integers(1, 120), st.sampled_from([0.02, 0.05, 0.1]))
def test_a_round_announces_each_owned_ip_once_spread_over_half_its_period(
    owned: int, period: int, tick: float
) -> None:
    refresh = SpreadRefresh[int](period, tick, now=0.0)
    items = list(range(owned))
    spread = max(period / 2, owned / MAX_RATE)  # a round's length
    sent: list[tuple[float, list[int]]] = []
    announced: Counter[int] = Counter()
    now = period - 3 * tick  # the first round starts at ``period``
    while len(announced) < owned and now < period + 2 * spread + 3 * tick:  # until the round is over
        batch = refresh.due(now, lambda: items)
        sent.append((now, batch))
        announced.update(batch)
        now += tick
    assert announced == Counter(items)  # each once
    assert all(period - tick / 2 <= at <= period + spread + tick for at, batch in sent if batch)
    per_second = Counter(int((at - period) // 1) for at, batch in sent for _ in batch)
    rate = min(
        MAX_RATE, owned / (period / 2)
    )  # spread over half the period, capped (+ whole batches per tick)
    assert max(per_second.values(), default=0) <= rate * 1.25 + 2 / tick  # no burst


def test_ten_thousand_ips_go_out_at_the_capped_rate_and_the_next_round_waits_for_the_last() -> None:
    refresh = SpreadRefresh[int](30, 0.05, now=0.0)
    items = list(range(10_000))
    batches = [refresh.due(30.0 + n * 0.05, lambda: items) for n in range(2_100)]  # 105 s
    assert [len(batch) for batch in batches[:2]] == [5, 5]  # 100 per second
    assert sum(map(len, batches[:2_000])) == 10_000  # one round: 100 s, longer than the period
    assert batches[2_000] == [0, 1, 2, 3, 4]  # the next round starts once it is over


def test_a_zero_period_stops_the_refresh_and_a_new_period_starts_a_period_later() -> None:
    refresh = SpreadRefresh[int](30, 0.05, now=0.0)
    assert refresh.due(30.0, lambda: [1, 2, 3]) == [1]
    refresh.set_period(0, now=40.0)
    assert refresh.due(100.0, lambda: [1, 2, 3]) == []
    refresh.set_period(5, now=100.0)
    assert refresh.due(104.9, lambda: [1]) == [] and refresh.due(105.0, lambda: [1]) == [1]
