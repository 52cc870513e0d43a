"""The driver's bookkeeping of tasks, offers and demand, apart from any I/O, so that the
Kubernetes driver and the fake driver for tests keep the same rules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from kubedrf.framework.model import Offer, OfferMismatchError, TaskInfo, TaskState, TaskStatus
from kubedrf.framework.protocol import Demand
from kubedrf.resources import total


class TaskLedger:
    def __init__(self, name: str, demand: Demand | None = None) -> None:
        self.name = name
        #: Every task of this framework, by name, with its last known state.
        self.tasks: dict[str, TaskStatus] = {}
        #: Offers delivered to the scheduler and not yet answered, by name.
        self.offers: dict[str, Offer] = {}
        self._serials: dict[str, Iterator[int]] = {}
        self._demand = _key(demand) if demand is not None else None

    def new_task_name(self, prefix: str | None = None) -> str:
        serial = self._serials.setdefault(prefix or self.name, itertools.count())
        while (name := f"{prefix or self.name}-{next(serial)}") in self.tasks:
            pass
        return name

    def stage(self, offer: Offer, tasks: Sequence[TaskInfo]) -> None:
        """Check ``tasks`` against ``offer`` and count them STAGING at once, so that the
        scheduler's next decision (a second offer of the same batch) already sees them."""
        names = [task.name for task in tasks]
        reused = sorted({n for n in names if n in self.tasks or names.count(n) > 1})
        if reused:
            raise OfferMismatchError(
                f"offer {offer.name}: task names must be unique, {', '.join(reused)} are"
                " already taken (driver.new_task_name gives fresh ones)"
            )
        asked = total(offer.ask(task.resources) for task in tasks)
        if not asked <= offer.resources:
            raise OfferMismatchError(
                f"tasks ask for {asked.to_quantities()}, offer {offer.name} has"
                f" {offer.resources.to_quantities()}"
            )
        for name in names:
            self.tasks[name] = TaskStatus(name, TaskState.STAGING, offer.node, offer=offer.name)

    def answered(self, offer: Offer) -> None:
        self.offers.pop(offer.name, None)

    def demand_is_current(self, demand: Demand) -> bool:
        """Whether ``demand`` is the last one written, so writing it again can be skipped."""
        return _key(demand) == self._demand

    def demand_written(self, demand: Demand) -> None:
        self._demand = _key(demand)


def _key(demand: Demand) -> tuple[tuple[object, int], ...]:
    return tuple((resources, count) for resources, count in demand)
