"""Real kubelets for the lab: a kubelet and a containerd per lab node, both in the node's network namespace.

The kubelet is the release's own (``cmd/kubelet``, built by hack/build-control-plane.sh), containerd and runc
are Debian's. The kubelet registers its Node (InternalIP: the node's LAN address), runs the pods the
scheduler and the DaemonSet controller bind to it from their images, applies their securityContext, mounts
their volumes (the projected ServiceAccount token too), runs their probes, restarts crashed containers
and reports all of it in the pod's status: nothing of that is the lab's code.

What these machines need, found by trying (docs/architecture.md, "Real kubelets"):

- containerd's CRI must not lower ``oom_score_adj`` (``restrict_oom_score_adj``): the machine's root lacks
  CAP_SYS_RESOURCE, and runc's init dies ("can't get final child's PID from pipe") when it tries -998;
- the kubelet sets three kernel tunables of the whole machine (vm.overcommit_memory=1, kernel.panic=10,
  kernel.panic_on_oops=1) unless they already hold those values. Each node's kubelet and containerd therefore
  share a mount namespace of their own where those three files are the expected values: the machine's own
  settings are never written (if a bind mount fails, the launcher stops before the kubelet starts);
- ``ip netns exec`` would remount /sys without the cgroup hierarchies runc needs: the processes join the
  node's network namespace only (``nsenter --net``);
- cgroups v1 in hybrid mode: ``failCgroupV1: false``, the cgroupfs driver, no QoS cgroups;
- no registry: the images are loaded into each node's containerd from podman (``podman save``), the pod
  sandbox is a local image made from the lab's Debian base (hack/build-images.sh).

Pods reach the API server as in a cluster, at the ``kubernetes`` Service's ClusterIP (the first address of
the lab's Service range, which the serving certificate names): each node has that address on its loopback,
where the API bridge listens on port 443. The kubelets themselves use the lab's admin credentials, not a
``system:node`` identity: the lab issues no node certificates, so the Node authorizer does not limit them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .network import process_alive

if TYPE_CHECKING:
    from .apibridge import ApiBridge
    from .controlplane import ControlPlane
    from .network import Host, LabNetwork

Json = dict[str, Any]
CRI_NAMESPACE = "k8s.io"
# each node's own pods (without hostNetwork: the operator's) are on a bridge of the node; the same range in
# every node, since no pod talks to another node's pods: only to the API server, through the node
POD_SUBNET = "198.51.100.128/27"
POD_GATEWAY = "198.51.100.129"
# the values the kubelet insists on (its container manager's setupKernelTunables); see the module docstring
KERNEL_TUNABLES = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}


def pause_image() -> str:
    """The pod sandbox image hack/build-images.sh made (it prints ``pause ID SIZE``; the tag is its ref)."""
    result = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/ironlb-pause"],
        capture_output=True,
        text=True,
        check=True,
    )
    refs = result.stdout.split()
    if not refs:
        raise RuntimeError("no localhost/ironlb-pause image: run hack/build-images.sh")
    return refs[0]


def containerd_config(directory: Path, sandbox_image: str) -> str:
    return textwrap.dedent(
        f"""\
        version = 2
        root = "{directory}/containerd"
        state = "{directory}/containerd-state"
        [grpc]
          address = "{directory}/containerd.sock"
        [plugins."io.containerd.grpc.v1.cri"]
          sandbox_image = "{sandbox_image}"
          restrict_oom_score_adj = true
          netns_mounts_under_state_dir = true
          [plugins."io.containerd.grpc.v1.cri".containerd]
            snapshotter = "overlayfs"
            default_runtime_name = "runc"
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
              runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".cni]
            bin_dir = "/usr/lib/cni"
            conf_dir = "{directory}/cni"
        """
    )


def kubelet_config(directory: Path) -> Json:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{directory}/containerd.sock",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # these machines mount cgroups v1 (hybrid)
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "localStorageCapacityIsolation": False,
        "evictionHard": {},
        "makeIPTablesUtilChains": False,
        "resolvConf": "",
        "podLogsDir": str(directory / "logs"),
        "serializeImagePulls": False,
        # nothing calls the kubelet's API in the lab (no logs/exec through the API server)
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "readOnlyPort": 0,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
    }


def cni_config(directory: Path) -> Json:
    """A bridge in the node with the node as every pod's gateway: a pod reaches the ``kubernetes`` Service's
    ClusterIP, which is the node's own address (see ``_serve_cluster_ip``), and the kubelet its probes."""
    return {
        "cniVersion": "1.0.0",
        "name": "lab-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni-lab0",
                "isGateway": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(directory / "cni-ipam"),
                },
            }
        ],
    }


