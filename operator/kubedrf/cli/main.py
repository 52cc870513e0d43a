"""Entry point of the ``kubedrf`` command: builds the parser from the subcommand modules."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kubedrf import __version__

#: Subcommand modules; each exposes ``add_parser(subparsers)`` and sets ``func`` on its parser.
SUBCOMMANDS: tuple[str, ...] = (
    "kubedrf.cli.simulate",
    "kubedrf.cli.crds",
    "kubedrf.cli.master",
    "kubedrf.cli.demo",
    "kubedrf.cli.dev",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubedrf",
        description="Mesos-style two-level scheduling for Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"kubedrf {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
