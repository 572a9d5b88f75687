"""The ``ironlb`` command: generate artefacts from the typed sources (and, later, migrate from MetalLB)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .crdgen import write_crds


def _generate(args: argparse.Namespace) -> int:
    for path in write_crds(Path(args.crds)):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ironlb", description="IronLB command-line tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write crds/ from the API models")
    generate.add_argument("--crds", default="crds", help="directory for the CRD files (default: crds)")
    generate.set_defaults(func=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
