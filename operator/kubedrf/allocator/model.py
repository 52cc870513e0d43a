"""The allocator's inputs and outputs: frozen values, no Kubernetes types.

The master and the simulator build a ``Snapshot`` from their state; ``allocate`` decides on
it alone and returns ``OfferDecision``s. Everything here is hashable and immutable, so one
snapshot can be replayed, compared and logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from kubedrf.resources import CPU, EMPTY, MEMORY, Resources

#: The Mesos capability that lets a framework see nodes with GPUs.
GPU_RESOURCES = "GPU_RESOURCES"

#: The role a framework uses when it names none (Mesos' ``*``).
DEFAULT_ROLE = "default"

Mode = Literal["demand", "classic"]


@dataclass(frozen=True, slots=True)
class Node:
    """A managed node. ``external_usage`` is what Pods outside any framework request there."""

    name: str
    allocatable: Resources
    external_usage: Resources = EMPTY


@dataclass(frozen=True, slots=True)
class Role:
    """A role; dotted names nest (``eng.frontend`` is a child of ``eng``)."""

    name: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Quota:
    """Guarantee and limit of a role; a resource absent from ``limit`` is unlimited.

    ``zero_limit`` names the resources the limit allows none of: a ``Resources`` drops zero
    amounts, and without this a limit of zero would read as no limit at all.
    """

    role: str
    guarantee: Resources = EMPTY
    limit: Resources | None = None
    zero_limit: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Reservation:
    """Resources on one node that only ``role`` and its descendants may be offered."""

    role: str
    node: str
    resources: Resources


@dataclass(frozen=True, slots=True)
class TaskShape:
    """``count`` more tasks that each need ``resources``."""

    resources: Resources
    count: int


@dataclass(frozen=True, slots=True)
class Framework:
    """A framework as the allocator sees it.

    ``demand`` is what the framework still wants beyond its running tasks and outstanding
    offers; ``None`` means it declared no demand (it gets offers only in classic mode).
    ``min_allocatable`` overrides the allocator's default alternatives unless ``None``; an
    empty tuple (or an empty alternative) allows any non-empty offer, as in Mesos.
    """

    name: str
    roles: tuple[str, ...] = (DEFAULT_ROLE,)
    suppressed_roles: frozenset[str] = frozenset()
    capabilities: frozenset[str] = frozenset()
    min_allocatable: tuple[Resources, ...] | None = None
    demand: tuple[TaskShape, ...] | None = None


@dataclass(frozen=True, slots=True)
class Allocation:
    """Resources a framework holds under a role on a node: running tasks plus open offers.

    ``count`` is the number of allocation units (tasks or offers) behind it; DRF breaks
    share ties by it.
    """

    framework: str
    role: str
    node: str
    resources: Resources
    count: int = 1


@dataclass(frozen=True, slots=True)
class Received:
    """How many allocations ``framework`` under ``role`` has received so far."""

    framework: str
    role: str
    count: int


@dataclass(frozen=True, slots=True)
class Task:
    """One running task, part of the ``Allocation`` of its (framework, role, node).

    Allocations sum tasks up; revocation needs what that loses: which task to end, and how
    long it has run (``minRuntime``, newest first). ``name`` is unique in a snapshot.
    """

    name: str
    framework: str
    role: str
    node: str
    resources: Resources
    started_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Filter:
    """A refusal filter: while active, ``framework`` under ``role`` is not offered ``node``.

    ``refused`` is what the node could offer when the filter was installed; the filter stops
    applying once the node can offer more than that of any resource.
    """

    framework: str
    role: str
    node: str
    expires_at: float
    refused: Resources


def _default_min_allocatable() -> tuple[Resources, ...]:
    # Mesos' default: an offer must hold at least 0.01 CPU or 32 MB of memory.
    return (Resources({CPU: 10}), Resources({MEMORY: 32 * 2**20}))


@dataclass(frozen=True, slots=True)
class AllocatorConfig:
    """Policy knobs. ``seed`` shuffles the node order; ``None`` keeps name order.

    ``min_allocatable`` are the master's alternatives (Mesos' --min_allocatable_resources);
    an empty tuple allows any non-empty offer.

    ``lend_guarantees`` lets other roles use the headroom of an unmet guarantee while no
    client in the guaranteed role's subtree wants anything; revocation returns it when one
    does. Off, the headroom is held regardless, as in Mesos.
    """

    mode: Mode = "demand"
    fairness_excluded: frozenset[str] = frozenset()
    min_allocatable: tuple[Resources, ...] = field(default_factory=_default_min_allocatable)
    seed: int | None = None
    lend_guarantees: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one allocation cycle decides on, frozen at the cycle's start.

    ``received`` breaks ties in dominant share. Mesos' sorter counts every allocation a
    client has been made and never forgets one, so identical clients take turns instead of
    the first by name taking everything. That count outlives a cycle, so the caller keeps it
    (the simulator in its own state) and every offer of this cycle adds its units on top.
    ``None`` stands in with what each client holds now (its tasks and open offers), which
    a restarted master rebuilds from the API alone.
    """

    nodes: tuple[Node, ...]
    frameworks: tuple[Framework, ...]
    roles: tuple[Role, ...] = ()
    quotas: tuple[Quota, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    filters: tuple[Filter, ...] = ()
    now: float = 0.0
    received: tuple[Received, ...] | None = None
    tasks: tuple[Task, ...] = ()


class Stage(StrEnum):
    """Which pass of the cycle made an offer."""

    GUARANTEE = "guarantee"
    FAIR_SHARE = "fair-share"


@dataclass(frozen=True, slots=True)
class OfferDecision:
    """One offer to make: ``framework`` under ``role`` on ``node``.

    In demand mode ``tasks`` says how many tasks of each demanded shape the offer was sized
    for (by index into the framework's ``demand``); in classic mode it is empty.
    """

    framework: str
    role: str
    node: str
    resources: Resources
    stage: Stage
    tasks: tuple[tuple[int, int], ...] = ()

    @property
    def units(self) -> int:
        """Allocation units behind the offer: its tasks in demand mode, else the one offer."""
        return max(1, sum(count for _, count in self.tasks))


@dataclass(frozen=True, slots=True)
class RevocationPolicy:
    """How eagerly running tasks are taken back.

    ``min_runtime``: a task younger than this (seconds) is never revoked, so a task gets
    some work done before it can be ended. ``max_per_cycle``: at most this many tasks per
    cycle, so one arrival does not end half the cluster at once. ``blocked``: tasks (by
    name) whose eviction a PodDisruptionBudget refused lately; none is chosen, so a refusal
    turns the next choice to another task, framework or node instead of waiting on it.
    """

    min_runtime: float = 0.0
    max_per_cycle: int = 100
    blocked: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.min_runtime < 0:
            raise ValueError(f"min_runtime: must be at least 0, got {self.min_runtime}")
        if self.max_per_cycle < 1:
            raise ValueError(f"max_per_cycle: must be at least 1, got {self.max_per_cycle}")


@dataclass(frozen=True, slots=True)
class Revocation:
    """End ``tasks`` of ``framework`` under ``role`` on ``node`` so that ``beneficiary``
    under ``beneficiary_role`` can run one more task of its ``shape`` (index into its
    demand) there. ``resources`` is what the tasks free."""

    framework: str
    role: str
    node: str
    tasks: tuple[str, ...]
    resources: Resources
    beneficiary: str
    beneficiary_role: str
    shape: int


@dataclass(frozen=True, slots=True)
class FairShare:
    """What a (framework, role) holds and what the DRF allocation of the current demand
    would give it: the answer to "what is my fair share?"."""

    framework: str
    role: str
    held: Resources
    share: float
    target: Resources
    target_share: float
    target_tasks: int


class Reason(StrEnum):
    """Why a framework's role got no (further) offer in a cycle: the answer to "why not me?"."""

    NO_DEMAND = "NoDemand"
    SUPPRESSED = "Suppressed"
    QUOTA_LIMIT = "QuotaLimitReached"
    HEADROOM = "HeldForGuarantees"
    FILTERED = "Filtered"
    NO_CAPACITY = "InsufficientCapacity"


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """The cycle's offers, and for each (framework, role) that got none, the reason."""

    offers: tuple[OfferDecision, ...]
    idle: tuple[tuple[str, str, Reason], ...] = ()

    def reasons(self) -> dict[tuple[str, str], Reason]:
        return {(framework, role): reason for framework, role, reason in self.idle}
