"""The lab's stand-in for KubeVirt, so the seed's ``VirtualMachine`` manifest works as written.

``virtualmachines.kubevirt.io`` and ``virtualmachineinstances.kubevirt.io`` are installed as minimal CRDs
(schemas preserve unknown fields; printer columns like KubeVirt's). ``LabKubeVirt`` watches VirtualMachines
and, for one that should run, does what virt-controller and virt-launcher do as far as the network can
tell: a VirtualMachineInstance, and a pod ``virt-launcher-<vm>-<5 chars>`` on a lab node carrying the
template's labels and serving real nginx on port 80 (the seed's VM runs nginx). It reports the VM Running
and Ready through the status subresource; stopping or deleting the VM removes the pod, its processes and its
network namespace. ``migrate`` stands in for a live migration: target pod first, Ready, then the source pod
goes, as KubeVirt orders it.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ironlb.api.informer import Informer
from ironlb.api.kube import ApiError, KubeClient, custom_path

from .workloads import LabKubelet, Pod, ServerCommand

Json = dict[str, Any]
GROUP, VERSION = "kubevirt.io", "v1"
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet (no vowels, no 0/1/3)
RUNNING_STRATEGIES = frozenset({"Always", "RerunOnFailure", "Once"})
HOSTNAME_LABEL = "kubernetes.io/hostname"
WATCH_ROUND_SECONDS = 2  # each watch request ends after this long, so stopping takes at most that


# ------------------------------------------------------------------------------------------------ CRDs
def _crd(kind: str, plural: str, short_names: list[str], columns: list[Json]) -> Json:
    preserve = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "ironlb-lab"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": preserve, "status": preserve},
                        }
                    },
                }
            ],
        },
    }


def _column(name: str, json_path: str, kind: str = "string") -> Json:
    return {"name": name, "type": kind, "jsonPath": json_path}


AGE = _column("Age", ".metadata.creationTimestamp", "date")
READY = _column("Ready", ".status.conditions[?(@.type=='Ready')].status")


def virtual_machine_crd() -> Json:
    """``kubectl get vm`` shows NAME AGE STATUS READY, as with KubeVirt."""
    return _crd(
        "VirtualMachine",
        "virtualmachines",
        ["vm", "vms"],
        [AGE, _column("Status", ".status.printableStatus"), READY],
    )


def virtual_machine_instance_crd() -> Json:
    """``kubectl get vmi`` shows NAME AGE PHASE IP NODENAME READY, as with KubeVirt."""
    return _crd(
        "VirtualMachineInstance",
        "virtualmachineinstances",
        ["vmi", "vmis"],
        [
            AGE,
            _column("Phase", ".status.phase"),
            _column("IP", ".status.interfaces[0].ipAddress"),
            _column("NodeName", ".status.nodeName"),
            READY,
        ],
    )


# ------------------------------------------------------------------------------- decisions (pure)
def should_run(vm: Json) -> bool:
    """KubeVirt's start rule: ``runStrategy`` when set, else ``running`` (absent means stopped)."""
    spec = vm.get("spec") or {}
    if "runStrategy" in spec:
        return spec["runStrategy"] in RUNNING_STRATEGIES
    return spec.get("running") is True


def random_suffix(rng: random.Random | None = None) -> str:
    return "".join((rng or random.SystemRandom()).choice(NAME_ALPHABET) for _ in range(5))


def launcher_name(vm_name: str, suffix: str) -> str:
    """``virt-launcher-<vm>-<suffix>``, the VM's name cut so the pod name stays a 63-char DNS label."""
    prefix = "virt-launcher-"
    return f"{prefix}{vm_name[: 63 - len(prefix) - len(suffix) - 1].rstrip('-.')}-{suffix}"


def template_labels(vm: Json) -> dict[str, str]:
    template = (vm.get("spec") or {}).get("template") or {}
    return {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}


def launcher_labels(vm: Json, vmi_uid: str) -> dict[str, str]:
    """The template's labels (Services select the VM by these) plus the ones virt-controller sets;
    ``kubevirt.io/created-by`` names the owning VMI by uid, as KubeVirt's label does."""
    name = vm["metadata"]["name"]
    return {
        **template_labels(vm),
        "kubevirt.io": "virt-launcher",
        "kubevirt.io/created-by": vmi_uid,
        "kubevirt.io/domain": name,
        "vm.kubevirt.io/name": name,
    }


