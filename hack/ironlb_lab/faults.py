"""The faults the chaos run injects, for real: each one is started, held for a while and healed.

Network faults go through the fault proxies between each namespace (node or operator pod) and the API
server; process faults are signals to real PIDs (kube-apiserver, etcd, the operator's and the speakers'
containers); a node's cable is pulled at the lab's switch. Nothing here touches anything outside the lab.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from ironlb.operator.manifests import OPERATOR_NAME, SPEAKER_NAME

from .l2lab import L2Lab
from .podrunner import RunningPod


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str
    seconds: float  # how long it is held before it heals (0: instantaneous)
    heal: Callable[[], None]
    speakers_affected: bool  # whether speakers may miss changes meanwhile (invariant 5 waits for the heal)


def leader_role(lab: L2Lab) -> str | None:
    """The namespace role (ipodN) of the operator pod holding the lease."""
    holder = lab.plane.kubectl(
        "get",
        "lease",
        OPERATOR_NAME,
        "-n",
        lab.namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
        check=False,
    ).stdout.strip()
    pod = lab.runner.process_of_any(f"{lab.namespace}/{holder}") if holder else None
    return pod.host.role if pod is not None else None


def nodes(lab: L2Lab) -> list[str]:
    return [lab.lab.node(n).role for n in range(1, lab.nodes + 1)]


def _nothing() -> None:
    return None


class FaultInjector:
    def __init__(self, lab: L2Lab, rng: random.Random) -> None:
        self.lab, self.rng = lab, rng
        self.kinds: dict[str, Callable[[], Fault]] = {
            "reset-all-connections": self._reset,
            "cut-long-watches": self._cut_watches,
            "blackhole-leader": lambda: self._network("blackhole", self._leader_or_node()),
            "blackhole-node": lambda: self._network("blackhole", self.rng.choice(nodes(self.lab))),
            "refuse-node": lambda: self._network("refuse", self.rng.choice(nodes(self.lab))),
            "delay-node": lambda: self._network("delay", self.rng.choice(nodes(self.lab))),
            "freeze-apiserver": lambda: self._freeze("kube-apiserver", 5, 20),
            "freeze-etcd": lambda: self._freeze("etcd", 3, 12),
            "restart-etcd": self._restart_etcd,
            "compact-etcd": self._compact,
            "unplug-node": self._unplug,
            "kill-leader": self._kill_leader,
            "kill-speaker": self._kill_speaker,
            "freeze-speaker": self._freeze_speaker,
        }

    def inject(self, kind: str | None = None) -> Fault:
        return self.kinds[kind or self.rng.choice(sorted(self.kinds))]()

    def _leader_or_node(self) -> str:
        return leader_role(self.lab) or self.rng.choice(nodes(self.lab))

    def _reset(self) -> Fault:
        for proxy in self.lab.bridge.proxies.values():
            proxy.reset()
        return Fault("reset-all-connections", "all", 0, _nothing, False)

    def _cut_watches(self) -> Fault:
        for proxy in self.lab.bridge.proxies.values():
            proxy.cut_older_than(5)
        return Fault("cut-long-watches", "all", 0, _nothing, False)

    def _network(self, how: str, role: str) -> Fault:
        proxy = self.lab.bridge.proxy(role)
        seconds = self.rng.uniform(5, 15)
        if how == "blackhole":
            proxy.blackhole()
        elif how == "refuse":
            proxy.refuse()
            proxy.reset()
        else:
            proxy.delay(self.rng.uniform(0.5, 2.0))

        def heal() -> None:
            proxy.heal()
            if how == "blackhole":
                proxy.reset()  # the partition's half-open connections die; new ones flow

        return Fault(f"{how}-{'node' if role.startswith('node') else 'leader'}", role, seconds, heal, True)

    def _freeze(self, component: str, low: float, high: float) -> Fault:
        self.lab.plane.freeze(component)
        return Fault(
            f"freeze-{component.removeprefix('kube-')}",
            component,
            self.rng.uniform(low, high),
            lambda: self.lab.plane.thaw(component),
            True,
        )

    def _restart_etcd(self) -> Fault:
        self.lab.plane.restart_etcd(down_seconds=self.rng.uniform(1, 4))
        return Fault("restart-etcd", "etcd", 0, _nothing, True)

    def _compact(self) -> Fault:
        self.lab.plane.compact()
        return Fault("compact-etcd", "etcd", 0, _nothing, False)

    def _unplug(self) -> Fault:
        role = self.rng.choice(nodes(self.lab))
        self.lab.lab.unplug(role)
        return Fault("unplug-node", role, self.rng.uniform(3, 10), lambda: self.lab.lab.plug(role), False)

    def _kill_leader(self) -> Fault:
        role = leader_role(self.lab)
        pod = next((p for p in self._pods(OPERATOR_NAME) if p.host.role == role), None)
        self._kill(pod)
        return Fault("kill-leader", role or "none", 0, _nothing, False)

    def _kill_speaker(self) -> Fault:
        pods = self._pods(SPEAKER_NAME)
        pod = self.rng.choice(pods) if pods else None
        self._kill(pod)
        return Fault("kill-speaker", pod.node.role if pod else "none", 0, _nothing, False)

    def _freeze_speaker(self) -> Fault:
        """SIGSTOP of a speaker's own process, its heartbeat process left running: a hung speaker. Held for
        1-6 s, on both sides of the 2 s after which its heartbeats stop and its peers take its IPs; resumed,
        it must answer nothing until they have heard it again (invariant 4)."""
        pods = [
            pod for pod in self._pods(SPEAKER_NAME) if pod.process is not None and pod.process.poll() is None
        ]
        if not pods:
            return Fault("freeze-speaker", "none", 0, _nothing, False)
        pod = self.rng.choice(pods)
        assert pod.process is not None
        process = pod.process
        process.send_signal(signal.SIGSTOP)

        def thaw() -> None:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)

        return Fault("freeze-speaker", pod.node.role, self.rng.uniform(1, 6), thaw, True)

    def _pods(self, name: str) -> list[RunningPod]:
        prefix = f"{self.lab.namespace}/{name}-"
        with self.lab.runner.lock:
            return [p for p in self.lab.runner.pods.values() if p.key.startswith(prefix) and not p.deleting]

    @staticmethod
    def _kill(pod: RunningPod | None) -> None:
        process = pod.process if pod is not None else None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.1)
