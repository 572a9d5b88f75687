"""Benchmark: Layer 2 speakers at scale, in the lab, each held to its CPU request (issue 14, lab part).

Run: hack/bench/run.sh l2scale_lab [nodes] [ips] [minutes] [kills] [millicores]   (defaults 10 5000 5 20,
and the DaemonSet's CPU request; a non-zero ``millicores`` sets IronLBConfig's speaker.cpuRequest first;
needs root)

Real control plane, operator, one speaker pod per lab node run in a cgroup v1 cpu cgroup whose CFS quota is
the pod's CPU request (``L2Lab(cpu_limited=True)``), and IPS IPv6 single-stack LoadBalancer Services
without NodePorts (the documentation IPv4 ranges are /24s). Once every speaker announces the IPs it wins
(its metrics, scraped every 5 s) and none has logged a takeover for 10 s (after 10 min it goes on, saying
the speakers did not settle):

- idle for MINUTES minutes, nobody killed and nothing scraped: every ``announcing IP (...) from node X``
  line a speaker logs is a false takeover; each speaker's CPU (utime+stime of its process, % of one core),
  its throttling (``cpu.stat``: periods in which it hit its quota) and its node's UDP datagrams in and out
  per second (heartbeats: nothing else speaks UDP on a node) are measured over the phase;
- KILLS failovers: a random IP's owner (``election.owner``) gets kill -9 and the client asks for the IP
  every 10 ms until the next owner answers NDP (``L2Lab.failover``, a 10 s window); the survivors' logs
  tell when the last of the victim's IPs was taken by its next owner; the victim is restarted at once
  (``ensure_speakers``) and its log tells when it announced all its IPs again. Any other takeover logged
  during a trial (an IP the victim did not own, or taken by a node that is not its next owner) is false.

Ends with a ``key: value`` summary block.
"""

from __future__ import annotations

import ipaddress
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ironlb.api import GROUP, VERSION
from ironlb.api.config import SINGLETON_NAME
from ironlb.api.informer import Informer
from ironlb.api.kube import KubeClient, custom_path
from ironlb.operator.manifests import SPEAKER_NAME
from ironlb.speaker.l2.election import owner
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.cpulimit import quota_us, read_quota, throttling
from ironlb_lab.l2lab import L2Lab
from ironlb_lab.network import Host, exit_on_sigterm
from ironlb_lab.podrunner import RunningPod

from bench.services import create_services
from bench.stats import percentile, tree_cpu_seconds

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bench"
SYSTEM = "ironlb-system"
POOL_BASE = "2001:db8:300::"  # inside the lab's on-link 2001:db8:300::/64
ANNOUNCING = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \S+ \S+ announcing (\S+) \((.*?)\) from node (\S+)$", re.M
)  # the speaker's log format: "%(asctime)s %(name)s %(levelname)s %(message)s" (local time)
SCRAPE_EVERY = 5.0  # seconds between scrapes of the speakers' metrics: each costs them CPU under their quota
FAILOVER_WINDOW = 10.0  # seconds the client watches an IP after the kill


def pool_cidr(ips: int) -> str:
    """A pool for ``ips`` addresses: a /112 (65,536), larger only when it must be."""
    return f"{POOL_BASE}/{128 - max(16, (ips + 1).bit_length())}"


def udp_counters(node: Host) -> dict[str, int]:
    """The node namespace's UDP counters (IPv4 and IPv6 added): InDatagrams, OutDatagrams, InErrors,
    RcvbufErrors."""
    counters = dict.fromkeys(("InDatagrams", "OutDatagrams", "InErrors", "RcvbufErrors"), 0)
    snmp = node.run("cat", "/proc/net/snmp", "/proc/net/snmp6").stdout
    lines = [line.split() for line in snmp.splitlines()]
    udp = [line for line in lines if line and line[0] == "Udp:"]
    if len(udp) >= 2:  # header line, then values
        for name, value in zip(udp[0][1:], udp[1][1:], strict=False):
            if name in counters:
                counters[name] += int(value)
    for line in lines:
        if len(line) == 2 and line[0].startswith("Udp6") and line[0][4:] in counters:
            counters[line[0][4:]] += int(line[1])
    return counters


