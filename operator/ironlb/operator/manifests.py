"""Every Kubernetes object IronLB installs, built by pure functions: the one source of deploy/, the OLM bundle
and what the operator applies at run time (the speaker DaemonSet and its settings).
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from typing import Any

from ironlb.api import GROUP
from ironlb.api.config import SpeakerSettings
from ironlb.api.contract import CPU_LIMIT_ENV, PASSWORDS_SECRET

Manifest = dict[str, Any]

VERSION = version("ironlb")
NAMESPACE = "ironlb-system"
OPERATOR_NAME = "ironlb-operator"
SPEAKER_NAME = "ironlb-speaker"
SPEAKER_SETTINGS = "ironlb-speaker-settings"
HEARTBEAT_SECRET = "ironlb-speaker-heartbeat"  # the HMAC key speakers sign their heartbeats with
HEARTBEAT_KEY_DIR = "/etc/ironlb-heartbeat"
OPERATOR_IMAGE = f"quay.io/ironlb/operator:v{VERSION}"
SPEAKER_IMAGE = f"quay.io/ironlb/speaker:v{VERSION}"
SPEAKER_IMAGE_ENV = "RELATED_IMAGE_SPEAKER"  # OLM's convention: the bundle pins it, the operator reads it
CONFIG_HASH_ANNOTATION = f"{GROUP}/speaker-settings-hash"
HEALTH_PORT = 7474
# Settings a running speaker re-reads; every other setting is bound at start and rolls the DaemonSet.
LIVE_SETTINGS = frozenset({"logLevel", "gratuitousRefreshSeconds"})


def labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"ironlb-{component}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "ironlb",
        "app.kubernetes.io/version": VERSION,
    }


def selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"ironlb-{component}"}


# ----------------------------------------------------------------------------------------------- RBAC
def _rule(
    groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None
) -> Manifest:
    rule: Manifest = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        rule["resourceNames"] = names
    return rule


READ = ["get", "list", "watch"]


IRONLB_KINDS = [
    "ipaddresspools",
    "l2advertisements",
    "bgpadvertisements",
    "bgppeers",
    "bfdprofiles",
    "communities",
    "ironlbconfigs",
]
# kinds whose status the operator does not write: the speakers write the BGPPeers', BFDProfiles and
# Communities have none
_NO_OPERATOR_STATUS = ("bgppeers", "bfdprofiles", "communities")


def operator_cluster_rules() -> list[Manifest]:
    """Cluster-wide only what lives everywhere: Services (any namespace), namespaces and nodes."""
    return [
        _rule([""], ["services"], [*READ, "patch"]),  # informer; the allocated-from annotation
        _rule([""], ["services/status"], ["patch"]),  # the Service's IPs (handle_services.py)
        _rule([""], ["namespaces", "nodes"], READ),  # informers: namespace labels, node labels and IPs
        _rule([""], ["events"], ["create"]),  # events.py
        # MetalLB's legacy ConfigMap, polled in the namespaces the admin opted in (handle_legacy.py)
        _rule([""], ["configmaps"], ["get"], ["config"]),
    ]


def operator_namespace_rules() -> list[Manifest]:
    """IronLB's own objects live in its namespace: watched and written there only."""
    return [
        _rule([GROUP], IRONLB_KINDS, READ),  # informers (runtime.py)
        # statuses of pools and advertisements (handle_pools, handle_advertisements), of the IronLBConfig
        # (speakers.py); the speakers write the BGPPeers' themselves
        _rule(
            [GROUP], [f"{kind}/status" for kind in IRONLB_KINDS if kind not in _NO_OPERATOR_STATUS], ["patch"]
        ),
        _rule([GROUP], ["ironlbconfigs"], ["create"]),  # the singleton, when missing (speakers.py)
        _rule([GROUP], ["servicel2statuses"], [*READ, "delete"]),  # those of Services that are gone
        # the speaker DaemonSet, its settings and ServiceAccount (speakers.py, server-side apply), the
        # published speaker configuration (publisher.py, server-side apply; informer)
        _rule(["apps"], ["daemonsets"], [*READ, "create", "patch"]),
        _rule([""], ["configmaps"], [*READ, "create", "patch"]),
        _rule([""], ["serviceaccounts"], ["get", "create", "patch"]),
        _rule(["coordination.k8s.io"], ["leases"], ["get", "create", "update"]),  # leader.py
        # the heartbeat key, created once, and the speakers' BGP passwords (create cannot be by name)
        _rule([""], ["secrets"], ["create"]),
        _rule([""], ["secrets"], ["patch"], [PASSWORDS_SECRET]),
        # the Secrets BGPPeers name, to gather their passwords (passwords.py); the heartbeat key
        _rule([""], ["secrets"], READ),
        _rule([""], ["pods"], READ),  # the speakers' pods: which node runs a ready one (a metric)
    ]


