"""Virtual-time runs of the allocator: no cluster, one cycle per allocationInterval.

Simulated frameworks launch as many demanded tasks as fit in each offer and decline the rest
with their refuseSeconds, which installs a filter — exactly what the master sees from real
framework controllers, so the allocator code under test is the one the master runs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from kubedrf.allocator import (
    Allocation,
    AllocatorConfig,
    Filter,
    Framework,
    Node,
    OfferDecision,
    Quota,
    Reservation,
    Role,
    Snapshot,
    TaskShape,
    allocate,
)
from kubedrf.allocator.filters import expire
from kubedrf.allocator.roles import lineage
from kubedrf.resources import EMPTY, Resources, total
from kubedrf.simulator.scenario import Scenario, ScenarioFramework


@dataclass(frozen=True, slots=True)
class Task:
    framework: str
    role: str
    node: str
    resources: Resources
    ends_at: float | None


@dataclass(frozen=True, slots=True)
class Usage:
    """What a framework or role holds at one point in time."""

    tasks: int
    allocated: Resources
    dominant_share: float


@dataclass(frozen=True, slots=True)
class CycleRecord:
    cycle: int
    time: float
    offers: tuple[OfferDecision, ...]
    frameworks: dict[str, Usage]
    roles: dict[str, Usage]


@dataclass(slots=True)
class SimulationResult:
    scenario: Scenario
    cycles: list[CycleRecord] = field(default_factory=list)

    @property
    def final(self) -> CycleRecord:
        return self.cycles[-1]


class Simulation:
    """The state a run carries from cycle to cycle: running tasks, launches, filters."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.config = AllocatorConfig(
            mode=scenario.mode,
            fairness_excluded=frozenset(scenario.fairness_excluded_resources),
            seed=scenario.seed,
        )
        self.nodes = tuple(
            Node(node.name, Resources.parse(node.allocatable, f"nodes.{node.name}"))
            for node in scenario.nodes
        )
        self.allocatable = {node.name: node.allocatable for node in self.nodes}
        self.cluster_total = total(node.allocatable for node in self.nodes)
        self.roles = tuple(Role(role.name, role.weight) for role in scenario.roles)
        self.quotas = tuple(
            Quota(
                quota.role,
                Resources.parse(quota.guarantee),
                None if quota.limit is None else Resources.parse(quota.limit),
            )
            for quota in scenario.quotas
        )
        self.reservations = tuple(
            Reservation(r.role, r.node_name, Resources.parse(r.resources))
            for r in scenario.reservations
        )
        self.frameworks = {fw.name: fw for fw in scenario.frameworks}
        self.shapes = {
            fw.name: Resources.parse(fw.tasks.resources) if fw.tasks else EMPTY
            for fw in scenario.frameworks
        }
        self.launched: dict[str, int] = defaultdict(int)
        self.tasks: list[Task] = []
        self.filters: list[Filter] = []
        self.role_names = sorted(
            {name for role in self._referenced_roles() for name in lineage(role)}
        )

    def _referenced_roles(self) -> list[str]:
        roles = [role.name for role in self.roles]
        roles += [role for fw in self.frameworks.values() for role in fw.roles]
        return roles + [q.role for q in self.quotas] + [r.role for r in self.reservations]

    # -- one cycle -------------------------------------------------------------------------

    def step(self, cycle: int) -> tuple[CycleRecord, bool]:
        """Run cycle ``cycle``; also say whether anything changed or still can."""
        now = cycle * self.scenario.allocation_interval
        finished = [t for t in self.tasks if t.ends_at is not None and t.ends_at <= now]
        if finished:
            self.tasks = [t for t in self.tasks if t.ends_at is None or t.ends_at > now]
        self.filters = list(expire(self.filters, now))
        result = allocate(self._snapshot(now), self.config)
        declined = [offer for offer in result.offers if not self._answer(offer, now)]
        self._install_filters(declined, now)
        record = CycleRecord(
            cycle=cycle,
            time=now,
            offers=result.offers,
            frameworks=self._framework_usage(),
            roles=self._role_usage(),
        )
        pending = any(t.ends_at is not None for t in self.tasks) or bool(self.filters)
        return record, bool(result.offers or finished or pending)

    def _demand(self, fw: ScenarioFramework) -> tuple[TaskShape, ...] | None:
        if fw.tasks is None:
            return None
        left = max(0, fw.tasks.count - self.launched[fw.name])
        return (TaskShape(self.shapes[fw.name], left),)

    def _snapshot(self, now: float) -> Snapshot:
        held: dict[tuple[str, str, str], list[Task]] = defaultdict(list)
        for task in self.tasks:
            held[task.framework, task.role, task.node].append(task)
        allocations = tuple(
            Allocation(fw, role, node, total(t.resources for t in tasks), len(tasks))
            for (fw, role, node), tasks in sorted(held.items())
        )
        frameworks = tuple(
            Framework(
                name=fw.name,
                roles=tuple(fw.roles),
                capabilities=frozenset(fw.capabilities),
                min_allocatable=(
                    (Resources.parse(fw.min_allocatable),) if fw.min_allocatable else ()
                ),
                demand=self._demand(fw),
            )
            for fw in self.frameworks.values()
        )
        return Snapshot(
            nodes=self.nodes,
            frameworks=frameworks,
            roles=self.roles,
            quotas=self.quotas,
            reservations=self.reservations,
            allocations=allocations,
            filters=tuple(self.filters),
            now=now,
        )

    def _answer(self, offer: OfferDecision, now: float) -> bool:
        """Launch as many demanded tasks as fit; say whether the whole offer was used."""
        fw = self.frameworks[offer.framework]
        if fw.tasks is None:
            return False
        shape = self.shapes[fw.name]
        left = fw.tasks.count - self.launched[fw.name]
        fit = min((offer.resources[name] // amount for name, amount in shape.items()), default=left)
        count = max(0, min(left, fit))
        ends_at = now + fw.tasks.duration if fw.tasks.duration > 0 else None
        for _ in range(count):
            self.tasks.append(Task(fw.name, offer.role, offer.node, shape, ends_at))
        self.launched[fw.name] += count
        return (offer.resources - shape * count).clamped().is_empty()

    def _install_filters(self, declined: list[OfferDecision], now: float) -> None:
        """A declined remainder installs a filter remembering what the node could offer."""
        used: dict[str, Resources] = defaultdict(Resources)
        for task in self.tasks:
            used[task.node] += task.resources
        for offer in declined:
            fw = self.frameworks[offer.framework]
            if fw.refuse_seconds <= 0:
                continue
            free = (self.allocatable[offer.node] - used[offer.node]).clamped()
            self.filters.append(
                Filter(fw.name, offer.role, offer.node, now + fw.refuse_seconds, free)
            )

    # -- reporting -------------------------------------------------------------------------

    def _share(self, allocated: Resources) -> float:
        return allocated.dominant_share(
            self.cluster_total, self.scenario.fairness_excluded_resources
        )

    def _framework_usage(self) -> dict[str, Usage]:
        usage = {}
        for name in self.frameworks:
            mine = [t for t in self.tasks if t.framework == name]
            allocated = total(t.resources for t in mine)
            usage[name] = Usage(len(mine), allocated, self._share(allocated))
        return usage

    def _role_usage(self) -> dict[str, Usage]:
        usage = {}
        for role in self.role_names:
            mine = [t for t in self.tasks if role in lineage(t.role)]
            allocated = total(t.resources for t in mine)
            usage[role] = Usage(len(mine), allocated, self._share(allocated))
        return usage


def simulate(scenario: Scenario) -> SimulationResult:
    """Run ``scenario`` for its cycles, or until nothing changes any more."""
    simulation = Simulation(scenario)
    result = SimulationResult(scenario)
    for cycle in range(scenario.cycles):
        record, changing = simulation.step(cycle)
        result.cycles.append(record)
        if not changing:
            break
    return result
