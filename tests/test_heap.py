"""The speaker's long-lived objects leave the full garbage collections: one walks only what is newer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from ironlb.speaker.heap import HeapFreezer


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_kept_since_the_watches_listed_are_frozen_and_full_collections_get_cheap(
    unfrozen: None,
) -> None:
    store = [{"metadata": {"name": f"svc-{i}", "labels": {"a": str(i)}}} for i in range(200_000)]
    freezer = HeapFreezer(every=60)
    freezer.tick(0.0, ready=False)
    assert gc.get_freeze_count() == 0, "nothing is frozen before the watches have listed"
    assert len(gc.get_objects()) > len(store)  # what a full collection walks
    freezer.tick(0.0, ready=True)
    frozen = gc.get_freeze_count()
    assert frozen > len(store)
    assert len(gc.get_objects()) < len(store) / 10
    freezer.tick(30.0, ready=True)
    assert gc.get_freeze_count() == frozen, "not again before a minute has passed"
    more = [[i] for i in range(1000)]
    freezer.tick(61.0, ready=True)
    assert gc.get_freeze_count() >= frozen + len(more)
