"""Running a framework from the command line: the flags every example shares."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from kubedrf.framework.driver import KubedrfSchedulerDriver
from kubedrf.framework.hooks import load_hooks
from kubedrf.framework.protocol import Demand
from kubedrf.framework.scheduler import Scheduler
from kubedrf.kube import api_client


def add_framework_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the Framework object's name")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--role", action="append", dest="roles", metavar="ROLE")
    parser.add_argument("--refuse-seconds", type=float, default=5.0)
    parser.add_argument("--gpu", action="store_true", help="opt in to nodes with GPUs")
    parser.add_argument(
        "--failover-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long the master waits without a heartbeat before it stops offering",
    )
    parser.add_argument(
        "--hook",
        action="append",
        default=None,
        metavar="NAME",
        help="pod-mutation hook to run before each task Pod is created (default: offer-env)",
    )
    parser.add_argument("--verbose", action="store_true")


def run(
    args: argparse.Namespace,
    scheduler: Scheduler,
    demand: Demand = (),
) -> int:
    """Run ``scheduler`` until SIGINT/SIGTERM; ``demand`` is declared at registration."""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    hooks = load_hooks(args.hook if args.hook is not None else ["offer-env"])
    driver = KubedrfSchedulerDriver(
        scheduler,
        name=args.name,
        namespace=args.namespace,
        api=api_client(),
        roles=args.roles or ["default"],
        refuse_seconds=args.refuse_seconds,
        capabilities=["GPU_RESOURCES"] if args.gpu else [],
        hooks=hooks,
        demand=demand,
        failover_timeout=args.failover_timeout,
    )

    async def main() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        await driver.run(stopped)

    asyncio.run(main())
    return 0
