"""Revocation: which running tasks to end so that shares converge to the DRF target.

The target is what progressive filling gives on the same snapshot if nothing were held:
``allocate`` in demand mode on a copy without allocations or filters, every held task turned
back into demand. A client at least one task's share below its target is a beneficiary,
and only clients whose share is above what the beneficiary's will be give tasks up.
For it (lowest share first) and one task of a shape it still wants, each node is tried:
tasks of clients above their target are taken there, furthest above first and newest first,
until the task fits; those not needed are put back; the node needing the fewest wins. No
task younger than ``min_runtime`` is taken, nor one whose loss would put its client below
its target or its role below a guarantee; a beneficiary that free capacity can already
serve waits for its offer instead.

From peers. Kueue (``scheduler/preemption``): the decision apart from the cycle, on the
cycle's snapshot; remove candidates in order until the workload fits, then fill back those
not needed; fair sharing takes from the queue furthest above its share first. Volcano
(``actions/reclaim``): one pending task and one node at a time, and the freed node is
pipelined to that task, which is our hold (``hold_freed``). YuniKorn (``objects/preemption``):
skip victims whose queue would fall below its guarantee or that do not reduce the node's
shortfall, and prefer the node that needs the fewest victims.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NoReturn

import numpy as np

from kubedrf.allocator.cycle import capacity, collector_paused, offered_totals
from kubedrf.allocator.model import (
    GPU_RESOURCES,
    Allocation,
    AllocatorConfig,
    FairShare,
    Filter,
    Framework,
    Revocation,
    RevocationPolicy,
    Snapshot,
    Task,
    TaskShape,
)
from kubedrf.allocator.nodes import Fit, Vector, needs
from kubedrf.allocator.quota import Caps
from kubedrf.allocator.roles import in_subtree, lineage
from kubedrf.allocator.sorter import Client
from kubedrf.resources import EMPTY, Resources, total

_Key = tuple[str, str, str]

#: Shares closer than this are equal (float sums of the same fractions differ in the last bits).
EPSILON = 1e-9


def revocation_target(
    snapshot: Snapshot, config: AllocatorConfig | None = None
) -> tuple[FairShare, ...]:
    """Each client's holding beside its DRF target for the current demand, by client."""
    config = config or AllocatorConfig()
    target, tasks = _target(_unheld(snapshot), replace(config, mode="demand"))
    held = _held(snapshot.allocations)
    known = {fw.name for fw in snapshot.frameworks}
    clients = {(fw.name, role) for fw in snapshot.frameworks for role in fw.roles}
    clients |= {client for client in held if client[0] in known}
    cluster = total(node.allocatable for node in snapshot.nodes)
    excluded = config.fairness_excluded
    return tuple(
        FairShare(
            framework=framework,
            role=role,
            held=held.get((framework, role), EMPTY),
            share=held.get((framework, role), EMPTY).dominant_share(cluster, excluded),
            target=target.get((framework, role), EMPTY),
            target_share=target.get((framework, role), EMPTY).dominant_share(cluster, excluded),
            target_tasks=tasks.get((framework, role), 0),
        )
        for framework, role in sorted(clients)
    )


@lru_cache(maxsize=2)
def _target(
    unheld: Snapshot, config: AllocatorConfig
) -> tuple[Mapping[Client, Resources], Mapping[Client, int]]:
    """The target allocation per client (resources, tasks), kept while demand stays the
    same: every task is demand, so launching and ending tasks leave this snapshot as it was,
    and steady cycles reuse it."""
    return offered_totals(unheld, config)


def revocations(
    snapshot: Snapshot,
    config: AllocatorConfig | None = None,
    policy: RevocationPolicy | None = None,
    targets: Sequence[FairShare] | None = None,
) -> tuple[Revocation, ...]:
    """The tasks to end this cycle, each for one task of a client below its DRF target.

    ``targets`` spares computing ``revocation_target(snapshot, config)`` when the caller has.
    """
    config = config or AllocatorConfig()
    with collector_paused():  # a candidate per running task: as in a cycle, see there
        shares = revocation_target(snapshot, config) if targets is None else targets
        return _Planner(snapshot, config, policy or RevocationPolicy(), shares).run()