def speaker_cluster_rules() -> list[Manifest]:
    return [
        _rule([""], ["services"], READ),  # announce only what a Service still shows (state.py)
        _rule(["discovery.k8s.io"], ["endpointslices"], READ),  # ready endpoints per node (state.py)
        _rule([""], ["events"], ["create"]),  # Announcing (l2/report.py)
    ]


def speaker_namespace_rules() -> list[Manifest]:
    return [
        _rule([""], ["configmaps"], READ),  # the published speaker configuration
        _rule([""], ["secrets"], ["get", "list", "watch"], [PASSWORDS_SECRET]),  # gathered by the operator
        _rule([GROUP], ["bgppeers/status"], ["get", "patch"]),  # each node's session entry
        # who answers for each IP (Layer 2): written by the owner, never by touching users' Services
        _rule([GROUP], ["servicel2statuses"], ["get", "create", "patch", "delete"]),
        _rule([GROUP], ["servicel2statuses/status"], ["get", "patch"]),
    ]


def _role(kind: str, name: str, rules: list[Manifest], namespace: str | None) -> Manifest:
    metadata: Manifest = {"name": name, "labels": labels("rbac")}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata, "rules": rules}


def _binding(kind: str, role_kind: str, name: str, account: str, namespace: str) -> Manifest:
    metadata: Manifest = {"name": name, "labels": labels("rbac")}
    if kind == "RoleBinding":
        metadata["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }


def service_account(name: str, namespace: str, component: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(component)},
    }


def rbac(namespace: str = NAMESPACE) -> list[Manifest]:
    """Roles and bindings of the operator and the speaker (installed with the operator: an operator able to
    create RBAC would need the escalate/bind verbs, which least privilege rules out)."""
    objects: list[Manifest] = []
    for account, cluster_rules, namespace_rules in (
        (OPERATOR_NAME, operator_cluster_rules(), operator_namespace_rules()),
        (SPEAKER_NAME, speaker_cluster_rules(), speaker_namespace_rules()),
    ):
        objects += [
            _role("ClusterRole", account, cluster_rules, None),
            _binding("ClusterRoleBinding", "ClusterRole", account, account, namespace),
            _role("Role", account, namespace_rules, namespace),
            _binding("RoleBinding", "Role", account, account, namespace),
        ]
    return objects


STATUS_READER = "ironlb-status-reader"


def status_reader_role() -> Manifest:
    """What `ironlb status` reads, and nothing it could change: bind it to whoever looks (a ClusterRole,
    since Services and their events live in every namespace)."""
    return _role(
        "ClusterRole",
        STATUS_READER,
        [
            _rule([GROUP], ["ipaddresspools", "servicel2statuses", "bgppeers"], ["list"]),
            _rule([""], ["services", "events", "pods", "configmaps"], ["list"]),
            _rule(["apps"], ["daemonsets"], ["get"]),
        ],
        None,
    )


# ------------------------------------------------------------------------------------------- speaker
def speaker_settings_data(settings: SpeakerSettings) -> dict[str, Any]:
    return settings.model_dump(
        by_alias=True,
        exclude={"node_selector", "tolerations", "cpu_request", "memory_request", "memory_limit"},
    )


def settings_hash(settings: SpeakerSettings) -> str:
    """Hash of the settings a speaker binds at start: when it changes, the DaemonSet rolls."""
    bound = {k: v for k, v in speaker_settings_data(settings).items() if k not in LIVE_SETTINGS}
    return hashlib.sha256(json.dumps(bound, sort_keys=True).encode()).hexdigest()[:16]


def speaker_settings_configmap(settings: SpeakerSettings, namespace: str = NAMESPACE) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": SPEAKER_SETTINGS, "namespace": namespace, "labels": labels("speaker")},
        "data": {"settings.json": json.dumps(speaker_settings_data(settings), sort_keys=True)},
    }


DEFAULT_TOLERATIONS = [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
]


