"""batch: N identical tasks, like a Marathon app or a Hadoop job; failed tasks are relaunched.

    python examples/frameworks/batch.py --namespace seed --name a --tasks 100 --cpu 1 --memory 4Gi

It keeps its demand current (tasks still to launch), launches as many tasks as fit in each
offer, declines the rest, and counts a task that failed or was lost as still to do.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

from kubedrf.framework import (
    Offer,
    Scheduler,
    SchedulerDriver,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from kubedrf.framework.runner import add_framework_arguments, run
from kubedrf.resources import Resources

logger = logging.getLogger("batch")

#: kwok (the local control plane's fake kubelet) completes a Pod carrying this annotation.
COMPLETE_AFTER = "kubedrf.io/complete-after"


class BatchScheduler(Scheduler):
    def __init__(
        self,
        tasks: int,
        resources: Resources,
        complete_after: str | None = None,
        image: str | None = None,
        command: tuple[str, ...] = (),
    ) -> None:
        self.total = tasks
        self.resources = resources
        self.complete_after = complete_after
        self.image = image
        self.command = command

    def still_to_launch(self, driver: SchedulerDriver) -> int:
        """Tasks neither running, staging nor finished: failed and lost ones count again."""
        done_or_live = sum(
            1
            for status in driver.tasks.values()
            if status.state in (TaskState.STAGING, TaskState.RUNNING, TaskState.FINISHED)
        )
        return max(0, self.total - done_or_live)

    async def publish_demand(self, driver: SchedulerDriver) -> None:
        await driver.set_demand([(self.resources, self.still_to_launch(driver))])

    async def registered(self, driver: SchedulerDriver) -> None:
        logger.info("registered; adopted %d task(s)", len(driver.tasks))
        await self.publish_demand(driver)

    async def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            # Launched tasks count as staging at once, so the next offer is not overfilled.
            count = min(self.still_to_launch(driver), offer.fit(self.resources))
            if count == 0:
                await driver.decline(offer)
                continue
            await driver.launch(offer, [self._task(driver) for _ in range(count)])
            logger.info("launched %d task(s) on %s (offer %s)", count, offer.node, offer.name)
        await self.publish_demand(driver)

    def _task(self, driver: SchedulerDriver) -> TaskInfo:
        annotations = {COMPLETE_AFTER: self.complete_after} if self.complete_after else {}
        return TaskInfo(
            driver.new_task_name(),
            self.resources,
            image=self.image,
            command=self.command,
            annotations=annotations,
        )

    async def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        if status.state in (TaskState.FAILED, TaskState.LOST, TaskState.KILLED):
            logger.info(
                "task %s %s: %s; it will be relaunched", status.task, status.state, status.message
            )
        await self.publish_demand(driver)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_framework_arguments(parser)
    parser.add_argument("--tasks", type=int, default=10, help="how many tasks in all")
    parser.add_argument("--cpu", default="1")
    parser.add_argument("--memory", default="1Gi")
    parser.add_argument(
        "--complete-after", metavar="DURATION", help="on kwok nodes: tasks succeed after this"
    )
    parser.add_argument(
        "--image", help="on real nodes: the tasks' image (default: a pause container that waits)"
    )
    parser.add_argument(
        "--command",
        default="",
        help="on real nodes: what each task runs, split like a shell would (the task finishes "
        "when it exits)",
    )
    args = parser.parse_args(argv)
    resources = Resources.parse({"cpu": args.cpu, "memory": args.memory}, "--cpu/--memory")
    command = tuple(shlex.split(args.command))
    scheduler = BatchScheduler(args.tasks, resources, args.complete_after, args.image, command)
    return run(args, scheduler, demand=[(resources, args.tasks)])


if __name__ == "__main__":
    sys.exit(main())
