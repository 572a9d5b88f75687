"""The lab's kubelet for IronLB's own pods: runs what the operator's Deployment and DaemonSet ask for.

Pods the real scheduler (or the DaemonSet controller) binds to a lab node are started as processes: a
``hostNetwork`` pod in its node's network namespace, any other pod in a network namespace of its own whose
only way out is the API bridge (the operator needs nothing else). The process is the local entry point the
pod's image stands for (``IMAGES``), with the pod spec's command/args and env (``fieldRef`` resolved), its
configMap/secret/emptyDir volumes written to a directory per pod (paths in args and env mapped to it, since
the lab shares the host's file system), and the pod's ServiceAccount as its credentials (a token from the
TokenRequest API: RBAC applies as in a cluster), and its securityContext applied with ``setpriv``
(capabilities, user, no new privileges). The readiness probe (httpGet) is checked inside the pod's
network namespace and the pod's status written back (Running, Ready, restarts). A pod being deleted gets
SIGTERM, then SIGKILL after its grace period, and is then removed, as a kubelet does; a process that exits
is restarted after ``restart_delay`` (kubelet's first CrashLoopBackOff step is 10 s). With
``cpu_limit_from_requests``, each pod's processes run in a cpu cgroup of their own whose CFS quota is the
container's CPU request (``cpulimit``): a pod gets no more CPU than a cluster reserves for it.

With ``real_images``, each pod runs instead from the image its spec names (hack/build-images.sh builds them),
under podman with runc (``containers``): the image's contents and entry point, its securityContext applied by
the container runtime, volumes at their mountPath (the ServiceAccount's too: in-cluster configuration).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ironlb.api.informer import Informer
from ironlb.api.kube import ApiError, KubeClient

from . import containers
from .apibridge import ApiBridge
from .controlplane import ControlPlane
from .cpulimit import CpuCgroups, quota_us
from .network import Host, LabNetwork, ip

log = logging.getLogger("ironlb_lab.podrunner")
BIN = Path(sys.executable).parent
# image repository -> the image's ENTRYPOINT, installed locally (operator/Dockerfile, speaker/Dockerfile)
IMAGES = {
    "quay.io/ironlb/speaker": [str(BIN / "ironlb-speaker")],
    "quay.io/ironlb/operator": [str(BIN / "ironlb-operator")],
}
Json = dict[str, Any]


def signal_name(number: int) -> str:
    return signal.Signals(number).name.removeprefix("SIG")


def entry_point(image: str) -> list[str] | None:
    repository = image.rsplit("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    return IMAGES.get(repository)


def map_paths(value: str, mounts: dict[str, Path]) -> str:
    """Rewrite a path under a volume's mountPath to the directory holding that volume in the lab."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        for prefix in ("", "="):
            marker = prefix + mount_path
            position = value.find(marker)
            if position != -1 and (position == 0 or prefix):
                return (
                    value[: position + len(prefix)]
                    + str(mounts[mount_path])
                    + value[position + len(marker) :]
                )
    return value


def field_value(pod: Json, path: str, host_ip: str) -> str:
    fields = {
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"].get("uid", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.hostIP": host_ip,
        "status.podIP": host_ip,
    }
    return str(fields[path])


