"""``kubedrf master``: run the allocator operator against the current kubeconfig."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pydantic import ValidationError

from kubedrf.master.records import validation_message
from kubedrf.master.settings import MasterSettings


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "master",
        help="run the master (the allocator operator) against the current kubeconfig",
        description="Run the kubedrf master: watch the cluster, allocate, write Offers.",
    )
    defaults = MasterSettings()
    parser.add_argument("--allocation-interval", default=f"{defaults.allocation_interval:g}s")
    parser.add_argument("--offer-timeout", default=f"{defaults.offer_timeout:g}s")
    parser.add_argument("--offer-retention", default=f"{defaults.offer_retention:g}s")
    parser.add_argument("--mode", choices=("demand", "classic"), default=defaults.mode)
    parser.add_argument("--managed-label", default=defaults.managed_label, metavar="KEY[=VALUE]")
    parser.add_argument("--managed-taint", default=defaults.managed_taint, metavar="KEY")
    parser.add_argument(
        "--fairness-excluded",
        default=",".join(defaults.fairness_excluded),
        metavar="R1,R2",
        help="resources that do not count toward dominant shares",
    )
    parser.add_argument("--metrics-port", type=int, default=defaults.metrics_port)
    parser.add_argument(
        "--leader-election-namespace",
        metavar="NS",
        help="elect one allocating replica through a Lease in NS (default: no election)",
    )
    parser.add_argument("--leader-election-name", default=defaults.leader_election_name)
    parser.add_argument(
        "--workloads",
        action=argparse.BooleanOptionalAction,
        default=defaults.workloads,
        help="run the built-in framework for Pods gated with kubedrf.io/offer (default: on)",
    )
    parser.add_argument("--verbose", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = MasterSettings(
            allocation_interval=args.allocation_interval,
            offer_timeout=args.offer_timeout,
            offer_retention=args.offer_retention,
            mode=args.mode,
            managed_label=args.managed_label,
            managed_taint=args.managed_taint,
            fairness_excluded=tuple(filter(None, args.fairness_excluded.split(","))),
            metrics_port=args.metrics_port,
            leader_election_namespace=args.leader_election_namespace,
            leader_election_name=args.leader_election_name,
            workloads=args.workloads,
        )
    except ValidationError as error:
        print(f"error: {validation_message(error, 'flags')}", file=sys.stderr)
        return 2
    # Imported here: loading kopf and the handlers is only needed to run the master.
    import kopf  # noqa: PLC0415

    import kubedrf.master.handlers  # noqa: F401, PLC0415

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    # Standalone: kopf's peering would pause the watches of standbys, whose caches must stay
    # warm; the Lease decides who allocates (see kubedrf.master.leader).
    kopf.run(clusterwide=True, standalone=True, memo=kopf.Memo(settings=settings))
    return 0
