"""``ironlb-operator``: allocates IPs to LoadBalancer Services (one active replica, chosen by a Lease)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from importlib.metadata import version

import kopf
from ironlb.api.health import Health
from ironlb.api.kube import KubeClient
from prometheus_client import start_http_server

from .controller import Controller
from .events import EventPoster
from .handlers import build_registry
from .leader import LeaseElector
from .manifests import SPEAKER_IMAGE, SPEAKER_IMAGE_ENV
from .metrics import LEADER
from .runtime import OperatorRuntime
from .services import DEFAULT_CLASS, ServiceFilter
from .speakers import SpeakerInstaller

log = logging.getLogger("ironlb.operator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ironlb-operator", description="IronLB operator.")
    parser.add_argument("--version", action="version", version=f"ironlb-operator {version('ironlb')}")
    parser.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", "ironlb-system"),
        help="namespace of the IronLB objects (pools, advertisements, the Lease)",
    )
    parser.add_argument(
        "--load-balancer-class",
        default=DEFAULT_CLASS,
        help="the spec.loadBalancerClass this operator answers to",
    )
    parser.add_argument(
        "--ignore-services-without-class",
        action="store_true",
        help="leave Services without a loadBalancerClass to another implementation",
    )
    parser.add_argument("--metrics-port", type=int, default=7472, help="Prometheus metrics port; 0 disables")
    parser.add_argument(
        "--liveness-port",
        type=int,
        default=0,
        help="liveness endpoint port (/healthz, served while waiting for the lease too); 0 disables",
    )
    parser.add_argument("--lease-name", default="ironlb-operator")
    parser.add_argument("--lease-duration", type=int, default=15, help="seconds a leader's lease lasts")
    parser.add_argument(
        "--identity", default=os.environ.get("POD_NAME", f"{socket.gethostname()}-{os.getpid()}")
    )
    parser.add_argument(
        "--speaker-image",
        default=os.environ.get(SPEAKER_IMAGE_ENV, SPEAKER_IMAGE),
        help=f"speaker image (default: ${SPEAKER_IMAGE_ENV}, as OLM sets it)",
    )
    parser.add_argument(
        "--no-speakers", action="store_true", help="do not install the speaker DaemonSet (allocation only)"
    )
    parser.add_argument("--log-format", choices=("json", "plain"), default="json")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    # the lease has a client of its own; the operator's writes go through a client fenced by the lease
    elector = LeaseElector.for_lease(
        KubeClient.from_environment(), args.namespace, args.lease_name, args.identity, args.lease_duration
    )
    kube = KubeClient.from_environment(write_guard=elector.leading)
    LEADER.set_function(lambda: 1.0 if elector.leading() else 0.0)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    log.info("waiting for lease %s/%s as %s", args.namespace, args.lease_name, args.identity)

    events = EventPoster(kube, args.identity)

    def build() -> tuple[Controller, SpeakerInstaller]:
        """Fresh state for each term as the leader."""
        controller = Controller(
            kube,
            args.namespace,
            events.post,
            ServiceFilter(args.load_balancer_class, not args.ignore_services_without_class),
        )
        installer = SpeakerInstaller(
            kube, args.namespace, args.speaker_image, events.post, enabled=not args.no_speakers
        )
        return controller, installer

    runtime = OperatorRuntime(kube, args.namespace, build, events, elector, Health())
    kopf.run(
        registry=build_registry(runtime),
        clusterwide=True,
        standalone=True,
        # kopf would otherwise derive one from the user name, which fails under a uid with no passwd entry
        # (the image's non-root user, OpenShift's arbitrary uids)
        identity=args.identity,
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
