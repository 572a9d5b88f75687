"""The chaos run: IronLB installed as pods in a 3-node lab, Services churning, a random real fault every few
seconds, and the invariants checked all the time. Bounded in time and traffic; loopback and lab namespaces
only (documentation addresses); it cleans up after itself.

    python -m ironlb_lab.chaos --minutes 10 --services 1000 --report chaos.json   (from hack/, as root)

Exit status 0 when no invariant was violated. The report holds each fault kind with how many times it was
injected and the convergence time after it (every Service that existed at the heal has an IP or a Warning
event saying why), and every violation found.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ironlb.api.informer import Informer
from ironlb.api.kube import ApiError, KubeClient

from .controlplane import ControlPlane
from .endpoints import family_of, post_ready_endpoint
from .faults import FaultInjector
from .invariants import InvariantChecker, Json
from .l2lab import L2Lab
from .network import exit_on_sigterm
from .prober import Prober

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "chaos"
POOLS = {
    "chaos-a": "2001:db8:300:ca::/116",
    "chaos-b": "2001:db8:300:cb::/116",
    "chaos-v4": "203.0.113.128/26",
}
CONVERGE_SECONDS = 30.0  # invariant 3
WIRE_SECONDS = 2.0  # invariant 4
SILENT_SECONDS = 5.0  # invariant 5
# a speaker cut off from the API server cannot see a deletion; once it can, its informers reconnect within
# their back-off cap (speaker/agent.py) and then fall silent within SILENT_SECONDS
RECONNECT_CAP = 5.0


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Report:
    minutes: float
    services: int
    seed: int
    faults: dict[str, list[float]] = field(default_factory=dict)  # kind -> convergence seconds after each
    churn: dict[str, int] = field(default_factory=dict)
    deletions_checked: int = 0
    wire_checked: int = 0
    final_convergence_seconds: float = 0.0
    violations: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.minutes:g} min, {self.services} Services, seed {self.seed}"]
        for kind, times in sorted(self.faults.items()):
            ordered = sorted(times)
            p50 = ordered[len(ordered) // 2]
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            lines.append(f"  {kind:24} injected {len(times):3}  converged p50 {p50:5.1f} s  p99 {p99:5.1f} s")
        lines.append(f"  churn {self.churn}; deletions checked on the wire {self.deletions_checked}")
        end = self.final_convergence_seconds
        lines.append(f"  final convergence {end:.1f} s; IPs checked on the wire {self.wire_checked}")
        lines.append(f"  violations: {len(self.violations)}")
        lines += [f"    invariant {v['invariant']}: {v['message']}" for v in self.violations[:50]]
        return "\n".join(lines)


def service(name: str, pool: str, rng: random.Random) -> Json:
    v4 = pool == "chaos-v4"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {"ironlb.io/address-pool": pool}},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv4" if v4 else "IPv6"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": rng.choice((80, 443, 8080)), "protocol": "TCP"}],
            "allocateLoadBalancerNodePorts": False,
        },
    }


class Chaos:
    def __init__(self, plane: ControlPlane, lab: L2Lab, args: argparse.Namespace) -> None:
        self.plane, self.lab, self.args = plane, lab, args
        self.rng = random.Random(args.seed)
        self.kube = KubeClient.from_environment(str(plane.kubeconfig))
        self.checker = InvariantChecker()
        self.report = Report(args.minutes, args.services, args.seed)
        self.stop = threading.Event()
        self.prober = Prober(lab.lab.client)
        self.faults = FaultInjector(lab, self.rng)
        self.speaker_fault_until = 0.0  # deletions before this are checked once the fault healed
        self._names = 0

    # ------------------------------------------------------------------------------------------ set-up
    def prepare(self) -> None:
        for name, cidr in POOLS.items():
            self.plane.announce_pool(name, cidr, namespace=self.lab.namespace)
        self.kube.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        )
        Informer(self.kube, f"/api/v1/namespaces/{NAMESPACE}/services", self.checker.on_service).start(
            self.stop
        )
        Informer(
            self.kube,
            f"/api/v1/namespaces/{NAMESPACE}/events",
            self.checker.on_event,
            {"fieldSelector": "type=Warning"},
        ).start(self.stop)
        log(f"creating {self.args.services} Services")
        for _ in range(self.args.services):
            self._create()
        self._converge(60, "the initial Services")

    def _pool(self) -> str:
        return self.rng.choices(list(POOLS), weights=(45, 45, 10))[0]

    def _create(self) -> None:
        self._names += 1
        with contextlib.suppress(ApiError):
            self._post(service(f"s{self._names:05d}", self._pool(), self.rng))

    def _post(self, manifest: Json) -> None:
        """Create a Service and its ready endpoint (without one, speakers would rightly stay silent and the
        wire checks would check nothing)."""
        self.kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/services", manifest)
        with contextlib.suppress(ApiError):  # kept from an earlier Service of that name
            post_ready_endpoint(self.kube, NAMESPACE, manifest["metadata"]["name"], family_of(manifest))

    # ------------------------------------------------------------------------------------------- churn
    def churn(self) -> None:
        """Creations, deletions, pool changes and requested-IP changes, about two a second."""
        while not self.stop.wait(self.rng.uniform(0.2, 0.8)):
            names = sorted(self.checker.services)
            what = self.rng.choice(("create", "delete", "pool", "request"))
            try:
                if what == "create" or not names:
                    self._create()
                elif what == "delete":
                    victim = self.rng.choice(names).split("/", 1)[1]
                    self.kube.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/services/{victim}")
                elif what == "pool":
                    victim = self.rng.choice(names).split("/", 1)[1]
                    body = self.kube.get(f"/api/v1/namespaces/{NAMESPACE}/services/{victim}")
                    pool = body["metadata"]["annotations"]["ironlb.io/address-pool"]
                    other = "chaos-b" if pool == "chaos-a" else "chaos-a" if pool == "chaos-b" else pool
                    self._annotate(
                        victim, {"ironlb.io/address-pool": other, "ironlb.io/loadBalancerIPs": None}
                    )
                else:
                    victim = self.rng.choice(names).split("/", 1)[1]
                    body = self.kube.get(f"/api/v1/namespaces/{NAMESPACE}/services/{victim}")
                    pool = POOLS[body["metadata"]["annotations"]["ironlb.io/address-pool"]]
                    network = ipaddress.ip_network(pool)
                    wanted = str(network[self.rng.randrange(1, network.num_addresses - 1)])
                    self._annotate(victim, {"ironlb.io/loadBalancerIPs": wanted})
                self.report.churn[what] = self.report.churn.get(what, 0) + 1
            except ApiError as error:
                if error.status not in (0, 404, 409, 500, 503, 504, 429):
                    log(f"churn {what}: {error}")

    def _annotate(self, name: str, annotations: dict[str, str | None]) -> None:
        self.kube.merge_patch(
            f"/api/v1/namespaces/{NAMESPACE}/services/{name}", {"metadata": {"annotations": annotations}}
        )

    # ------------------------------------------------------------------------------- invariant 5 watch
    def watch_deletions(self) -> None:
        """Each deleted Service's IPs must fall silent within 5 s (once any fault that kept the speakers
        from seeing the deletion has healed), unless another Service holds them by then."""
        checked = 0
        while not self.stop.wait(0.5):
            with self.checker.lock:
                pending = self.checker.deleted[checked:]
            due = [
                d for d in pending if time.monotonic() >= max(d[2], self.speaker_fault_until) + SILENT_SECONDS
            ]
            if not due:
                continue
            checked += len(due)
            allocated = self.checker.allocated()
            ips = [ip for _, addresses, _ in due for ip in addresses if ip not in allocated]
            answered = self.prober.ask(ips)
            self.report.deletions_checked += len(due)
            for key, addresses, _ in due:
                for ip in addresses:
                    if answered.get(ip) and ip not in self.checker.allocated():
                        self.checker.record(5, f"{ip} of deleted {key} still answered by {answered[ip]}")

    def _leader(self) -> str:
        return self.plane.kubectl(
            "get",
            "lease",
            "ironlb-operator",
            "-n",
            self.lab.namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
            check=False,
        ).stdout.strip()

    def _silent_by(self, deleted: float) -> float:
        """When a Service deleted at ``deleted`` must be silent: 5 s later, or, if the speakers were cut off
        from the API server meanwhile, 5 s after they could reconnect."""
        if deleted > self.speaker_fault_until:
            return deleted + SILENT_SECONDS
        return self.speaker_fault_until + RECONNECT_CAP + SILENT_SECONDS

    # ------------------------------------------------------------------------------------------- faults
    def inject_faults(self) -> None:
        deadline = time.monotonic() + self.args.minutes * 60
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(*self.args.fault_every))
            fault = self.faults.inject(self.rng.choice(self.args.faults) if self.args.faults else None)
            log(f"fault {fault.kind} on {fault.target} for {fault.seconds:.1f} s")
            self.checker.context = f"after {fault.kind} on {fault.target} at {time.strftime('%H:%M:%S')}"
            if fault.speakers_affected:
                self.speaker_fault_until = float("inf")
            time.sleep(fault.seconds)
            fault.heal()
            healed = time.monotonic()
            if fault.speakers_affected:
                self.speaker_fault_until = healed
            took = self._after_heal(fault.kind)
            log(f"converged {took:.1f} s after {fault.kind}; the lease is held by {self._leader()}")
            self.report.faults.setdefault(fault.kind, []).append(round(took, 2))
            if took > CONVERGE_SECONDS:
                self.checker.record(3, f"{took:.1f} s to converge after {fault.kind} on {fault.target}")

    def _after_heal(self, kind: str) -> float:
        """Seconds until every Service that existed at the heal has an IP or a Warning, and a Service created
        at the heal has its IP (what a user waits for after the fault)."""
        began, existing = time.monotonic(), list(self.checker.services)
        self._names += 1
        marker = f"{NAMESPACE}/heal-{self._names:05d}"
        deadline = began + 120
        while time.monotonic() < deadline:
            try:
                self._post(service(marker.split("/")[1], "chaos-a", self.rng))
                break
            except ApiError:
                time.sleep(0.5)
        self._converge(deadline - time.monotonic(), f"after {kind}", existing)
        while time.monotonic() < deadline and not (
            marker in self.checker.services and not self.checker.unconverged([marker])
        ):
            time.sleep(0.1)
        return time.monotonic() - began

    def _converge(
        self, timeout: float, what: str, among: list[str] | None = None, fresh: bool = False
    ) -> float:
        """Wait until the Services (``among``, or all) have an IP or a Warning. ``fresh``: also read them
        from the API server every few seconds, not only through the checker's watches, which may lag."""
        began, next_read = time.monotonic(), time.monotonic()
        while (waiting := self.checker.unconverged(among)) and time.monotonic() - began < timeout:
            if fresh and time.monotonic() >= next_read:
                self.read_fresh()
                next_read = time.monotonic() + 5
                continue
            time.sleep(0.2)
        if waiting:
            log(f"{len(waiting)} Services still without an IP or a Warning {what}: {waiting[:5]}")
        return time.monotonic() - began

    # ---------------------------------------------------------------------------------------- the end
    def read_fresh(self) -> None:
        """Feed the checker a fresh list of the Services and Warning events, as an informer's re-list does:
        the final verdicts are about the cluster as it is, not about a watch that may lag. (A 10-minute run
        once saw the checker's own Service watch stay silent for a minute after a burst of writes while the
        speakers' watches had every change; what the fresh list corrects is logged.)"""
        services = self.kube.get(f"/api/v1/namespaces/{NAMESPACE}/services")["items"]
        events = self.kube.get(f"/api/v1/namespaces/{NAMESPACE}/events", {"fieldSelector": "type=Warning"})
        corrected = self.checker.relist(services)
        for event in events["items"]:
            self.checker.on_event("ADDED", event)
        if corrected:
            log(f"a fresh list corrected the checker's view of {len(corrected)} Services: {corrected[:5]}")

    def final_checks(self) -> None:
        """After the faults and the churn stopped: convergence (3), then the wire (4)."""
        took = self._converge(CONVERGE_SECONDS * 2, "at the end", fresh=True)
        self.read_fresh()
        self.report.final_convergence_seconds = round(took, 2)
        if took > CONVERGE_SECONDS or self.checker.unconverged():
            self.checker.record(3, f"{took:.1f} s to converge at the end: {self.checker.unconverged()[:5]}")
        # within 2 s, counted, like invariant 5, from when the speakers could reconnect after a fault that cut
        # them off from the API server (their informers retry at most RECONNECT_CAP apart): a speaker that
        # cannot see a new Service cannot answer for it (CI drew a refuse-node healed 3 s before the end);
        # a Service the churn deleted last has its 5 s to fall silent (invariant 5); and from the last change
        # of what is allocated (the churn's last changes may still be landing): re-read at every round
        last_deleted = max((when for _, _, when in self.checker.deleted), default=0.0)
        deadline = max(
            time.monotonic() + WIRE_SECONDS,
            self.speaker_fault_until + RECONNECT_CAP + WIRE_SECONDS,
            self._silent_by(last_deleted),
        )
        began = time.monotonic()
        give_up = began + CONVERGE_SECONDS
        allocated: dict[str, str] = {}
        while True:
            self.read_fresh()
            now_allocated = self.checker.allocated()
            if now_allocated != allocated:
                allocated = now_allocated
                deadline = max(deadline, time.monotonic() + WIRE_SECONDS)
            free = [str(ipaddress.ip_network(cidr)[n]) for cidr in POOLS.values() for n in range(2, 60)]
            free = [ip for ip in free if ip not in allocated]
            answered = self.prober.ask(sorted(allocated))
            wrong = {ip: macs for ip, macs in answered.items() if len(macs) != 1}
            stray = {ip: macs for ip, macs in self.prober.ask(free).items() if macs}
            if not (wrong or stray) or time.monotonic() > min(deadline, give_up):
                break
        self.report.wire_checked = len(allocated)
        log(f"the wire checked {time.monotonic() - began:.1f} s after convergence")
        if wrong:
            log(f"{len(wrong)} of {len(allocated)} IPs not answered by exactly one node; {self._speakers()}")
        for ip, macs in sorted(wrong.items()):
            self.checker.record(4, f"{ip} of {allocated[ip]} answered by {macs or 'nobody'}")
        for ip, macs in sorted(stray.items()):
            self.checker.record(4, f"{ip} is allocated to nobody but answered by {macs}")

    def _speakers(self) -> str:
        """How many IPs each speaker says it answers for (its metrics), for the report of a failure."""
        counts = []
        for number in range(1, self.lab.nodes + 1):
            node = self.lab.lab.node(number)
            metrics = node.run("curl", "-s", "-m", "2", f"http://{node.v4}:7473/metrics").stdout
            owned = [
                line for line in metrics.splitlines() if line.startswith("ironlb_speaker_announced_ips{")
            ]
            counts.append(f"{node.role}: {owned[0].rsplit(' ', 1)[1] if owned else '?'}")
        return ", ".join(counts)

    def run(self) -> Report:
        self.prepare()
        background = [
            threading.Thread(target=work, daemon=True) for work in (self.churn, self.watch_deletions)
        ]
        for thread in background:
            thread.start()
        try:
            self.inject_faults()
        finally:
            self.stop.set()
            for thread in background:
                thread.join(10)
        self.final_checks()
        self.report.violations = [asdict(v) for v in self.checker.violations]
        self.prober.close()
        return self.report