def speaker_daemonset(settings: SpeakerSettings, image: str, namespace: str = NAMESPACE) -> Manifest:
    tolerations = (
        [t.model_dump(by_alias=True, exclude_none=True) for t in settings.tolerations]
        if settings.tolerations is not None
        else DEFAULT_TOLERATIONS
    )
    env = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IRONLB_HEARTBEAT_KEY_FILE", "value": f"{HEARTBEAT_KEY_DIR}/key"},
        # metrics (Service names and IPs) on the node's own address only, not on every interface
        {"name": "IRONLB_METRICS_ADDRESS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        # the CPU limit (the node's capacity when none is set): under a quota, background work is paced so
        # the heartbeats are never throttled (cgroup files are read first, where the container can see them)
        {
            "name": CPU_LIMIT_ENV,
            "valueFrom": {
                "resourceFieldRef": {"containerName": "speaker", "resource": "limits.cpu", "divisor": "1m"}
            },
        },
    ]

    def probe(path: str) -> Manifest:
        return {"httpGet": {"path": path, "port": HEALTH_PORT, "host": "127.0.0.1"}, "periodSeconds": 10}

    container = {
        "name": "speaker",
        "image": image,
        "args": [
            "run",
            "--settings=/etc/ironlb/settings.json",
            f"--health-port={HEALTH_PORT}",
            "--run-dir=/run/ironlb",
        ],
        "env": env,
        "ports": [
            {"name": "metrics", "containerPort": settings.metrics_port, "protocol": "TCP"},
            {"name": "heartbeat", "containerPort": settings.heartbeat_port, "protocol": "UDP"},
        ],
        # NET_RAW for the ARP/NDP sockets, and nothing else: TCP MD5 (BGP passwords) needs no capability
        # and exabgp listens on no port. uid 0, because Kubernetes gives added capabilities to the effective
        # set of root only (no ambient capabilities); the root filesystem is read-only, exabgp's files live
        # in an emptyDir.
        "securityContext": {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsUser": 0,
            "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "livenessProbe": {**probe("/healthz"), "initialDelaySeconds": 10, "failureThreshold": 3},
        "readinessProbe": probe("/readyz"),
        "resources": {
            "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
            "limits": {"memory": settings.memory_limit},
        },
        "volumeMounts": [
            {"name": "settings", "mountPath": "/etc/ironlb", "readOnly": True},
            {"name": "heartbeat-key", "mountPath": HEARTBEAT_KEY_DIR, "readOnly": True},
            {"name": "run", "mountPath": "/run/ironlb"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": SPEAKER_NAME, "namespace": namespace, "labels": labels("speaker")},
        "spec": {
            "selector": {"matchLabels": selector("speaker")},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {
                    "labels": labels("speaker"),
                    "annotations": {CONFIG_HASH_ANNOTATION: settings_hash(settings)},
                },
                "spec": {
                    "serviceAccountName": SPEAKER_NAME,
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "terminationGracePeriodSeconds": 10,
                    "nodeSelector": {"kubernetes.io/os": "linux", **(settings.node_selector or {})},
                    "tolerations": tolerations,
                    "containers": [container],
                    "volumes": [
                        {"name": "settings", "configMap": {"name": SPEAKER_SETTINGS}},
                        {
                            "name": "heartbeat-key",
                            "secret": {"secretName": HEARTBEAT_SECRET, "defaultMode": 0o400},
                        },
                        {"name": "run", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def heartbeat_secret(key: str, namespace: str = NAMESPACE) -> Manifest:
    """The speakers' shared heartbeat key; the operator creates it once with a random ``key``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": HEARTBEAT_SECRET, "namespace": namespace, "labels": labels("speaker")},
        "type": "Opaque",
        "stringData": {"key": key},
    }


# ------------------------------------------------------------------------------------------ operator
def operator_deployment(
    namespace: str = NAMESPACE, image: str = OPERATOR_IMAGE, speaker_image: str = SPEAKER_IMAGE
) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": OPERATOR_NAME, "namespace": namespace, "labels": labels("operator")},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": selector("operator")},
            "strategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels("operator")},
                "spec": {
                    "serviceAccountName": OPERATOR_NAME,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "operator",
                            "image": image,
                            "args": ["--liveness-port=8080"],
                            "env": [
                                {
                                    "name": "POD_NAMESPACE",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                                },
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                                {"name": SPEAKER_IMAGE_ENV, "value": speaker_image},
                            ],
                            "ports": [
                                {"name": "metrics", "containerPort": 7472},
                                {"name": "health", "containerPort": 8080},
                            ],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": 8080},
                                "periodSeconds": 10,
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


# The speakers need the privileged level (host network, NET_RAW); the operator passes restricted, which the
# namespace audits and warns about for everything else in it.
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "privileged",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


def namespace_manifest(namespace: str = NAMESPACE) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {**labels("namespace"), **POD_SECURITY}},
    }


def install_objects(
    namespace: str = NAMESPACE, image: str = OPERATOR_IMAGE, speaker_image: str = SPEAKER_IMAGE
) -> list[Manifest]:
    """What a user installs besides the CRDs: the namespace, the ServiceAccounts, RBAC and the operator."""
    return [
        namespace_manifest(namespace),
        service_account(OPERATOR_NAME, namespace, "operator"),
        service_account(SPEAKER_NAME, namespace, "speaker"),
        *rbac(namespace),
        status_reader_role(),
        operator_deployment(namespace, image, speaker_image),
    ]
