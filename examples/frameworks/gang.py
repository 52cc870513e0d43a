"""gang: all or nothing. It launches only when the offers in hand cover the whole gang;
otherwise it declines them all (briefly, so it is asked again soon).

    python examples/frameworks/gang.py --namespace ml --name job --size 4 --cpu 2 --memory 4Gi
"""

from __future__ import annotations

import argparse
import logging
import sys

from kubedrf.framework import Offer, Scheduler, SchedulerDriver, TaskInfo, TaskState, TaskStatus
from kubedrf.framework.runner import add_framework_arguments, run
from kubedrf.resources import Resources

logger = logging.getLogger("gang")


class GangScheduler(Scheduler):
    def __init__(self, size: int, resources: Resources, retry_seconds: float = 1.0) -> None:
        self.size = size
        self.resources = resources
        self.retry_seconds = retry_seconds
        self.launched = False

    async def registered(self, driver: SchedulerDriver) -> None:
        self.launched = any(s.state is not TaskState.FAILED for s in driver.tasks.values())
        await driver.set_demand([(self.resources, 0 if self.launched else self.size)])

    async def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        room = sum(offer.fit(self.resources) for offer in offers)
        if self.launched or room < self.size:
            logger.info("offers fit %d of %d tasks: declining them all", room, self.size)
            for offer in offers:
                await driver.decline(offer, self.retry_seconds)
            return
        left = self.size
        for offer in offers:
            count = min(left, offer.fit(self.resources))
            if count == 0:
                await driver.decline(offer, self.retry_seconds)
                continue
            tasks = [TaskInfo(driver.new_task_name(), self.resources) for _ in range(count)]
            await driver.launch(offer, tasks)
            left -= count
        self.launched = True
        await driver.set_demand([(self.resources, 0)])
        logger.info("gang of %d launched", self.size)

    async def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        logger.info("task %s is %s", status.task, status.state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_framework_arguments(parser)
    parser.add_argument("--size", type=int, default=4, help="tasks in the gang")
    parser.add_argument("--cpu", default="1")
    parser.add_argument("--memory", default="1Gi")
    args = parser.parse_args(argv)
    resources = Resources.parse({"cpu": args.cpu, "memory": args.memory}, "--cpu/--memory")
    return run(args, GangScheduler(args.size, resources), demand=[(resources, args.size)])


if __name__ == "__main__":
    sys.exit(main())
