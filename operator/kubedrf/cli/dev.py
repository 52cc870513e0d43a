"""``kubedrf dev``: the local control plane (provision binaries, up, down, env, nodes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from kubedrf.devcluster import cluster, processes, provision


def _provision(args: argparse.Namespace) -> int:
    paths = provision.ensure_all()
    for recipe in provision.ADDONS:
        paths.update(provision.ensure(recipe))
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


def _shape(args: argparse.Namespace) -> cluster.NodeShape:
    return cluster.NodeShape(
        cpu=args.node_cpu,
        memory=args.node_memory,
        pods=args.node_pods,
        managed=not getattr(args, "unmanaged", False),
    )


def _up(args: argparse.Namespace) -> int:
    dev = cluster.up(args.name, nodes=args.nodes, shape=_shape(args), timeout=args.timeout)
    print("\n".join(cluster.env_lines(args.name, dev.binaries)))
    provision.log(f'point your shell at it with: eval "$(kubedrf dev env --name {args.name})"')
    return 0


def _down(args: argparse.Namespace) -> int:
    processes.stop(args.name)  # the demo's master and frameworks, if any
    if not cluster.down(args.name):
        provision.log(f"no cluster named {args.name!r}")
    return 0


def _env(args: argparse.Namespace) -> int:
    if not cluster.exists(args.name):
        raise cluster.ClusterError(
            f"no cluster named {args.name!r}; start it with `kubedrf dev up --name {args.name}`"
        )
    print("\n".join(cluster.env_lines(args.name, provision.ensure_all())))
    return 0


def _list(args: argparse.Namespace) -> int:
    """Every cluster with state here, so a forgotten one (an e2e session's, say) can be
    found and brought down by its name."""
    found = cluster.names()
    if not found:
        provision.log("no dev clusters; start one with `kubedrf dev up`")
    for name in found:
        state = "" if cluster.exists(name) else "\t(incomplete: `kubedrf dev down` removes it)"
        print(f"{name}\t{cluster.kubeconfig_path(name)}{state}")
    return 0


def _running(name: str) -> cluster.Cluster:
    if not cluster.exists(name):
        raise cluster.ClusterError(f"no cluster named {name!r}; start it with `kubedrf dev up`")
    return cluster.Cluster(name=name, binaries=provision.ensure_all())


def _add_node(args: argparse.Namespace) -> int:
    dev = _running(args.name)
    dev.wait_ready(dev.add_nodes(args.nodes, _shape(args)), timeout=args.timeout)
    return 0


def _remove_node(args: argparse.Namespace) -> int:
    _running(args.name).remove_nodes(args.nodes)
    return 0


def _webhook(args: argparse.Namespace) -> int:
    """Register the admission webhook for a master on this host, or remove the registration."""
    from kubedrf.devcluster import webhook  # noqa: PLC0415 (loads cryptography only here)

    dev = _running(args.name)
    if args.remove:
        webhook.unregister(dev)
        return 0
    made = webhook.register(dev, args.port, failure_policy=args.failure_policy)
    provision.log(
        f"Pods created in namespaces labelled kubedrf.io/role now go to https://127.0.0.1:{args.port};"
        " start the master with:"
    )
    print(
        f"kubedrf master --webhook-port={args.port} --webhook-cert-file={made.cert_file}"
        f" --webhook-key-file={made.key_file}"
    )
    return 0


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report the errors a user can act on in one line, without a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (provision.ProvisionError, cluster.ClusterError) as exc:
            print(f"kubedrf dev: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("kubedrf dev: interrupted", file=sys.stderr)
            return 130

    return run


def _name_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--name", default=cluster.DEFAULT_NAME, help="cluster name (default: %(default)s)"
    )


def _shape_options(parser: argparse.ArgumentParser, prefix: str) -> None:
    defaults = cluster.NodeShape()
    parser.add_argument(
        f"--{prefix}cpu", dest="node_cpu", default=defaults.cpu, help="CPU per node (%(default)s)"
    )
    parser.add_argument(
        f"--{prefix}memory",
        dest="node_memory",
        default=defaults.memory,
        help="memory per node (%(default)s)",
    )
    parser.add_argument(
        f"--{prefix}pods", dest="node_pods", default=defaults.pods, help="pods per node"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for readiness (%(default)s)"
    )


def add_parser(subparsers: Any) -> None:
    """Add ``kubedrf dev`` and its subcommands."""
    dev: argparse.ArgumentParser = subparsers.add_parser(
        "dev",
        help="local control plane: real kube binaries with kwok fake nodes",
        description="Build the pinned control-plane binaries and run a local cluster on them.",
    )
    commands = dev.add_subparsers(dest="dev_command", required=True, metavar="DEV_COMMAND")

    provision_cmd = commands.add_parser(
        "provision", help="build (or find in the cache) the pinned binaries; print their paths"
    )
    provision_cmd.set_defaults(func=_guarded(_provision))

    up_cmd = commands.add_parser(
        "up", help="start the cluster with N managed fake nodes; print its `export KUBECONFIG`"
    )
    _name_option(up_cmd)
    up_cmd.add_argument("--nodes", type=int, default=3, help="number of nodes (%(default)s)")
    _shape_options(up_cmd, "node-")
    up_cmd.set_defaults(func=_guarded(_up))

    down_cmd = commands.add_parser("down", help="stop the cluster and delete its state")
    _name_option(down_cmd)
    down_cmd.set_defaults(func=_guarded(_down))

    env_cmd = commands.add_parser(
        "env", help='print `export KUBECONFIG=...` (and PATH) for `eval "$(kubedrf dev env)"`'
    )
    _name_option(env_cmd)
    env_cmd.set_defaults(func=_guarded(_env))

    list_cmd = commands.add_parser(
        "list", help="list the clusters with state on this machine, and their kubeconfigs"
    )
    list_cmd.set_defaults(func=_guarded(_list))

    add_cmd = commands.add_parser("add-node", help="add fake nodes and wait until they are Ready")
    _name_option(add_cmd)
    add_cmd.add_argument("nodes", nargs="+", metavar="NODE", help="node names")
    _shape_options(add_cmd, "")
    add_cmd.add_argument(
        "--unmanaged", action="store_true", help="no kubedrf.io/managed label and taint"
    )
    add_cmd.set_defaults(func=_guarded(_add_node))

    webhook_cmd = commands.add_parser(
        "webhook",
        help="make a certificate and register the gate-adding admission webhook of a master"
        " running on this host; print the master's flags",
    )
    _name_option(webhook_cmd)
    webhook_cmd.add_argument(
        "--port", type=int, default=9443, help="the master's --webhook-port (%(default)s)"
    )
    webhook_cmd.add_argument(
        "--failure-policy",
        choices=("Fail", "Ignore"),
        default="Fail",
        help="what the apiserver does when the master does not answer (%(default)s; see the"
        " README)",
    )
    webhook_cmd.add_argument(
        "--remove", action="store_true", help="delete the registration instead"
    )
    webhook_cmd.set_defaults(func=_guarded(_webhook))

    remove_cmd = commands.add_parser("remove-node", help="delete fake nodes")
    _name_option(remove_cmd)
    remove_cmd.add_argument("nodes", nargs="+", metavar="NODE", help="node names")
    remove_cmd.set_defaults(func=_guarded(_remove_node))