def node_selector(vm: Json) -> dict[str, str]:
    template_spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {str(k): str(v) for k, v in (template_spec.get("nodeSelector") or {}).items()}


def eligible_nodes(selector: Mapping[str, str], nodes: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Nodes (name -> labels) whose labels, with the kubelet's implicit hostname label, match the
    selector; sorted, so round-robin over them is stable."""
    return sorted(
        name
        for name, labels in nodes.items()
        if all({HOSTNAME_LABEL: name, **labels}.get(key) == value for key, value in selector.items())
    )


def condition(kind: str, status: bool, reason: str = "", message: str = "") -> Json:
    entry: Json = {
        "type": kind,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if reason:
        entry |= {"reason": reason, "message": message}
    return entry


def vm_status(running: bool) -> Json:
    """What virt-controller writes on the VM: Running and Ready, or Stopped with KubeVirt's reason."""
    if running:
        return {
            "created": True,
            "ready": True,
            "printableStatus": "Running",
            "conditions": [condition("Ready", True)],
        }
    return {
        "created": False,
        "ready": False,
        "printableStatus": "Stopped",
        "conditions": [condition("Ready", False, "VMINotExists", "VMI does not exist")],
    }


def vmi_status(pod: Pod, migrated_from: str | None = None) -> Json:
    """The VMI runs where its launcher pod runs, with the pod's address (masquerade binding)."""
    status: Json = {
        "phase": "Running",
        "nodeName": pod.node.role,
        "interfaces": [{"name": "default", "ipAddress": str(pod.v4), "ipAddresses": [str(pod.v4)]}],
        "conditions": [condition("Ready", True)],
    }
    if migrated_from is not None:
        status["migrationState"] = {
            "sourceNode": migrated_from,
            "targetNode": pod.node.role,
            "targetPod": pod.name,
            "completed": True,
            "endTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    return status


# ------------------------------------------------------------------------------------------- nginx
def welcome_page(vm: str, node: str, pod: str) -> str:
    """nginx's default page, plus which VM, node and pod answered (tests and the demo read it)."""
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n"
        "<h1>Welcome to nginx!</h1>\n"
        "<p>If you see this page, the nginx web server is successfully installed and working.</p>\n"
        f"<p>Served by virtual machine {vm} on node {node} (pod {pod}).</p>\n"
        "<p><em>Thank you for using nginx.</em></p>\n</body>\n</html>\n"
    )


def _quoted(path: Path) -> str:
    """An nginx string: double-quoted, so a directory with spaces or ';' stays one argument."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def nginx_config(root: Path, port: int, user: str | None = None) -> str:
    """A complete nginx.conf whose every file (pid, logs, temp paths, pages) lives under ``root``, so pods
    never share or touch the host's /var/lib/nginx or /run; ``user`` is set when nginx starts as root."""
    temp = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    lines = [
        *([f"user {user};"] if user else []),
        "worker_processes 1;",
        f"pid {_quoted(root / 'nginx.pid')};",
        f"error_log {_quoted(root / 'error.log')} notice;",
        "events { worker_connections 256; }",
        "http {",
        "  default_type text/html;",
        f"  access_log {_quoted(root / 'access.log')};",
        *(f"  {kind}_temp_path {_quoted(root / 'temp' / kind)};" for kind in temp),
        "  server {",
        f"    listen {port} default_server;",
        "    server_name _;",
        f"    root {_quoted(root / 'html')};",
        "    index index.html;",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def nginx_binary() -> str:
    found = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if found is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
    return found


def nginx_server(vm: str, node: str, pod: str) -> ServerCommand:
    """virt-launcher's stand-in: nginx in the foreground (``daemon off``), configured in the pod's dir."""

    def prepare(root: Path, port: int) -> list[str]:
        (root / "html").mkdir(parents=True, exist_ok=True)
        (root / "temp").mkdir(exist_ok=True)
        (root / "html" / "index.html").write_text(welcome_page(vm, node, pod))
        user = "root" if os.geteuid() == 0 else None  # workers must read the pod's directory (mode 0700)
        (root / "nginx.conf").write_text(nginx_config(root, port, user))
        return [
            nginx_binary(),
            "-p",
            f"{root}/",
            "-c",
            f"{root}/nginx.conf",
            "-e",
            f"{root}/error.log",
            "-g",
            "daemon off;",
        ]

    return prepare


# ------------------------------------------------------------------------------------------ the stand-in
@dataclass
class Launcher:
    pod: Pod
    vmi_uid: str


@dataclass
class LabKubeVirt:
    """Turns VirtualMachines into running launcher pods on the lab nodes ``nodes`` (default: all)."""

    kubelet: LabKubelet
    nodes: Sequence[int] | None = None
    launchers: dict[tuple[str, str], Launcher] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kube: KubeClient = self.kubelet.kube
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._turn = 0
        self.errors: list[str] = []

    # ------------------------------------------------------------------------------------- lifecycle
    def install(self) -> None:
        """Apply the two CRDs and wait until the API server serves them."""
        for crd in (virtual_machine_crd(), virtual_machine_instance_crd()):
            self.kube.apply(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}",
                crd,
                "ironlb-lab",
            )
        deadline = time.monotonic() + 30
        for plural in ("virtualmachines", "virtualmachineinstances"):
            while True:
                try:
                    self.kube.get(f"/apis/{GROUP}/{VERSION}/{plural}")
                    break
                except ApiError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def start(self) -> LabKubeVirt:
        self.install()
        # each watch request ends after WATCH_ROUND_SECONDS, so stopping never waits on an open stream (which
        # would also hold up the API server's shutdown); a re-list delivers VMs deleted meanwhile as DELETED
        self._informer = Informer(
            self.kube,
            f"/apis/{GROUP}/{VERSION}/virtualmachines",
            self._handle,
            watch_seconds=(WATCH_ROUND_SECONDS, WATCH_ROUND_SECONDS),
        ).start(self._stop)
        return self

    def stop(self) -> None:
        """Stop watching and remove every launcher pod this stand-in started (objects and processes)."""
        self._stop.set()
        if getattr(self, "_informer", None) is not None:
            self._informer.join(timeout=WATCH_ROUND_SECONDS + 5)
        with self._lock:
            for launcher in list(self.launchers.values()):
                self.kubelet.delete_pod(launcher.pod)
            self.launchers.clear()

    def __enter__(self) -> LabKubeVirt:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------- watching
    def _handle(self, kind: str, vm: Json) -> None:
        try:
            self.reconcile(vm, deleted=kind == "DELETED")
        except (ApiError, OSError, RuntimeError) as error:  # keep watching; tests read ``errors``
            self.errors.append(f"{vm['metadata'].get('name')}: {error}")
            print(f"lab kubevirt: {error}", file=sys.stderr)

    def reconcile(self, vm: Json, deleted: bool = False) -> None:
        """Start the VM's launcher when it should run and has none; remove it when it should not."""
        metadata = vm["metadata"]
        key = (metadata["namespace"], metadata["name"])
        with self._lock:
            if self._stop.is_set():
                return
            wanted = not deleted and should_run(vm)
            if wanted and key not in self.launchers:
                self._start(vm)
                self._vm_status(key, running=True)
            elif not wanted and key in self.launchers:
                self._remove(key)
                if not deleted:
                    self._vm_status(key, running=False)

    # ------------------------------------------------------------------------------------------ actions
    def _lab_nodes(self) -> dict[str, int]:
        numbers = self.nodes or range(1, self.kubelet.lab.nodes + 1)
        return {self.kubelet.lab.node(n).role: n for n in numbers}

    def _choose_node(self, vm: Json) -> int:
        """Round-robin over the lab nodes the VM's nodeSelector accepts (labels of the Node objects)."""
        numbers = self._lab_nodes()
        labels = {
            node["metadata"]["name"]: node["metadata"].get("labels") or {}
            for node in self.kube.get("/api/v1/nodes").get("items", [])
        }
        eligible = eligible_nodes(node_selector(vm), {name: labels.get(name, {}) for name in numbers})
        if not eligible:
            raise RuntimeError(f"no lab node matches the nodeSelector {node_selector(vm)}")
        self._turn += 1
        return numbers[eligible[(self._turn - 1) % len(eligible)]]

    def _vmi_path(self, key: tuple[str, str], sub: str = "") -> str:
        return custom_path(GROUP, VERSION, key[0], "virtualmachineinstances", key[1], sub)

    def _start(self, vm: Json) -> Launcher:
        metadata = vm["metadata"]
        key = (metadata["namespace"], metadata["name"])
        vmi = self._create_vmi(vm)
        pod = self._run_launcher(vm, vmi["metadata"]["uid"], self._choose_node(vm))
        self.kube.merge_patch(self._vmi_path(key, "status"), {"status": vmi_status(pod)})
        launcher = Launcher(pod, vmi["metadata"]["uid"])
        self.launchers[key] = launcher
        return launcher

    def _create_vmi(self, vm: Json) -> Json:
        """The VMI, owned by the VM (the garbage collector removes it with the VM, as in KubeVirt)."""
        metadata = vm["metadata"]
        template = (vm.get("spec") or {}).get("template") or {}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "VirtualMachineInstance",
            "metadata": {
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "labels": template_labels(vm),
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "VirtualMachine",
                        "name": metadata["name"],
                        "uid": metadata["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
        path = custom_path(GROUP, VERSION, metadata["namespace"], "virtualmachineinstances")
        try:
            return self.kube.request("POST", path, body)
        except ApiError as error:
            if error.status != 409:  # left over from an earlier run of the VM: take it over
                raise
            return self.kube.get(f"{path}/{metadata['name']}")

    def _run_launcher(self, vm: Json, vmi_uid: str, node_number: int) -> Pod:
        name, namespace = vm["metadata"]["name"], vm["metadata"]["namespace"]
        pod_name = launcher_name(name, random_suffix())
        return self.kubelet.run_pod(
            node_number,
            pod_name,
            namespace,
            launcher_labels(vm, vmi_uid),
            server=nginx_server(name, self.kubelet.lab.node(node_number).role, pod_name),
            container="compute",
            image="lab/virt-launcher-nginx",
            annotations={"kubevirt.io/domain": name},
        )

    def _remove(self, key: tuple[str, str]) -> None:
        launcher = self.launchers.pop(key)
        self.kubelet.delete_pod(launcher.pod)
        try:
            self.kube.request("DELETE", self._vmi_path(key))
        except ApiError as error:
            if error.status != 404:  # the garbage collector may have been first
                raise

    def _vm_status(self, key: tuple[str, str], running: bool) -> None:
        try:
            self.kube.merge_patch(
                custom_path(GROUP, VERSION, key[0], "virtualmachines", key[1], "status"),
                {"status": vm_status(running)},
            )
        except ApiError as error:
            if error.status != 404:  # deleted meanwhile: nothing to report on
                raise

    # ----------------------------------------------------------------------------------------- migration
    def migrate(self, namespace: str, vm: str, target_node_number: int) -> Pod:
        """Live migration's stand-in: the target pod starts and becomes Ready, the VMI moves, and only then
        is the source pod deleted (KubeVirt's order, so the VM's endpoint is never missing)."""
        key = (namespace, vm)
        with self._lock:
            launcher = self.launchers.get(key)
            if launcher is None:
                raise RuntimeError(f"virtual machine {namespace}/{vm} is not running")
            source = launcher.pod
            if source.node is self.kubelet.lab.node(target_node_number):
                raise RuntimeError(f"{namespace}/{vm} already runs on {source.node.role}")
            body = self.kube.get(custom_path(GROUP, VERSION, namespace, "virtualmachines", vm))
            target = self._run_launcher(body, launcher.vmi_uid, target_node_number)
            self.kube.merge_patch(
                self._vmi_path(key, "status"), {"status": vmi_status(target, source.node.role)}
            )
            self.launchers[key] = Launcher(target, launcher.vmi_uid)
            self.kubelet.delete_pod(source)
            return target

    def pod_of(self, namespace: str, vm: str) -> Pod | None:
        with self._lock:
            launcher = self.launchers.get((namespace, vm))
            return launcher.pod if launcher else None
