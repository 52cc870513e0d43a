"""The ``kubectl-drf`` command: parse kubectl's flags, read the cluster once, print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException

from kubedrf.kubectl import explain, live, output
from kubedrf.kubectl import scenario as scenario_dump
from kubedrf.master.settings import MasterSettings
from kubedrf.resources import CPU, MEMORY, PODS, Resources

Command = Callable[[argparse.Namespace, explain.Analysis], str]


def _share(value: float) -> str:
    return f"{value:.3f}"


def _status(args: argparse.Namespace, analysis: explain.Analysis) -> str:
    rows = explain.status(analysis, args.namespace_filter)
    if args.output:
        return output.render({"roles": rows}, args.output)
    roles = output.table(
        ["ROLE", "WEIGHT", "GUARANTEE", "LIMIT", "ALLOCATED", "SHARE", "FAIR-SHARE", "DEMAND"],
        [
            [
                "  " * r.depth + r.name,
                f"{r.weight:g}",
                output.amounts(r.guarantee),
                output.amounts(r.limit),
                output.amounts(r.allocated),
                _share(r.share),
                _share(r.fair_share),
                output.amounts(r.demand),
            ]
            for r in rows
        ],
    )
    frameworks = output.table(
        [
            "FRAMEWORK",
            "ROLE",
            "TASKS",
            "OFFERS",
            "ALLOCATED",
            "SHARE",
            "FAIR-SHARE",
            "DEMAND",
            "NEXT-CYCLE",
        ],
        [
            [
                f.name,
                f.role,
                str(f.tasks),
                str(f.offers),
                output.amounts(f.allocated),
                _share(f.share),
                _share(f.fair_share),
                output.amounts(f.demand),
                f.reason or "Offered",
            ]
            for r in rows
            for f in r.frameworks
        ],
    )
    return f"{roles}\n\n{frameworks}"


def _why(args: argparse.Namespace, analysis: explain.Analysis) -> str:
    name = args.framework if "/" in args.framework else f"{args.namespace}/{args.framework}"
    chains = explain.why(analysis, name)
    if args.output:
        return output.render({"framework": name, "roles": chains}, args.output)
    lines = [f"Framework: {name}"]
    for chain in chains:
        lines.append(
            f"Role {chain.role}: {chain.outcome} (share {_share(chain.share)},"
            f" fair share {_share(chain.fair_share)})"
        )
        lines += [f"  {i}. {step.message}" for i, step in enumerate(chain.steps, 1)]
    return "\n".join(lines)


def _percent(amount: int, of: int) -> str:
    return f"{100 * amount / of:.0f}%" if of else "-"


def _top(args: argparse.Namespace, analysis: explain.Analysis) -> str:
    nodes, offers = explain.top(analysis, args.namespace_filter)
    if args.output:
        return output.render({"nodes": nodes, "offers": offers}, args.output)
    extra = sorted({r for n in nodes for r in n.allocatable} - {CPU, MEMORY, PODS})
    rows = []
    for n in nodes:
        usage = [*n.roles.items(), ("<other>", n.other), ("<free>", n.free)]
        for role, used in usage:
            if role == "<other>" and used.is_empty():
                continue
            row = [n.node, role]
            for resource in (CPU, MEMORY):
                row += [
                    _quantity(used, resource),
                    _percent(used[resource], n.allocatable[resource]),
                ]
            row += [_quantity(used, resource) for resource in extra]
            row.append(output.amounts(n.offered) if role == "<free>" else "")
            rows.append(row)
    headers = ["NODE", "ROLE", "CPU", "CPU%", "MEMORY", "MEMORY%"]
    headers += [r.upper() for r in extra] + ["OFFERED"]
    offer_table = output.table(
        ["OFFER", "FRAMEWORK", "ROLE", "NODE", "RESOURCES", "EXPIRES-IN"],
        [
            [
                o.name,
                o.framework,
                o.role,
                o.node,
                output.amounts(o.resources),
                "-" if o.expires_in is None else f"{max(o.expires_in, 0):.0f}s",
            ]
            for o in offers
        ],
    )
    return f"{output.table(headers, rows)}\n\n{offer_table}"


def _quantity(resources: Resources, name: str) -> str:
    return resources.to_quantities().get(name, "0")


def _simulate(args: argparse.Namespace, analysis: explain.Analysis) -> str:
    document, warnings = scenario_dump.dump(analysis, cycles=args.cycles)
    for warning in warnings:
        print(f"kubectl drf: warning: {warning}", file=sys.stderr)
    return output.render(document, args.output or "yaml")


COMMANDS: dict[str, tuple[Command, str]] = {
    "status": (_status, "the role tree: weights, quotas, allocated, shares, demand, frameworks"),
    "why": (_why, "why a framework gets what it gets: the chain of reasons for each role"),
    "top": (_top, "usage per node by role, and the offers outstanding"),
    "simulate": (_simulate, "print the live cluster as a scenario for `kubedrf simulate`"),
}


def _common(parser: argparse.ArgumentParser, default: object) -> None:
    """kubectl's flags; on subcommands they default to ``SUPPRESS`` so either place works."""

    def value(fallback: object) -> object:
        return fallback if default is None else default

    parser.add_argument("--kubeconfig", default=value(None), help="path to the kubeconfig file")
    parser.add_argument("--context", default=value(None), help="the kubeconfig context to use")
    parser.add_argument(
        "-n", "--namespace", default=value(None), help="the namespace (frameworks, offers)"
    )
    parser.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        default=value(False),
        help="list frameworks and offers of every namespace (the default for status and top)",
    )
    parser.add_argument(
        "-o", "--output", choices=("json", "yaml"), default=value(None), help="output format"
    )
    parser.add_argument(
        "--managed-label",
        default=value(None),
        help="the master's managed-node selector, if not the default (KUBEDRF_MANAGED_LABEL)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl drf",
        description="What the kubedrf master sees and would decide, read from a live cluster.",
    )
    _common(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (func, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        _common(sub, argparse.SUPPRESS)
        sub.set_defaults(func=func)
        if name == "why":
            sub.add_argument("framework", help="NAME (in -n's namespace) or NAMESPACE/NAME")
        if name == "simulate":
            sub.add_argument("--cycles", type=int, default=30, help="cycles the scenario runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = MasterSettings.from_env()
        if args.managed_label:
            settings = settings.model_copy(update={"managed_label": args.managed_label})
        if args.namespace is None:
            # Frameworks are looked up where kubectl would look: the context's namespace.
            args.namespace = live.current_namespace(args.kubeconfig, args.context)
            args.namespace_filter = None
        else:
            args.namespace_filter = None if args.all_namespaces else args.namespace
        api = live.api_client(args.kubeconfig, args.context)
        analysis = explain.analyse(live.read_view(api, settings))
        print(args.func(args, analysis))
    except explain.UnknownFrameworkError as error:
        print(f"kubectl drf: error: {error.args[0]}", file=sys.stderr)
        return 1
    except ApiException as error:
        print(
            f"kubectl drf: error: the API answered {error.status} {error.reason}", file=sys.stderr
        )
        return 1
    except (ConfigException, urllib3.exceptions.HTTPError, OSError) as error:
        print(f"kubectl drf: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
