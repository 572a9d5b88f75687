"""Watching a collection from a thread: list, then watch from the list's resourceVersion, list again when the
stream breaks or the server says the version is gone."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from ironlb.api.kube import ApiError, KubeClient

log = logging.getLogger("ironlb.api.informer")


def list_and_watch(
    kube: KubeClient,
    path: str,
    query: dict[str, str],
    handle: Callable[[str, dict[str, Any]], None],
    stop: threading.Event,
) -> None:
    """Deliver ("ADDED"|"MODIFIED"|"DELETED", object) for a collection until ``stop``; survives errors."""
    while not stop.is_set():
        try:
            listed = kube.get(path, query)
            for item in listed.get("items", []):
                handle("ADDED", item)
            version = listed["metadata"]["resourceVersion"]
            for event in kube.watch(path, {**query, "resourceVersion": version, "timeoutSeconds": "300"}):
                if stop.is_set():
                    return
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    handle(event["type"], event["object"])
                elif event.get("type") == "ERROR":
                    break  # e.g. 410 Gone: list again
        except (ApiError, OSError, ValueError, urllib3.exceptions.HTTPError) as error:
            log.warning("watching %s: %s", path, error)  # the stream broke: list again, then watch
            stop.wait(1.0)
