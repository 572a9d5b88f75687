"""ServiceL2Status objects whose Service is gone: their speakers could not remove them (a node down when the
Service was deleted, say), so the operator does.

The informer only says which reports to look at: under load it lags behind the API server, and a report of a
Service it has not heard of yet is not an orphan. Each candidate's Service is read live, and only a 404
removes the report, conditional on the report's resourceVersion: a speaker that rewrote it meanwhile (a
takeover, a re-report after a stall) keeps its report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ironlb.api import GROUP, VERSION
from ironlb.api.kube import ApiError, Json, KubeClient, custom_path

log = logging.getLogger("ironlb.operator")
PLURAL = "servicel2statuses"


def service_of(report: Json) -> tuple[str, str] | None:
    """The (namespace, name) a report is about; None for a report that names no Service."""
    status = report.get("status") or {}
    namespace, name = status.get("serviceNamespace"), status.get("serviceName")
    if not isinstance(namespace, str) or not isinstance(name, str) or not namespace or not name:
        return None
    return namespace, name


def remove_orphan_reports(
    kube: KubeClient, namespace: str, reports: Iterable[Json], known: Callable[[str], bool]
) -> list[str]:
    """Delete the reports whose Service the API server no longer has; ``known(key)`` says the informer holds
    the Service ``namespace/name`` (no request needed then). Returns the names of the reports removed."""
    removed: list[str] = []
    for report in reports:
        service = service_of(report)
        if service is None or known(f"{service[0]}/{service[1]}"):
            continue
        if _service_exists(kube, *service):
            continue  # the informer lags: the Service is there
        metadata = report["metadata"]
        path = custom_path(GROUP, VERSION, namespace, PLURAL, metadata["name"])
        options = {"preconditions": {"resourceVersion": metadata["resourceVersion"]}}
        try:
            kube.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", **options})
        except ApiError as error:
            if error.status in (404, 409):  # gone already, or rewritten by a speaker since it was listed
                continue
            raise
        log.info("removed %s: Service %s/%s is gone", metadata["name"], *service)
        removed.append(metadata["name"])
    return removed


def _service_exists(kube: KubeClient, namespace: str, name: str) -> bool:
    try:
        kube.get(f"/api/v1/namespaces/{namespace}/services/{name}")
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True