def speaker_metric(node: Host, name: str) -> float:
    """One per-node gauge or counter of the node's speaker (-1 when the speaker does not answer)."""
    text = node.run("curl", "-s", "-m", "5", f"http://{node.v4}:7473/metrics", timeout=15).stdout
    match = re.search(rf'^{name}(?:_total)?\{{node="{node.role}"\}} (\S+)', text, re.M)
    return float(match.group(1)) if match else -1.0


HELD_DEAD = re.compile(r" node \S+ held dead ")
SELF_STALL = re.compile(r"heartbeat loop stalled for (\d+) ms")
HUNG_LOOP = re.compile(r"the speaker's loop has not run for \d+ ms")


def timed_announcements(log: Path, offset: int) -> list[tuple[float, ipaddress.IPv6Address, str]]:
    """(wall-clock time, IP, node) of every ``announcing`` line written to a container log after ``offset``
    bytes."""
    with log.open("rb") as file:
        file.seek(offset)
        text = file.read().decode(errors="replace")
    found = []
    for match in ANNOUNCING.finditer(text):
        address = ipaddress.ip_address(match.group(3))
        if isinstance(address, ipaddress.IPv6Address):
            moment = (
                time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000
            )
            found.append((moment, address, match.group(5)))
    return found


def announcements(log: Path, offset: int) -> list[tuple[ipaddress.IPv6Address, str]]:
    """(IP, node) of every ``announcing`` line written to a container log after ``offset`` bytes."""
    return [(address, node) for _, address, node in timed_announcements(log, offset)]


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def figures(values: Iterable[float], unit: str = "", digits: int = 1) -> str:
    """``p50 X, max Y`` of per-node figures."""
    ordered = list(values)
    if not ordered:
        return "n/a"
    return f"p50 {percentile(ordered, 0.5):.{digits}f}{unit}, max {max(ordered):.{digits}f}{unit}"


