"""The informer against a real API server, with the faults a production watch meets.

What client-go's reflector tests check, for IronLB's own informer: a re-list replaces the store (objects
deleted during a gap are delivered as DELETED), 410 Gone leads to a re-list, a broken or silent stream is
resumed from the last resourceVersion without a re-list, a handler's exception never ends it, and it stops
when told. The watch-gap tests use a control plane without the watch cache, so that an etcd compaction
really makes the next watch answer 410 Gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from ironlb.api.informer import Backoff, Informer, strip_managed_fields
from ironlb.api.kube import Json, KubeClient
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.faultproxy import FaultProxy

pytestmark = pytest.mark.controlplane
PATH = "/api/v1/namespaces/{namespace}/configmaps"


@pytest.fixture(scope="module")
def uncached_plane() -> Iterator[ControlPlane]:
    """Watches go to etcd directly: a compaction makes an old resourceVersion 410 Gone at once."""
    plane = ControlPlane(extra_apiserver_args=("--watch-cache=false",)).start()
    try:
        yield plane
    finally:
        plane.stop()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, obj: Json) -> None:
        with self.lock:
            self.events.append((kind, obj["metadata"]["name"]))

    def seen(self, kind: str, name: str) -> bool:
        with self.lock:
            return (kind, name) in self.events


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def configmap(kube: KubeClient, namespace: str, name: str) -> None:
    kube.request(
        "POST",
        PATH.format(namespace=namespace),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}},
    )


def make_namespace(kube: KubeClient, name: str) -> str:
    kube.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


def through(plane: ControlPlane, proxy: FaultProxy, name: str) -> tuple[KubeClient, str, KubeClient]:
    """An admin client, a namespace of the test's own, and a client whose connections cross the proxy."""
    kube = KubeClient.from_environment(str(plane.kubeconfig))
    watched = KubeClient.from_environment(str(plane.kubeconfig_via(proxy.port, name)))
    return kube, make_namespace(kube, f"informer-{name}"), watched


def names(informer: Informer) -> set[str]:
    """The ConfigMaps the informer holds, but the one the controller manager puts in every namespace."""
    return {o["metadata"]["name"] for o in informer.items()} - {"kube-root-ca.crt"}


def start(
    kube: KubeClient, namespace: str, handle: Recorder, stop: threading.Event, **options: object
) -> Informer:
    informer = Informer(kube, PATH.format(namespace=namespace), handle, **options)  # type: ignore[arg-type]
    informer.backoff = Backoff(initial=0.1, cap=0.5)
    informer.start(stop)
    until(informer.synced.is_set, 10, "the first list")
    return informer


def test_list_then_watch_delivers_every_change(control_plane: ControlPlane, stop: threading.Event) -> None:
    kube = KubeClient.from_environment(str(control_plane.kubeconfig))
    namespace = make_namespace(kube, "informer-basic")
    configmap(kube, namespace, "before")
    recorder = Recorder()
    informer = start(kube, namespace, recorder, stop)
    assert recorder.seen("ADDED", "before")
    configmap(kube, namespace, "after")
    kube.merge_patch(PATH.format(namespace=namespace) + "/after", {"data": {"a": "2"}})
    kube.request("DELETE", PATH.format(namespace=namespace) + "/before")
    until(lambda: recorder.seen("DELETED", "before") and recorder.seen("MODIFIED", "after"), 10, "events")
    assert names(informer) == {"after"}


def test_a_deletion_during_a_watch_gap_is_delivered_after_410_gone(
    uncached_plane: ControlPlane, stop: threading.Event
) -> None:
    with FaultProxy(uncached_plane.port) as proxy:
        kube, namespace, watched = through(uncached_plane, proxy, "gap")
        configmap(kube, namespace, "doomed")
        configmap(kube, namespace, "survivor")
        recorder = Recorder()
        informer = start(watched, namespace, recorder, stop)
        proxy.refuse()
        proxy.reset()  # the watch breaks and cannot come back
        kube.request("DELETE", PATH.format(namespace=namespace) + "/doomed")
        configmap(kube, namespace, "newcomer")
        uncached_plane.compact()  # the informer's resourceVersion is compacted away
        proxy.heal()
        until(lambda: recorder.seen("DELETED", "doomed"), 20, "the deletion from the gap")
        assert recorder.seen("ADDED", "newcomer")
        assert informer.lists == 2, "a 410 Gone leads to exactly one re-list"
        assert names(informer) == {"survivor", "newcomer"}


def test_a_broken_stream_resumes_from_its_version_without_a_relist(
    control_plane: ControlPlane, stop: threading.Event
) -> None:
    with FaultProxy(control_plane.port) as proxy:
        kube, namespace, watched = through(control_plane, proxy, "reset")
        recorder = Recorder()
        informer = start(watched, namespace, recorder, stop)
        for round_ in range(3):
            proxy.reset()
            name = f"while-broken-{round_}"
            configmap(kube, namespace, name)
            until(lambda name=name: recorder.seen("ADDED", name), 10, "the change after a reset")  # type: ignore[misc]
        assert informer.lists == 1


