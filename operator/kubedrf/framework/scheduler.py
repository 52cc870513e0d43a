"""The scheduler interface, in Mesos' spirit: the driver calls these as things happen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubedrf.framework.model import Offer, TaskStatus

if TYPE_CHECKING:
    from kubedrf.framework.driver import SchedulerDriver


class Scheduler:
    """Override what your framework cares about; every callback defaults to doing nothing
    (and unanswered offers simply expire, so ``resource_offers`` should answer each one)."""

    async def registered(self, driver: SchedulerDriver) -> None:
        """The Framework object exists; running tasks were adopted into ``driver.tasks``."""

    async def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """New offers: launch tasks on them (``driver.launch``) or decline them."""

    async def offer_rescinded(self, driver: SchedulerDriver, offer: str) -> None:
        """An offer is no longer valid (expired, node gone, framework suppressed)."""

    async def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """A task changed state."""

    async def error(self, driver: SchedulerDriver, message: str) -> None:
        """Something the framework should know went wrong (a refused task, a bad spec)."""
