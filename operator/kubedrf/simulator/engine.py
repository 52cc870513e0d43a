"""Virtual-time runs of the allocator: no cluster, one cycle per allocationInterval.

Simulated frameworks launch as many demanded tasks as fit in each offer and decline the rest
with their refuseSeconds, which installs a filter — exactly what the master sees from real
framework controllers, so the allocator code under test is the one the master runs. A
scenario's timeline (arrivals, departures, events) changes the state at the start of the
first cycle at or after each moment it names.

With ``revocation`` on, each cycle first asks the allocator's revocation decision which tasks
to end, on the running tasks less those already being revoked. A framework that answers ends
them at once; one that ignores inverse offers loses them at the deadline (eviction). Either
way the freed node is held for the beneficiary until then plus one cycle, and the lost tasks
are wanted again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

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
    Revocation,
    RevocationPolicy,
    Role,
    Snapshot,
    Task,
    TaskShape,
    allocate,
    hold_freed,
    revocations,
    without_revoked,
)
from kubedrf.allocator.filters import expire, refusal_expiry, revive
from kubedrf.allocator.oversized import oversized
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
class InFlight:
    """A revocation under way: its tasks end at ``ends_at`` (at once if the framework
    answers, else at the eviction deadline); its node is held until a cycle after that."""

    revocation: Revocation
    ends_at: float
    held_until: float


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
    #: Revocations started in this cycle.
    revocations: tuple[Revocation, ...] = ()


@dataclass(slots=True)
class SimulationResult:
    scenario: Scenario
    cycles: list[CycleRecord] = field(default_factory=list)
    #: What a user should know about the run, such as tasks no node can hold, each once.
    warnings: list[str] = field(default_factory=list)

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
            lend_guarantees=scenario.revocation is not None and scenario.revocation.lend_guarantees,
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
        #: When each task with a duration finishes.
        self.ends_at: dict[str, float] = {}
        self.task_serial = 0
        self.filters: list[Filter] = []
        self.revoking: list[InFlight] = []
        revocation = scenario.revocation
        self.policy = (
            RevocationPolicy(min_runtime=revocation.min_runtime)
            if revocation is not None and revocation.enabled
            else None
        )
        self.grace_period = revocation.grace_period if revocation is not None else 0.0
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
        #: Warnings in the order they first arose, each once.
        self.warnings: dict[str, None] = {}

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
        self._drop([t for t in self.tasks if t.framework == name])
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
        self._end([t.name for t in self.tasks if t.node == name])
        self.filters = [f for f in self.filters if f.node != name]

    # -- one cycle -------------------------------------------------------------------------

    def step(self, cycle: int) -> tuple[CycleRecord, bool]:
        """Run cycle ``cycle``; also say whether anything changed or still can."""
        now = cycle * self.scenario.allocation_interval
        finished = [t for t in self.tasks if t.name in self.ends_at and self.ends_at[t.name] <= now]
        self._drop(finished)
        self._advance(cycle)
        self.filters = list(expire(self.filters, now))
        started = self._revoke(now) if self.policy is not None else ()
        snapshot = self._snapshot(now)
        for found in oversized(snapshot):
            self.warnings.setdefault(f"framework {found.framework}: {found.message()}", None)
        held = self._holds(snapshot, now)
        result = allocate(replace(snapshot, filters=snapshot.filters + held), self.config)
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
            revocations=started,
        )
        pending = bool(self.ends_at or self.filters or self.revoking or started)
        timeline = cycle < self.last_change
        return record, bool(result.offers or finished or pending or timeline or self._maturing(now))

    # -- revocation ------------------------------------------------------------------------

    def _revoke(self, now: float) -> tuple[Revocation, ...]:
        """End what is due, then start this cycle's revocations; return those started."""
        for flight in self.revoking:
            if flight.ends_at <= now:
                self._end(flight.revocation.tasks)
        interval = self.scenario.allocation_interval
        self.revoking = [f for f in self.revoking if f.held_until > now]
        # Tasks already being revoked are gone in the decision's eyes: none is revoked twice.
        under_way = without_revoked(self._snapshot(now), [f.revocation for f in self.revoking])
        started = revocations(under_way, self.config, self.policy)
        deadline = self.scenario.cycle_of(now + self.grace_period) * interval
        for r in started:
            ends_at = deadline if self.frameworks[r.framework].ignores_revocation else now
            self.revoking.append(InFlight(r, ends_at, ends_at + interval))
            if ends_at <= now:
                self._end(r.tasks)
        return started

    def _end(self, names: Sequence[str]) -> None:
        """End the named tasks still running; their frameworks want them again."""
        ending = set(names)
        lost = [t for t in self.tasks if t.name in ending]
        self._drop(lost)
        for task in lost:
            self.launched[task.framework] -= 1

    def _holds(self, snapshot: Snapshot, now: float) -> tuple[Filter, ...]:
        """Filters that keep nodes freed (or being freed) for their beneficiaries."""
        return tuple(
            hold
            for flight in self.revoking
            if flight.revocation.beneficiary in self.present
            for hold in hold_freed(snapshot, [flight.revocation], flight.held_until)
        )

    def _maturing(self, now: float) -> bool:
        """Whether a task is still too young to revoke: the decision may change once it
        is not, though nothing else does."""
        if self.policy is None or not self.policy.min_runtime:
            return False
        return any(now - t.started_at < self.policy.min_runtime for t in self.tasks)

    def _demand(self, fw: ScenarioFramework) -> tuple[TaskShape, ...] | None:
        if fw.tasks is None:
            return None
        left = max(0, self.wanted[fw.name] - self.launched[fw.name])
        return (TaskShape(self.shapes[fw.name], left),)

    def _drop(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        names = {t.name for t in tasks}
        self.tasks = [t for t in self.tasks if t.name not in names]
        for name in names:
            self.ends_at.pop(name, None)

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
            tasks=tuple(self.tasks),
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
        for _ in range(count):
            self.task_serial += 1
            name = f"{fw.name}-{self.task_serial}"
            self.tasks.append(Task(name, fw.name, offer.role, offer.node, shape, now))
            if fw.tasks.duration > 0:
                self.ends_at[name] = now + fw.tasks.duration
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
    result.warnings = list(simulation.warnings)
    return result
