"""The scheduler interface, in Mesos' spirit: the driver calls these as things happen."""

from __future__ import annotations

from kubedrf.framework.model import InverseOffer, Offer, TaskStatus
from kubedrf.framework.protocol import SchedulerDriver


class Scheduler:
    """Override what your framework cares about; every callback defaults to doing nothing
    (and unanswered offers simply expire, so ``resource_offers`` should answer each one)."""

    async def registered(self, driver: SchedulerDriver) -> None:
        """The Framework object exists and its existing task Pods are in ``driver.tasks``;
        called once, before the first offers."""

    async def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """New offers (those of one allocation cycle together): launch tasks on each
        (``driver.launch``) or decline it."""

    async def offer_rescinded(self, driver: SchedulerDriver, offer: str) -> None:
        """An offer is no longer valid (expired, node gone, framework suppressed)."""

    async def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """A task changed state (not called for the STAGING that ``launch`` records)."""

    async def inverse_offers(
        self, driver: SchedulerDriver, inverse_offers: list[InverseOffer]
    ) -> None:
        """The master asks for resources back (another framework is below its fair share).
        For each, end tasks on its node that free at least its resources and say which
        with ``driver.give_back``, before its deadline; after it, the master evicts the
        tasks it named. By default, those named tasks are given back at once."""
        for inverse_offer in inverse_offers:
            await driver.give_back(inverse_offer, inverse_offer.tasks)

    async def error(self, driver: SchedulerDriver, message: str) -> None:
        """Something the framework should know went wrong (a refused task, a bad spec)."""