class Watched:
    """The benchmark's Services (name -> IP) and the speakers' ServiceL2Status objects (IP -> node),
    followed by informers."""

    def __init__(self, kube: KubeClient, stop: threading.Event) -> None:
        self.ips: dict[str, str] = {}
        self.answering: dict[str, tuple[str, str]] = {}  # ServiceL2Status name -> (IP, node)
        self.lock = threading.Lock()
        Informer(kube, f"/api/v1/namespaces/{NAMESPACE}/services", self._on_service).start(stop)
        Informer(
            kube, f"/apis/ironlb.io/v1beta1/namespaces/{SYSTEM}/servicel2statuses", self._on_status
        ).start(stop)

    def _on_service(self, kind: str, service: dict[str, Any]) -> None:
        ingress = (service.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
        with self.lock:
            if kind != "DELETED" and ingress and ingress[0].get("ip"):
                self.ips[service["metadata"]["name"]] = str(ingress[0]["ip"])

    def _on_status(self, kind: str, status: dict[str, Any]) -> None:
        name, body = status["metadata"]["name"], status.get("status") or {}
        with self.lock:
            if kind == "DELETED":
                self.answering.pop(name, None)
            else:
                self.answering[name] = (str(body.get("ip", "")), str(body.get("node", "")))

    def holding(self) -> int:
        with self.lock:
            return len(self.ips)

    def statuses(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.answering.values())


@dataclass
class Sample:
    """One speaker's counters at one moment."""

    pid: int
    restarts: int
    cpu: float
    udp: dict[str, int]
    throttle: dict[str, int]
    log_offset: int
    at: float


class Scale:
    """The running benchmark: the lab, the Services' IPs and who owns each."""

    def __init__(self, lab: L2Lab, kube: KubeClient, watched: Watched) -> None:
        self.lab, self.kube, self.watched = lab, kube, watched
        self.hosts = [lab.lab.node(n) for n in range(1, lab.nodes + 1)]
        self.nodes = [host.role for host in self.hosts]
        self.macs = {host.role: host.mac() for host in self.hosts}
        self.ips: list[str] = []
        self.by_address: dict[ipaddress.IPv6Address, str] = {}
        self.first_owner: dict[str, str] = {}

    def canonical(self, ip: str) -> str:
        """The Service status's spelling of an IP written by someone else ('' when it is none of ours)."""
        try:
            return self.by_address.get(ipaddress.IPv6Address(ip), "")
        except ValueError:
            return ""

    # ------------------------------------------------------------------------------------- speakers
    def pod(self, role: str) -> RunningPod:
        pod = self.lab.speaker(role)
        assert pod is not None and pod.process is not None, f"no speaker on {role}"
        return pod

    def log(self, role: str) -> Path:
        return self.pod(role).directory / "container.log"

    def sample(self, host: Host) -> Sample:
        pod = self.pod(host.role)
        assert pod.process is not None
        return Sample(
            pid=pod.process.pid,
            restarts=pod.restarts,
            cpu=tree_cpu_seconds(pod.process.pid),
            udp=udp_counters(host),
            throttle=throttling(pod.cgroup) if pod.cgroup is not None else {},
            log_offset=size(pod.directory / "container.log"),
            at=time.monotonic(),
        )

    def announced(self) -> dict[str, int]:
        return {host.role: int(speaker_metric(host, "ironlb_speaker_announced_ips")) for host in self.hosts}

    def expected(self, alive: set[str] | None = None) -> dict[str, int]:
        """How many IPs each node should answer for when ``alive`` (all by default) are up."""
        counts = dict.fromkeys(self.nodes, 0)
        for ip in self.ips:
            node = self.first_owner[ip] if alive is None else owner(ip, self.nodes, alive)
            if node is not None:
                counts[node] += 1
        return counts

    def wait_announced(
        self, want: dict[str, int], timeout: float, roles: Iterable[str] | None = None
    ) -> float:
        """Seconds until the speakers of ``roles`` (all) announce exactly ``want`` (their metrics, scraped
        every ``SCRAPE_EVERY``); TimeoutError after ``timeout``."""
        began, watched = time.monotonic(), list(roles or self.nodes)
        hosts = [host for host in self.hosts if host.role in watched]
        while True:
            now = {host.role: int(speaker_metric(host, "ironlb_speaker_announced_ips")) for host in hosts}
            if all(now[role] == want[role] for role in watched):
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"announced {now}, expected {want}")
            time.sleep(SCRAPE_EVERY)

    # ---------------------------------------------------------------------------------------- phases
    def create(self, count: int) -> tuple[float, float]:
        """Create ``count`` Services, printing progress; (seconds to create, seconds until all hold an IP)."""
        names = [f"svc-{n:05d}" for n in range(count)]
        began = time.monotonic()
        chunk = 500
        for start in range(0, count, chunk):
            create_services(self.kube, NAMESPACE, names[start : start + chunk], 16, ready_endpoints=True)
            print(
                f"  created {min(count, start + chunk)}/{count} Services "
                f"({time.monotonic() - began:.0f} s; {self.watched.holding()} hold an IP)",
                flush=True,
            )
        created = time.monotonic() - began
        reported = 0.0
        while self.watched.holding() < count:
            if time.monotonic() - began > 1800:
                raise TimeoutError(f"{self.watched.holding()} of {count} Services hold an IP after 30 min")
            if time.monotonic() - reported > 10:
                reported = time.monotonic()
                print(f"  {self.watched.holding()}/{count} hold an IP ({reported - began:.0f} s)", flush=True)
            time.sleep(0.5)
        allocated = time.monotonic() - began
        with self.watched.lock:
            self.ips = sorted(self.watched.ips.values())
        self.by_address = {ipaddress.IPv6Address(ip): ip for ip in self.ips}
        self.first_owner = {ip: owner(ip, self.nodes) or "" for ip in self.ips}
        return created, allocated

    def statuses(self) -> tuple[int, int]:
        """(ServiceL2Status objects of our IPs, how many of them name a node other than the IP's owner)."""
        statuses = [(self.canonical(ip), node) for ip, node in self.watched.statuses()]
        ours = [(ip, node) for ip, node in statuses if ip]
        return len(ours), sum(1 for ip, node in ours if self.first_owner[ip] != node)

    def settle(self, timeout: float = 600) -> dict[str, float]:
        """Wait until each speaker announces the IPs it wins, no speaker logged a takeover for 10 s, and the
        ServiceL2Status objects are complete and right or have not changed for 30 s (speakers that lost a
        report do not write it again); their figures at the end, and the takeovers logged meanwhile."""
        began, want, reported = time.monotonic(), self.expected(), 0.0
        print(f"  expected per node: {want}", flush=True)
        logs = {role: self.log(role) for role in self.nodes}
        quiet_since, sizes = time.monotonic(), {role: size(path) for role, path in logs.items()}
        steady_since, reports = time.monotonic(), self.statuses()
        while True:
            now = self.announced()
            current = {role: size(path) for role, path in logs.items()}
            if current != sizes:
                quiet_since, sizes = time.monotonic(), current
            if (latest := self.statuses()) != reports:
                steady_since, reports = time.monotonic(), latest
            present, wrong = reports
            complete = present == len(self.ips) and wrong == 0
            waited = time.monotonic() - began
            if (
                now == want
                and time.monotonic() - quiet_since >= 10
                and (complete or time.monotonic() - steady_since >= 30)
            ) or waited > timeout:
                if waited > timeout:
                    print(f"  not settled after {timeout:.0f} s: announced {now}", flush=True)
                takeovers = sum(len(announcements(path, 0)) for path in logs.values())
                texts = [path.read_text(errors="replace") if path.exists() else "" for path in logs.values()]
                stalls = [float(ms) for text in texts for ms in SELF_STALL.findall(text)]
                return {
                    "seconds": waited,
                    "settled": float(waited <= timeout),
                    "statuses": present,
                    "wrong": wrong,
                    "takeovers": takeovers,
                    "deaths": sum(len(HELD_DEAD.findall(text)) for text in texts),
                    "stalls": len(stalls),
                    "longest_stall_ms": max(stalls, default=0.0),
                    "hung": sum(len(HUNG_LOOP.findall(text)) for text in texts),
                }
            if time.monotonic() - reported > 10:
                reported = time.monotonic()
                print(
                    f"  announced {sum(n for n in now.values() if n > 0)}/{len(self.ips)} IPs, "
                    f"{present} ServiceL2Status ({wrong} naming another node) ({waited:.0f} s)",
                    flush=True,
                )
            time.sleep(SCRAPE_EVERY)

    def idle(self, minutes: float) -> dict[str, Any]:
        """Nobody is killed for ``minutes``: false takeovers, CPU, throttling, heartbeat datagrams."""
        before = {host.role: self.sample(host) for host in self.hosts}
        end = time.monotonic() + minutes * 60
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(60.0, left))
            seen = sum(len(announcements(self.log(r), before[r].log_offset)) for r in self.nodes)
            print(
                f"  idle {minutes * 60 - max(0.0, end - time.monotonic()):.0f} s: {seen} takeovers",
                flush=True,
            )
        after = {host.role: self.sample(host) for host in self.hosts}
        result: dict[str, Any] = {"cpu": {}, "udp_in": {}, "udp_out": {}, "udp_errors": 0, "throttled": {}}
        result["false_takeovers"], result["restarts"], result["examples"] = 0, 0, []
        result["own"] = 0  # of them, IPs their own owner announced again (it had let them go)
        for role in self.nodes:
            first, last = before[role], after[role]
            seconds = last.at - first.at
            lines = announcements(self.log(role), first.log_offset)
            result["false_takeovers"] += len(lines)
            result["own"] += self.own(lines)
            result["examples"] += [
                f"{address} by {node} (owner {self.first_owner.get(self.canonical(str(address)), '?')})"
                for address, node in lines[:3]
            ]
            result["restarts"] += last.restarts - first.restarts
            if first.pid == last.pid:
                result["cpu"][role] = (last.cpu - first.cpu) / seconds * 100
            result["udp_in"][role] = (last.udp["InDatagrams"] - first.udp["InDatagrams"]) / seconds
            result["udp_out"][role] = (last.udp["OutDatagrams"] - first.udp["OutDatagrams"]) / seconds
            result["udp_errors"] += sum(
                last.udp[name] - first.udp[name] for name in ("InErrors", "RcvbufErrors")
            )
            periods = last.throttle.get("nr_periods", 0) - first.throttle.get("nr_periods", 0)
            throttled = last.throttle.get("nr_throttled", 0) - first.throttle.get("nr_throttled", 0)
            result["throttled"][role] = throttled / periods * 100 if periods else 0.0
        return result

    def failovers(self, kills: int) -> dict[str, Any]:
        """``kills`` trials: kill -9 an IP's owner, time the first NDP answer from the next owner, then the
        survivors' takeover of all the victim's IPs and the restarted victim's return."""
        rng = random.Random(1)
        times: list[float] = []
        all_taken: list[float] = []
        back: list[float] = []
        missed, skipped, not_back, false_takeovers, own, examples = 0, 0, 0, 0, 0, []
        for trial in range(1, kills + 1):
            ip = rng.choice(self.ips)
            victim = self.first_owner[ip]
            survivors = set(self.nodes) - {victim}
            survivor = owner(ip, self.nodes, survivors)
            assert survivor is not None
            waiting, answering = time.monotonic() + 60, ""
            while (answering := self.lab.ndp(ip)) != self.macs[victim] and time.monotonic() < waiting:
                time.sleep(0.2)
            if answering != self.macs[victim]:
                skipped += 1
                print(
                    f"  trial {trial}/{kills}: skipped, {victim} does not answer for {ip} (the client hears "
                    f"{answering or 'nobody'})\n{self.lab.speaker_logs(5)}",
                    flush=True,
                )
                continue
            offsets = {role: size(self.log(role)) for role in self.nodes}
            logs = {role: self.log(role) for role in self.nodes}
            try:
                seconds: float | None = self.lab.failover(
                    ip, victim, self.macs[survivor], window=FAILOVER_WINDOW
                )
            except StopIteration:
                seconds = None
            victims = [ip for ip in self.ips if self.first_owner[ip] == victim]
            next_owner = {ip: owner(ip, self.nodes, survivors) for ip in victims}
            taken = self._all_announced(
                {role: logs[role] for role in survivors}, offsets, next_owner, self.lab.last_kill, 60
            )
            if taken is not None:
                all_taken.append(taken - self.lab.last_kill)
            restarted, offset = time.time(), size(logs[victim])
            self.lab.ensure_speakers()
            returned = self._all_announced(
                {victim: logs[victim]}, {victim: offset}, dict.fromkeys(victims, victim), restarted, 120
            )
            try:  # and the survivors let the victim's IPs go (their metrics)
                self.wait_announced(self.expected(), 120)
                if returned is not None:
                    back.append(returned - restarted)
            except TimeoutError as error:
                not_back += 1
                print(f"  trial {trial}: not back after the restart: {error}", flush=True)
            time.sleep(1.0)
            wrong = [
                (address, node)
                for role in self.nodes
                for address, node in announcements(logs[role], offsets[role])
                if not self._expected_takeover(address, node, victim, survivors)
            ]
            false_takeovers += len(wrong)
            own += self.own(wrong)
            examples += [
                f"{address} by {node} (owner {self.first_owner.get(self.canonical(str(address)), '?')}, "
                f"victim {victim})"
                for address, node in wrong[:3]
            ]
            if seconds is None:
                missed += 1
            else:
                times.append(seconds)
            shown = "no answer" if seconds is None else f"{seconds * 1000:.0f} ms"
            print(
                f"  trial {trial}/{kills}: kill {victim} (owner of {ip}): {survivor} answers after {shown}; "
                f"{len(wrong)} false takeovers",
                flush=True,
            )
        return {
            "times": times,
            "missed": missed,
            "skipped": skipped,
            "not_back": not_back,
            "all_taken": all_taken,
            "back": back,
            "false_takeovers": false_takeovers,
            "own": own,
            "examples": examples,
        }

    def _all_announced(
        self,
        logs: dict[str, Path],
        offsets: dict[str, int],
        expect: dict[str, str | None],
        since: float,
        timeout: float,
    ) -> float | None:
        """Wall-clock time at which the logs (after ``offsets``, lines stamped ``since`` or later) first show
        every IP of ``expect`` announced by the node it names (read from the logs: scraping the speakers'
        metrics would cost them CPU while they take over); None when they do not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            taken: dict[str, float] = {}
            for role, log in logs.items():
                for moment, address, node in timed_announcements(log, offsets[role]):
                    ip = self.by_address.get(address, "")
                    if ip in expect and node == expect[ip] and moment >= since:
                        taken.setdefault(ip, moment)
            if len(taken) == len(expect):
                return max(taken.values(), default=time.time())
            if time.monotonic() > deadline:
                print(f"  {len(taken)} of {len(expect)} IPs announced by the expected node", flush=True)
                return None
            time.sleep(1)

    def own(self, lines: Iterable[tuple[ipaddress.IPv6Address, str]]) -> int:
        """How many of these takeovers were by the IP's own owner (announcing again what it had let go)."""
        return sum(
            1 for address, node in lines if self.first_owner.get(self.by_address.get(address, "")) == node
        )

    def _expected_takeover(
        self, address: ipaddress.IPv6Address, node: str, victim: str, survivors: set[str]
    ) -> bool:
        """A victim's IP taken by its next owner, or taken back by the restarted victim."""
        ip = self.by_address.get(address)
        if ip is None or self.first_owner[ip] != victim:
            return False
        return node == victim or node == owner(ip, self.nodes, survivors)


