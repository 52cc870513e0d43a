"""Virtual-time runs of the allocator: no cluster, one cycle per allocationInterval.

Simulated frameworks launch as many demanded tasks as fit in each offer and decline the rest
with their refuseSeconds, which installs a filter — exactly what the master sees from real
framework controllers, so the allocator code under test is the one the master runs. A
scenario's timeline (arrivals, departures, events) changes the state at the start of the
first cycle at or after each moment it names.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubedrf.allocator import (
    Allocation,
    AllocatorConfig,
    Filter,
    Framework,
    Node,
    OfferDecision,
    Quota,
    Received,
    Reservation,
    Role,
    Snapshot,
    TaskShape,
    allocate,
)
from kubedrf.allocator.filters import expire, refusal_expiry, revive
from kubedrf.allocator.roles import lineage
from kubedrf.allocator.sorter import Client
from kubedrf.resources import EMPTY, Resources, total, zero_named
from kubedrf.simulator.scenario import (
    Scenario,
    ScenarioEvent,
    ScenarioFramework,
    ScenarioNode,
    ScenarioQuota,
)


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
    """One cycle: its offers, holdings after it, and per framework the tasks it launched and
    the offers it declined in this cycle."""

    cycle: int
    time: float
    offers: tuple[OfferDecision, ...]
    frameworks: dict[str, Usage]
    roles: dict[str, Usage]
    launched: dict[str, int] = field(default_factory=dict)
    declined: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class SimulationResult:
    scenario: Scenario
    cycles: list[CycleRecord] = field(default_factory=list)

    @property
    def final(self) -> CycleRecord:
        return self.cycles[-1]


def _node(node: ScenarioNode) -> Node:
    return Node(node.name, Resources.parse(node.allocatable, f"nodes.{node.name}"))


def _quota(quota: ScenarioQuota) -> Quota:
    limit = None if quota.limit is None else Resources.parse(quota.limit)
    return Quota(quota.role, Resources.parse(quota.guarantee), limit, zero_named(quota.limit))


def _alternatives(
    minimum: Mapping[str, str] | Sequence[Mapping[str, str]] | None,
) -> tuple[Resources, ...] | None:
    """A minAllocatable as the allocator takes it: ``None`` keeps the default."""
    if minimum is None:
        return None
    if isinstance(minimum, Mapping):
        return (Resources.parse(minimum),)
    return tuple(Resources.parse(alternative) for alternative in minimum)


class Simulation:
    """The state a run carries from cycle to cycle: the cluster as the timeline has shaped it,
    running tasks, launches, filters, and how many allocations each client has received."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        defaults = AllocatorConfig()
        minimum = _alternatives(scenario.min_allocatable)
        self.config = AllocatorConfig(
            mode=scenario.mode,
            fairness_excluded=frozenset(scenario.fairness_excluded_resources),
            min_allocatable=defaults.min_allocatable if minimum is None else minimum,
            seed=scenario.seed,
        )
        self.nodes = {node.name: _node(node) for node in scenario.nodes}
        self.weights = {role.name: role.weight for role in scenario.roles}
        self.quotas = {quota.role: _quota(quota) for quota in scenario.quotas}
        self.reservations = tuple(
            Reservation(r.role, r.node_name, Resources.parse(r.resources))
            for r in scenario.reservations
        )
        self.frameworks = {fw.name: fw for fw in scenario.frameworks}
        self.shapes = {
            fw.name: Resources.parse(fw.tasks.resources) if fw.tasks else EMPTY
            for fw in scenario.frameworks
        }
        self.wanted = {fw.name: fw.tasks.count if fw.tasks else 0 for fw in scenario.frameworks}
        self.present: set[str] = set()
        self.suppressed: dict[str, set[str]] = defaultdict(set)
        self.received: dict[Client, int] = defaultdict(int)
        self.launched: dict[str, int] = defaultdict(int)
        self.tasks: list[Task] = []
        self.filters: list[Filter] = []
        self.role_names = sorted(
            {name for role in self._referenced_roles() for name in lineage(role)}
        )
        # The timeline by cycle: departures, then arrivals, then events in file order.
        self.leaving: dict[int, list[str]] = defaultdict(list)
        self.arriving: dict[int, list[str]] = defaultdict(list)
        self.events: dict[int, list[ScenarioEvent]] = defaultdict(list)
        for fw in scenario.frameworks:
            self.arriving[scenario.cycle_of(fw.arrives_at)].append(fw.name)
            if fw.leaves_at is not None:
                self.leaving[scenario.cycle_of(fw.leaves_at)].append(fw.name)
        for event in scenario.events:
            self.events[scenario.cycle_of(event.at)].append(event)
        self.last_change = max([*self.leaving, *self.arriving, *self.events], default=0)

    def _referenced_roles(self) -> list[str]:
        scenario = self.scenario
        roles = [role.name for role in scenario.roles]
        roles += [role for fw in scenario.frameworks for role in fw.roles]
        roles += [q.role for q in scenario.quotas] + [r.role for r in scenario.reservations]
        for event in scenario.events:
            if event.set_quota is not None:
                roles.append(event.set_quota.role)
            if event.set_weight is not None:
                roles.append(event.set_weight.role)
        return roles

    # -- the timeline ----------------------------------------------------------------------

    def _advance(self, cycle: int) -> None:
        for name in self.leaving.get(cycle, ()):
            self._leave(name)
        self.present.update(self.arriving.get(cycle, ()))
        for event in self.events.get(cycle, ()):
            self._apply(event)

    def _leave(self, name: str) -> None:
        """A framework that leaves ends its tasks and releases everything it held."""
        self.present.discard(name)
        self.tasks = [t for t in self.tasks if t.framework != name]
        self.filters = [f for f in self.filters if f.framework != name]
        for client in [c for c in self.received if c[0] == name]:
            del self.received[client]

    def _apply(self, event: ScenarioEvent) -> None:
        for node in event.add_nodes or ():
            self.nodes[node.name] = _node(node)
        for name in event.remove_nodes or ():
            self._remove_node(name)
        if event.set_quota is not None:
            self.quotas[event.set_quota.role] = _quota(event.set_quota)
        if event.remove_quota is not None:
            del self.quotas[event.remove_quota]
        if event.set_weight is not None:
            self.weights[event.set_weight.role] = event.set_weight.weight
        if event.set_tasks is not None:
            self.wanted[event.set_tasks.framework] = event.set_tasks.count
        if event.suppress is not None:
            fw = self.frameworks[event.suppress.framework]
            role = event.suppress.role
            self.suppressed[fw.name].update([role] if role else fw.roles)
        if event.revive is not None:
            name, role = event.revive.framework, event.revive.role
            self.suppressed[name] = {r for r in self.suppressed[name] if role not in (None, r)}
            self.filters = list(revive(self.filters, name, role))

    def _remove_node(self, name: str) -> None:
        """Tasks on a removed node are lost, and their frameworks want them again."""
        del self.nodes[name]
        for task in self.tasks:
            if task.node == name:
                self.launched[task.framework] -= 1
        self.tasks = [t for t in self.tasks if t.node != name]
        self.filters = [f for f in self.filters if f.node != name]

    # -- one cycle -------------------------------------------------------------------------

    def step(self, cycle: int) -> tuple[CycleRecord, bool]:
        """Run cycle ``cycle``; also say whether anything changed or still can."""
        now = cycle * self.scenario.allocation_interval
        finished = [t for t in self.tasks if t.ends_at is not None and t.ends_at <= now]
        if finished:
            self.tasks = [t for t in self.tasks if t.ends_at is None or t.ends_at > now]
        self._advance(cycle)
        self.filters = list(expire(self.filters, now))
        result = allocate(self._snapshot(now), self.config)
        launched: dict[str, int] = defaultdict(int)
        declined: list[OfferDecision] = []
        for offer in result.offers:
            self.received[offer.framework, offer.role] += offer.units
            count, used_up = self._answer(offer, now)
            launched[offer.framework] += count
            if not used_up:
                declined.append(offer)
        self._install_filters(declined, now)
        record = CycleRecord(
            cycle=cycle,
            time=now,
            offers=result.offers,
            frameworks=self._framework_usage(),
            roles=self._role_usage(),
            launched={name: launched[name] for name in self.frameworks},
            declined={
                name: sum(1 for o in declined if o.framework == name) for name in self.frameworks
            },
        )
        pending = any(t.ends_at is not None for t in self.tasks) or bool(self.filters)
        timeline = cycle < self.last_change
        return record, bool(result.offers or finished or pending or timeline)

    def _demand(self, fw: ScenarioFramework) -> tuple[TaskShape, ...] | None:
        if fw.tasks is None:
            return None
        left = max(0, self.wanted[fw.name] - self.launched[fw.name])
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
                suppressed_roles=frozenset(self.suppressed[fw.name]),
                capabilities=frozenset(fw.capabilities),
                min_allocatable=_alternatives(fw.min_allocatable),
                demand=self._demand(fw),
            )
            for fw in self.frameworks.values()
            if fw.name in self.present
        )
        return Snapshot(
            nodes=tuple(self.nodes.values()),
            frameworks=frameworks,
            roles=tuple(Role(name, weight) for name, weight in self.weights.items()),
            quotas=tuple(self.quotas.values()),
            reservations=tuple(r for r in self.reservations if r.node in self.nodes),
            allocations=allocations,
            filters=tuple(self.filters),
            now=now,
            received=tuple(
                Received(fw, role, count) for (fw, role), count in sorted(self.received.items())
            ),
        )

    def _answer(self, offer: OfferDecision, now: float) -> tuple[int, bool]:
        """Launch as many demanded tasks as fit; return how many, and whether the whole
        offer was used (else the rest is declined)."""
        fw = self.frameworks[offer.framework]
        if fw.tasks is None or fw.decline_all:
            return 0, False
        shape = self.shapes[fw.name]
        left = self.wanted[fw.name] - self.launched[fw.name]
        fit = min((offer.resources[name] // amount for name, amount in shape.items()), default=left)
        count = max(0, min(left, fit))
        ends_at = now + fw.tasks.duration if fw.tasks.duration > 0 else None
        for _ in range(count):
            self.tasks.append(Task(fw.name, offer.role, offer.node, shape, ends_at))
        self.launched[fw.name] += count
        return count, (offer.resources - shape * count).clamped().is_empty()

    def _install_filters(self, declined: list[OfferDecision], now: float) -> None:
        """A declined remainder installs a filter remembering what the node could offer."""
        used: dict[str, Resources] = defaultdict(Resources)
        for task in self.tasks:
            used[task.node] += task.resources
        interval = self.scenario.allocation_interval
        for offer in declined:
            fw = self.frameworks[offer.framework]
            expires = refusal_expiry(now, fw.refuse_seconds, interval)
            if expires is None:
                continue
            free = (self.nodes[offer.node].allocatable - used[offer.node]).clamped()
            self.filters.append(Filter(fw.name, offer.role, offer.node, expires, free))

    # -- reporting -------------------------------------------------------------------------

    def _share(self, allocated: Resources) -> float:
        cluster = total(node.allocatable for node in self.nodes.values())
        return allocated.dominant_share(cluster, self.scenario.fairness_excluded_resources)

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
