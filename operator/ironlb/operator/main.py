"""``ironlb-operator``: the controller process (allocation and speaker management come later)."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ironlb-operator", description="IronLB operator.")
    parser.add_argument("--version", action="version", version=f"ironlb-operator {version('ironlb')}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("ironlb-operator: no controllers are implemented yet (see the open issues)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
