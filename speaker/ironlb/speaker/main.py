"""``ironlb-speaker``: the per-node announcer.

``run`` is the speaker the DaemonSet starts: it follows the published configuration, elects owners, watches
its peers and answers ARP/NDP. ``l2-responder`` is the Layer 2 data path on its own (answer for given IPs),
which benchmarks drive directly.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path

from .l2.limiter import ReplyLimiter
from .l2.responder import L2Responder

log = logging.getLogger("ironlb.speaker")


def _l2_responder(args: argparse.Namespace) -> int:
    responder = L2Responder(args.interface)
    if args.answers_per_requester:
        responder.limiter = ReplyLimiter(rate=args.answers_per_requester, burst=args.answers_per_requester)
    addresses = [ipaddress.ip_address(text) for text in args.ip]
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    for address in responder.set_owned(addresses):
        if args.announce:
            responder.announce(address)
    next_refresh = time.monotonic() + args.refresh if args.refresh else float("inf")

    def refresh() -> None:
        nonlocal next_refresh
        if time.monotonic() >= next_refresh:
            for address in responder.owned:
                responder.announce(address)
            next_refresh = time.monotonic() + args.refresh

    print(f"answering for {', '.join(map(str, addresses))} on {args.interface}", flush=True)
    try:
        responder.serve(stop, refresh)
    finally:
        responder.close()
    log.info("answered %d requests", responder.replies)
    return 0


def _run(args: argparse.Namespace) -> int:
    from ironlb.api.health import Health, serve_health
    from ironlb.api.kube import KubeClient
    from prometheus_client import start_http_server

    from .agent import run
    from .settings import SettingsFile, apply_log_level

    key = Path(args.heartbeat_key_file).read_bytes().strip() if args.heartbeat_key_file else b""
    if len(key) < 16:
        print("ironlb-speaker: --heartbeat-key-file must hold a key of at least 16 bytes", file=sys.stderr)
        return 2
    settings = SettingsFile(args.settings)
    overrides = {"heartbeat_port": args.heartbeat_port, "metrics_port": args.metrics_port}
    settings.current = settings.current.model_copy(update={k: v for k, v in overrides.items() if v})
    apply_log_level(settings.current)
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    if args.metrics_port != 0:
        start_http_server(settings.current.metrics_port, addr=args.metrics_address)
    health = Health()
    if args.health_port:
        serve_health(health, args.health_port)
    run(
        KubeClient.from_environment(),
        args.node,
        args.namespace,
        args.interface,
        key,
        settings,
        stop,
        health,
        run_dir=Path(args.run_dir),
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ironlb-speaker", description="IronLB speaker.")
    parser.add_argument("--version", action="version", version=f"ironlb-speaker {version('ironlb')}")
    commands = parser.add_subparsers(dest="command", required=True)
    responder = commands.add_parser("l2-responder", help="answer ARP/NDP for the given IPs on one interface")
    responder.add_argument("--interface", required=True)
    responder.add_argument("--ip", action="append", required=True, help="an IP to answer for (repeatable)")
    responder.add_argument(
        "--announce", action="store_true", help="send gratuitous ARP / unsolicited NA first"
    )
    responder.add_argument("--refresh", type=float, default=0, help="re-announce every N seconds (0: never)")
    responder.add_argument(
        "--answers-per-requester",
        type=float,
        default=0,
        help="answers per second to one requester for one IP (0: the speaker's default, 200)",
    )
    responder.set_defaults(func=_l2_responder)
    speaker = commands.add_parser("run", help="follow the published configuration and announce (Layer 2)")
    speaker.add_argument(
        "--node", default=os.environ.get("NODE_NAME"), required="NODE_NAME" not in os.environ
    )
    speaker.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "ironlb-system"))
    speaker.add_argument(
        "--interface", help="the node's primary interface (default: the one holding its InternalIP)"
    )
    speaker.add_argument("--heartbeat-key-file", default=os.environ.get("IRONLB_HEARTBEAT_KEY_FILE"))
    speaker.add_argument("--settings", help="the mounted settings ConfigMap's settings.json (re-read live)")
    speaker.add_argument("--heartbeat-port", type=int, help="UDP heartbeat port (default: from --settings)")
    speaker.add_argument(
        "--metrics-port", type=int, help="Prometheus port (default: from --settings); 0 disables"
    )
    speaker.add_argument(
        "--metrics-address",
        default=os.environ.get("IRONLB_METRICS_ADDRESS", "127.0.0.1"),
        help="address the metrics listen on (the DaemonSet: the node's own IP; never every interface)",
    )
    speaker.add_argument("--health-port", type=int, default=0, help="/healthz and /readyz; 0 disables")
    speaker.add_argument("--run-dir", default="/run/ironlb", help="a writable directory (exabgp's files)")
    speaker.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
