"""What a Prometheus Operator (OpenShift's monitoring, kube-prometheus) needs to watch IronLB: a metrics
Service and a ServiceMonitor per component, and the PrometheusRule of ``alerts.py``.

ServiceMonitors rather than PodMonitors: OLM installs ServiceMonitors and PrometheusRules from a bundle, not
PodMonitors. The speakers' Service is headless (they run on the host network, one endpoint per node).
"""

from __future__ import annotations

from typing import Any

from .alerts import prometheus_rule_groups
from .manifests import NAMESPACE, labels, selector

Manifest = dict[str, Any]
METRICS_LABEL = "ironlb.io/metrics"  # on the metrics Services: what the ServiceMonitors select
SCRAPE_INTERVAL = "30s"
PORTS = {"operator": 7472, "speaker": 7473}


def metrics_service_name(component: str) -> str:
    return f"ironlb-{component}-metrics"


def metrics_service(component: str, namespace: str = NAMESPACE) -> Manifest:
    spec: Manifest = {
        "selector": selector(component),
        "ports": [{"name": "metrics", "port": PORTS[component], "targetPort": "metrics", "protocol": "TCP"}],
    }
    if component == "speaker":
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": metrics_service_name(component),
            "namespace": namespace,
            "labels": {**labels(component), METRICS_LABEL: component},
        },
        "spec": spec,
    }


def service_monitor(component: str, namespace: str = NAMESPACE) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": f"ironlb-{component}",
            "namespace": namespace,
            "labels": labels(component),
        },
        "spec": {
            "selector": {"matchLabels": {METRICS_LABEL: component}},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [{"port": "metrics", "interval": SCRAPE_INTERVAL, "path": "/metrics"}],
        },
    }


def prometheus_rule(namespace: str = NAMESPACE) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "ironlb", "namespace": namespace, "labels": labels("operator")},
        "spec": {"groups": prometheus_rule_groups()},
    }


def monitoring_objects(namespace: str = NAMESPACE) -> list[Manifest]:
    """deploy/monitoring.yaml, and the same objects in the OLM bundle."""
    return [
        *(metrics_service(component, namespace) for component in PORTS),
        *(service_monitor(component, namespace) for component in PORTS),
        prometheus_rule(namespace),
    ]
