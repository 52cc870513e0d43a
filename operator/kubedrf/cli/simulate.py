"""``kubedrf simulate SCENARIO [--json] [--plot FILE.png]``: the allocator in virtual time."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kubedrf.simulator import ScenarioError, load_scenario, simulate
from kubedrf.simulator.report import plot, to_json, to_table


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run a scenario through the allocator in virtual time",
        description="Run SCENARIO (YAML, see DESIGN.md §5) through the allocator, no cluster.",
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
    print(to_json(result) if args.json else to_table(result))
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