def launcher_script(directory: Path, kubelet_argv: list[str]) -> str:
    """Run by ``unshare --mount --propagation slave``: hide the machine's kernel tunables behind files holding
    the kubelet's values, start containerd, then the kubelet (both share this mount namespace, so the
    volumes the kubelet mounts are the ones runc sees)."""
    binds = "\n".join(
        f"echo {value} > {directory}/sysctl-{path.replace('/', '-')}\n"
        f"mount --bind {directory}/sysctl-{path.replace('/', '-')} /proc/sys/{path}"
        for path, value in KERNEL_TUNABLES.items()
    )
    kubelet = " ".join(kubelet_argv)
    return textwrap.dedent(
        """\
        set -eu
        {binds}
        containerd --config {directory}/containerd.toml >{directory}/containerd.log 2>&1 &
        echo $! >{directory}/containerd.pid
        for _ in $(seq 100); do [ -S {directory}/containerd.sock ] && break; sleep 0.1; done
        {importer}
        exec {kubelet}
        """
    ).format(
        binds=binds,
        directory=directory,
        importer=f"bash {directory}/import-images.sh",
        kubelet=kubelet,
    )


@dataclass
class NodeKubelet:
    host: Host
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "containerd.sock"

    def ctr(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", CRI_NAMESPACE, *argv],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def tasks(self) -> dict[str, int]:
        """Running container ID -> PID of its first process."""
        tasks = {}
        for line in self.ctr("tasks", "ls", check=False).stdout.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "RUNNING":
                tasks[parts[0]] = int(parts[1])
        return tasks


@dataclass
class LabKubelets:
    """One real kubelet + containerd per lab node; images loaded from podman; ``stop`` leaves nothing."""

    lab: LabNetwork
    plane: ControlPlane
    bridge: ApiBridge
    workdir: Path
    images: tuple[str, ...]
    nodes: dict[str, NodeKubelet] = field(default_factory=dict)

    def start(self, timeout: float = 120) -> LabKubelets:
        if self.plane.binaries is None or not (self.plane.binaries / "kubelet").exists():
            raise RuntimeError("no kubelet binary: hack/build-control-plane.sh builds it")
        sandbox = pause_image()
        archives = [self._saved(image) for image in (*self.images, sandbox)]
        for role, host in sorted(self.lab.hosts.items()):
            if role.startswith("node"):
                self.nodes[role] = self._start_node(host, sandbox, archives)
        self._wait_nodes_ready(timeout)
        return self

    def _saved(self, image: str) -> Path:
        """The image as an archive podman saved (once per image ID, in the lab's work directory)."""
        image_id = subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        archive = self.workdir / f"image-{image_id[:12]}.tar"
        if not archive.exists():
            subprocess.run(
                ["podman", "save", "--quiet", "-o", f"{archive}.partial", image], check=True, timeout=300
            )
            Path(f"{archive}.partial").replace(archive)
        return archive

    def _start_node(self, host: Host, sandbox: str, archives: list[Path]) -> NodeKubelet:
        directory = self.workdir / f"kubelet-{host.role}"
        for sub in ("cni", "logs", "root", "pki"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "containerd.toml").write_text(containerd_config(directory, sandbox))
        (directory / "kubelet.yaml").write_text(json.dumps(kubelet_config(directory), indent=1))
        (directory / "cni" / "10-lab.conflist").write_text(json.dumps(cni_config(directory), indent=1))
        (directory / "import-images.sh").write_text(
            "\n".join(
                f"ctr --address {directory}/containerd.sock --namespace {CRI_NAMESPACE} images import"
                f" {archive} >/dev/null"
                for archive in archives
            )
            + "\n"
        )
        self._serve_cluster_ip(host)
        assert self.plane.binaries is not None
        kubelet_argv = [
            str(self.plane.binaries / "kubelet"),
            f"--config={directory}/kubelet.yaml",
            f"--kubeconfig={self.plane.kubeconfig}",
            f"--root-dir={directory}/root",
            f"--cert-dir={directory}/pki",
            f"--hostname-override={host.role}",
            f"--node-ip={host.v4}",
            "--v=1",
        ]
        (directory / "start.sh").write_text(launcher_script(directory, kubelet_argv))
        node = NodeKubelet(host, directory)
        node.process = self.lab.spawn_here(
            [
                "unshare",
                "--mount",
                "--propagation",
                "slave",
                "nsenter",
                f"--net=/run/netns/{host.namespace}",
                "bash",
                str(directory / "start.sh"),
            ],
            directory / "kubelet.log",
        )
        return node

    def _serve_cluster_ip(self, host: Host) -> None:
        """The ``kubernetes`` Service's ClusterIP:443 inside the node: the address on its loopback, the API
        bridge listening on it (the kubelet tells pods KUBERNETES_SERVICE_HOST/PORT from that Service)."""
        cluster_ip = self.plane.kubectl(
            "get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"
        ).stdout.strip()
        host.run("ip", "address", "add", f"{cluster_ip}/32", "dev", "lo", check=True)
        self.bridge.forward_into(host, listen=(cluster_ip, 443))

    def _wait_nodes_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for role, node in self.nodes.items():
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"the kubelet of {role} exited:\n{self.tail(role)}")
            listed = json.loads(self.plane.kubectl("get", "nodes", "-o", "json").stdout)["items"]
            ready = {
                item["metadata"]["name"]
                for item in listed
                for condition in item.get("status", {}).get("conditions", [])
                if condition["type"] == "Ready" and condition["status"] == "True"
            }
            if set(self.nodes) <= ready:
                return
            if time.monotonic() > deadline:
                waiting = sorted(set(self.nodes) - ready)
                raise TimeoutError(f"kubelets not Ready after {timeout:.0f} s: {waiting}\n{self.tail()}")
            time.sleep(0.5)

    def tail(self, role: str | None = None, lines: int = 25) -> str:
        """The last lines of the kubelet's and containerd's logs, for a failing test's message."""
        parts = []
        for name, node in sorted(self.nodes.items()):
            if role is None or name == role:
                for file in ("kubelet.log", "containerd.log"):
                    path = node.directory / file
                    text = path.read_text(errors="replace") if path.exists() else "(none)"
                    parts.append(f"--- {name} {file}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    def container_log(self, role: str, pod: Json, container: str) -> str:
        """What the container wrote, every restart in order (kubelet lines: ``TIME STREAM TAG TEXT``)."""
        metadata = pod["metadata"]
        directory = self.nodes[role].directory / "logs"
        directory /= f"{metadata['namespace']}_{metadata['name']}_{metadata['uid']}/{container}"
        files = [path for path in directory.glob("*.log") if path.stem.isdigit()]
        return "".join(path.read_text(errors="replace") for path in sorted(files, key=lambda p: int(p.stem)))

    def container_pid(self, role: str, container_id: str) -> int:
        """The host PID of a running container (``containerd://ID`` in the pod's status)."""
        return self.nodes[role].tasks()[container_id.removeprefix("containerd://")]

    def kill_container(self, role: str, container_id: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """What a crash does: the container's process dies; the kubelet notices and restarts it."""
        self.nodes[role].ctr(
            "tasks", "kill", "--signal", sig.name, container_id.removeprefix("containerd://")
        )

    def stop(self) -> None:
        """Kubelets first (nothing restarts containers), then every container through its containerd, then
        containerd; the mounts the kubelets made (tmpfs for tokens) lapse with their mount namespaces."""
        for node in self.nodes.values():
            if node.process is not None:  # the kubelet only: containerd (same group) stays for now
                node.process.terminate()
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()
        for node in self.nodes.values():
            if node.socket.exists():
                self._remove_containers(node)
            pid_file = node.directory / "containerd.pid"
            if pid_file.exists():
                _kill_and_wait(int(pid_file.read_text()))
        self.nodes.clear()

    @staticmethod
    def _remove_containers(node: NodeKubelet) -> None:
        for container_id in node.tasks():
            node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id, check=False)
        deadline = time.monotonic() + 10
        while node.tasks() and time.monotonic() < deadline:
            time.sleep(0.2)
        listed = node.ctr("tasks", "ls", "--quiet", check=False).stdout.split()
        for container_id in listed:
            node.ctr("tasks", "delete", "--force", container_id, check=False)
        for container_id in node.ctr("containers", "ls", "--quiet", check=False).stdout.split():
            node.ctr("containers", "delete", container_id, check=False)


def _kill_and_wait(pid: int, grace: float = 10) -> None:
    """SIGTERM a process that is not our child (containerd), SIGKILL it after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        while process_alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.1)
