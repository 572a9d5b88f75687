"""Layer 2 mode assembled in the lab: Node objects for the lab nodes, the API bridge, the operator on the
host, and the speaker pods of its DaemonSet run in the node namespaces (tests, benchmarks and the demo use
it)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ironlb.operator.manifests import NAMESPACE, OPERATOR_IMAGE, OPERATOR_NAME, SPEAKER_IMAGE, SPEAKER_NAME

from . import containers, probes
from .accounts import install_accounts
from .apibridge import ApiBridge
from .controlplane import ControlPlane
from .kubelets import LabKubelets
from .network import LabNetwork
from .nodes import register_node
from .olm import LabOLM
from .operator import OperatorProcess
from .podrunner import LabPodRunner, RunningPod

HACK = Path(__file__).resolve().parents[1]
DEPLOY_MANIFESTS = HACK.parent / "deploy" / "ironlb.yaml"
BUNDLE = HACK.parent / "bundle"
Json = dict[str, Any]
POOLS_V4 = "203.0.113.0/24"  # the lab's Service IPs are on the LAN: client and router reach them on-link
POOLS_V6 = "2001:db8:300::/64"


@dataclass
class L2Lab:
    """The lab with IronLB installed the way a cluster runs it: the operator (a process on the host, with the
    admin's credentials) installs the speaker DaemonSet; the DaemonSet controller and the scheduler place a
    pod on every lab node; ``LabPodRunner`` runs each as the speaker process in its node's namespace, with
    the pod's args, env, volumes and ServiceAccount token. Needs a control plane with controllers."""

    plane: ControlPlane
    workdir: Path
    namespace: str = "ironlb-system"
    nodes: int = 2
    operator_as_pod: bool = False  # install from deploy/ironlb.yaml: the operator's Deployment runs as pods
    faults: bool = False  # each node and pod namespace reaches the API server through a FaultProxy of its own
    cpu_limited: bool = False  # each pod's CFS quota is its CPU request (a cgroup v1 cpu cgroup per pod)
    pod_network: bool = False  # the operator's pods get LAN addresses (a Prometheus on the LAN scrapes them)
    real_images: bool = False  # pods run from their images under podman (hack/build-images.sh builds them)
    via_olm: bool = False  # the real OLM installs the bundle (bundle/): the operator's Deployment is OLM's
    kubelets: bool = False  # a real kubelet + containerd per node runs the pods (see __post_init__)
    lab: LabNetwork = field(init=False)
    last_kill: float = field(default=0.0, init=False)  # wall-clock time of the last kill_speaker

    def __post_init__(self) -> None:
        self.lab = LabNetwork(nodes=self.nodes)
        if self.kubelets and (self.via_olm or self.faults or self.cpu_limited or self.pod_network):
            raise ValueError("the lab's kubelets run without OLM, fault proxies, CPU quotas or LAN pod IPs")

    def start(self) -> L2Lab:
        if self.real_images or self.kubelets:
            containers.build_images()  # cached: a no-op unless the sources changed
        self.lab.create()
        try:
            if self.via_olm:
                self.olm = LabOLM(self.plane, self.lab, self.workdir).start()
            elif self.namespace != NAMESPACE or not self.operator_as_pod:
                # what deploy/ironlb.yaml holds, for this lab's namespace (the operator's Deployment only
                # when it runs as pods)
                install_accounts(self.plane, self.namespace, with_deployment=self.operator_as_pod)
            if not self.kubelets:  # a kubelet registers its Node itself
                for number in range(1, self.nodes + 1):
                    node = self.lab.node(number)
                    register_node(self.plane, node.role, str(node.v4))
            self._remove_stale_nodes()
            self.bridge = ApiBridge(self.lab, self.plane, self.workdir, faults=self.faults).start()
            if self.kubelets:
                images = (SPEAKER_IMAGE, OPERATOR_IMAGE) if self.operator_as_pod else (SPEAKER_IMAGE,)
                kubelets = LabKubelets(self.lab, self.plane, self.bridge, self.workdir, images)
                self.kubelet_nodes = kubelets.start()
            else:
                self.runner = LabPodRunner(
                    self.lab,
                    self.plane,
                    self.workdir,
                    self.bridge,
                    frozenset({self.namespace}),
                    cpu_limit_from_requests=self.cpu_limited,
                    pod_network=self.pod_network,
                    real_images=self.real_images,
                ).start()
            # the pools' addresses are on the LAN: the client and the router reach them on-link
            for host in (self.lab.client, self.lab.router):
                host.run("ip", "route", "add", POOLS_V4, "dev", "eth0", check=True)
                host.run("ip", "-6", "route", "add", POOLS_V6, "dev", "eth0", check=True)
            if self.via_olm:
                self.csv = self.olm.install(BUNDLE, self.namespace)
                self.olm.wait_phase(self.namespace, self.csv, "Succeeded")
                self.ensure_operator()
            elif self.operator_as_pod:
                if self.namespace == NAMESPACE:  # exactly what a user applies: deploy/ironlb.yaml (generated)
                    self.plane.kubectl("apply", "-f", str(DEPLOY_MANIFESTS))
                self.ensure_operator()
            else:
                self.operator = OperatorProcess(
                    self.plane, args=("--namespace", self.namespace), speakers=True
                )
                self.operator.start()
            self.ensure_speakers()
        except BaseException:
            self.stop()
            raise
        return self

    def _remove_stale_nodes(self) -> None:
        """Nodes a bigger lab left on the shared control plane: still Ready for a while, the scheduler would
        place this lab's pods (the operator's second replica) where nothing runs them."""
        ours = {self.lab.node(number).role for number in range(1, self.nodes + 1)}
        listed = self.plane.kubectl("get", "nodes", "-o", "name").stdout.split()
        lab_nodes = [name for name in listed if re.fullmatch(r"node/node\d+", name)]
        stale = [name for name in lab_nodes if name.split("/", 1)[1] not in ours]
        if stale:
            self.plane.kubectl("delete", *stale, "--wait=false")

    def speaker(self, role: str) -> RunningPod | None:
        """This lab's speaker pod on a node (labs sharing a control plane each have their own DaemonSet)."""
        prefix = f"{self.namespace}/{SPEAKER_NAME}-"
        with self.runner.lock:
            return next(
                (
                    pod
                    for pod in self.runner.pods.values()
                    if pod.node.role == role and pod.key.startswith(prefix) and not pod.deleting
                ),
                None,
            )

    def ensure_operator(self, timeout: float = 60) -> None:
        """Wait until an operator pod of the Deployment holds the leader Lease (the other one waits)."""
        deadline = time.monotonic() + timeout
        while True:
            lease = self.plane.kubectl(
                "get",
                "lease",
                OPERATOR_NAME,
                "-n",
                self.namespace,
                "-o",
                "jsonpath={.spec.holderIdentity}",
                check=False,
            ).stdout.strip()
            if lease.startswith(OPERATOR_NAME):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no operator pod took the lease in {timeout:.0f} s")
            time.sleep(0.2)

    def ensure_speakers(self, timeout: float = 60) -> None:
        """Wait until every node runs a ready speaker pod; one a test stopped is restarted at once."""
        deadline = time.monotonic() + timeout
        if self.kubelets:
            while len(self.speaker_pods(ready=True)) < self.nodes:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"not every node has a ready speaker pod after {timeout:.0f} s\n{self._diagnosis()}"
                        f"\n{self.kubelet_nodes.tail()}"
                    )
                time.sleep(0.5)
            return
        for number in range(1, self.nodes + 1):
            role = self.lab.node(number).role
            while True:
                pod = self.speaker(role)
                if pod is not None:
                    self.runner.restart_now(pod)
                    if pod.ready and pod.process is not None and pod.process.poll() is None:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no ready speaker pod on {role} after {timeout:.0f} s\n{self._diagnosis()}"
                    )
                time.sleep(0.1)

    def speaker_pods(self, ready: bool = False) -> dict[str, Json]:
        """Node -> this lab's speaker pod on it, as the API server has it (the kubelets' status)."""
        selector = f"app.kubernetes.io/name={SPEAKER_NAME}"
        listed = json.loads(
            self.plane.kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o", "json").stdout
        )["items"]
        pods = {}
        for pod in listed:
            conditions = pod.get("status", {}).get("conditions", [])
            is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            placed = pod["spec"].get("nodeName") and not pod["metadata"].get("deletionTimestamp")
            if placed and (is_ready or not ready):
                pods[pod["spec"]["nodeName"]] = pod
        return pods

    def _diagnosis(self) -> str:
        """What a person would look at: the pods, the nodes' taints and the namespace's warnings."""
        pods = self.plane.kubectl("get", "pods", "-n", self.namespace, "-o", "wide", check=False).stdout
        taints = self.plane.kubectl(
            "get", "nodes", "-o", "custom-columns=NAME:.metadata.name,TAINTS:.spec.taints", check=False
        ).stdout
        events = self.plane.kubectl(
            "get", "events", "-n", self.namespace, "--field-selector", "type=Warning", check=False
        ).stdout
        return f"{pods}\n{taints}\n{events[-3000:]}"

    def speaker_logs(self, lines: int = 15) -> str:
        """The last lines each node's speaker container wrote: what a person reads when a route is missing."""
        tails = []
        for number in range(1, self.nodes + 1):
            role = self.lab.node(number).role
            text = self.speaker_log(role) or "(no log)"
            tails.append(f"--- speaker on {role}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(tails)

    def speaker_log(self, role: str) -> str:
        """Everything the speaker container on ``role`` wrote ("" when none runs there)."""
        if self.kubelets:
            pod = self.speaker_pods().get(role)
            return "" if pod is None else self.kubelet_nodes.container_log(role, pod, "speaker")
        running = self.speaker(role)
        log = running.directory / "container.log" if running is not None else None
        return log.read_text(errors="replace") if log is not None and log.exists() else ""

    def kill_speaker(self, role: str, graceful: bool = False) -> None:
        """SIGKILL (a crash) or SIGTERM (a rolling update) the speaker of one node; its pod's container is
        restarted by the runner after the kubelet's back-off, or at once by ``ensure_speakers`` (with real
        kubelets: by the node's kubelet)."""
        if self.kubelets:
            container = self.speaker_pods()[role]["status"]["containerStatuses"][0]["containerID"]
            self.last_kill = time.time()
            self.kubelet_nodes.kill_container(role, container, signal.SIGTERM if graceful else signal.SIGKILL)
            return
        pod = self.speaker(role)
        if pod is None or pod.process is None:
            raise RuntimeError(f"no speaker runs on {role}")
        self.last_kill = time.time()
        self.runner.signal(pod, signal.SIGTERM if graceful else signal.SIGKILL)
        pod.process.wait(timeout=15)

    def stop(self) -> None:
        if getattr(self, "olm", None) is not None:  # first: OLM would put back what the lab removes
            self.olm.stop()
        if getattr(self, "operator", None) is not None:
            self.operator.stop()
        kubelets: LabKubelets | None = getattr(self, "kubelet_nodes", None)
        runner: LabPodRunner | None = getattr(self, "runner", None)
        for stopping in (kubelets, runner):
            if stopping is not None:
                stopping.stop()
        if kubelets is not None:  # their Nodes: the next lab registers its own, without their taints
            roles = [self.lab.node(number).role for number in range(1, self.nodes + 1)]
            self.plane.kubectl("delete", "nodes", *roles, "--ignore-not-found", "--wait=false", check=False)
        if kubelets is not None or runner is not None:
            # The Nodes outlive the lab on a shared plane, and a pod nobody confirms stays Terminating and
            # keeps its host ports: remove the DaemonSet and, as a kubelet would, its pods for good.
            for kind, name in (("deployment", OPERATOR_NAME), ("daemonset", SPEAKER_NAME)):
                self.plane.kubectl(
                    *("delete", kind, name, "-n", self.namespace, "--ignore-not-found"),
                    "--wait=false",
                    check=False,
                )
            self.plane.kubectl(
                *("delete", "pods", "-n", self.namespace, "--all", "--grace-period=0", "--force"),
                "--wait=false",
                check=False,
            )
        if getattr(self, "bridge", None) is not None:
            self.bridge.stop()
        self.lab.destroy()

    def __enter__(self) -> L2Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ probes
    def arp(self, ip: str) -> str:
        return probes.arp(self.lab.client, ip)

    def ndp(self, ip: str) -> str:
        return probes.ndp(self.lab.client, ip)

    def watch_arp(self, ip: str, seconds: float) -> subprocess.Popen[str]:
        return probes.watch_answers(self.lab.client, ip, seconds)

    def failover(
        self, ip: str, victim: str, survivor_mac: str, graceful: bool = False, window: float = 3
    ) -> float:
        """Stop the victim's speaker (kill -9, or SIGTERM when ``graceful``); seconds until the client first
        hears the survivor answer ARP (NDP for an IPv6 ``ip``). StopIteration when it does not within
        ``window`` seconds of the watch starting."""
        watch = self.watch_arp(ip, window)
        time.sleep(0.3)
        killed = time.time()
        self.kill_speaker(victim, graceful)
        changes = json.loads(watch.communicate(timeout=30)[0])
        return (
            float(next(moment for moment, mac in changes if mac == survivor_mac and moment > killed)) - killed
        )
