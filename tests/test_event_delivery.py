"""Nothing is given up on silently (invariant 3): an event, or a handling, that fails for a while is
delivered once it can be, however long the outage. Checked against the real API server behind a proxy
that refuses connections."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from ironlb.api.events import ObjectRef
from ironlb.api.kube import ApiError, KubeClient, NotLeaderError
from ironlb.operator.events import EventPoster
from ironlb.operator.runtime import Dispatcher, Watch
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.faultproxy import FaultProxy

pytestmark = pytest.mark.controlplane


@pytest.fixture
def proxy(control_plane: ControlPlane) -> Iterator[FaultProxy]:
    with FaultProxy(control_plane.port) as running:
        yield running


def _posted_after(
    kube: KubeClient,
    admin: KubeClient,
    service: ObjectRef,
    reason: str,
    fault: float,
    heal: Callable[[], None],
) -> list[str]:
    """Post one event through ``kube`` while a fault lasts ``fault`` seconds, heal it, wait for the poster's
    queue to empty: the reasons of the events the API server then holds for ``service``."""

    async def scenario() -> None:
        poster = EventPoster(kube, "test")
        poster.start()
        poster.post(service, "Warning", reason, "no IP, and here is why")
        await asyncio.sleep(fault)
        heal()
        await asyncio.wait_for(poster.queue.join(), 40)
        poster.stop()

    asyncio.run(scenario())
    events = admin.get(
        "/api/v1/namespaces/default/events", {"fieldSelector": f"involvedObject.name={service.name}"}
    )["items"]
    return [e["reason"] for e in events]


def test_an_event_posted_during_a_long_outage_arrives_after_it(
    control_plane: ControlPlane, proxy: FaultProxy
) -> None:
    """The poster used to drop an event after four retries (7.5 s), while the reconciler's de-duplication
    believed it told: a Service left without an IP and without a word."""
    admin = KubeClient.from_environment(str(control_plane.kubeconfig))
    kube = KubeClient.from_environment(str(control_plane.kubeconfig_via(proxy.port, "events-outage")))
    service = ObjectRef("v1", "Service", "default", f"outage-{time.monotonic_ns()}", uid="u1")
    proxy.refuse()
    # 12 s: longer than the old budget of retries
    assert _posted_after(kube, admin, service, "AllocationFailed", 12, proxy.heal) == ["AllocationFailed"]


class _Store:
    """What the dispatcher reads of an informer: its latest copy of an object."""

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects

    def get(self, key: str) -> Any:
        return self.objects.get(key)


def _dispatch(
    handle: Callable[[dict[str, Any], bool], Awaitable[None]],
    delivered: dict[str, Any],
    latest: dict[str, Any],
    done: Callable[[], bool],
) -> None:
    """Run a Dispatcher on one event (``delivered``; the informer's latest copy is ``latest``) until
    ``done()``, or 10 s."""

    async def scenario() -> None:
        dispatcher = Dispatcher(asyncio.get_running_loop())
        watch = Watch("services", "/api/v1/services", handle)
        dispatcher.informers["services"] = _Store({"default/web": latest})  # type: ignore[assignment]
        runner = asyncio.create_task(dispatcher.run())
        dispatcher.queue.put_nowait((watch, "ADDED", delivered))
        for _ in range(100):
            if done():
                break
            await asyncio.sleep(0.1)
        runner.cancel()
        dispatcher.cancel()

    asyncio.run(scenario())


def test_a_handling_refused_for_want_of_the_lease_is_retried() -> None:
    """The write guard refuses while a renewal is late; if the renewal then lands, the term goes on, and
    the handling must too (it used to be dropped until the next resync, a minute later)."""
    service = {"metadata": {"namespace": "default", "name": "web"}}
    attempts: list[float] = []

    async def handle(obj: dict[str, Any], deleted: bool) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise NotLeaderError()

    _dispatch(handle, service, service, lambda: len(attempts) >= 2)
    assert len(attempts) == 2, f"handled {len(attempts)} time(s)"
    assert attempts[1] - attempts[0] < 5


def test_an_api_error_in_a_handling_is_retried_with_the_latest_copy() -> None:
    first = {"metadata": {"namespace": "default", "name": "web", "resourceVersion": "1"}}
    latest = {"metadata": {"namespace": "default", "name": "web", "resourceVersion": "2"}}
    seen: list[str] = []

    async def handle(obj: dict[str, Any], deleted: bool) -> None:
        seen.append(obj["metadata"]["resourceVersion"])
        if len(seen) == 1:
            raise ApiError(409, "conflict")

    _dispatch(handle, first, latest, lambda: len(seen) >= 2)
    assert seen == ["1", "2"]


def test_an_event_refused_while_the_lease_renewal_is_late_is_posted_once_it_lands(
    control_plane: ControlPlane,
) -> None:
    """The write guard refused it for a few seconds (found by the chaos run: a Warning was dropped and never
    told again)."""
    leading = threading.Event()
    admin = KubeClient.from_environment(str(control_plane.kubeconfig))
    kube = KubeClient.from_environment(str(control_plane.kubeconfig), write_guard=leading.is_set)
    service = ObjectRef("v1", "Service", "default", f"late-renewal-{time.monotonic_ns()}", uid="u2")
    assert _posted_after(kube, admin, service, "RequestedIPInUse", 3, leading.set) == ["RequestedIPInUse"]
