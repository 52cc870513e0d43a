"""What a scheduler may ask of its driver, as a Protocol (Mesos' ``SchedulerDriver``).

Schedulers are typed against this, not against the driver that talks to Kubernetes, so
that a scheduler can be tested against ``kubedrf.framework.testing.FakeDriver``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from kubedrf.framework.model import InverseOffer, Offer, TaskInfo, TaskStatus
from kubedrf.resources import Resources

#: (task resources, how many more) pairs: what a framework still wants.
Demand = Sequence[tuple[Resources, int]]


class SchedulerDriver(Protocol):
    @property
    def name(self) -> str:
        """The Framework's name (and the default prefix of task names)."""
        ...

    @property
    def namespace(self) -> str: ...

    @property
    def roles(self) -> Sequence[str]: ...

    @property
    def tasks(self) -> Mapping[str, TaskStatus]:
        """Every task of this framework the driver knows of, by name, with its last state:
        adopted Pods (before ``registered``), launched tasks (STAGING from the moment
        ``launch`` is called) and finished ones (kept, so their names are not reused)."""
        ...

    @property
    def offers(self) -> Mapping[str, Offer]:
        """Offers delivered and not yet answered, rescinded or expired, by name."""
        ...

    def new_task_name(self, prefix: str | None = None) -> str:
        """A task name no task of this framework has: ``PREFIX-N`` (default prefix: the
        framework's name), never handed out twice."""
        ...

    async def launch(self, offer: Offer, tasks: Sequence[TaskInfo]) -> list[str]:
        """Launch ``tasks`` on ``offer`` and accept it; the unused rest returns to the pool.
        Raises ``OfferMismatchError`` when they do not fit or reuse a task's name."""
        ...

    async def decline(self, offer: Offer, refuse_seconds: float | None = None) -> None:
        """Decline ``offer``; its node is not offered again for ``refuse_seconds``."""
        ...

    async def give_back(self, inverse_offer: InverseOffer, tasks: Sequence[str]) -> None:
        """Answer ``inverse_offer``: end ``tasks`` (this framework's, on its node) now."""
        ...

    async def set_demand(self, demand: Demand) -> None:
        """Tell the master what is still wanted; an unchanged demand is not written again."""
        ...

    async def suppress(self, role: str | None = None) -> None: ...

    async def revive(self) -> None: ...

    async def reserve(self, node: str, resources: Resources, role: str | None = None) -> str: ...

    async def kill(self, task: str) -> None: ...
