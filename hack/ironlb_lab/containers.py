"""Run a pod's container from its real image with podman (runc), as a kubelet's container runtime would.

The pod runner's way (labs with real kubelets use ``kubelets``; the others, the fault and chaos labs among
them, keep the pod runner): it starts each of IronLB's pods from the image its spec names, built by
hack/build-images.sh, inside the pod's network namespace, with what the container's spec asks for and
nothing more:

- securityContext: capabilities (``drop``/``add``), ``allowPrivilegeEscalation: false``, ``runAsUser``,
  ``runAsNonRoot`` (refused, as a kubelet refuses it, when the image would run as root),
  ``readOnlyRootFilesystem`` (no tmpfs added: only the pod's volumes are writable), RuntimeDefault seccomp;
- the pod's volumes at their ``mountPath`` (``readOnly`` honoured), among them the projected
  ``kube-api-access-*`` volume the API server adds (a bound token, the CA, the namespace), env,
  command/args, and ``KUBERNETES_SERVICE_HOST``/``PORT`` naming the API server: the components use their
  in-cluster configuration.

Probes, restarts and deletion stay with the pod runner; this module only builds the ``podman`` argv and
stops, kills and removes containers by name.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]
HACK = Path(__file__).resolve().parents[1]
PODMAN = ["podman", "--runtime", "runc"]  # crun cannot run here (cgroups v1 in hybrid mode)
# without explicit limits podman's setrlimit is refused in these machines' containers
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


class ContainerConfigError(Exception):
    """What a kubelet reports as CreateContainerConfigError: the spec cannot be honoured with this image."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


def build_images() -> dict[str, int]:
    """Build (or reuse, cached) both images with hack/build-images.sh; their sizes in bytes by name."""
    result = subprocess.run(
        ["bash", str(HACK / "build-images.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"hack/build-images.sh failed:\n{result.stderr[-3000:]}")
    sizes = {}
    for line in result.stdout.splitlines():
        name, _, size = line.split()
        sizes[name] = int(size)
    return sizes


def image_exists(image: str) -> bool:
    return subprocess.run([*PODMAN, "image", "exists", image], check=False).returncode == 0


def image_user(image: str) -> str:
    """The image's USER ("" when none: root)."""
    result = subprocess.run(
        [*PODMAN, "image", "inspect", "--format", "{{json .Config.User}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(result.stdout.strip() or '""'))


def runs_as_root(user: str) -> bool:
    return user.split(":", 1)[0] in ("", "0", "root")


def security_flags(spec: Json, container: Json, image_user_name: str) -> list[str]:
    """podman flags for the pod's and the container's securityContext (the container's wins)."""
    pod_context, context = spec.get("securityContext") or {}, container.get("securityContext") or {}
    if context.get("privileged"):
        raise ContainerConfigError("privileged containers are not run by the lab")
    flags: list[str] = []
    capabilities = context.get("capabilities") or {}
    for name in capabilities.get("drop") or []:
        flags.append(f"--cap-drop={name.lower()}")
    for name in capabilities.get("add") or []:
        flags.append(f"--cap-add={name.lower()}")
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    if context.get("readOnlyRootFilesystem"):
        flags += ["--read-only", "--read-only-tmpfs=false"]
    seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        flags += ["--security-opt", "seccomp=unconfined"]
    uid = context.get("runAsUser", pod_context.get("runAsUser"))
    non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
    if uid is not None:
        if non_root and int(uid) == 0:
            raise ContainerConfigError("runAsNonRoot and runAsUser 0 contradict each other")
        group = context.get("runAsGroup", pod_context.get("runAsGroup", uid))
        flags.append(f"--user={int(uid)}:{int(group)}")
    elif non_root and runs_as_root(image_user_name):
        raise ContainerConfigError(
            f"container has runAsNonRoot and image will run as root (USER {image_user_name or 'unset'})"
        )
    return flags


def run_argv(
    *,
    name: str,
    image: str,
    netns: str,
    spec: Json,
    container: Json,
    mounts: list[Mount],
    env: dict[str, str],
    image_user_name: str,
) -> list[str]:
    """``podman run`` for one container, attached (its exit code is the container's), in ``netns``."""
    argv = [
        *PODMAN,
        "run",
        "--rm",
        "--replace",
        f"--name={name}",
        "--pull=never",
        f"--network=ns:/run/netns/{netns}",
        "--log-driver=none",  # the runner keeps the output (podman's attached stdout) itself
        *ULIMITS,
        *security_flags(spec, container, image_user_name),
    ]
    for mount in mounts:
        argv += ["--volume", f"{mount.source}:{mount.target}:{'ro' if mount.read_only else 'rw'}"]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    if container.get("command"):
        argv += ["--entrypoint", json.dumps(container["command"])]
    return [*argv, image, *(container.get("args") or [])]


def stop(name: str, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, as a kubelet ends a container."""
    subprocess.run(
        [*PODMAN, "stop", "--ignore", f"--time={max(0, round(grace))}", name],
        capture_output=True,
        check=False,
        timeout=grace + 30,
    )


def kill(name: str, signal: str = "KILL") -> None:
    subprocess.run([*PODMAN, "kill", f"--signal={signal}", name], capture_output=True, check=False)


def remove(name: str) -> None:
    subprocess.run([*PODMAN, "rm", "--force", "--ignore", name], capture_output=True, check=False)
