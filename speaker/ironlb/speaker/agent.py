"""The speaker process's loop: it only wires the parts together.

Watch threads fill ``State``; every ``tick`` seconds the loop takes one versioned snapshot and hands it to
the Layer 2 agent (heartbeats, ownership, ARP/NDP answers: ``l2``) and, when anything changed, to the BGP
agent (routes and sessions through exabgp: ``bgp``), then lets the Layer 2 responders answer until the next
tick. BGP trouble never stops the Layer 2 answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ironlb.api.contract import PASSWORDS_SECRET
from ironlb.api.health import Health
from ironlb.api.informer import Backoff, Handler, Informer
from ironlb.api.kube import Json, KubeClient

from .bgp.agent import BGPAgent
from .cpubudget import CpuBudget
from .heap import HeapFreezer
from .interfaces import interface_with
from .l2.agent import L2Agent
from .settings import SettingsFile, apply_log_level
from .state import State, service_summary, slice_summary

log = logging.getLogger("ironlb.speaker.agent")
CONFIG_SELECTOR = "ironlb.io/speaker-config"
RECONNECT_CAP = 5.0  # seconds
MAX_DEFERRAL = 2.0  # seconds a changed configuration may wait for the CPU budget (a deletion stops within it)


def start_informers(
    kube: KubeClient,
    namespace: str,
    state: State,
    stop: threading.Event,
    pace: Callable[[], None] | None = None,
) -> list[Informer]:
    """Everything the speaker decides from, each kept by an informer (objects trimmed to what is used).

    Their back-off stops at RECONNECT_CAP, not client-go's 30 s: a speaker that was cut off must learn of
    deletions soon after it can reach the API server again (the jitter still spreads the reconnections)."""
    watches: list[tuple[str, Handler, dict[str, str], Callable[[Json], Json] | None]] = [
        (
            f"/api/v1/namespaces/{namespace}/configmaps",
            state.on_configmap,
            {"labelSelector": CONFIG_SELECTOR},
            None,
        ),
        ("/api/v1/services", state.on_service, {}, service_summary),
        ("/apis/discovery.k8s.io/v1/endpointslices", state.on_endpointslice, {}, slice_summary),
        # BGP passwords, gathered by the operator into one Secret: the only one the speaker may read
        (
            f"/api/v1/namespaces/{namespace}/secrets",
            state.on_secret,
            {"fieldSelector": f"metadata.name={PASSWORDS_SECRET}"},
            None,
        ),
    ]
    return [
        Informer(kube, path, handle, query, transform, backoff=Backoff(cap=RECONNECT_CAP), pace=pace).start(
            stop
        )
        for path, handle, query, transform in watches
    ]


def run(
    kube: KubeClient,
    node: str,
    namespace: str,
    interface: str | None,
    key: bytes,
    settings: SettingsFile,
    stop: threading.Event,
    health: Health | None = None,
    tick: float = 0.05,
    run_dir: Path = Path("/run/ironlb"),
) -> None:
    """The speaker's loop. ``interface`` None: the one holding this node's InternalIP (from the config)."""
    health = health or Health()
    state = State()
    budget = CpuBudget.for_container()  # under a CPU limit, background work must leave room for heartbeats
    informers = start_informers(kube, namespace, state, stop, budget.spend)
    primary = interface or wait_for_primary_interface(state, node, stop, health)
    if primary is None:
        return
    l2 = L2Agent(
        kube,
        node,
        namespace,
        state.uid_of,
        primary,
        key,
        settings,
        tick,
        stop,
        time.monotonic(),
        budget.spend,
    )
    bgp = BGPAgent(kube, node, namespace, run_dir / "exabgp", state.secret)
    seen_version, bgp_retry_at = -1, 0.0
    next_settings_check = time.monotonic() + 2
    snapshot, taken = state.snapshot(), time.monotonic()
    heap = HeapFreezer()
    log.info("speaker %s answering on %s", node, primary)
    try:
        while not stop.is_set():
            now = time.monotonic()
            health.tick()
            budget.begin()
            if not budget.in_debt() or now - taken >= MAX_DEFERRAL:
                # a new snapshot costs work per IP when it changed: under a CPU quota it waits for the
                # background share to recover, never longer than MAX_DEFERRAL
                snapshot, taken = state.snapshot(), now
            configured = state.configured and all(i.synced.is_set() for i in informers)
            heap.tick(now, configured)
            l2.step(snapshot, now)
            if snapshot.version != seen_version and now >= bgp_retry_at:
                seen_version = snapshot.version
                try:
                    bgp.update(snapshot.config, snapshot.announcements, snapshot.endpoints, primary)
                except Exception:  # BGP trouble must never stop the Layer 2 answers: log, retry in 1 s
                    log.exception("updating BGP")
                    seen_version, bgp_retry_at = -1, now + 1.0
            budget.charge()
            try:
                bgp.poll()
            except Exception:
                log.exception("polling exabgp")
            # ready once configured and, in BGP mode, announcing (a rolling update waits for both); BGP that
            # cannot be set up at all delays readiness by the grace period only, as a router that is down
            health.configured = configured and bgp.settled(now)
            if now >= next_settings_check:
                next_settings_check = now + 2
                if settings.reload():
                    apply_log_level(settings.current)
                    l2.settings_changed(now)
            l2.answer_for(tick)
        l2.leave()
    finally:
        bgp.stop()  # withdraw routes and close sessions: routers drop this next hop at once
        l2.close()


def wait_for_primary_interface(state: State, node: str, stop: threading.Event, health: Health) -> str | None:
    """The interface holding this node's InternalIP, once the published configuration names it."""
    warned = False
    while not stop.is_set():
        health.tick()
        address = state.snapshot().config.node_addresses.get(node)
        if address is not None:
            found = interface_with(address)
            if found is not None:
                return found
        if not warned and state.configured:
            log.warning("no interface of this host holds node %s's InternalIP %s yet", node, address)
            warned = True
        stop.wait(0.2)
    return None