def main(nodes: int, count: int, minutes: float, kills: int, cpu_millicores: int = 0) -> None:
    exit_on_sigterm()
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-l2scale-"))
    summary: dict[str, object] = {
        "nodes": nodes,
        "service_ips": count,
        "idle_minutes": minutes,
        "kills": kills,
        "cpu_request": f"{cpu_millicores}m" if cpu_millicores else "the DaemonSet's default",
    }
    stop = threading.Event()
    with ControlPlane(
        with_controllers=True,
        service_cidrs="2001:db8:5e::/108,192.0.2.0/24",
        extra_apiserver_args=("--max-requests-inflight=800",),
    ) as plane:
        plane.install_crds(REPO_ROOT / "crds")
        kube = KubeClient.from_environment(str(plane.kubeconfig))
        print(f"control plane up ({time.monotonic() - began:.0f} s)", flush=True)
        with L2Lab(plane, workdir, nodes=nodes, cpu_limited=True) as lab:
            try:
                if cpu_millicores:
                    request_cpu(lab, kube, f"{cpu_millicores}m")
                run(lab, plane, kube, stop, summary, nodes, count, minutes, kills)
            finally:
                stop.set()
    summary["run_seconds"] = round(time.monotonic() - began)
    print("\n=== l2scale_lab summary", flush=True)
    for key, value in summary.items():
        print(f"{key}: {value}", flush=True)


