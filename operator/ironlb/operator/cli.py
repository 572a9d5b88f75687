"""The ``ironlb`` command (also the kubectl plugin ``kubectl ironlb``): generate artefacts from the typed
sources, migrate from MetalLB, show the status of an installation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .bundlegen import render_bundle, render_deploy, render_monitoring, write_tree
from .crdgen import write_crds
from .dashboard import render_dashboard
from .migrate import DEFAULT_NAMESPACE, load_documents, migrate
from .statuscmd import add_status_command


def _generate(args: argparse.Namespace) -> int:
    written = write_crds(Path(args.crds))
    deploy = {
        "ironlb.yaml": render_deploy(),
        "monitoring.yaml": render_monitoring(),
        "dashboard.json": render_dashboard(),
    }
    written += write_tree(Path(args.deploy), deploy, ())
    written += write_tree(Path(args.bundle), render_bundle(Path(args.examples)), ("manifests", "metadata"))
    for path in written:
        print(f"wrote {path}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """Exit 0: all converted; 1: some problems (the rest is still printed); 2: unreadable input."""
    documents = []
    for name in args.files or ["-"]:
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text()
            documents += load_documents(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            print(f"ironlb migrate: cannot read {name}: {error}", file=sys.stderr)
            return 2
    manifests, problems = migrate(documents, args.namespace)
    if manifests:
        sys.stdout.write(yaml.safe_dump_all(manifests, sort_keys=False))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ironlb", description="IronLB command-line tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write crds/, deploy/ and bundle/ from the typed sources")
    generate.add_argument("--crds", default="crds", help="directory for the CRD files (default: crds)")
    generate.add_argument(
        "--deploy", default="deploy", help="directory for plain manifests (default: deploy)"
    )
    generate.add_argument("--bundle", default="bundle", help="directory of the OLM bundle (default: bundle)")
    generate.add_argument("--examples", default="docs/examples", help="examples for alm-examples")
    generate.set_defaults(func=_generate)
    migrate_command = commands.add_parser(
        "migrate",
        help="convert MetalLB's legacy ConfigMap or metallb.io objects into IronLB objects (YAML on stdout)",
    )
    migrate_command.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        metavar="FILE",
        help="YAML file(s) with the ConfigMap `config` and/or metallb.io objects; - or none: stdin",
    )
    migrate_command.add_argument(
        "-n",
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help=f"namespace of the IronLB objects (default: {DEFAULT_NAMESPACE})",
    )
    migrate_command.set_defaults(func=_migrate)
    add_status_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
