"""kopf runs the operator process: login, start-up and clean-up, signals, and the liveness endpoint.

No resource is watched through kopf (see ``runtime``: informers do that); so kopf stores nothing on any
object, and the liveness probe says whether this replica leads or stands by.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from ironlb.api.kube import load_configuration
from kubernetes import client

from .runtime import OperatorRuntime


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    """kopf's connection from the kubernetes client's configuration: in a pod, the ServiceAccount and the
    API server KUBERNETES_SERVICE_HOST/PORT name, as client-go does (kopf's own service-account login
    needs cluster DNS for kubernetes.default.svc: with DNS down, or none, it never connects); elsewhere the
    kubeconfig, client certificates included."""
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def build_registry(runtime: OperatorRuntime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        """The credentials KubeClient uses, read again at every login (a rotated token)."""
        return connection_info(load_configuration())

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True  # mutual exclusion comes from the Lease (see leader.py)
        settings.posting.level = logging.WARNING  # kopf's own log lines become events only if they matter
        settings.scanning.disabled = True  # nothing is watched through kopf: no resource discovery
        await runtime.start()

    @kopf.on.probe(id="lease", registry=registry)
    def lease(**_: Any) -> str:
        return runtime.probe()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await runtime.cleanup()

    return registry
