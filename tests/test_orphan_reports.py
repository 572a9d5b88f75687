"""The operator removes the Layer 2 reports of deleted Services, and only those: an informer that lags behind
the API server (here: its watch blackholed by a real proxy) does not make a live Service's report an orphan,
and a report a speaker rewrote after it was listed is kept."""

from __future__ import annotations

import threading
import time

import pytest
from clusterhelpers import report_exists
from ironlb.api import GROUP, VERSION
from ironlb.api.informer import Informer
from ironlb.api.kube import Json, KubeClient, custom_path
from ironlb.operator.orphanreports import PLURAL, remove_orphan_reports
from ironlb.speaker.l2.report import status_name, status_object
from ironlb_lab.controlplane import ControlPlane
from ironlb_lab.faultproxy import FaultProxy

pytestmark = pytest.mark.controlplane


def namespace(kube: KubeClient, name: str) -> str:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    kube.request("POST", "/api/v1/namespaces", body)
    return name


def service(kube: KubeClient, ns: str, name: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80}]},
    }
    kube.request("POST", f"/api/v1/namespaces/{ns}/services", body)


def report(kube: KubeClient, ns: str, service_key: str, ip: str, node: str) -> Json:
    body = status_object(ns, service_key, ip, node, ("eth0",))
    status = body.pop("status")
    path = custom_path(GROUP, VERSION, ns, PLURAL, status_name(service_key, ip))
    kube.apply(path, body, field_manager="test")
    return kube.apply(path + "/status", {**body, "status": status}, field_manager="test")


def test_only_reports_of_services_the_api_server_lacks_are_removed(
    crds_installed: ControlPlane, stop: threading.Event
) -> None:
    plane = crds_installed
    kube = KubeClient.from_environment(str(plane.kubeconfig))
    proxy = FaultProxy(plane.port).start()
    try:
        lagging = KubeClient.from_environment(str(plane.kubeconfig_via(proxy.port, "orphans")))
        system = namespace(kube, f"orphans-system-{int(time.time())}")
        tenant = namespace(kube, f"orphans-tenant-{int(time.time())}")
        service(kube, tenant, "known")
        services = Informer(lagging, f"/api/v1/namespaces/{tenant}/services", lambda kind, obj: None)
        services.start(stop)
        assert services.synced.wait(10)
        proxy.blackhole()  # from now on the informer hears nothing: it lags
        service(kube, tenant, "late")  # created after the informer went deaf
        keys = {name: f"{tenant}/{name}" for name in ("known", "late", "gone", "rewritten")}
        reports = [
            report(kube, system, keys["known"], "2001:db8::1", "node-a"),
            report(kube, system, keys["late"], "2001:db8::2", "node-a"),
            report(kube, system, keys["gone"], "2001:db8::3", "node-a"),
            report(kube, system, keys["rewritten"], "2001:db8::4", "node-a"),
        ]
        report(kube, system, keys["rewritten"], "2001:db8::4", "node-b")  # a takeover after the listing

        removed = remove_orphan_reports(kube, system, reports, lambda key: services.get(key) is not None)

        assert services.get(keys["late"]) is None, "the informer was meant to lag"
        assert removed == [status_name(keys["gone"], "2001:db8::3")]
        assert report_exists(kube, system, keys["known"], "2001:db8::1")
        assert report_exists(kube, system, keys["late"], "2001:db8::2"), "a live Service's report was removed"
        assert not report_exists(kube, system, keys["gone"], "2001:db8::3")
        assert report_exists(kube, system, keys["rewritten"], "2001:db8::4"), "a rewritten report was removed"
    finally:
        proxy.heal()
        proxy.stop()