def hold_freed(
    snapshot: Snapshot, revocations: Iterable[Revocation], until: float
) -> tuple[Filter, ...]:
    """Filters that keep each node freed by ``revocations`` from everyone but its
    beneficiary until ``until``: what is freed goes to the beneficiary, not to whoever the
    next cycle serves first. They refuse the whole node, so they apply whatever frees up."""
    nodes = {node.name: node for node in snapshot.nodes}
    beneficiaries: dict[str, set[Client]] = {}
    for r in revocations:
        beneficiaries.setdefault(r.node, set()).add((r.beneficiary, r.beneficiary_role))
    clients = sorted((fw.name, role) for fw in snapshot.frameworks for role in fw.roles)
    return tuple(
        Filter(framework, role, node, until, nodes[node].allocatable)
        for node, keep in sorted(beneficiaries.items())
        if node in nodes
        for framework, role in clients
        if (framework, role) not in keep
    )


def without_revoked(snapshot: Snapshot, revocations: Iterable[Revocation]) -> Snapshot:
    """The snapshot once the revoked tasks have ended: gone from tasks and allocations, and
    wanted again by their frameworks (a framework re-runs what it lost)."""
    ended = {name for r in revocations for name in r.tasks}
    lost = [t for t in snapshot.tasks if t.name in ended]
    if not lost:
        return snapshot
    freed: dict[tuple[str, str, str], tuple[Resources, int]] = {}
    for task in lost:
        key = (task.framework, task.role, task.node)
        resources, count = freed.get(key, (EMPTY, 0))
        freed[key] = (resources + task.resources, count + 1)
    allocations = []
    for a in snapshot.allocations:
        key = (a.framework, a.role, a.node)
        if key not in freed:
            allocations.append(a)
            continue
        # A key may have several allocations: take the ended tasks out of them in turn.
        resources, count = freed[key]
        taken = resources.minimum(a.resources)
        freed[key] = ((resources - taken).clamped(), max(0, count - a.count))
        left = (a.resources - taken).clamped()
        if left:
            allocations.append(replace(a, resources=left, count=max(1, a.count - count)))
    again: dict[str, dict[Resources, int]] = {}
    for task in lost:
        _count(again.setdefault(task.framework, {}), task.resources, 1)
    frameworks = tuple(_wanting(fw, again.get(fw.name, {})) for fw in snapshot.frameworks)
    return replace(
        snapshot,
        allocations=tuple(allocations),
        tasks=tuple(t for t in snapshot.tasks if t.name not in ended),
        frameworks=frameworks,
    )


# -- the target ---------------------------------------------------------------------------


def _held(allocations: Iterable[Allocation]) -> dict[Client, Resources]:
    # Summed in one go per client: adding ``Resources`` one by one builds a map per step.
    by_client: dict[Client, list[Resources]] = {}
    for a in allocations:
        by_client.setdefault((a.framework, a.role), []).append(a.resources)
    return {client: total(items) for client, items in by_client.items()}


def _refuse_tasks(snapshot: Snapshot) -> NoReturn:
    """Name the first task that repeats a name or lies outside the allocation of its
    (framework, role, node). Only called once the fast check in ``_held_shapes`` failed."""
    allocated: dict[_Key, Resources] = {}
    for a in snapshot.allocations:
        key = (a.framework, a.role, a.node)
        allocated[key] = allocated.get(key, EMPTY) + a.resources
    seen: set[str] = set()
    for i, task in enumerate(snapshot.tasks):
        if task.name in seen:
            raise ValueError(f"tasks[{i}]: task name {task.name!r} is not unique")
        seen.add(task.name)
        key = (task.framework, task.role, task.node)
        left = allocated.get(key, EMPTY) - task.resources
        if any(amount < 0 for amount in left.values()):
            raise ValueError(
                f"tasks[{i}] ({task.name!r}): exceeds what {task.framework!r} holds under role"
                f" {task.role!r} on node {task.node!r}; every task must be within an allocation"
            )
        allocated[key] = left
    raise AssertionError("_refuse_tasks called on valid tasks")


