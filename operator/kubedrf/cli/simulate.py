"""``kubedrf simulate SCENARIO [--json] [--plot FILE.png]``: the allocator in virtual time."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kubedrf.simulator import ScenarioError, load_scenario, simulate
from kubedrf.simulator.report import plot, to_json, to_table


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run a scenario through the allocator in virtual time",
        description="Run SCENARIO (YAML; docs/scenarios.md describes every key) through the"
        " allocator, no cluster.",
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="path to a scenario YAML file")
    parser.add_argument("--json", action="store_true", help="print the final state as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="draw dominant shares over time")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    result = simulate(scenario)
    if not _print_quietly(to_json(result) if args.json else to_table(result)):
        return 0
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _print_quietly(text: str) -> bool:
    """Print ``text``; say whether the reader still listens. A reader that has seen enough
    (``| head``) closes the pipe: that ends the command quietly, not with a traceback."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return False
    return True
