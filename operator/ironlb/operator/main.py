"""``ironlb-operator``: allocates IPs to LoadBalancer Services (one active replica, chosen by a Lease)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from importlib.metadata import version

import kopf
from ironlb.api.kube import KubeClient
from prometheus_client import start_http_server

from .controller import Controller
from .events import EventPoster
from .handlers import build_registry
from .leader import LeaseElector
from .manifests import SPEAKER_IMAGE, SPEAKER_IMAGE_ENV
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
        "--liveness-port", type=int, default=0, help="kopf liveness endpoint port; 0 disables"
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
    if not args.verbose:  # one INFO line per handled event is noise at thousands of Services
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kube = KubeClient.from_environment()
    if args.metrics_port:
        start_http_server(args.metrics_port)
    elector = LeaseElector(
        kube,
        args.namespace,
        args.lease_name,
        args.identity,
        lease_seconds=args.lease_duration,
        renew_seconds=max(1.0, args.lease_duration / 3),
        retry_seconds=1.0,
    )
    log.info("waiting for lease %s/%s as %s", args.namespace, args.lease_name, args.identity)
    elector.acquire()

    def lost() -> None:
        log.critical("lost the leader lease; exiting so that only one replica allocates")
        logging.shutdown()
        os._exit(1)

    elector.keep(on_lost=lost)
    events = EventPoster(kube, args.identity)
    controller = Controller(
        kube,
        args.namespace,
        events.post,
        ServiceFilter(args.load_balancer_class, not args.ignore_services_without_class),
    )
    installer = SpeakerInstaller(
        kube, args.namespace, args.speaker_image, events.post, enabled=not args.no_speakers
    )
    try:
        kopf.run(
            registry=build_registry(controller, events, installer),
            clusterwide=True,
            standalone=True,
            liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
        )
    finally:
        elector.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
