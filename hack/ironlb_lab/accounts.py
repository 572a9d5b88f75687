"""IronLB's components run in the lab with their own ServiceAccounts, never as admin, so RBAC applies.

``install_accounts`` applies what deploy/ironlb.yaml holds for a namespace (the namespace, ServiceAccounts,
Roles, ClusterRoles and bindings; the operator's Deployment only on request); ``account_kubeconfig`` writes
a kubeconfig holding a token of one of those ServiceAccounts (the TokenRequest API), for a process the lab
starts itself.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from ironlb.operator.manifests import install_objects

from .controlplane import ControlPlane


def install_accounts(plane: ControlPlane, namespace: str, with_deployment: bool = False) -> None:
    """Labs share one control plane: each namespace gets its own ClusterRoleBindings."""
    for manifest in install_objects(namespace):
        if manifest["kind"] == "ClusterRoleBinding":
            manifest["metadata"]["name"] += f"-{namespace}"
        if manifest["kind"] != "Deployment" or with_deployment:
            plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def account_token(plane: ControlPlane, namespace: str, account: str, seconds: int = 7200) -> str:
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    reply = plane.kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        "-f",
        "-",
        input=json.dumps(request),
    )
    token: str = json.loads(reply.stdout)["status"]["token"]
    return token


def account_kubeconfig(
    plane: ControlPlane, namespace: str, account: str, path: Path, port: int | None = None
) -> Path:
    """A kubeconfig for ``account``, reaching the API server on ``port`` (a fault proxy) or its own."""
    cluster: dict[str, Any] = {
        "server": f"https://127.0.0.1:{port or plane.port}",
        "certificate-authority-data": base64.b64encode(plane.ca.cert_path.read_bytes()).decode(),
    }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": account_token(plane, namespace, account)}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": account, "namespace": namespace}}],
        "current-context": "lab",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path