def _copy_logs(scratch: Path, into: Path) -> None:
    """Each pod's log (appended across restarts), named after its pod."""
    into.mkdir(parents=True, exist_ok=True)
    for found in scratch.rglob("container.log"):
        shutil.copyfile(found, into / f"{found.parent.name}.log")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--fault-every", type=float, nargs=2, default=(5.0, 30.0), metavar=("MIN", "MAX"))
    parser.add_argument("--report", type=Path)
    parser.add_argument(
        "--faults", type=lambda text: text.split(","), help="only these fault kinds (comma-separated)"
    )
    parser.add_argument("--logs", type=Path, help="copy every pod's log here at the end (to read a failure)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    with (
        tempfile.TemporaryDirectory(prefix="ironlb-chaos-") as scratch,
        ControlPlane(with_controllers=True) as plane,
    ):
        plane.install_crds(REPO_ROOT / "crds")
        log(f"lab up; seed {args.seed}")
        with L2Lab(
            plane, Path(scratch), namespace="ironlb-system", nodes=3, operator_as_pod=True, faults=True
        ) as lab:
            try:
                report = Chaos(plane, lab, args).run()
            finally:
                if args.logs:
                    _copy_logs(Path(scratch), args.logs)
    print(report.summary(), flush=True)
    if args.report:
        args.report.write_text(json.dumps(asdict(report), indent=1))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
