"""A driver with no cluster behind it, for unit-testing a scheduler.

It keeps the real driver's rules (``launch`` checks the tasks against the offer, refuses a
name already taken and records the tasks STAGING) and records every answer instead of
writing it, so a test can hand a scheduler offers and read back what it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kubedrf.framework.ledger import TaskLedger
from kubedrf.framework.model import InverseOffer, Offer, TaskInfo, TaskStatus
from kubedrf.framework.protocol import Demand
from kubedrf.framework.scheduler import Scheduler
from kubedrf.resources import Resources


@dataclass
class Answers:
    """What a scheduler did, in order."""

    launched: dict[str, list[TaskInfo]] = field(default_factory=dict)
    declined: dict[str, float | None] = field(default_factory=dict)
    demands: list[list[tuple[Resources, int]]] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    suppressed: list[str | None] = field(default_factory=list)
    revived: int = 0
    reserved: list[tuple[str, Resources, str | None]] = field(default_factory=list)
    given_back: dict[str, list[str]] = field(default_factory=dict)


class FakeDriver(TaskLedger):
    def __init__(
        self,
        scheduler: Scheduler,
        *,
        name: str = "fw",
        namespace: str = "default",
        roles: Sequence[str] = ("default",),
    ) -> None:
        super().__init__(name)
        self.scheduler = scheduler
        self.namespace = namespace
        self.roles = list(roles)
        self.answers = Answers()

    # -- what the real driver would deliver ---------------------------------------------------

    async def register(self, *adopted: TaskStatus) -> None:
        """Adopt ``adopted`` task states (as after a restart), then call ``registered``."""
        self.tasks.update((status.task, status) for status in adopted)
        await self.scheduler.registered(self)

    async def offer(self, *offers: Offer) -> None:
        self.offers.update((offer.name, offer) for offer in offers)
        await self.scheduler.resource_offers(self, list(offers))

    async def ask_back(self, *inverse_offers: InverseOffer) -> None:
        await self.scheduler.inverse_offers(self, list(inverse_offers))

    async def update(self, status: TaskStatus) -> None:
        self.tasks[status.task] = status
        await self.scheduler.status_update(self, status)

    # -- what a scheduler may do --------------------------------------------------------------

    async def launch(self, offer: Offer, tasks: Sequence[TaskInfo]) -> list[str]:
        self.stage(offer, tasks)
        self.answered(offer)
        self.answers.launched[offer.name] = list(tasks)
        return [task.name for task in tasks]

    async def decline(self, offer: Offer, refuse_seconds: float | None = None) -> None:
        self.answered(offer)
        self.answers.declined[offer.name] = refuse_seconds

    async def set_demand(self, demand: Demand) -> None:
        if not self.demand_is_current(demand):
            self.answers.demands.append(list(demand))
            self.demand_written(demand)

    async def suppress(self, role: str | None = None) -> None:
        self.answers.suppressed.append(role)

    async def revive(self) -> None:
        self.answers.revived += 1

    async def reserve(self, node: str, resources: Resources, role: str | None = None) -> str:
        self.answers.reserved.append((node, resources, role))
        return f"{self.namespace}.{self.name}.{node}"

    async def kill(self, task: str) -> None:
        self.answers.killed.append(task)

    async def give_back(self, inverse_offer: InverseOffer, tasks: Sequence[str]) -> None:
        self.answers.given_back[inverse_offer.name] = list(tasks)
        for task in tasks:
            await self.kill(task)
