"""The ``ironlb`` command: generate artefacts from the typed sources (and, later, migrate from MetalLB)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .bundlegen import render_bundle, render_deploy, write_tree
from .crdgen import write_crds


def _generate(args: argparse.Namespace) -> int:
    written = write_crds(Path(args.crds))
    written += write_tree(Path(args.deploy), {"ironlb.yaml": render_deploy()}, ())
    written += write_tree(Path(args.bundle), render_bundle(Path(args.examples)), ("manifests", "metadata"))
    for path in written:
        print(f"wrote {path}")
    return 0


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