def _traversable(directory: Path) -> None:
    """Let any user pass through the directories above a pod's (search only, never listing): temporary
    directories are created 0700 for root, and a non-root container must reach its own files."""
    for parent in directory.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def security_context(spec: Json, container: Json) -> tuple[list[str], int]:
    """The container's securityContext as ``setpriv`` applies it to the process: the capability bounding
    set (``drop: [ALL]`` and what ``add`` gives back: a root process gets exactly those), no new
    privileges, the user (``runAsNonRoot`` without ``runAsUser``: the images' USER, 65532). Returns the
    command prefix and the uid. (readOnlyRootFilesystem is not emulated: processes share the host's files.)
    """
    pod_context, context = spec.get("securityContext") or {}, container.get("securityContext") or {}
    capabilities = context.get("capabilities") or {}
    prefix = ["setpriv"]
    if "ALL" in (capabilities.get("drop") or []):
        added = "".join(f",+{name.lower()}" for name in capabilities.get("add") or [])
        prefix += ["--bounding-set", f"-all{added}", "--inh-caps", "-all"]
    if context.get("allowPrivilegeEscalation") is False:
        prefix.append("--no-new-privs")
    uid = context.get("runAsUser", pod_context.get("runAsUser"))
    if uid is None and (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
        uid = 65532
    if uid:
        prefix += [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    return (prefix if len(prefix) > 1 else []), int(uid or 0)


@dataclass
class RunningPod:
    key: str
    uid: str
    host: Host
    node: Host
    directory: Path
    argv: list[str]
    env: dict[str, str]
    probe: Json | None  # readiness
    liveness: Json | None
    grace: float
    container: str
    configmaps: dict[Path, str]  # volume directory -> ConfigMap it follows
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    ready: bool = False
    exited_at: float | None = None
    deleting: bool = False
    reported: str = ""
    started_at: float = 0.0
    next_liveness: float = 0.0
    liveness_failures: int = 0
    cgroup: Path | None = None  # the cpu cgroup its processes run in (``cpu_limit_from_requests``)
    container_name: str | None = None  # the podman container (``real_images``); the process is its client


@dataclass
class LabPodRunner:
    lab: LabNetwork
    plane: ControlPlane
    workdir: Path
    bridge: ApiBridge
    namespaces: frozenset[str] = frozenset()  # run only pods of these namespaces (labs may share a plane)
    restart_delay: float = 10.0
    pods: dict[str, RunningPod] = field(default_factory=dict)
    cpu_limit_from_requests: bool = False  # CFS quota = the container's CPU request (a cgroup per pod)
    pod_network: bool = False  # pods off the host network get a LAN address of their own (their podIP)
    real_images: bool = False  # run each pod from its image with podman, not the local entry point

    def __post_init__(self) -> None:
        self.kube = KubeClient.from_environment(str(self.plane.kubeconfig))
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self._isolated = 0
        self._bridges: dict[str, subprocess.Popen[bytes]] = {}  # isolated namespace -> its API bridge
        self.cgroups = CpuCgroups() if self.cpu_limit_from_requests else None

    # ---------------------------------------------------------------------------------------- lifecycle
    def start(self) -> LabPodRunner:
        nodes = {role for role in self.lab.hosts if role.startswith("node")}
        Informer(self.kube, "/api/v1/pods", lambda kind, pod: self._on_pod(kind, pod, nodes)).start(
            self.stop_event
        )
        threading.Thread(target=self._supervise, daemon=True, name="podrunner-loop").start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        with self.lock:
            for pod in self.pods.values():
                self._terminate(pod, grace=5)
                self._release(pod)
        if self.cgroups is not None:
            self.cgroups.close()

    def process_of(self, node_role: str, prefix: str) -> RunningPod | None:
        """The running pod named ``prefix``... on a node (e.g. the speaker of node2)."""
        with self.lock:
            for pod in self.pods.values():
                name = pod.key.split("/", 1)[1]
                if pod.node.role == node_role and name.startswith(prefix) and not pod.deleting:
                    return pod
        return None

    def process_of_any(self, prefix: str) -> RunningPod | None:
        """A running pod whose namespace/name starts with ``prefix``, on any node."""
        with self.lock:
            return next((p for p in self.pods.values() if p.key.startswith(prefix) and not p.deleting), None)

    def signal(self, pod: RunningPod, number: int) -> None:
        """Send a signal to a pod's container (a crash: SIGKILL; a graceful stop: SIGTERM)."""
        if pod.container_name is not None:
            containers.kill(pod.container_name, signal_name(number))
        elif pod.process is not None:
            os.killpg(pod.process.pid, number)

    def restart_now(self, pod: RunningPod) -> None:
        """Skip the back-off of an exited container (as deleting the pod would, without a new pod)."""
        if pod.exited_at is not None:
            pod.exited_at = float("-inf")

    # ------------------------------------------------------------------------------------------- watch
    def _on_pod(self, kind: str, pod: Json, nodes: set[str]) -> None:
        metadata, spec = pod["metadata"], pod["spec"]
        key = f"{metadata['namespace']}/{metadata['name']}"
        if spec.get("nodeName") not in nodes or metadata["namespace"] not in self.namespaces:
            return
        pod_containers = spec.get("containers") or []
        if len(pod_containers) != 1 or entry_point(pod_containers[0].get("image", "")) is None:
            return  # not one of IronLB's images: another stand-in (workloads.py) runs it
        with self.lock:
            running = self.pods.get(key)
            if running is not None and running.uid != metadata.get("uid"):
                self._terminate(running, grace=0)
                self._release(running)
                self.pods.pop(key)
                running = None
            if kind == "DELETED":
                if running is not None:
                    self._terminate(running, grace=0)
                    self._release(running)
                    self.pods.pop(key)
                return
            if metadata.get("deletionTimestamp"):
                if running is not None and not running.deleting:
                    running.deleting = True
                    threading.Thread(target=self._delete, args=(running, pod), daemon=True).start()
                elif running is None:
                    self._finalize(pod)
                return
            if running is None:
                try:
                    self.pods[key] = self._start(pod)
                except (
                    ApiError,
                    OSError,
                    KeyError,
                    subprocess.CalledProcessError,
                    containers.ContainerConfigError,
                ) as error:
                    log.error("cannot run pod %s: %s", key, error)

    # ------------------------------------------------------------------------------------------- start
    def _start(self, pod: Json) -> RunningPod:
        metadata, spec = pod["metadata"], pod["spec"]
        key = f"{metadata['namespace']}/{metadata['name']}"
        node = self.lab.hosts[spec["nodeName"]]
        container = spec["containers"][0]
        directory = self.workdir / "pods" / f"{metadata['namespace']}_{metadata['name']}"
        mounts, configmaps = self._volumes(pod, container, directory)
        if self.real_images:
            return self._start_container(pod, directory, mounts, configmaps)
        image_entry = entry_point(container["image"]) or []
        argv = [
            map_paths(a, mounts)
            for a in (container.get("command") or image_entry) + container.get("args", [])
        ]
        env = {"PATH": os.environ["PATH"], "HOME": str(directory)}
        env.update({key: map_paths(value, mounts) for key, value in self._env(pod, container, node).items()})
        env["KUBECONFIG"] = str(self._kubeconfig(pod, directory))
        prefix, uid = security_context(spec, container)
        if uid:  # the container's user reads its own files (kubeconfig, volumes)
            subprocess.run(["chown", "-R", f"{uid}:{uid}", str(directory)], check=True)
            _traversable(directory)
        argv = prefix + argv
        host = node if spec.get("hostNetwork") else self._isolated_namespace(node)
        running = RunningPod(
            key=key,
            uid=metadata.get("uid", ""),
            host=host,
            node=node,
            directory=directory,
            argv=argv,
            env=env,
            probe=container.get("readinessProbe"),
            liveness=container.get("livenessProbe"),
            grace=float(spec.get("terminationGracePeriodSeconds", 30)),
            container=container["name"],
            configmaps=configmaps,
        )
        cpu = ((container.get("resources") or {}).get("requests") or {}).get("cpu")
        if self.cgroups is not None and cpu is not None:
            running.cgroup = self.cgroups.limit(key, str(cpu))
        self._launch(running)
        return running

    def _start_container(
        self, pod: Json, directory: Path, mounts: dict[str, Path], configmaps: dict[Path, str]
    ) -> RunningPod:
        """The pod from its image, its volumes (the ServiceAccount's projected one too) at their mountPath."""
        metadata, spec = pod["metadata"], pod["spec"]
        container = spec["containers"][0]
        node = self.lab.hosts[spec["nodeName"]]
        image = container["image"]
        if not containers.image_exists(image):  # a kubelet's ErrImageNeverPull: no registry here
            raise containers.ContainerConfigError(f"image {image} is not built (hack/build-images.sh)")
        read_only = {m["mountPath"]: bool(m.get("readOnly")) for m in container.get("volumeMounts") or []}
        volumes = [containers.Mount(path, target, read_only[target]) for target, path in mounts.items()]
        env = {
            # the API server, as the in-cluster configuration finds it (the API bridge on the pod's loopback)
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.plane.port),
        }
        env.update(self._env(pod, container, node))
        _, uid = security_context(spec, container)
        if uid:  # the container's user reads its own files (token, volumes)
            subprocess.run(["chown", "-R", f"{uid}:{uid}", str(directory)], check=True)
            _traversable(directory)
        host = node if spec.get("hostNetwork") else self._isolated_namespace(node)
        name = f"ironlb-lab-{metadata.get('uid', metadata['name'])}"
        argv = containers.run_argv(
            name=name,
            image=image,
            netns=host.namespace,
            spec=spec,
            container=container,
            mounts=volumes,
            env=env,
            image_user_name=containers.image_user(image),
        )
        running = RunningPod(
            key=f"{metadata['namespace']}/{metadata['name']}",
            uid=metadata.get("uid", ""),
            host=host,
            node=node,
            directory=directory,
            argv=argv,
            env=dict(os.environ),
            probe=container.get("readinessProbe"),
            liveness=container.get("livenessProbe"),
            grace=float(spec.get("terminationGracePeriodSeconds", 30)),
            container=container["name"],
            configmaps=configmaps,
            container_name=name,
        )
        self._launch(running)
        return running

    def _env(self, pod: Json, container: Json, node: Host) -> dict[str, str]:
        """The container's env: values, and the downward API's fieldRef and resourceFieldRef resolved."""
        env: dict[str, str] = {}
        for variable in container.get("env") or []:
            source = variable.get("valueFrom") or {}
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            elif "fieldRef" in source:
                env[variable["name"]] = field_value(pod, source["fieldRef"]["fieldPath"], str(node.v4))
            elif "resourceFieldRef" in source:
                env[variable["name"]] = self._resource_value(container, source["resourceFieldRef"])
        return env

    def _resource_value(self, container: Json, ref: Json) -> str:
        """The downward API's ``resourceFieldRef`` for CPU, in units of its divisor (rounded up, as the
        kubelet does). A limit not set is the node's capacity, except where this runner makes the request
        the limit (``cpu_limit_from_requests``)."""
        resource = str(ref["resource"])
        kind, _, name = resource.partition(".")
        if name != "cpu":
            raise ValueError(f"the lab resolves only CPU resourceFieldRefs, not {resource}")
        resources = container.get("resources") or {}
        value = (resources.get(kind) or {}).get("cpu")
        if kind == "limits" and self.cpu_limit_from_requests:
            value = (resources.get("requests") or {}).get("cpu") or value
        millicores = quota_us(str(value)) // 100 if value is not None else (os.cpu_count() or 1) * 1000
        divisor = str(ref.get("divisor", "1"))
        per_unit = 1 if divisor == "1m" else 1000
        return str(-(-millicores // per_unit))

    def _launch(self, pod: RunningPod) -> None:
        if pod.container_name is not None:
            # podman itself runs in the host's namespace (--network names the pod's): runc refuses a pod's
            # sysctls when the namespace it joins is the one it runs in
            pod.process = self.lab.spawn_here(pod.argv, pod.directory / "container.log", env=pod.env)
        else:
            pod.process = self.lab.spawn(pod.host, pod.argv, pod.directory / "container.log", env=pod.env)
        if pod.cgroup is not None:  # `ip netns exec` and setpriv exec the entry point: one PID throughout
            try:
                CpuCgroups.attach(pod.cgroup, pod.process.pid)
            except OSError as error:  # it exited already: reported, and restarted, as any exited container
                log.warning(
                    "pod %s: cannot move pid %d into %s: %s", pod.key, pod.process.pid, pod.cgroup, error
                )
        pod.exited_at, pod.ready = None, False
        pod.started_at = time.monotonic()
        pod.next_liveness = pod.started_at + float((pod.liveness or {}).get("initialDelaySeconds", 0))
        pod.liveness_failures = 0
        log.info("started pod %s on %s: pid %d", pod.key, pod.node.role, pod.process.pid)

    def _volumes(
        self, pod: Json, container: Json, directory: Path
    ) -> tuple[dict[str, Path], dict[Path, str]]:
        """Write each mounted volume to directory/volumes/NAME; returns the mount and ConfigMap maps."""
        namespace = pod["metadata"]["namespace"]
        sources = {volume["name"]: volume for volume in pod["spec"].get("volumes") or []}
        mounts: dict[str, Path] = {}
        configmaps: dict[Path, str] = {}
        for mount in container.get("volumeMounts") or []:
            volume = sources[mount["name"]]
            target = directory / "volumes" / mount["name"]
            target.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                self._write_configmap(namespace, volume["configMap"]["name"], target)
                configmaps[target] = volume["configMap"]["name"]
            elif "secret" in volume:
                secret = self.kube.get(
                    f"/api/v1/namespaces/{namespace}/secrets/{volume['secret']['secretName']}"
                )
                for name, value in (secret.get("data") or {}).items():
                    path = target / name
                    path.write_bytes(base64.b64decode(value))
                    path.chmod(0o400)
            elif "projected" in volume:
                self._write_projected(pod, volume["projected"], target)
            mounts[mount["mountPath"]] = target
        return mounts, configmaps

    def _write_projected(self, pod: Json, projected: Json, target: Path) -> None:
        """A projected volume, such as the ServiceAccount admission adds to every pod (kube-api-access-*):
        a bound token, the cluster's CA (ConfigMap kube-root-ca.crt) and the pod's namespace."""
        namespace = pod["metadata"]["namespace"]
        for source in projected.get("sources") or []:
            if "serviceAccountToken" in source:
                (target / source["serviceAccountToken"]["path"]).write_text(self._token(pod))
            elif "configMap" in source:
                try:
                    data = (
                        self.kube.get(
                            f"/api/v1/namespaces/{namespace}/configmaps/{source['configMap']['name']}"
                        ).get("data")
                        or {}
                    )
                except ApiError as error:
                    if error.status != 404:
                        raise
                    data = {}
                for item in source["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                    if item["key"] in data:
                        (target / item["path"]).write_text(data[item["key"]])
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items") or []:
                    if "fieldRef" in item:
                        value = field_value(pod, item["fieldRef"]["fieldPath"], "")
                        (target / item["path"]).write_text(value)

    def _write_configmap(self, namespace: str, name: str, target: Path) -> None:
        try:
            configmap = self.kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        except ApiError as error:
            if error.status == 404:
                return
            raise
        for file_name, text in (configmap.get("data") or {}).items():
            path = target / file_name
            if not path.exists() or path.read_text() != text:
                temporary = target / f".{file_name}.tmp"
                temporary.write_text(text)
                temporary.replace(path)  # atomic, like the kubelet's symlink swap

    def _token(self, pod: Json) -> str:
        """A token of the pod's ServiceAccount, bound to the pod, for 1 hour (TokenRequest)."""
        namespace = pod["metadata"]["namespace"]
        account = pod["spec"].get("serviceAccountName", "default")
        token: str = self.kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": 3600,
                    "boundObjectRef": {
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "name": pod["metadata"]["name"],
                        "uid": pod["metadata"]["uid"],
                    },
                },
            },
        )["status"]["token"]
        return token

    def _kubeconfig(self, pod: Json, directory: Path) -> Path:
        """A kubeconfig holding a token of the pod's ServiceAccount."""
        namespace = pod["metadata"]["namespace"]
        account = pod["spec"].get("serviceAccountName", "default")
        token = self._token(pod)
        admin = json.loads(self.plane.kubectl("config", "view", "--raw", "-o", "json").stdout)
        cluster = admin["clusters"][0]["cluster"]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lab", "cluster": cluster}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [
                {"name": "lab", "context": {"cluster": "lab", "user": account, "namespace": namespace}}
            ],
            "current-context": "lab",
        }
        path = directory / "kubeconfig"
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def _isolated_namespace(self, node: Host) -> Host:
        """A pod network namespace whose only connection is the API bridge on its loopback (the bridge's
        process is remembered with the namespace and ended with it); with ``pod_network``, also a LAN
        address of its own. Without one, the pod's IP is shown as its node's."""
        self._isolated += 1
        role = f"ipod{self._isolated}"
        namespace = self.lab._namespace(role)
        if self.pod_network:
            host = self.lab.pod_network(role, namespace, self._isolated)
        else:
            host = Host(role, namespace, node.v4, node.v6)
        self.lab.hosts[role] = host
        self._bridges[namespace] = self.bridge.forward_into(host)
        return host

    # ------------------------------------------------------------------------------------- supervision
    def _supervise(self) -> None:
        """Every second: probe readiness and liveness, refresh configMap volumes, restart exited containers,
        report. Nothing that goes wrong (an API server that is down or frozen) ends this loop."""
        next_lease = 0.0
        while not self.stop_event.wait(1.0):
            if time.monotonic() >= next_lease:
                next_lease = time.monotonic() + 10
                self._renew_node_leases()
            with self.lock:
                pods = [pod for pod in self.pods.values() if not pod.deleting]
            for pod in pods:
                try:
                    self._check(pod)
                except Exception as error:  # a kubelet keeps going whatever one pod does
                    log.warning("pod %s: %s", pod.key, error)

    def _renew_node_leases(self) -> None:
        """Node heartbeats, as kubelets send them, so the node lifecycle controller keeps the nodes Ready."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        for role in [role for role in self.lab.hosts if role.startswith("node")]:
            try:
                self.kube.apply(
                    f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{role}",
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": role, "namespace": "kube-node-lease"},
                        "spec": {"holderIdentity": role, "leaseDurationSeconds": 40, "renewTime": now},
                    },
                )
            except ApiError as error:
                log.warning("renewing the lease of %s: %s", role, error)

    def _check(self, pod: RunningPod) -> None:
        assert pod.process is not None
        namespace = pod.key.split("/", 1)[0]
        for directory, configmap in pod.configmaps.items():  # follow the ConfigMaps, as the kubelet does
            self._write_configmap(namespace, configmap, directory)
        if pod.process.poll() is not None:
            if pod.exited_at is None:
                pod.exited_at, pod.ready = time.monotonic(), False
                log.info("pod %s exited with %s", pod.key, pod.process.returncode)
            elif time.monotonic() - pod.exited_at >= self.restart_delay:
                with self.lock:  # not once the lab stops or the pod is being deleted
                    if self.stop_event.is_set() or pod.deleting or self.pods.get(pod.key) is not pod:
                        return
                    pod.restarts += 1
                    self._launch(pod)
        else:
            pod.ready = self._probe(pod.host, pod.probe)
            self._check_liveness(pod)
        self._report(pod)

    def _check_liveness(self, pod: RunningPod) -> None:
        """The livenessProbe as a kubelet runs it: every periodSeconds after initialDelaySeconds; after
        failureThreshold failures in a row the container is killed (then restarted as any exited one)."""
        probe, now = pod.liveness, time.monotonic()
        if probe is None or now < pod.next_liveness or pod.process is None:
            return
        pod.next_liveness = now + float(probe.get("periodSeconds", 10))
        if self._probe(pod.host, probe):
            pod.liveness_failures = 0
            return
        pod.liveness_failures += 1
        if pod.liveness_failures >= int(probe.get("failureThreshold", 3)):
            log.warning(
                "pod %s failed its liveness probe %d times: restarting it", pod.key, pod.liveness_failures
            )
            self._terminate(pod, pod.grace)

    @staticmethod
    def _probe(host: Host, probe: Json | None) -> bool:
        get = (probe or {}).get("httpGet")
        if get is None:
            return True
        url = f"http://127.0.0.1:{get['port']}{get.get('path', '/')}"
        seconds = str(probe.get("timeoutSeconds", 1)) if probe else "1"
        result = host.run("curl", "-fsS", "-m", seconds, "-o", "/dev/null", url, timeout=10)
        return result.returncode == 0

    def _report(self, pod: RunningPod) -> None:
        running = pod.process is not None and pod.process.poll() is None
        summary = f"{running}/{pod.ready}/{pod.restarts}"
        if summary == pod.reported:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ready = "True" if pod.ready else "False"
        state: Json = (
            {"running": {"startedAt": now}}
            if running
            else {"terminated": {"exitCode": pod.process.returncode if pod.process else 0, "finishedAt": now}}
        )
        namespace, name = pod.key.split("/", 1)
        self.kube.merge_patch(
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {
                "status": {
                    "phase": "Running",
                    "hostIP": str(pod.node.v4),
                    "podIP": str(pod.host.v4),
                    "podIPs": [{"ip": str(pod.host.v4)}],
                    "startTime": now,
                    "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                        {"type": "Ready", "status": ready, "lastTransitionTime": now},
                    ],
                    "containerStatuses": [
                        {
                            "name": pod.container,
                            "ready": pod.ready,
                            "started": running,
                            "restartCount": pod.restarts,
                            "image": "",
                            "imageID": "",
                            "state": state,
                        }
                    ],
                }
            },
        )
        pod.reported = summary

    # ---------------------------------------------------------------------------------------- deletion
    def _terminate(self, pod: RunningPod, grace: float) -> None:
        process = pod.process
        if process is None or process.poll() is not None:
            return
        if pod.container_name is not None:  # SIGTERM, SIGKILL after the grace period; then its client ends
            containers.stop(pod.container_name, grace)
            try:
                process.wait(timeout=15)
                return
            except subprocess.TimeoutExpired:
                containers.remove(pod.container_name)
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()

    def _delete(self, pod: RunningPod, body: Json) -> None:
        self._terminate(pod, pod.grace)
        self._finalize(body)
        with self.lock:
            if self.pods.get(pod.key) is pod:
                self.pods.pop(pod.key)
        self._release(pod)

    def _release(self, pod: RunningPod) -> None:
        """What a terminated pod leaves behind: its container, its network namespace (isolated pods) and its
        cpu cgroup."""
        if pod.container_name is not None:
            containers.remove(pod.container_name)
        self._remove_namespace(pod)
        if pod.cgroup is not None and self.cgroups is not None:
            self.cgroups.remove(pod.cgroup)

    def _remove_namespace(self, pod: RunningPod) -> None:
        """An isolated pod's namespace goes with its bridge process (a live process would keep it)."""
        if pod.host is pod.node:
            return
        bridge = self._bridges.pop(pod.host.namespace, None)
        if bridge is not None and bridge.poll() is None:
            os.killpg(bridge.pid, 15)
            bridge.wait(timeout=5)
        ip("netns", "delete", pod.host.namespace, check=False)
        self.lab.hosts.pop(pod.host.role, None)

    def _finalize(self, body: Json) -> None:
        """Tell the API server the pod's containers are gone (what lets a graceful delete complete)."""
        metadata = body["metadata"]
        try:
            self.kube.request(
                "DELETE",
                f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}",
                {
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": metadata["uid"]},
                },
            )
        except ApiError as error:
            if error.status not in (404, 409):
                raise
