"""Operator Lifecycle Manager in the lab: the real ``olm`` operator (hack/build-olm.sh) installs IronLB's
bundle from its ClusterServiceVersion.

OLM has two operators. The catalog operator resolves a Subscription against a catalog into an InstallPlan,
whose steps create the bundle's CRDs and other manifests, and the ServiceAccounts and RBAC the CSV's
``permissions`` and ``clusterPermissions`` name; the ``olm`` operator then checks the CSV's requirements
(owned CRDs present, ServiceAccounts with their rules), creates the Deployments of its install strategy and
reports the CSV's phase. No catalog can be served here (a catalog is an image: no registry), so
``LabOLM.install`` performs the InstallPlan's steps itself, from the bundle directory, the way OLM derives
them; everything after that is OLM's own code.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ironlb.operator.manifests import namespace_manifest

from .buildscripts import built
from .controlplane import ControlPlane
from .network import LabNetwork

Json = dict[str, Any]
OLM_NAMESPACE = "olm"


def bundle_objects(bundle: Path) -> tuple[Json, list[Json]]:
    """The bundle's CSV and its other manifests (CRDs first, as an InstallPlan orders them)."""
    csv: Json | None = None
    others: list[Json] = []
    for path in sorted((bundle / "manifests").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if document["kind"] == "ClusterServiceVersion":
            csv = document
        else:
            others.append(document)
    if csv is None:
        raise ValueError(f"{bundle} holds no ClusterServiceVersion")
    others.sort(key=lambda d: d["kind"] != "CustomResourceDefinition")
    return csv, others


def install_plan_steps(csv: Json, namespace: str) -> list[Json]:
    """What an InstallPlan creates for a CSV's permissions: each ServiceAccount, and a Role and RoleBinding
    (``permissions``) or ClusterRole and ClusterRoleBinding (``clusterPermissions``) granting its rules."""
    name = csv["metadata"]["name"]
    strategy = csv["spec"]["install"]["spec"]
    objects: list[Json] = []
    accounts = {
        p["serviceAccountName"]
        for key in ("permissions", "clusterPermissions")
        for p in strategy.get(key) or []
    }
    for account in sorted(accounts):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": namespace},
            }
        )
    for key, role_kind, binding_kind in (
        ("permissions", "Role", "RoleBinding"),
        ("clusterPermissions", "ClusterRole", "ClusterRoleBinding"),
    ):
        for permission in strategy.get(key) or []:
            account = permission["serviceAccountName"]
            metadata: Json = {"name": f"{name}-{account}-{namespace}"}
            if role_kind == "Role":
                metadata = {"name": f"{name}-{account}", "namespace": namespace}
            objects.append(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": role_kind,
                    "metadata": metadata,
                    "rules": permission["rules"],
                }
            )
            objects.append(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": binding_kind,
                    "metadata": metadata,
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": role_kind,
                        "name": metadata["name"],
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
                }
            )
    return objects


@dataclass
class LabOLM:
    plane: ControlPlane
    lab: LabNetwork
    workdir: Path
    tools: Path = field(init=False)

    def start(self) -> LabOLM:
        """OLM's CRDs (from its module), the monitoring CRDs a bundle may ship objects of, and ``olm``."""
        self.tools = built("build-olm.sh")
        prometheus = built("build-prometheus.sh")
        for directory in (self.tools / "crds", prometheus / "crds"):
            self.plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(directory))
        self.plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OLM_NAMESPACE}})
        argv = [
            str(self.tools / "olm"),
            f"--namespace={OLM_NAMESPACE}",
            "--writeStatusName=",
            "--writePackageServerStatusName=",
            "--interval=30s",
        ]
        self.process = self.lab.spawn_here(
            argv, self.workdir / "olm.log", env={**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)}
        )
        return self

    def stop(self) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=15)

    def apply(self, *objects: Json) -> None:
        self.plane.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-",
            input="\n---\n".join(json.dumps(o) for o in objects),
        )  # fmt: skip

    def install(self, bundle: Path, namespace: str, csv: Json | None = None) -> str:
        """Install a bundle into ``namespace`` with an OwnNamespace OperatorGroup; returns the CSV's name.
        ``csv`` replaces the bundle's own (a broken or newer one)."""
        bundled, others = bundle_objects(bundle)
        csv = csv if csv is not None else bundled
        self.apply(namespace_manifest(namespace))
        self.apply(
            {
                "apiVersion": "operators.coreos.com/v1",
                "kind": "OperatorGroup",
                "metadata": {"name": "ironlb", "namespace": namespace},
                "spec": {"targetNamespaces": [namespace]},
            }
        )
        owned = {crd["name"] for crd in csv["spec"]["customresourcedefinitions"].get("owned") or []}
        for document in others:
            is_crd = document["kind"] == "CustomResourceDefinition"
            if is_crd and document["metadata"]["name"] not in owned:
                continue  # the InstallPlan installs what the CSV owns
            if (
                not is_crd
                and document["metadata"].get("namespace") is None
                and document["kind"] != "ClusterRole"
            ):
                document = {**document, "metadata": {**document["metadata"], "namespace": namespace}}
            self.apply(document)
        self.apply(*install_plan_steps(csv, namespace))
        self.apply({**csv, "metadata": {**csv["metadata"], "namespace": namespace}})
        return str(csv["metadata"]["name"])

    def phase(self, namespace: str, name: str) -> tuple[str, str, str]:
        """(phase, reason, message) of a CSV."""
        result = self.plane.kubectl("get", "csv", name, "-n", namespace, "-o", "json", check=False)
        if result.returncode != 0:
            return "", "", result.stderr.strip()
        status = json.loads(result.stdout).get("status") or {}
        return status.get("phase", ""), status.get("reason", ""), status.get("message", "")

    def wait_phase(self, namespace: str, name: str, phase: str, timeout: float = 180) -> tuple[str, str, str]:
        deadline = time.monotonic() + timeout
        while True:
            current = self.phase(namespace, name)
            if current[0] == phase:
                return current
            if time.monotonic() > deadline:
                log = (self.workdir / "olm.log").read_text(errors="replace")[-3000:]
                raise TimeoutError(f"CSV {name} is {current}, not {phase}, after {timeout:.0f} s\n{log}")
            time.sleep(1)
