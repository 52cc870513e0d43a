"""primary-backup: one primary, then two backups that start only once the primary runs.

    python examples/frameworks/primary_backup.py --namespace db --name pg --cpu 1 --memory 2Gi

The seed's motivating example of why a framework wants to choose for itself: the backups are
launched only after the primary is Running, and receive its Pod IP and node through the
environment variables PRIMARY_IP and PRIMARY_NODE. A failed primary is launched again. Asked
for resources back (an InverseOffer), it gives up backups before the primary.
"""

from __future__ import annotations

import argparse
import logging
import sys

from kubedrf.framework import (
    InverseOffer,
    Offer,
    Scheduler,
    SchedulerDriver,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from kubedrf.framework.runner import add_framework_arguments, run
from kubedrf.resources import Resources

logger = logging.getLogger("primary-backup")
LIVE = (TaskState.STAGING, TaskState.RUNNING)


class PrimaryBackupScheduler(Scheduler):
    def __init__(self, resources: Resources, backups: int = 2) -> None:
        self.resources = resources
        self.backups = backups

    def primary(self, driver: SchedulerDriver) -> TaskStatus | None:
        live = [s for name, s in driver.tasks.items() if "-primary-" in name and s.state in LIVE]
        return live[0] if live else None

    def live_backups(self, driver: SchedulerDriver) -> list[str]:
        return [name for name, s in driver.tasks.items() if "-backup-" in name and s.state in LIVE]

    def wanted(self, driver: SchedulerDriver) -> int:
        primary = self.primary(driver)
        if primary is None:
            return 1
        if primary.state is not TaskState.RUNNING:
            return 0  # backups wait for a running primary
        return self.backups - len(self.live_backups(driver))

    async def publish_demand(self, driver: SchedulerDriver) -> None:
        await driver.set_demand([(self.resources, self.wanted(driver))])

    async def registered(self, driver: SchedulerDriver) -> None:
        await self.publish_demand(driver)

    async def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            tasks = self._next_tasks(driver, min(offer.fit(self.resources), self.wanted(driver)))
            if tasks:
                await driver.launch(offer, tasks)
            else:
                await driver.decline(offer)
        await self.publish_demand(driver)

    def _next_tasks(self, driver: SchedulerDriver, room: int) -> list[TaskInfo]:
        if room <= 0:
            return []
        primary = self.primary(driver)
        if primary is None:
            name = driver.new_task_name(f"{driver.name}-primary")
            return [TaskInfo(name, self.resources, env={"ROLE": "primary"})]
        env = {
            "ROLE": "backup",
            "PRIMARY_IP": primary.pod_ip or "",
            "PRIMARY_NODE": primary.node or "",
        }
        backup = f"{driver.name}-backup"
        return [
            TaskInfo(driver.new_task_name(backup), self.resources, env=env) for _ in range(room)
        ]

    async def inverse_offers(
        self, driver: SchedulerDriver, inverse_offers: list[InverseOffer]
    ) -> None:
        """Asked for tasks back: end backups on that node before the primary (each task
        is the same size, so as many tasks as the master named free as much)."""
        for inverse_offer in inverse_offers:
            here = [
                name
                for name, s in driver.tasks.items()
                if s.node == inverse_offer.node and s.state in LIVE
            ]
            backups_first = sorted(here, key=lambda name: ("-primary-" in name, name))
            await driver.give_back(inverse_offer, backups_first[: len(inverse_offer.tasks)])

    async def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        logger.info("task %s is %s", status.task, status.state)
        await self.publish_demand(driver)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_framework_arguments(parser)
    parser.add_argument("--cpu", default="1")
    parser.add_argument("--memory", default="1Gi")
    parser.add_argument("--backups", type=int, default=2)
    args = parser.parse_args(argv)
    resources = Resources.parse({"cpu": args.cpu, "memory": args.memory}, "--cpu/--memory")
    scheduler = PrimaryBackupScheduler(resources, args.backups)
    return run(args, scheduler, demand=[(resources, 1)])


if __name__ == "__main__":
    sys.exit(main())
