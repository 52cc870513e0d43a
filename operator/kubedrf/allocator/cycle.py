"""One allocation cycle: decide offers on a frozen snapshot (Mesos' ``allocate()``).

Stage 1 serves roles below their quota guarantee; stage 2 shares the rest by hierarchical
DRF, never past a limit and never into headroom that unmet guarantees still need. Each
step asks the sorter for the client with the lowest share and gives it one unit: in
classic mode everything it may take on one node (Mesos' coarse offer), in demand mode one
task of a shape it still wants (progressive filling). A client that cannot use any node is
switched off for the rest of the stage.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from kubedrf.allocator.model import (
    GPU_RESOURCES,
    AllocationResult,
    AllocatorConfig,
    Framework,
    OfferDecision,
    Reason,
    Snapshot,
    Stage,
)
from kubedrf.allocator.nodes import Fit, NodePool, ResourceIndex, Vector, needs
from kubedrf.allocator.quota import Caps, QuotaBook
from kubedrf.allocator.roles import lineage, role_weights
from kubedrf.allocator.sorter import Client, DRFSorter, Sorter, SorterFactory
from kubedrf.resources import EMPTY, Resources


def allocate(
    snapshot: Snapshot, config: AllocatorConfig | None = None, sorter: SorterFactory = DRFSorter
) -> AllocationResult:
    """Run one cycle on ``snapshot`` and return the offers to make; ``sorter`` is the
    ordering policy (Mesos' allocator takes its role and framework sorters the same way)."""
    with collector_paused():
        return _Cycle(snapshot, config or AllocatorConfig(), sorter).run()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one cycle.

    A cycle builds hundreds of thousands of small containers (heap entries, pending offers)
    that live until it ends and form no reference cycles; each burst of them set off full
    collections that rescanned every object of the process (the snapshot included), which
    cost a quarter of a large cycle. Reference counting still frees everything; the
    collector runs again afterwards, as it was before.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def offered_totals(
    snapshot: Snapshot, config: AllocatorConfig | None = None
) -> tuple[dict[Client, Resources], dict[Client, int]]:
    """Per client, all that ``allocate`` would offer it on ``snapshot`` and how many tasks
    those offers are sized for: the sums revocation's target needs, without building (and
    then summing) an offer per client and node, which costs more than the cycle itself when
    every task of the cluster is placed at once."""
    with collector_paused():
        cycle = _Cycle(snapshot, config or AllocatorConfig(), DRFSorter)
        cycle.stages()
    sums: dict[Client, Vector] = {}
    tasks: dict[Client, int] = {}
    for (framework, role, _), pending in cycle.offers.items():
        client = (framework, role)
        held = sums.get(client)
        if held is None:
            sums[client] = list(pending.resources)
            tasks[client] = sum(pending.tasks.values())
        else:
            for i, amount in enumerate(pending.resources):
                held[i] += amount
            tasks[client] += sum(pending.tasks.values())
    return {client: cycle.index.sparse(vector) for client, vector in sums.items()}, tasks


def capacity(
    snapshot: Snapshot, config: AllocatorConfig | None = None
) -> tuple[NodePool, QuotaBook, ResourceIndex]:
    """Free capacity, reserved pools and quota books exactly as a cycle on ``snapshot`` sees
    them: revocation plans on the same state the allocator offers from."""
    cycle = _Cycle(snapshot, config or AllocatorConfig(), DRFSorter)
    return cycle.pool, cycle.quota, cycle.index


def wanting_roles(
    frameworks: Iterable[Framework], remaining: Mapping[str, Sequence[int]] | None
) -> set[str]:
    """Roles some framework wants offers for: subscribed and not suppressed, and with a task
    still wanted by ``remaining`` (counts per framework and shape), or in classic mode
    (``None``) subscribed at all, as in Mesos. A lent guarantee comes back to its role as
    soon as one of these is in its subtree."""
    roles: set[str] = set()
    for fw in frameworks:
        if remaining is not None and not any(remaining.get(fw.name, ())):
            continue
        roles.update(role for role in fw.roles if role not in fw.suppressed_roles)
    return roles


@dataclass(slots=True)
class _ClientState:
    """Per-cycle bookkeeping of one (framework, role)."""

    framework: Framework
    role: str
    lineage: tuple[str, ...]
    filtered: set[int]
    gpu_allowed: bool
    reserved_nodes: list[int]
    min_allocatable: list[list[tuple[int, int]]]
    #: ``min_allocatable`` as one fit test, built on first use.
    min_fit: Fit | None = None
    cursors: dict[int, int] = field(default_factory=dict)
    saw_filter: bool = False
    offered: bool = False


class _Placement(NamedTuple):
    """Where one unit goes: a node, its unreserved part, and draws on reserved pools.

    A named tuple rather than a frozen dataclass: one is made per offer or task, and a
    frozen dataclass costs several times as much to build.
    """

    node: int
    unreserved: Vector
    draws: list[tuple[str, Vector]]

    def total(self) -> Vector:
        """All of it; shares ``unreserved`` when nothing is drawn, so read, never change it."""
        if not self.draws:
            return self.unreserved
        total = list(self.unreserved)
        for _, draw in self.draws:
            total = [t + d for t, d in zip(total, draw, strict=True)]
        return total


@dataclass(slots=True)
class _Run:
    """``n`` units of ``shape`` scheduled in turn for one client; ``taken`` so far.

    In demand mode the units are tasks of the client's shape ``s``, and ``remaining`` is
    its framework's demand, shared by the framework's roles. In classic mode (``s`` is -1)
    a unit is a whole node of a pool whose nodes all have the same free capacity, and
    ``remaining`` counts the nodes left.
    """

    state: _ClientState
    s: int
    shape: Vector
    fit: Fit
    n: int
    remaining: list[int]
    taken: int = 0
    #: Where in ``remaining`` this run counts down (a field, not a property: read per unit).
    slot: int = field(init=False)

    def __post_init__(self) -> None:
        self.slot = max(self.s, 0)


@dataclass(slots=True)
class _PendingOffer:
    resources: Vector
    stage: Stage
    tasks: dict[int, int] = field(default_factory=dict)


class _Cycle:
    #: Whether stage 2 may take ``_plain_fair_share`` when nothing needs the general loop;
    #: tests switch it off to compare the two.
    fast_paths = True
    #: Whether the plain loop in demand mode computes the sorter's turns ahead
    #: (``_plain_in_turns``); tests switch it off to compare with the loop asking each turn.
    in_turns = True

    def __init__(self, snapshot: Snapshot, config: AllocatorConfig, sorter: SorterFactory) -> None:
        self.snapshot = snapshot
        self.config = config
        self.demand_mode = config.mode == "demand"
        nodes = sorted(snapshot.nodes, key=lambda node: node.name)
        if config.seed is not None:
            random.Random(config.seed).shuffle(nodes)
        # Nodes come in a few shapes: read the names of each distinct shape once.
        shapes = {node.allocatable.key for node in nodes}
        self.index = ResourceIndex(name for key in shapes for name, _ in key)
        self.pool = NodePool(nodes, snapshot.allocations, snapshot.reservations, self.index)
        self.quota = QuotaBook(
            quotas=snapshot.quotas,
            allocations=snapshot.allocations,
            reservations=snapshot.reservations,
            reserved_in_use=self.pool.reserved_in_use,
            unreserved_free=self.pool.free_total(),
            index=self.index,
        )
        totals = [0] * len(self.index)
        for vector in self.pool.allocatable:
            for i, amount in enumerate(vector):
                totals[i] += amount
        excluded = frozenset(
            self.index.position[name]
            for name in config.fairness_excluded
            if name in self.index.position
        )
        referenced = [role for fw in snapshot.frameworks for role in fw.roles]
        referenced += [a.role for a in snapshot.allocations]
        referenced += [q.role for q in snapshot.quotas] + [r.role for r in snapshot.reservations]
        weights = role_weights({r.name: r.weight for r in snapshot.roles}, referenced)
        self.sorter: Sorter = sorter(totals, weights, excluded)
        self._track_holdings(set(weights))

        self.clients: dict[Client, _ClientState] = {}
        self.idle: dict[Client, Reason] = {}
        self.remaining: dict[str, list[int]] = {}
        self.shapes: dict[str, list[Vector | None]] = {}
        #: Per framework and shape, the fit test of one task (``None`` where no node has
        #: what the shape asks for).
        self.shape_fits: dict[str, list[Fit | None]] = {}
        self.offers: dict[tuple[str, str, int], _PendingOffer] = {}
        self._unlimited = Caps.unlimited(len(self.index))
        # Quotas never appear or vanish within a cycle.
        self._quota_active = self.quota.active
        self._filters = self._active_filters()
        self._register_clients()
        self._lend()

    # -- setup -----------------------------------------------------------------------------

    def _track_holdings(self, roles: set[str]) -> None:
        """Tell the sorter what each client holds and how many allocations it has received
        (see ``Snapshot.received``); one update per client, not per task."""
        held: dict[Client, Vector] = {}
        counts: dict[Client, int] = {}
        for allocation in self.snapshot.allocations:
            client = (allocation.framework, allocation.role)
            resources = self.index.dense_view(allocation.resources)
            sum_so_far = held.get(client)
            if sum_so_far is None:
                held[client] = list(resources)
                counts[client] = allocation.count
            else:
                for i, amount in enumerate(resources):
                    sum_so_far[i] += amount
                counts[client] += allocation.count
        if self.snapshot.received is not None:
            # Counters of clients the sorter has no role for (a departed framework's) go.
            counts = {
                (r.framework, r.role): r.count for r in self.snapshot.received if r.role in roles
            }
        for client in sorted(held.keys() | counts.keys()):
            self.sorter.add_client(client)
            amounts = held.get(client) or [0] * len(self.index)
            self.sorter.allocated(client, amounts, counts.get(client, 0))

    def _active_filters(self) -> dict[Client, set[int]]:
        """Node positions each client must not be offered: filters still in force."""
        if not self.pool.reserved:
            return self._active_filters_unreserved()
        return self._active_filters_by_role()

    def _active_filters_by_role(self) -> dict[Client, set[int]]:
        """``_active_filters`` where what a node can offer depends on the role."""
        active: dict[Client, set[int]] = {}
        now = self.snapshot.now
        # Filters pile up by the thousand on one node (one per framework that declined it),
        # mostly for the same role and amounts: decide each such combination once. The
        # answer is the node's position while such a filter is in force, else -1.
        applies: dict[tuple[str, str, Resources], int] = {}
        for f in self.snapshot.filters:
            if now >= f.expires_at:
                continue
            key = (f.node, f.role, f.refused)
            n = applies.get(key)
            if n is None:
                n = applies[key] = self._filter_node(f.node, f.role, f.refused)
            if n >= 0:
                client = (f.framework, f.role)
                nodes = active.get(client)
                if nodes is None:
                    nodes = active[client] = set()
                nodes.add(n)
        return active

    def _active_filters_unreserved(self) -> dict[Client, set[int]]:
        """``_active_filters`` when no node has a reserved pool: what a node can offer is
        then its free capacity for every role, so the filters (tens of thousands in Mesos'
        DeclineOffers shape) are compared with it in one array operation."""
        now, position, dense = self.snapshot.now, self.pool.position, self.index.dense_view
        rows: list[int] = []
        limits: list[tuple[int, ...]] = []
        clients: list[Client] = []
        for f in self.snapshot.filters:
            if now < f.expires_at and (n := position.get(f.node)) is not None:
                rows.append(n)
                limits.append(dense(f.refused))
                clients.append((f.framework, f.role))
        active: dict[Client, set[int]] = {}
        if not rows:
            return active
        width = len(self.index)
        refused = np.array(limits, dtype=np.int64).reshape(len(rows), width)
        mask: npt.NDArray[np.bool_] = np.all(self.pool.matrix[rows] <= refused, axis=1)
        applies: list[bool] = mask.tolist()
        for client, n, applied in zip(clients, rows, applies, strict=True):
            if applied:
                nodes = active.get(client)
                if nodes is None:
                    nodes = active[client] = set()
                nodes.add(n)
        return active

    def _filter_node(self, node: str, role: str, refused: Resources) -> int:
        """The position of ``node`` if a filter refusing ``refused`` still applies, else -1."""
        n = self.pool.position.get(node)
        if n is None:
            return -1
        offerable = self.pool.offerable(n, role)
        limit = self.index.dense_view(refused)
        return n if all(o <= r for o, r in zip(offerable, limit, strict=True)) else -1

    def _register_clients(self) -> None:
        default_min = self._alternatives(self.config.min_allocatable)
        for framework in sorted(self.snapshot.frameworks, key=lambda fw: fw.name):
            if framework.demand is not None:
                self.remaining[framework.name] = [shape.count for shape in framework.demand]
                shapes = [self.index.dense_strict(shape.resources) for shape in framework.demand]
                self.shapes[framework.name] = shapes
                self.shape_fits[framework.name] = [
                    None if shape is None else Fit([needs(shape)]) for shape in shapes
                ]
            own_min = (
                default_min
                if framework.min_allocatable is None
                else self._alternatives(framework.min_allocatable)
            )
            for role in dict.fromkeys(framework.roles):
                client = (framework.name, role)
                self.sorter.add_client(client)
                if role in framework.suppressed_roles:
                    self.idle[client] = Reason.SUPPRESSED
                    continue
                filtered = self._filters.get(client, set())
                gpu_allowed = GPU_RESOURCES in framework.capabilities
                self.clients[client] = _ClientState(
                    framework=framework,
                    role=role,
                    lineage=lineage(role),
                    filtered=filtered,
                    gpu_allowed=gpu_allowed,
                    # Filters and GPU visibility hold for the whole cycle: apply them once.
                    reserved_nodes=[
                        n
                        for n in self.pool.reserved_candidates(role, lineage(role))
                        if n not in filtered and (gpu_allowed or not self.pool.gpu[n])
                    ],
                    min_allocatable=own_min,
                )

    def _alternatives(self, alternatives: Sequence[Resources]) -> list[list[tuple[int, int]]]:
        """Minimums as fit tests. One naming a resource no node has can never be met and is
        dropped; an empty one, or none at all (any offer), becomes "one unit of some
        resource"."""
        result = []
        for alt in alternatives or (EMPTY,):
            vector = self.index.dense_strict(alt)
            if vector is None:
                continue
            if need := needs(vector):
                result.append(need)
            else:
                result.extend([(i, 1)] for i in range(len(self.index)))
        return result

    # -- the cycle -------------------------------------------------------------------------

    def run(self) -> AllocationResult:
        self.stages()
        return self._result()

    def stages(self) -> None:
        if self.quota.active:
            self._stage(Stage.GUARANTEE)
            if self.demand_mode:
                self._lend()
        self._stage(Stage.FAIR_SHARE)

    def _lend(self) -> None:
        """With lending on, hold no headroom for guarantees whose roles want nothing more.

        Asked again after the guarantee stage: a role that stage served all it wants holds
        nothing for the rest of its guarantee. The target that revocation aims at (held
        tasks turned into demand) then lends exactly what the cycle does."""
        if self.config.lend_guarantees and self._quota_active:
            remaining = self.remaining if self.demand_mode else None
            self.quota.lend(wanting_roles(self.snapshot.frameworks, remaining))

    def _stage(self, stage: Stage) -> None:
        guarantee = stage is Stage.GUARANTEE
        for client, state in self.clients.items():
            state.cursors.clear()
            if guarantee:
                nearest = self.quota.nearest_guarantee(state.role)
                if nearest is None or not nearest.below_guarantee():
                    continue
            self.sorter.activate(client)
        if not guarantee and self.fast_paths and not self._quota_active and not self.pool.reserved:
            self._plain_fair_share()
            return
        while (chosen := self.sorter.first()) is not None:
            client = chosen
            state = self.clients[client]
            reason = self._serve(client, state, stage)
            if reason is not None:
                self.sorter.deactivate(client)
                if not state.offered:
                    self.idle[client] = reason
            elif guarantee:
                nearest = self.quota.nearest_guarantee(state.role)
                if nearest is None or not nearest.below_guarantee():
                    self.sorter.deactivate(client)

    def _plain_fair_share(self) -> None:
        """Stage 2 when no quota and no reservation is in play: ``_serve`` and ``_commit``
        reduced to what is left of them then, inlined into one loop.

        Caps are all unlimited and no client has a reserved node, so a unit is a task on the
        first node from the cursor that fits it (demand mode) or all that is free on the
        first node that meets a minimum (classic mode). This is the bulk of large clusters'
        cycles and of revocation's target; its results equal the general loop's, which the
        tests check on random snapshots.
        """
        unit = None if self.demand_mode else self.pool.uniform_free()
        if self.in_turns and (self.demand_mode or unit is not None):
            self._plain_in_turns(unit)
            return
        sorter, clients = self.sorter, self.clients
        while (client := sorter.first()) is not None:
            self._plain_turn(client, clients[client])

    def _plain_turn(self, client: Client, state: _ClientState) -> bool:
        """One turn of ``client`` in the plain loop: a unit placed (``True``), or the client
        switched off with its reason."""
        found: int | None = None
        unit: Vector = []
        task = -1
        if self.demand_mode:
            name = state.framework.name
            remaining = self.remaining.get(name)
            if remaining is None or not any(remaining):
                reason = Reason.NO_DEMAND
            else:
                fits = self.shape_fits[name]
                for s, shape in enumerate(self.shapes[name]):
                    if not remaining[s] or shape is None:
                        continue
                    fit = fits[s]
                    assert fit is not None, "a shape some node has has a fit test"
                    found = self._search(state, s, fit)
                    if found is not None:
                        remaining[s] -= 1
                        unit, task = shape, s
                        break
                reason = Reason.FILTERED if state.saw_filter else Reason.NO_CAPACITY
        elif not state.min_allocatable:
            reason = Reason.NO_CAPACITY
        else:
            if state.min_fit is None:
                state.min_fit = Fit(state.min_allocatable)
            fit = state.min_fit
            found = self._search(state, -1, fit)
            if found is not None:
                unit = [f if f > 0 else 0 for f in self.pool.free[found]]
            reason = Reason.FILTERED if state.saw_filter else Reason.NO_CAPACITY
        if found is None:
            self.sorter.deactivate(client)
            if not state.offered:
                self.idle[client] = reason
            return False
        self._plain_commit(client, state, found, unit, task)
        self.sorter.allocated(client, unit, 1)
        return True

    def _plain_commit(
        self, client: Client, state: _ClientState, n: int, unit: Vector, task: int
    ) -> None:
        """``_commit`` without reserved draws, quota or the sorter."""
        self.pool.take(n, unit, ())
        key = (client[0], client[1], n)
        pending = self.offers.get(key)
        if pending is None:
            self.offers[key] = pending = _PendingOffer(list(unit), Stage.FAIR_SHARE, {})
        else:
            resources = pending.resources
            for i, amount in enumerate(unit):
                resources[i] += amount
        if task >= 0:
            pending.tasks[task] = pending.tasks.get(task, 0) + 1
        if not state.offered:  # a reason is only ever kept for a client never offered
            state.offered = True
            self.idle.pop(client, None)

    def _plain_in_turns(self, unit: Vector | None) -> None:
        """The plain loop with the sorter's turns computed ahead: in demand mode, and in
        classic mode when every node with room left has the same free capacity.

        While each client's units are of the size it takes now and find nodes, the sorter
        names clients in the order ``Sorter.schedule`` computes, so they are served in that
        order and the sorter is told once per client what they took. A turn that goes
        otherwise (a unit that finds no node, the next shape, a client's last turn) is
        taken as the one-by-one loop takes it, and the turns are computed again when that
        changes the others'. A client is scheduled no more tasks than the free capacity
        holds, so a client wanting millions costs no more than one wanting what fits.

        Classic mode gives every node to one client whole, so a pool of equal nodes stays
        one of equal nodes, and each client's unit is that node's capacity. Each client is
        scheduled about twice its even part of the nodes; one that reaches the end of its
        run is taken one by one and the turns computed again, each time with twice as many.
        ``unit`` is that capacity (``None`` in demand mode).
        """
        active = set(self.clients)
        sorter, clients, pool, offers = self.sorter, self.clients, self.pool, self.offers
        free, gpu = pool.free, pool.gpu
        spread = 2
        while True:
            if unit is None:
                runs = self._runs(active)
            else:
                runs = self._classic_runs(active, unit, spread)
                spread *= 2
            order, independent = sorter.schedule({c: (r.shape, r.n) for c, r in runs.items()})
            replan = False
            for client in order:
                if client not in active:
                    continue
                run = runs.get(client)
                if run is not None and run.taken < run.n and run.remaining[run.slot]:
                    # ``_search`` and ``_plain_commit`` inlined for the first node from the
                    # cursor, where nearly every task goes: this runs once per task.
                    state, s = run.state, run.s
                    n = pool.live_from(state.cursors.get(s, 0))
                    if (
                        n < len(free)
                        and n not in state.filtered
                        and (state.gpu_allowed or not gpu[n])
                        and run.fit.python(free[n])
                    ):
                        state.cursors[s] = n
                        found: int | None = n
                    else:
                        found = self._search(state, s, run.fit)
                    if found is not None:
                        run.remaining[run.slot] -= 1
                        run.taken += 1
                        key = (client[0], client[1], found)
                        pending = offers.get(key)
                        if pending is None or not state.offered:
                            self._plain_commit(client, state, found, run.shape, s)
                            continue
                        pool.take(found, run.shape, ())
                        resources = pending.resources
                        for i, amount in enumerate(run.shape):
                            resources[i] += amount
                        if s >= 0:
                            pending.tasks[s] = pending.tasks.get(s, 0) + 1
                        continue
                # The sorter is told of the turns taken only before it computes turns again:
                # it sums what it is told, so the order of its updates changes nothing.
                if self._plain_turn(client, clients[client]):
                    replan = True
                    break
                active.discard(client)
                if run is not None and run.taken < run.n and not independent:
                    replan = True
                    break
            self._tell(runs)
            if not replan:
                return

    def _tell(self, runs: dict[Client, _Run]) -> None:
        """Tell the sorter the tasks taken in turn, one update per client (integer sums, so
        its shares come out as if told task by task)."""
        for client, run in runs.items():
            if k := run.taken:
                self.sorter.allocated(client, [a * k for a in run.shape], k)

    def _runs(self, active: set[Client]) -> dict[Client, _Run]:
        """Per active client, the tasks of the first shape it still wants: at most as many
        as the free capacity holds."""
        runs: dict[Client, _Run] = {}
        holds: dict[tuple[int, ...], int] = {}
        for client in active:
            name = client[0]
            remaining = self.remaining.get(name)
            for s, shape in enumerate(self.shapes.get(name, ())):
                if not remaining or not remaining[s] or shape is None:
                    continue
                key = tuple(shape)
                if key not in holds:
                    holds[key] = self.pool.holds(shape)
                n = min(remaining[s], holds[key])
                if n > 0:
                    fit = self.shape_fits[name][s]
                    assert fit is not None, "a shape some node has has a fit test"
                    runs[client] = _Run(self.clients[client], s, shape, fit, n, remaining)
                break
        return runs

    def _classic_runs(self, active: set[Client], unit: Vector, spread: int) -> dict[Client, _Run]:
        """Per active client whose minimum a node of ``unit`` meets, up to ``spread`` times
        its even part of the nodes left, whole nodes in turn."""
        left = self.pool.holds(unit)
        n = min(left, spread * -(-left // max(len(active), 1)))
        runs: dict[Client, _Run] = {}
        if n <= 0:
            return runs
        for client in active:
            state = self.clients[client]
            if not state.min_allocatable:
                continue
            if state.min_fit is None:
                state.min_fit = Fit(state.min_allocatable)
            if state.min_fit.python(unit):
                runs[client] = _Run(state, -1, unit, state.min_fit, n, [left])
        return runs

    def _search(self, state: _ClientState, cursor: int, fit: Fit) -> int | None:
        """``NodePool.search`` from the client's cursor ``cursor``, trying the first live
        node inline: there most searches end."""
        cursors, skip, gpu_allowed = state.cursors, state.filtered, state.gpu_allowed
        start = cursors.get(cursor, 0)
        pool = self.pool
        n = pool.live_from(start)
        if (
            n < len(pool.free)
            and n not in skip
            and (gpu_allowed or not pool.gpu[n])
            and fit.python(pool.free[n])
        ):
            cursors[cursor] = n
            return n
        found, resume, filtered = pool.search(start, fit, skip, gpu_allowed)
        cursors[cursor] = resume
        state.saw_filter |= filtered
        return found

    def _serve(self, client: Client, state: _ClientState, stage: Stage) -> Reason | None:
        """Give ``client`` one unit, or say why it can take nothing more this stage."""
        if self._quota_active:
            caps = self.quota.caps(state.role, stage is Stage.GUARANTEE)
        else:
            caps = self._unlimited
        if self.demand_mode:
            return self._serve_task(client, state, stage, caps)
        return self._serve_node(client, state, stage, caps)

    def _lacking(self, state: _ClientState, stage: Stage) -> list[int] | None:
        """In stage 1, the resources the client's guarantee still lacks; else ``None``."""
        if stage is not Stage.GUARANTEE:
            return None
        nearest = self.quota.nearest_guarantee(state.role)
        if nearest is None:
            return []
        unmet = nearest.unmet()
        return [i for i in nearest.guaranteed if unmet[i] > 0]

    def _serve_task(
        self, client: Client, state: _ClientState, stage: Stage, caps: Caps
    ) -> Reason | None:
        any_cap, limit_cap = caps.anything, caps.limit
        # Stage 1 serves tasks that bring the role closer to its guarantee, and a task's
        # other resources may come out of headroom held for other guarantees: otherwise one
        # guarantee the cluster cannot hold would keep every role from its own (invariant 5).
        unreserved_cap = caps.unheld if stage is Stage.GUARANTEE else caps.unreserved
        name = state.framework.name
        remaining = self.remaining.get(name)
        if remaining is None or not any(remaining):
            return Reason.NO_DEMAND
        blocked = Reason.NO_CAPACITY
        lacking = self._lacking(state, stage) if stage is Stage.GUARANTEE else None
        unlimited = caps is self._unlimited
        fits = self.shape_fits[name]
        for s, shape in enumerate(self.shapes[name]):
            if not remaining[s] or shape is None:
                continue
            if lacking is not None and not any(shape[i] > 0 for i in lacking):
                continue  # stage 1 serves only what the guarantee still lacks
            if not unlimited and _exceeds(shape, any_cap):
                blocked = _worse(blocked, Reason.QUOTA_LIMIT)
                continue
            placed = self._place(state, s, shape, unreserved_cap, fit=fits[s], unlimited=unlimited)
            if placed is None:
                if _exceeds(shape, limit_cap):
                    blocked = _worse(blocked, Reason.QUOTA_LIMIT)
                elif _exceeds(shape, unreserved_cap) and self._held_back(state, s, shape, caps):
                    blocked = _worse(blocked, Reason.HEADROOM)
                continue
            remaining[s] -= 1
            self._commit(client, state, stage, placed, task=s)
            return None
        if blocked is Reason.NO_CAPACITY and state.saw_filter:
            return Reason.FILTERED
        return blocked

    def _place(
        self,
        state: _ClientState,
        s: int,
        shape: Vector,
        unreserved_cap: Vector,
        *,
        fit: Fit | None,
        unlimited: bool,
    ) -> _Placement | None:
        """A node for one task of ``shape``: reserved pools first, then unreserved capacity.

        ``fit`` is the shape's fit test; ``unlimited`` says the caps are all unlimited, so
        no request can exceed them."""
        for n in state.reserved_nodes:
            split = self._split(n, state.role, shape, unreserved_cap)
            if split is not None:
                return _Placement(n, split[0], split[1])
        if not unlimited and _exceeds(shape, unreserved_cap):
            return None
        assert fit is not None, "a shape some node has has a fit test"
        found, resume, filtered = self.pool.search(
            state.cursors.get(s, 0), fit, state.filtered, state.gpu_allowed
        )
        state.cursors[s] = resume
        state.saw_filter |= filtered
        if found is None:
            return None
        return _Placement(found, list(shape), [])

    def _held_back(self, state: _ClientState, s: int, shape: Vector, caps: Caps) -> bool:
        """Whether a task of ``shape`` would be placed if no headroom were held back: only
        then is headroom, not capacity, what keeps it waiting."""
        if _exceeds(shape, caps.unheld):
            return False
        for n in state.reserved_nodes:
            if self._split(n, state.role, shape, caps.unheld) is not None:
                return True
        fit = self.shape_fits[state.framework.name][s]
        assert fit is not None, "a shape some node has has a fit test"
        found, _, _ = self.pool.search(
            state.cursors.get(s, 0), fit, state.filtered, state.gpu_allowed
        )
        return found is not None

    def _draw_reserved(
        self, n: int, role: str, bound: Vector
    ) -> tuple[list[tuple[str, Vector]], Vector]:
        """Draw up to ``bound`` from the reserved pools ``role`` may use on node ``n``;
        returns the draws and what of ``bound`` is left."""
        left = list(bound)
        draws = []
        for owner, pool in self.pool.reserved_for(n, role):
            draw = [min(x, p) for x, p in zip(left, pool, strict=True)]
            if any(draw):
                draws.append((owner, draw))
                left = [x - d for x, d in zip(left, draw, strict=True)]
        return draws, left

    def _split(
        self, n: int, role: str, request: Vector, unreserved_cap: Vector
    ) -> tuple[Vector, list[tuple[str, Vector]]] | None:
        """Draw ``request`` from reserved pools on ``n`` first, the rest from free capacity."""
        draws, rest = self._draw_reserved(n, role, request)
        free = self.pool.free[n]
        if not _exceeds(rest, free) and not _exceeds(rest, unreserved_cap):
            return rest, draws
        return None

    def _serve_node(
        self, client: Client, state: _ClientState, stage: Stage, caps: Caps
    ) -> Reason | None:
        unreserved_cap, any_cap, limit_cap = caps.unreserved, caps.anything, caps.limit
        alternatives = state.min_allocatable
        if not alternatives:
            return Reason.NO_CAPACITY
        lacking = self._lacking(state, stage)
        if lacking is not None:
            # Stage 1: an offer must also hold some of what the guarantee still lacks.
            alternatives = [[*alt, (i, 1)] for alt in alternatives for i in lacking]
        for n in state.reserved_nodes:
            offer = self._coarse_offer(n, state.role, unreserved_cap, any_cap)
            if offer is not None and _qualifies(offer.total(), alternatives):
                self._commit(client, state, stage, offer)
                return None
        if caps is self._unlimited:
            usable = alternatives
        else:
            usable = [alt for alt in alternatives if _within(alt, unreserved_cap)]
        if not usable and not any(_within(alt, limit_cap) for alt in alternatives):
            return Reason.QUOTA_LIMIT
        found = None
        if usable:
            if lacking is None and len(usable) == len(state.min_allocatable):
                # All of the client's own alternatives: the fit test it always uses.
                if state.min_fit is None:
                    state.min_fit = Fit(usable)
                fit = state.min_fit
            else:
                fit = Fit(usable)
            found, resume, filtered = self.pool.search(
                state.cursors.get(-1, 0), fit, state.filtered, state.gpu_allowed
            )
            state.cursors[-1] = resume
            state.saw_filter |= filtered
        if found is None:
            # Headroom blocks only if an offer it stopped would have found a node.
            held = [a for a in alternatives if a not in usable and _within(a, caps.unheld)]
            if held:
                fit = Fit(held)
                if self.pool.search(0, fit, state.filtered, state.gpu_allowed)[0] is not None:
                    return Reason.HEADROOM
            return Reason.FILTERED if state.saw_filter else Reason.NO_CAPACITY
        offer = self._coarse_offer(found, state.role, unreserved_cap, any_cap)
        assert offer is not None, "a node that fits an alternative has something to offer"
        self._commit(client, state, stage, offer)
        return None

    def _coarse_offer(
        self, n: int, role: str, unreserved_cap: Vector, any_cap: Vector
    ) -> _Placement | None:
        """Everything ``role`` may take on node ``n`` (Mesos' offer of a whole agent)."""
        free = self.pool.free[n]
        unlimited = self._unlimited
        if (
            n not in self.pool.reserved
            and unreserved_cap is unlimited.unreserved
            and any_cap is unlimited.anything
        ):
            # The common case, no reservation on the node and no quota: all that is free.
            unreserved = [f if f > 0 else 0 for f in free]
            return _Placement(n, unreserved, []) if any(unreserved) else None
        draws, room = self._draw_reserved(n, role, any_cap)
        unreserved = [
            max(0, min(f, u, r)) for f, u, r in zip(free, unreserved_cap, room, strict=True)
        ]
        placement = _Placement(n, unreserved, draws)
        return placement if any(placement.total()) else None

    def _commit(
        self,
        client: Client,
        state: _ClientState,
        stage: Stage,
        placement: _Placement,
        task: int | None = None,
    ) -> None:
        self.pool.take(placement.node, placement.unreserved, placement.draws)
        if self._quota_active:
            self.quota.record(state.role, placement.unreserved, placement.draws)
        total = placement.total()
        key = (client[0], client[1], placement.node)
        pending = self.offers.get(key)
        if pending is None:
            self.offers[key] = pending = _PendingOffer(list(total), stage, {})
        else:
            resources = pending.resources
            for i, amount in enumerate(total):
                resources[i] += amount
        if task is not None:
            pending.tasks[task] = pending.tasks.get(task, 0) + 1
        state.offered = True
        self.idle.pop(client, None)
        self.sorter.allocated(client, total, 1)

    def _result(self) -> AllocationResult:
        offers = tuple(
            OfferDecision(
                framework=framework,
                role=role,
                node=self.pool.names[n],
                resources=self.index.sparse(pending.resources),
                stage=pending.stage,
                tasks=tuple(sorted(pending.tasks.items())),
            )
            for (framework, role, n), pending in self.offers.items()
        )
        idle = tuple(
            (framework, role, self._final(framework, reason))
            for (framework, role), reason in sorted(self.idle.items())
        )
        return AllocationResult(offers=offers, idle=idle)

    def _final(self, framework: str, reason: Reason) -> Reason:
        """A reason as the cycle ends: in demand mode a framework shares one demand across
        its roles, so a role told why it could not be served may have seen the framework's
        whole demand met under another role later in the cycle; then nothing blocks it."""
        remaining = self.remaining.get(framework)
        if self.demand_mode and reason is not Reason.SUPPRESSED and not any(remaining or ()):
            return Reason.NO_DEMAND
        return reason


_SEVERITY = (Reason.NO_CAPACITY, Reason.HEADROOM, Reason.QUOTA_LIMIT)


def _worse(current: Reason, candidate: Reason) -> Reason:
    """Report the most specific obstacle: a quota limit over headroom over plain capacity."""
    return max(current, candidate, key=_SEVERITY.index)


def _exceeds(request: Sequence[int], cap: Sequence[int]) -> bool:
    """Whether ``request`` asks for more than ``cap`` of a resource it needs at all.

    A cap may be negative (a limit already passed, headroom already short); that must not
    block a request for none of that resource.
    """
    # Plain loops here and below: these run several times per step of a cycle.
    for r, c in zip(request, cap, strict=True):
        if r and r > c:
            break
    else:
        return False
    return True


def _within(alternative: Sequence[tuple[int, int]], cap: Sequence[int]) -> bool:
    for i, amount in alternative:
        if cap[i] < amount:
            break
    else:
        return True
    return False


def _qualifies(offer: Sequence[int], alternatives: Sequence[Sequence[tuple[int, int]]]) -> bool:
    return any(_within(alt, offer) for alt in alternatives)