def request_cpu(lab: L2Lab, kube: KubeClient, cpu: str) -> None:
    """The speakers' CPU request through IronLBConfig, as an admin sets it; the operator rolls them."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IronLBConfig",
        "metadata": {"name": SINGLETON_NAME, "namespace": SYSTEM},
        "spec": {"speaker": {"cpuRequest": cpu}},
    }
    kube.apply(
        custom_path(GROUP, VERSION, SYSTEM, "ironlbconfigs", SINGLETON_NAME), body, field_manager="bench"
    )
    path = f"/apis/apps/v1/namespaces/{SYSTEM}/daemonsets/{SPEAKER_NAME}"
    deadline = time.monotonic() + 180
    while True:
        container = kube.get(path)["spec"]["template"]["spec"]["containers"][0]
        if ((container.get("resources") or {}).get("requests") or {}).get("cpu") == cpu:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the DaemonSet does not request {cpu} after 180 s")
        time.sleep(1)
    for number in range(1, lab.nodes + 1):  # every speaker restarted into a cgroup with the new quota
        role = lab.lab.node(number).role
        while True:
            lab.ensure_speakers(timeout=180)
            pod = lab.speaker(role)
            if pod is not None and pod.cgroup is not None and read_quota(pod.cgroup)[0] == quota_us(cpu):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the speaker on {role} was not restarted with {cpu}")
            time.sleep(1)


def run(
    lab: L2Lab,
    plane: ControlPlane,
    kube: KubeClient,
    stop: threading.Event,
    summary: dict[str, object],
    nodes: int,
    count: int,
    minutes: float,
    kills: int,
) -> None:
    print(f"lab up: {nodes} nodes, a speaker on each", flush=True)
    daemonset = kube.get(f"/apis/apps/v1/namespaces/{SYSTEM}/daemonsets/{SPEAKER_NAME}")
    resources = daemonset["spec"]["template"]["spec"]["containers"][0].get("resources") or {}
    request = str((resources.get("requests") or {}).get("cpu", "none"))
    quotas, cgroups = set(), []
    for number in range(1, nodes + 1):
        pod = lab.speaker(lab.lab.node(number).role)
        assert pod is not None and pod.process is not None
        if pod.cgroup is None:
            raise RuntimeError(f"the speaker on node{number} runs without a cpu cgroup")
        members = (pod.cgroup / "cgroup.procs").read_text().split()
        if str(pod.process.pid) not in members:
            raise RuntimeError(f"speaker pid {pod.process.pid} is not in {pod.cgroup}")
        quotas.add(read_quota(pod.cgroup))
        cgroups.append(pod.cgroup)
    quota, period = next(iter(quotas)) if len(quotas) == 1 else (-1, -1)
    print(
        f"speaker CPU request {request}: cpu.cfs_quota_us {quota} per cpu.cfs_period_us {period} "
        f"({quota / period * 100:.1f}% of a core) on all {nodes} speakers (e.g. {cgroups[0]})",
        flush=True,
    )
    summary["speaker_cpu_request"] = request
    summary["speaker_cfs_quota_us"] = f"{quota}/{period}"

    pool = pool_cidr(count)
    plane.announce_pool("scale", pool)
    kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    watched = Watched(kube, stop)
    scale = Scale(lab, kube, watched)
    print(f"creating {count} IPv6 LoadBalancer Services (pool {pool})", flush=True)
    created, allocated = scale.create(count)
    print(f"{count} Services created in {created:.0f} s, all hold an IP after {allocated:.0f} s", flush=True)
    summary["services_created_s"] = round(created, 1)
    summary["services_all_hold_ip_s"] = round(allocated, 1)

    settled = scale.settle()
    print(
        f"settled {settled['seconds']:.0f} s after the last IP: {settled['takeovers']:.0f} takeovers logged "
        f"for {count} IPs; {settled['statuses']:.0f} ServiceL2Status ({settled['wrong']:.0f} naming another "
        "node)",
        flush=True,
    )
    summary["announce_settle_s"] = round(settled["seconds"], 1)
    if not settled["settled"]:
        summary["announce_settle_s"] = (
            f"{settled['seconds']:.0f} (not settled: the speakers kept taking over)"
        )
    summary["startup_takeovers_logged"] = f"{settled['takeovers']:.0f} for {count} IPs"
    # why IPs moved while the Services were created: peers held dead, and speakers whose own heartbeat loop
    # noticed it had not run for too long (the stall that makes its peers hold it dead)
    summary["startup_peers_held_dead_logged"] = f"{settled['deaths']:.0f}"
    summary["startup_self_stalls_logged"] = (
        f"{settled['stalls']:.0f} (longest {settled['longest_stall_ms']:.0f} ms)"
    )
    # a speaker loop that did not run for 2 s: its heartbeat process stopped so that peers take over
    summary["startup_hung_speaker_loops_logged"] = f"{settled['hung']:.0f}"
    summary["servicel2status_after_settle"] = (
        f"{settled['statuses']:.0f} of {count} ({settled['wrong']:.0f} naming another node)"
    )

    print(f"idle phase: {minutes:g} min, nobody killed", flush=True)
    idle = scale.idle(minutes)
    summary["idle_false_takeovers"] = (
        f"{idle['false_takeovers']} ({idle['own']} of them an IP announced again by its own owner, "
        f"{idle['false_takeovers'] - idle['own']} by another node)"
    )
    if idle["examples"]:
        summary["idle_false_takeover_examples"] = "; ".join(idle["examples"][:5])
    summary["idle_speaker_restarts"] = idle["restarts"]
    summary["speaker_cpu_pct_of_core"] = figures(idle["cpu"].values(), "%", 2)
    summary["speaker_cpu_pct_per_node"] = " ".join(f"{r}={v:.2f}" for r, v in idle["cpu"].items())
    summary["speaker_throttled_periods_pct"] = figures(idle["throttled"].values(), "%")
    summary["node_udp_in_per_s"] = figures(idle["udp_in"].values())
    summary["node_udp_out_per_s"] = figures(idle["udp_out"].values())
    summary["node_udp_receive_errors"] = idle["udp_errors"]
    present, wrong = scale.statuses()
    summary["servicel2status_after_idle"] = f"{present} of {count} ({wrong} naming another node)"

    print(f"failover phase: {kills} kills", flush=True)
    result = scale.failovers(kills)
    times = [t * 1000 for t in result["times"]]
    summary["failover_trials"] = (
        f"{len(times)} answered, {result['missed']} not within {FAILOVER_WINDOW:.0f} s, "
        f"{result['skipped']} skipped (the owner did not answer before the kill)"
    )
    if times:
        summary["failover_first_ndp_ms"] = (
            f"p50 {percentile(times, 0.5):.0f}, p99 {percentile(times, 0.99):.0f}, max {max(times):.0f}"
        )
    if result["all_taken"]:
        summary["failover_all_victim_ips_s"] = (
            figures(result["all_taken"], "", 2) + " (kill -> last one logged)"
        )
    if result["back"]:
        summary["restarted_owner_back_s"] = figures(result["back"]) + " (restart -> all its IPs logged)"
    summary["restarts_not_settled_in_120s"] = result["not_back"]
    summary["failover_false_takeovers"] = (
        f"{result['false_takeovers']} ({result['own']} of them an IP announced again by its own owner, "
        f"{result['false_takeovers'] - result['own']} by another node)"
    )
    if result["examples"]:
        summary["failover_false_takeover_examples"] = "; ".join(result["examples"][:5])


if __name__ == "__main__":
    arguments = [float(a) for a in sys.argv[1:]]
    defaults = [10.0, 5000.0, 5.0, 20.0, 0.0]
    values = arguments + defaults[len(arguments) :]
    main(int(values[0]), int(values[1]), values[2], int(values[3]), int(values[4]))
