"""A real Prometheus in the lab, configured from IronLB's ServiceMonitors and PrometheusRule as the
Prometheus Operator would configure it.

The Prometheus Operator itself is not run (its module is not served whole by the proxy): the lab installs
its ServiceMonitor and PrometheusRule CRDs (from the operator's module, ``hack/build-prometheus.sh``), the
user's objects are applied to the API server, and ``scrape_config`` turns each ServiceMonitor endpoint into
the job the operator would generate: Kubernetes service discovery of EndpointSlices, kept by the Service's
labels and the port's name, with ``namespace``, ``service``, ``pod`` and ``job`` target labels. The rules
are the PrometheusRule's groups as they are. Prometheus runs on the LAN (the client's namespace), reaches
the API server through the lab's bridge and scrapes the speakers (host network) and the operator's pods
(pod network) at their endpoints' addresses.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .apibridge import ApiBridge
from .buildscripts import built
from .controlplane import ControlPlane
from .network import Host, LabNetwork

PORT = 9090
Json = dict[str, Any]
_tools: Path | None = None


def prometheus_tools() -> Path:
    """The directory with prometheus, promtool and crds/ (built once, then cached)."""
    global _tools
    if _tools is None:
        _tools = built("build-prometheus.sh")
    return _tools


def install_monitoring_crds(plane: ControlPlane) -> None:
    for crd in sorted((prometheus_tools() / "crds").glob("*.yaml")):
        plane.kubectl("apply", "--server-side", "-f", str(crd))
    for name in ("servicemonitors", "prometheusrules"):
        plane.kubectl("wait", "--for=condition=Established", f"crd/{name}.monitoring.coreos.com")


def _label_name(label: str) -> str:
    """Prometheus's name for a Kubernetes label in discovery meta labels."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def scrape_config(monitor: Json, kubeconfig: Path, interval: str) -> list[Json]:
    """The scrape jobs the Prometheus Operator generates for one ServiceMonitor (matchLabels selectors,
    named ports), scraped every ``interval`` in the lab instead of the object's own (30 s)."""
    metadata, spec = monitor["metadata"], monitor["spec"]
    namespaces = (spec.get("namespaceSelector") or {}).get("matchNames") or [metadata["namespace"]]
    keep_service = [
        {
            "source_labels": [f"__meta_kubernetes_service_label_{_label_name(key)}"],
            "regex": re.escape(value),
            "action": "keep",
        }
        for key, value in sorted((spec["selector"].get("matchLabels") or {}).items())
    ]
    jobs = []
    for number, endpoint in enumerate(spec["endpoints"]):
        jobs.append(
            {
                "job_name": f"serviceMonitor/{metadata['namespace']}/{metadata['name']}/{number}",
                "scrape_interval": interval,
                "metrics_path": endpoint.get("path", "/metrics"),
                "kubernetes_sd_configs": [
                    {
                        "role": "endpointslice",
                        "kubeconfig_file": str(kubeconfig),
                        "namespaces": {"names": namespaces},
                    }
                ],
                "relabel_configs": [
                    *keep_service,
                    {
                        "source_labels": ["__meta_kubernetes_endpointslice_port_name"],
                        "regex": re.escape(endpoint["port"]),
                        "action": "keep",
                    },
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
                    {"target_label": "endpoint", "replacement": endpoint["port"]},
                ],
            }
        )
    return jobs


@dataclass
class LabPrometheus:
    lab: LabNetwork
    plane: ControlPlane
    bridge: ApiBridge
    workdir: Path
    namespace: str = "ironlb-system"
    interval: str = "2s"  # scrape and rule evaluation: alerts' `for:` dominate, not the lab's sampling
    host: Host = field(init=False)

    def start(self) -> LabPrometheus:
        self.host = self.lab.client
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bridge.forward_into(self.host)
        kubeconfig = self.plane.kubeconfig_via(self.plane.port, "prometheus")
        monitors = json.loads(
            self.plane.kubectl("get", "servicemonitors", "-n", self.namespace, "-o", "json").stdout
        )["items"]
        rules = json.loads(
            self.plane.kubectl("get", "prometheusrules", "-n", self.namespace, "-o", "json").stdout
        )["items"]
        rule_files = []
        for rule in rules:
            path = self.workdir / f"{rule['metadata']['name']}.rules.yaml"
            path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
            rule_files.append(str(path))
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": rule_files,
            "scrape_configs": [
                job for monitor in monitors for job in scrape_config(monitor, kubeconfig, self.interval)
            ],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        tools = prometheus_tools()
        self.process = self.lab.spawn(
            self.host,
            [
                str(tools / "prometheus"),
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={self.host.v4}:{PORT}",
                "--storage.tsdb.retention.time=1h",
            ],
            self.workdir / "prometheus.log",
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log()[-3000:]}")
            if self._get("/-/ready", check=False) is not None:
                return
            time.sleep(0.5)
        raise TimeoutError(f"prometheus not ready in {timeout:.0f} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _get(self, path: str, check: bool = True) -> str | None:
        url = f"http://{self.host.v4}:{PORT}{path}"
        result = self.host.run("curl", "-sf", "-m", "5", url, timeout=15)
        if result.returncode != 0:
            if check:
                raise RuntimeError(f"GET {path}: curl exit {result.returncode} {result.stderr}")
            return None
        return result.stdout

    def api(self, path: str, **params: str) -> Any:
        text = self._get(f"/api/v1/{path}?{urllib.parse.urlencode(params)}")
        body = json.loads(text or "{}")
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[Json]:
        data = self.api("query", query=expr)
        result: list[Json] = data["result"]
        return result

    def targets(self) -> list[Json]:
        active: list[Json] = self.api("targets", state="active")["activeTargets"]
        return active

    def alerts(self) -> list[Json]:
        alerts: list[Json] = self.api("alerts")["alerts"]
        return alerts

    def firing(self) -> dict[str, list[Json]]:
        result: dict[str, list[Json]] = {}
        for alert in self.alerts():
            if alert["state"] == "firing":
                result.setdefault(alert["labels"]["alertname"], []).append(alert)
        return result