def _held_shapes(snapshot: Snapshot) -> dict[str, dict[Resources, int]]:
    """What each framework holds, as counts of task shapes.

    Listed tasks are exact. The rest of an allocation (open offers, unlisted tasks) is its
    ``count`` equal units when it divides evenly, else one unit. Tasks must have unique
    names and lie within the allocation of their (framework, role, node).
    """
    allocated: dict[_Key, tuple[Resources, int]] = {}
    for a in snapshot.allocations:
        key = (a.framework, a.role, a.node)
        known = allocated.get(key)
        if known is None:
            allocated[key] = (a.resources, a.count)
        else:
            allocated[key] = (known[0] + a.resources, known[1] + a.count)
    # Tasks come by the hundred thousand in a few shapes: count shapes (``Counter`` counts
    # in C), then multiply.
    listed: dict[_Key, dict[Resources, int]] = {}
    counted = Counter((t.framework, t.role, t.node, t.resources) for t in snapshot.tasks)
    for (framework, role, node, resources), n in counted.items():
        listed.setdefault((framework, role, node), {})[resources] = n
    if len({task.name for task in snapshot.tasks}) < len(snapshot.tasks):
        _refuse_tasks(snapshot)
    if any(key not in allocated for key in listed):
        _refuse_tasks(snapshot)
    shapes: dict[str, dict[Resources, int]] = {}
    for key, (resources, units) in allocated.items():
        held = shapes.setdefault(key[0], {})
        tasks = listed.get(key, {})
        if len(tasks) == 1:
            # The common case, tasks of one shape that make up the whole allocation.
            ((shape, n),) = tasks.items()
            if shape * n == resources:
                _count(held, shape, n)
                continue
        rest, count = resources, units
        for shape, n in tasks.items():
            _count(held, shape, n)
            rest = rest - shape * n
            count -= n
        if any(amount < 0 for amount in rest.values()):
            _refuse_tasks(snapshot)
        if not rest:
            continue
        unit = Resources({name: amount // max(count, 1) for name, amount in rest.items()})
        if count > 1 and unit * count == rest:
            _count(held, unit, count)
        else:
            _count(held, rest, 1)
    return shapes


def _count(counts: dict[Resources, int], shape: Resources, count: int) -> None:
    counts[shape] = counts.get(shape, 0) + count


def _wanting(framework: Framework, more: Mapping[Resources, int]) -> Framework:
    """``framework`` wanting ``more`` tasks of each shape besides its own demand."""
    if not more:
        return framework
    counts: dict[Resources, int] = {}
    for shape in framework.demand or ():
        _count(counts, shape.resources, shape.count)
    for resources, count in more.items():
        _count(counts, resources, count)
    return replace(framework, demand=tuple(TaskShape(r, c) for r, c in counts.items()))


def _unheld(snapshot: Snapshot) -> Snapshot:
    """The snapshot as if nothing were held: every held task is demand again, and no role is
    suppressed (a suppressed role still has a fair share; it just asks for no offers)."""
    held = _held_shapes(snapshot)
    frameworks = [
        _wanting(replace(fw, suppressed_roles=frozenset()), held.get(fw.name, {}))
        for fw in snapshot.frameworks
    ]
    # Time matters only to filters, and there are none: without it, steady cycles (the same
    # demand, the same nodes) share one cached target.
    return replace(
        snapshot, frameworks=tuple(frameworks), allocations=(), filters=(), tasks=(), now=0.0
    )


# -- choosing tasks -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A task that may be revoked: old enough, of a client above its target."""

    task: Task
    client: Client
    vector: tuple[int, ...]
    excess: float

    def order(self) -> tuple[float, float, str]:
        # Furthest above target first, then newest first (least work lost).
        return (-self.excess, -self.task.started_at, self.task.name)


class _Planner:
    def __init__(
        self,
        snapshot: Snapshot,
        config: AllocatorConfig,
        policy: RevocationPolicy,
        shares: Sequence[FairShare],
    ) -> None:
        self.snapshot = snapshot
        self.policy = policy
        self.lend_guarantees = config.lend_guarantees
        # Free capacity, reserved pools and quota exactly as this cycle sees them.
        self.pool, self.quota, self.index = capacity(snapshot, config)
        self.cluster = total(node.allocatable for node in snapshot.nodes)
        self.excluded = config.fairness_excluded
        self.shares = {(s.framework, s.role): s for s in shares}
        self.held = {client: s.held for client, s in self.shares.items()}
        self.frameworks = {fw.name: fw for fw in snapshot.frameworks}
        self.remaining = {
            fw.name: [shape.count for shape in fw.demand or ()] for fw in snapshot.frameworks
        }
        self.reserved_by: dict[int, list[str]] = {}
        for r in snapshot.reservations:
            if (n := self.pool.position.get(r.node)) is not None:
                self.reserved_by.setdefault(n, []).append(r.role)
        width = len(self.index)
        #: Room that planned revocations free beyond what their beneficiary takes (may be
        #: negative where a beneficiary also used free capacity).
        self.extra: dict[int, Vector] = {}
        #: Per role, what planned revocations take from it (guarantees are checked on it).
        self.released: dict[str, Vector] = {}
        #: Per role, what planned beneficiaries gain (limits are checked on it).
        self.gained: dict[str, Vector] = {}
        self.revoked: set[str] = set()
        #: Victims that cannot give another task without falling below their target.
        self.exhausted: set[Client] = set()
        self.candidates = self._candidates()
        self.by_client: dict[Client, list[tuple[int, _Candidate]]] = {}
        self.revocable = np.zeros((len(self.pool.names), width), dtype=np.int64)
        rows: list[int] = []
        for n, cands in self.candidates.items():
            for c in cands:
                rows.append(n)
                self.by_client.setdefault(c.client, []).append((n, c))
        if rows:
            # Summed in one vectorised call: a row update per task costs more than the rest
            # of the planner's setup when every running task is a candidate.
            vectors = [c.vector for cands in self.candidates.values() for c in cands]
            np.add.at(self.revocable, rows, np.array(vectors, dtype=np.int64))

    def _candidates(self) -> dict[int, list[_Candidate]]:
        excess = {
            client: self._share(client) - s.target_share
            for client, s in self.shares.items()
            if self._share(client) > s.target_share + EPSILON
        }
        oldest = self.snapshot.now - self.policy.min_runtime
        by_node: dict[int, list[_Candidate]] = {}
        for task in self.snapshot.tasks:
            client = (task.framework, task.role)
            n = self.pool.position.get(task.node)
            if client not in excess or n is None or task.started_at > oldest:
                continue
            if task.name in self.policy.blocked:
                continue  # its eviction was refused lately: another victim, not a wait
            vector = self.index.dense_view(task.resources)
            by_node.setdefault(n, []).append(_Candidate(task, client, vector, excess[client]))
        for cands in by_node.values():
            cands.sort(key=_Candidate.order)
        return dict(sorted(by_node.items()))

    def _share(self, client: Client, change: Resources = EMPTY) -> float:
        return (self.held[client] + change).dominant_share(self.cluster, self.excluded)

    def run(self) -> tuple[Revocation, ...]:
        queue = []
        for client, s in self.shares.items():
            framework = self.frameworks[client[0]]
            wants = any(self.remaining[client[0]])
            suppressed = client[1] in framework.suppressed_roles
            subscribed = client[1] in framework.roles
            if wants and subscribed and not suppressed and s.share < s.target_share - EPSILON:
                queue.append((s.share, client))
        heapq.heapify(queue)
        planned: list[Revocation] = []
        budget = self.policy.max_per_cycle
        while queue:
            _, client = heapq.heappop(queue)
            plan = self._one_task(client, budget)
            if plan is None:
                continue
            planned.extend(plan)
            budget -= sum(len(r.tasks) for r in plan)
            heapq.heappush(queue, (self._share(client), client))
        return tuple(planned)

    def _one_task(self, client: Client, budget: int) -> list[Revocation] | None:
        """Revocations that let ``client`` run one more task (none when room freed for it
        already fits the task), or ``None`` when it gets no more this cycle: within one task
        of its target, served by free capacity, or no node can be freed for it."""
        framework, role = client
        fw = self.frameworks[framework]
        gap = self.shares[client].target_share - self._share(client)
        gpu_allowed = GPU_RESOURCES in fw.capabilities
        caps = self.quota.caps(role, False) if self.quota.active else None
        limit = caps.limit if caps is not None else None
        gained = self.gained.get(role)
        for s, shape in enumerate(fw.demand or ()):
            vector = self.index.dense_strict(shape.resources)
            if not self.remaining[framework][s] or vector is None:
                continue
            if gap < shape.resources.dominant_share(self.cluster, self.excluded) - EPSILON:
                # Less than one task below its target: one more task would take it past,
                # and the next cycle would take it back (thrash). A gap of exactly one task
                # is served: otherwise a framework wanting one task would never get it.
                continue
            if limit is not None and any(
                v > limit[i] - (gained[i] if gained else 0) for i, v in enumerate(vector) if v
            ):
                continue
            if (n := self._freed_fit(role, vector, gpu_allowed)) is not None:
                return self._commit(client, s, vector, n, [])
            if self._fits_free(role, vector, gpu_allowed):
                return None
            best: tuple[int, list[_Candidate]] | None = None
            # Only clients richer than the beneficiary will be with its task give one up:
            # each revocation then strictly evens shares out, so none is ever undone (two
            # equal claimants to one indivisible task would otherwise take it in turns).
            ceiling = self._share(client, shape.resources)
            if self.lend_guarantees and self._short_of_guarantee(role, vector):
                # A lent guarantee comes back whatever the beneficiary's share: victims
                # still keep their targets, which give every guarantee first.
                ceiling = -1.0
            for n in self._nodes_that_could(role, vector, gpu_allowed):
                chosen = self._free_on(n, role, vector, ceiling)
                if chosen is not None and not self._unheld(caps, vector, chosen):
                    continue  # freed, it would still be held back for others' guarantees
                if chosen is not None and (best is None or len(chosen) < len(best[1])):
                    best = (n, chosen)
                    if len(chosen) == 1:
                        break
            if best is not None and len(best[1]) <= budget:
                return self._commit(client, s, vector, *best)
        return None

    def _short_of_guarantee(self, role: str, vector: Vector) -> bool:
        """Whether a task of ``vector`` brings ``role`` closer to its guarantee, counting
        what this cycle's planned revocations already give its guaranteed subtree."""
        nearest = self.quota.nearest_guarantee(role) if self.quota.active else None
        if nearest is None:
            return False
        gained = _plus(
            nearest.consumption,
            [v for r, v in self.gained.items() if in_subtree(r, nearest.role)],
        )
        return any(vector[i] and gained[i] < nearest.guarantee[i] for i in nearest.guaranteed)

    def _unheld(self, caps: Caps | None, vector: Vector, chosen: list[_Candidate]) -> bool:
        """Whether the beneficiary may take ``vector`` once ``chosen`` end: what they free
        raises its fair-share cap (free capacity less the headroom unmet guarantees hold)."""
        if caps is None:
            return True
        freed = _plus([0] * len(vector), [c.vector for c in chosen])
        return _fits(vector, [u + f for u, f in zip(caps.unreserved, freed, strict=True)])

    def _room(self, n: int, role: str) -> Vector:
        room = self.pool.offerable(n, role)
        if (extra := self.extra.get(n)) is not None:
            room = [r + e for r, e in zip(room, extra, strict=True)]
        return room

    def _freed_fit(self, role: str, vector: Vector, gpu_allowed: bool) -> int | None:
        """A node where room that planned revocations freed fits the task."""
        for n in self.extra:
            if (gpu_allowed or not self.pool.gpu[n]) and _fits(vector, self._room(n, role)):
                return n
        return None

    def _fits_free(self, role: str, vector: Vector, gpu_allowed: bool) -> bool:
        """Whether free capacity (its reserved pools included) could serve the task now."""
        for n in self.pool.reserved_candidates(role, lineage(role)):
            if (gpu_allowed or not self.pool.gpu[n]) and _fits(vector, self._room(n, role)):
                return True
        mask = Fit([needs(vector)]).numpy(self.pool.matrix)
        if not gpu_allowed:
            mask &= ~self.pool.gpu_mask
        return bool(mask.any())

    def _nodes_that_could(self, role: str, vector: Vector, gpu_allowed: bool) -> list[int]:
        """Nodes where free room plus every revocable task would fit the task, in order."""
        could = self.pool.matrix + self.revocable
        mask = Fit([needs(vector)]).numpy(could)
        if not gpu_allowed:
            mask &= ~self.pool.gpu_mask
        nodes = {int(n) for n in np.flatnonzero(mask)}
        nodes |= {n for n, extra in self.extra.items() if any(x > 0 for x in extra)}
        nodes |= set(self.pool.reserved_candidates(role, lineage(role)))
        return [n for n in sorted(nodes) if n in self.candidates]

    def _free_on(
        self, n: int, role: str, vector: Vector, ceiling: float
    ) -> list[_Candidate] | None:
        """The fewest candidates on node ``n`` whose end lets a task of ``vector`` fit,
        of clients whose share is above ``ceiling``.

        Taken furthest above target first, the greedy pass can end many small tasks where
        one large one of a client nearer its target would do (three tasks of 1 GiB for a
        shortfall of 3 GiB beside one task of 3 GiB): a second pass takes first the tasks
        covering most of the shortfall, and the shorter list wins (the first on a tie)."""
        room = self._room(n, role)
        short = [max(0, v - r) for v, r in zip(vector, room, strict=True)]
        by_excess = self._free_in(self.candidates[n], n, role, vector, ceiling)
        if by_excess is not None and len(by_excess) <= 1:
            return by_excess

        def covered(c: _Candidate) -> float:
            return -sum(min(v, s) / s for v, s in zip(c.vector, short, strict=True) if s)

        by_size = sorted(self.candidates[n], key=covered)  # stable: ties stay furthest first
        by_cover = self._free_in(by_size, n, role, vector, ceiling)
        if by_cover is not None and (by_excess is None or len(by_cover) < len(by_excess)):
            return by_cover
        return by_excess

    def _free_in(
        self,
        candidates: Sequence[_Candidate],
        n: int,
        role: str,
        vector: Vector,
        ceiling: float,
    ) -> list[_Candidate] | None:
        """Candidates taken in the given order until the task fits, then those not needed
        put back; ``None`` when the node cannot be freed for it."""
        room = self._room(n, role)
        short = [max(0, v - r) for v, r in zip(vector, room, strict=True)]
        blocked = [owner for owner in self.reserved_by.get(n, ()) if not in_subtree(role, owner)]
        chosen: list[_Candidate] = []
        taking: dict[Client, Resources] = {}
        for c in candidates:
            if not any(short):
                break
            if c.client in self.exhausted or c.task.name in self.revoked:
                continue
            if self._share(c.client) <= ceiling + EPSILON:
                continue  # no richer than the beneficiary would be: a swap, not a gain
            if not any(c.vector[i] for i, x in enumerate(short) if x):
                continue  # frees nothing the task lacks
            if any(in_subtree(c.client[1], owner) for owner in blocked):
                continue  # what it frees goes back to someone else's reservation
            if not self._may_take(c, taking.get(c.client, EMPTY), chosen, role):
                continue
            chosen.append(c)
            taking[c.client] = taking.get(c.client, EMPTY) + c.task.resources
            short = [max(0, s - v) for s, v in zip(short, c.vector, strict=True)]
        if any(short):
            return None
        for c in reversed(chosen[:-1]):  # fill back those not needed
            rest = [x for x in chosen if x is not c]
            if _fits(vector, _plus(room, [x.vector for x in rest])):
                chosen = rest
        return chosen

    def _may_take(
        self, c: _Candidate, taking: Resources, chosen: list[_Candidate], beneficiary: str
    ) -> bool:
        """Whether its client stays at or above its target and every role at or above its
        guarantee (a role that the beneficiary is in gets back what it gives)."""
        after = self._share(c.client, EMPTY - taking - c.task.resources)
        if after < self.shares[c.client].target_share - EPSILON:
            return False
        for state in self.quota.chain(c.client[1]):
            if not state.guaranteed or in_subtree(beneficiary, state.role):
                continue
            released = self.released.get(state.role, [0] * len(c.vector))
            now = [x.vector for x in chosen if in_subtree(x.client[1], state.role)]
            taken = _plus(released, now)
            for i in state.guaranteed:
                if (
                    c.vector[i]
                    and state.consumption[i] - taken[i] - c.vector[i] < state.guarantee[i]
                ):
                    return False
        return True

    def _exhaust_if_at_target(self, victim: Client) -> None:
        """Once ``victim`` can give no task without falling below its target, its tasks stop
        counting as revocable, so later searches skip its nodes."""
        left = [(n, c) for n, c in self.by_client[victim] if c.task.name not in self.revoked]
        floor = self.shares[victim].target_share - EPSILON
        # A client's tasks come in a few sizes: ask once per size.
        sizes = {c.task.resources for _, c in left}
        if any(self._share(victim, EMPTY - size) >= floor for size in sizes):
            return
        self.exhausted.add(victim)
        for n, c in left:
            self.revocable[n] -= c.vector

    def _commit(
        self, client: Client, s: int, vector: Vector, n: int, chosen: list[_Candidate]
    ) -> list[Revocation]:
        framework, role = client
        width = len(vector)
        freed = _plus([0] * width, [c.vector for c in chosen])
        self.extra[n] = [
            e + f - v for e, f, v in zip(self.extra.get(n, [0] * width), freed, vector, strict=True)
        ]
        for c in chosen:
            self.revocable[n] -= c.vector
        self.held[client] = self.held[client] + self.index.sparse(vector)
        self.remaining[framework][s] -= 1
        self.gained[role] = _plus(self.gained.get(role, [0] * width), [vector])
        by_victim: dict[Client, list[_Candidate]] = {}
        for c in chosen:
            self.revoked.add(c.task.name)
            self.held[c.client] = self.held[c.client] - c.task.resources
            for state in self.quota.chain(c.client[1]):
                self.released[state.role] = _plus(
                    self.released.get(state.role, [0] * width), [c.vector]
                )
            by_victim.setdefault(c.client, []).append(c)
        for victim in by_victim:
            self._exhaust_if_at_target(victim)
        return [
            Revocation(
                framework=victim[0],
                role=victim[1],
                node=self.pool.names[n],
                tasks=tuple(c.task.name for c in cands),
                resources=total(c.task.resources for c in cands),
                beneficiary=framework,
                beneficiary_role=role,
                shape=s,
            )
            for victim, cands in by_victim.items()
        ]


def _fits(vector: Sequence[int], room: Sequence[int]) -> bool:
    return all(v <= r for v, r in zip(vector, room, strict=True) if v)


def _plus(base: Sequence[int], vectors: Iterable[Sequence[int]]) -> Vector:
    result = list(base)
    for vector in vectors:
        for i, amount in enumerate(vector):
            result[i] += amount
    return result
