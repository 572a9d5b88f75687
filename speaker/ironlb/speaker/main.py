"""``ironlb-speaker``: the per-node announcer (Layer 2 and BGP modes arrive with later issues)."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ironlb-speaker", description="IronLB speaker.")
    parser.add_argument("--version", action="version", version=f"ironlb-speaker {version('ironlb')}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("ironlb-speaker: no announcement modes are implemented yet (see the open issues)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
