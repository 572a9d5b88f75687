"""The adapter of ``ironlb status`` (also ``kubectl ironlb status``): read the objects, show the view.

Reads only (list), so a user bound to the ``ironlb-status-reader`` ClusterRole of deploy/ironlb.yaml can run
it; ``--watch`` redraws the screen every interval, colours only on a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TextIO

from ironlb.api import GROUP, VERSION
from ironlb.api.kube import ApiError, KubeClient, custom_path

from .manifests import NAMESPACE, SPEAKER_NAME
from .publisher import CONFIG_LABEL
from .statusview import StatusView, pool_rows, render, service_rows, session_rows, speaker_rows

CLEAR = "\033[H\033[2J"


def gather(kube: KubeClient, namespace: str) -> StatusView:
    def ours(plural: str) -> str:
        return custom_path(GROUP, VERSION, namespace, plural)

    def listed(path: str, query: dict[str, str] | None = None) -> list[dict[str, object]]:
        items: list[dict[str, object]] = kube.list_page(path, query)["items"]
        return items

    try:
        daemonset = kube.get(f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{SPEAKER_NAME}")
    except ApiError as error:
        if error.status != 404:
            raise
        daemonset = None
    return StatusView(
        namespace,
        pool_rows(listed(ours("ipaddresspools"))),
        service_rows(
            listed("/api/v1/services"),
            listed(f"/api/v1/namespaces/{namespace}/configmaps", {"labelSelector": CONFIG_LABEL}),
            listed(ours("servicel2statuses")),
            listed("/api/v1/events", {"fieldSelector": "type=Warning,involvedObject.kind=Service"}),
        ),
        speaker_rows(
            listed(
                f"/api/v1/namespaces/{namespace}/pods",
                {"labelSelector": f"app.kubernetes.io/name={SPEAKER_NAME}"},
            ),
            daemonset,
        ),
        session_rows(listed(ours("bgppeers"))),
    )


def show(kube: KubeClient, args: argparse.Namespace, out: TextIO) -> None:
    """One view; while watching, JSON goes one object per line (with its time), text redraws the screen."""
    view = gather(kube, args.namespace)
    if args.output == "json" and args.watch:
        out.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **view.to_json()}) + "\n")
    elif args.output == "json":
        out.write(json.dumps(view.to_json(), indent=2) + "\n")
    else:
        screen = render(view, color=out.isatty() and not args.no_color)
        if args.watch:
            screen = (CLEAR if out.isatty() else "") + time.strftime("%H:%M:%S\n") + screen
        out.write(screen)
    out.flush()


def run_status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    kube = KubeClient.from_environment(args.kubeconfig)
    if not args.watch:
        try:
            show(kube, args, out)
        except ApiError as error:
            print(f"ironlb status: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        while True:
            started = time.monotonic()
            try:
                show(kube, args, out)
            except ApiError as error:  # the API server's hiccup is shown, and the watch goes on
                out.write(f"ironlb status: {error}\n")
                out.flush()
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0


def add_status_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    status = commands.add_parser(
        "status", help="pools, Services, answering nodes, speakers and BGP sessions in one screen"
    )
    status.add_argument(
        "-n", "--namespace", default=NAMESPACE, help=f"IronLB's namespace (default {NAMESPACE})"
    )
    status.add_argument("-o", "--output", choices=("text", "json"), default="text")
    status.add_argument("-w", "--watch", action="store_true", help="redraw every --interval seconds")
    status.add_argument("--interval", type=float, default=1.0)
    status.add_argument("--no-color", action="store_true", help="no colours even on a terminal")
    status.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, ~/.kube/config, in-cluster")
    status.set_defaults(func=run_status)