def test_a_silent_half_open_watch_is_replaced_after_its_read_timeout(
    control_plane: ControlPlane, stop: threading.Event
) -> None:
    with FaultProxy(control_plane.port) as proxy:
        kube, namespace, watched = through(control_plane, proxy, "silent")
        recorder = Recorder()
        informer = start(watched, namespace, recorder, stop, read_timeout=1.5)
        accepted = proxy.accepted
        proxy.blackhole()
        until(lambda: proxy.accepted > accepted, 10, "a new connection after the read timeout")
        proxy.reset()  # the half-open connections die; the network comes back
        proxy.heal()
        configmap(kube, namespace, "after-partition")
        until(lambda: recorder.seen("ADDED", "after-partition"), 15, "events after the partition")
        assert informer.lists == 1


def test_a_failing_handler_never_ends_the_informer(
    control_plane: ControlPlane, stop: threading.Event
) -> None:
    kube = KubeClient.from_environment(str(control_plane.kubeconfig))
    namespace = make_namespace(kube, "informer-handler")
    recorder = Recorder()

    def flaky(kind: str, obj: Json) -> None:
        recorder(kind, obj)
        if obj["metadata"]["name"].startswith("bad"):
            raise RuntimeError("a bug in a handler")

    start(kube, namespace, flaky, stop)  # type: ignore[arg-type]
    configmap(kube, namespace, "bad-one")
    configmap(kube, namespace, "good-one")
    until(lambda: recorder.seen("ADDED", "good-one"), 10, "the event after the failing one")


def test_stop_ends_the_informer(control_plane: ControlPlane) -> None:
    kube = KubeClient.from_environment(str(control_plane.kubeconfig))
    namespace = make_namespace(kube, "informer-stop")
    stop = threading.Event()
    informer = start(kube, namespace, Recorder(), stop, watch_seconds=(2, 2))
    stop.set()
    assert informer.join(10)


def test_transform_trims_what_is_stored_and_delivered(
    control_plane: ControlPlane, stop: threading.Event
) -> None:
    kube = KubeClient.from_environment(str(control_plane.kubeconfig))
    namespace = make_namespace(kube, "informer-trim")
    configmap(kube, namespace, "big")
    delivered: list[Json] = []

    def keep_name(obj: Json) -> Json:
        return {"metadata": {k: obj["metadata"][k] for k in ("name", "namespace", "resourceVersion")}}

    informer = start(kube, namespace, lambda _, obj: delivered.append(obj), stop, transform=keep_name)  # type: ignore[arg-type]
    assert delivered and "data" not in delivered[0]
    assert all("data" not in o for o in informer.items())


def test_managed_fields_are_not_kept(control_plane: ControlPlane, stop: threading.Event) -> None:
    """The operator's informers drop server-side apply's bookkeeping (the bulk of a small object)."""
    kube = KubeClient.from_environment(str(control_plane.kubeconfig))
    namespace = make_namespace(kube, "informer-managed")
    configmap(kube, namespace, "written")
    path = f"/api/v1/namespaces/{namespace}/configmaps/written"
    assert kube.get(path)["metadata"]["managedFields"]  # the API server keeps them
    informer = start(kube, namespace, lambda _, __: None, stop, transform=strip_managed_fields)  # type: ignore[arg-type]
    stored = next(o for o in informer.items() if o["metadata"]["name"] == "written")
    assert "managedFields" not in stored["metadata"]
    assert stored["metadata"]["name"] == "written" and stored["data"] == kube.get(path)["data"]


def test_backoff_grows_with_jitter_to_its_cap_and_honours_retry_after() -> None:
    backoff = Backoff(initial=0.8, cap=30.0)
    delays = [backoff.next() for _ in range(12)]
    assert 0.4 <= delays[0] <= 0.8
    assert all(d <= 30.0 for d in delays) and max(delays) >= 15.0
    assert len(set(delays)) > 6, "jittered"
    assert backoff.next(at_least=45.0) == 45.0
    backoff.reset()
    assert backoff.next() <= 0.8


def test_api_errors_back_off_and_recover(control_plane: ControlPlane, stop: threading.Event) -> None:
    """A refused API server: the informer keeps retrying (never dies) and syncs once it is back."""
    with FaultProxy(control_plane.port) as proxy:
        proxy.refuse()
        kube = KubeClient.from_environment(str(control_plane.kubeconfig_via(proxy.port, "refused")))
        informer = Informer(kube, PATH.format(namespace="default"), Recorder(), backoff=Backoff(0.1, 0.3))
        informer.start(stop)
        time.sleep(1.0)
        assert not informer.synced.is_set() and proxy.accepted >= 2
        proxy.heal()
        until(informer.synced.is_set, 10, "the list once the API server is reachable")
