"""Property tests: the invariants of docs/design.md and DRF's own properties over random inputs.

Inputs come from ``tests/strategies.py``. Each invariant is a checker that returns the
violations it finds (empty when the result is sound), so one failing example names every
broken rule at once; ``test_each_checker_flags_a_broken_result`` shows that each can fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubedrf.allocator import (
    GPU_RESOURCES,
    AllocationResult,
    AllocatorConfig,
    Framework,
    OfferDecision,
    Quota,
    Reason,
    Snapshot,
    Stage,
    TaskShape,
    allocate,
)
from kubedrf.allocator.roles import in_subtree, lineage
from kubedrf.resources import EMPTY, Resources, is_gpu_resource, total
from tests.builders import make_framework, make_snapshot, offered_to, res, tasks_offered
from tests.strategies import configs, drf_snapshots, resource_maps, snapshots, units

DEMAND = AllocatorConfig(mode="demand")
CLASSIC = AllocatorConfig(mode="classic")


# -- what the invariants are stated in ----------------------------------------------------


class View:
    """Per-node quantities computed from the snapshot alone, independently of the allocator.

    ``free`` = allocatable − external usage − allocations (clamped); the unused part of a
    node's reservation = reservation − what its role's subtree holds there (clamped); the
    ``unreserved`` free capacity is free minus that unused part (clamped). Generated snapshots
    have at most one reservation per node, which keeps these exact.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.nodes = {node.name: node for node in snapshot.nodes}
        self.names = {name for node in snapshot.nodes for name in node.allocatable}
        self.reservation = {r.node: r for r in snapshot.reservations}
        assert len(self.reservation) == len(snapshot.reservations), "one reservation per node"
        self.held: dict[str, Resources] = {}
        self.free: dict[str, Resources] = {}
        self.unused_reserved: dict[str, Resources] = {}
        self.unreserved: dict[str, Resources] = {}
        for name, node in self.nodes.items():
            here = [a for a in snapshot.allocations if a.node == name]
            self.held[name] = total(a.resources for a in here)
            self.free[name] = (node.allocatable - node.external_usage - self.held[name]).clamped()
            unused = EMPTY
            if (reservation := self.reservation.get(name)) is not None:
                subtree = total(a.resources for a in here if in_subtree(a.role, reservation.role))
                unused = (reservation.resources - subtree).clamped()
            self.unused_reserved[name] = unused
            self.unreserved[name] = (self.free[name] - unused).clamped()

    def offerable(self, node: str, role: str) -> Resources:
        """What ``role`` could be offered on ``node``: unreserved, plus its reserved part."""
        reservation = self.reservation.get(node)
        if reservation is not None and in_subtree(role, reservation.role):
            return self.unreserved[node] + self.unused_reserved[node].minimum(self.free[node])
        return self.unreserved[node]

    def is_gpu_node(self, node: str) -> bool:
        return any(is_gpu_resource(n) for n in self.nodes[node].allocatable)

    def visible(self, fw: Framework, role: str, node: str) -> bool:
        """Whether ``fw`` under ``role`` may be offered ``node``: GPU capability, filters."""
        if self.is_gpu_node(node) and GPU_RESOURCES not in fw.capabilities:
            return False
        return not any(
            (f.framework, f.role, f.node) == (fw.name, role, node)
            and self.snapshot.now < f.expires_at
            and self.offerable(node, role) <= f.refused
            for f in self.snapshot.filters
        )

    def held_by(self, role: str) -> Resources:
        """Allocations of ``role``'s subtree, on every node."""
        return total(a.resources for a in self.snapshot.allocations if in_subtree(a.role, role))

    def reserved_for(self, role: str) -> Resources:
        """Reservations of ``role``'s subtree, which count toward its quota."""
        return total(r.resources for r in self.snapshot.reservations if in_subtree(r.role, role))


def exceeded(amounts: Resources, cap: Resources) -> dict[str, tuple[int, int]]:
    """The resources where ``amounts`` is over ``cap``: name → (amount, cap)."""
    return {n: (v, cap[n]) for n, v in amounts.items() if v > cap[n]}


def on_node(offers: Iterable[OfferDecision], node: str) -> Resources:
    return total(o.resources for o in offers if o.node == node)


Checker = Callable[[Snapshot, AllocationResult, AllocatorConfig], list[str]]


# -- docs/design.md, invariants 1–5 -------------------------------------------------------


def no_overcommit(snapshot: Snapshot, result: AllocationResult, _: AllocatorConfig) -> list[str]:
    """1. On every node, external usage + allocations + offers ≤ allocatable."""
    view = View(snapshot)
    found = []
    for o in result.offers:
        if o.node not in view.nodes:
            found.append(f"offer on unknown node {o.node}")
    for name, node in view.nodes.items():
        used = node.external_usage + view.held[name] + on_node(result.offers, name)
        if over := exceeded(used, node.allocatable):
            found.append(f"{name} overcommitted: {over}")
    return found


def one_offer_per_resource(
    snapshot: Snapshot, result: AllocationResult, _: AllocatorConfig
) -> list[str]:
    """2. One offer per (framework, role, node), none empty, all within free capacity."""
    view = View(snapshot)
    found = [f"empty offer {o}" for o in result.offers if not o.resources]
    keys = [(o.framework, o.role, o.node) for o in result.offers]
    if duplicates := {k for k in keys if keys.count(k) > 1}:
        found.append(f"more than one offer for {sorted(duplicates)}")
    for name in view.nodes:
        if over := exceeded(on_node(result.offers, name), view.free[name]):
            found.append(f"offers on {name} exceed its free capacity: {over}")
    return found


def reservations_respected(
    snapshot: Snapshot, result: AllocationResult, _: AllocatorConfig
) -> list[str]:
    """3. Offers to roles outside a reservation's subtree ≤ free − its unused reserved part."""
    view = View(snapshot)
    found = []
    for name, reservation in view.reservation.items():
        if name not in view.nodes:
            continue
        outside = [o for o in result.offers if not in_subtree(o.role, reservation.role)]
        if over := exceeded(on_node(outside, name), view.unreserved[name]):
            found.append(
                f"roles outside {reservation.role} got reserved resources on {name}: {over}"
            )
    return found


def quota_limits_respected(
    snapshot: Snapshot, result: AllocationResult, _: AllocatorConfig
) -> list[str]:
    """4. Per resource in a role's limit: its subtree's allocations + offers ≤ the limit."""
    view = View(snapshot)
    found = []
    for quota in snapshot.quotas:
        if quota.limit is None:
            continue
        offered = total(o.resources for o in result.offers if in_subtree(o.role, quota.role))
        held = view.held_by(quota.role) + offered
        if over := exceeded(Resources({n: held[n] for n in quota.limit}), quota.limit):
            found.append(f"role {quota.role} over its limit: {over}")
    return found


def guarantees_served_first(
    snapshot: Snapshot, result: AllocationResult, config: AllocatorConfig
) -> list[str]:
    """5. In demand mode, a role below its guarantee that could be served gets a stage-1 offer.

    Stated for a role R with a guarantee whose subtree got no GUARANTEE-stage offer. Then R's
    quota consumption did not change during stage 1, and the stage-1 offers to other roles
    (which compete for the same capacity) only shrank what R could use. R must have been
    served if one of its frameworks (subscribed to R itself, not suppressed) still wants a
    task that asks for some resource R's guarantee still lacks (stage 1 gives a head start
    only toward the guarantee, as in Mesos) and that fits, in the state after stage 1, all of:

    - R's unmet guarantee (guaranteed resources; reservations count as consumption);
    - the limits of R and its ancestors, less what stage 1 offered to their subtrees;
    - some node's unreserved free capacity, on a node the framework may see (GPU
      capability, no unexpired filter).

    Headroom that other roles' guarantees hold back is no excuse: however many guarantees
    compete, and however far they exceed the cluster, none keeps R from its own.
    Each bound is conservative (reservations counted whole, stage-1 offers treated as taken
    from unreserved capacity), so a violation here is a real one.
    """
    if config.mode != "demand" or not snapshot.quotas:
        return []
    view = View(snapshot)
    guarantees = {
        q.role: Resources({n: v for n, v in q.guarantee.items() if n in view.names})
        for q in snapshot.quotas
    }
    guarantees = {role: g for role, g in guarantees.items() if g}
    first = [o for o in result.offers if o.stage is Stage.GUARANTEE]
    room = {name: view.unreserved[name] - on_node(first, name) for name in view.nodes}
    limits = [
        (q.role, q.limit, view.held_by(q.role) + view.reserved_for(q.role))
        for q in snapshot.quotas
        if q.limit is not None
    ]
    found = []
    for role, guarantee in guarantees.items():
        if any(in_subtree(o.role, role) for o in first):
            continue
        unmet = (guarantee - view.held_by(role) - view.reserved_for(role)).clamped()
        if not unmet:
            continue
        caps = [
            (limit, limit - used - total(o.resources for o in first if in_subtree(o.role, owner)))
            for owner, limit, used in limits
            if owner in lineage(role)
        ]
        for fw in snapshot.frameworks:
            if role not in fw.roles or role in fw.suppressed_roles or fw.demand is None:
                continue
            taken = stage_one_tasks(result, fw)
            for s, shape in enumerate(fw.demand):
                need = shape.resources
                fits = (
                    shape.count > taken[s]
                    and all(n in view.names for n in need)
                    and all(need[n] <= unmet[n] for n in guarantee)
                    and any(need[n] > 0 and unmet[n] > 0 for n in guarantee)
                    and all(need[n] <= cap[n] for limit, cap in caps for n in need if n in limit)
                )
                nodes = [
                    name
                    for name in view.nodes
                    if fits and need <= room[name] and view.visible(fw, role, name)
                ]
                if nodes:
                    found.append(
                        f"role {role} below its guarantee (unmet {dict(unmet)}) got no stage-1 "
                        f"offer, though {fw.name}'s task {dict(need)} fits on {nodes}"
                    )
    return found


def headroom_only_when_it_blocks(
    snapshot: Snapshot, result: AllocationResult, config: AllocatorConfig
) -> list[str]:
    """``HeldForGuarantees`` only if, without headroom, something would have been offered.

    A client reported as held for guarantees must want something (a demanded task in demand
    mode, one of its minimums in classic mode) that fits its role's limits and some node it
    may see. The bounds are generous, so that a violation is a real one: the snapshot's free
    capacity and limits, before any offer of the cycle (offers to one (framework, role,
    node) merge across stages, so the part made in stage 1 cannot be told apart).
    """
    view = View(snapshot)
    by_name = {fw.name: fw for fw in snapshot.frameworks}
    found = []
    for (name, role), reason in sorted(result.reasons().items()):
        if reason is not Reason.HEADROOM:
            continue
        fw = by_name[name]
        if config.mode == "demand":
            wanted = [t.resources for t in fw.demand or () if t.count > 0]
        else:
            wanted = list(fw.min_allocatable or config.min_allocatable)
        wanted = [w for w in wanted if all(n in view.names for n in w)]
        bounds = [
            (q.limit, q.limit - view.held_by(q.role))
            for q in snapshot.quotas
            if q.limit is not None and q.role in lineage(role)
        ]
        fitting = [
            (dict(want), node)
            for want in wanted
            if all(want[n] <= bound[n] for limit, bound in bounds for n in want if n in limit)
            for node in view.nodes
            if view.visible(fw, role, node)
            and want <= view.free[node]
            and (want or view.free[node])
        ]
        if not fitting:
            found.append(f"{name} under {role} told {reason.value}, but nothing it wants fits")
    return found


def stage_one_tasks(result: AllocationResult, fw: Framework) -> list[int]:
    """Tasks of each of ``fw``'s shapes offered in stage 1."""
    taken = [0] * len(fw.demand or ())
    for o in result.offers:
        if o.framework == fw.name and o.stage is Stage.GUARANTEE:
            for s, count in o.tasks:
                taken[s] += count
    return taken


def on_subtree(offers: Iterable[OfferDecision], role: str) -> Resources:
    return total(o.resources for o in offers if in_subtree(o.role, role))


# -- the other rules of docs/design.md ----------------------------------------------------


def demand_offers_hold_whole_tasks(
    snapshot: Snapshot, result: AllocationResult, config: AllocatorConfig
) -> list[str]:
    """Demand mode: an offer is the sum of the tasks it lists, within what is still wanted."""
    if config.mode != "demand":
        return []
    by_name = {fw.name: fw for fw in snapshot.frameworks}
    found = []
    counted: dict[tuple[str, int], int] = {}
    for o in result.offers:
        demand = by_name[o.framework].demand or ()
        if not o.tasks or any(not 0 <= s < len(demand) or c <= 0 for s, c in o.tasks):
            found.append(f"offer {o} lists no valid tasks")
            continue
        if o.resources != total(demand[s].resources * c for s, c in o.tasks):
            found.append(f"offer {o} is not the sum of its tasks")
        for s, c in o.tasks:
            counted[o.framework, s] = counted.get((o.framework, s), 0) + c
    for (name, s), count in counted.items():
        wanted = (by_name[name].demand or ())[s].count
        if count > wanted:
            found.append(f"{name} got {count} tasks of shape {s}, wants {wanted}")
    return found


def no_demand_no_offers(
    snapshot: Snapshot, result: AllocationResult, config: AllocatorConfig
) -> list[str]:
    """Demand mode: frameworks that want nothing get nothing."""
    if config.mode != "demand":
        return []
    idle = {fw.name for fw in snapshot.frameworks if not any(s.count for s in fw.demand or ())}
    return [
        f"{o.framework} has no demand but got {o}" for o in result.offers if o.framework in idle
    ]


def subscribed_roles_only(
    snapshot: Snapshot, result: AllocationResult, _: AllocatorConfig
) -> list[str]:
    """Offers go to a framework's own, unsuppressed roles."""
    by_name = {fw.name: fw for fw in snapshot.frameworks}
    return [
        f"offer to suppressed or foreign role: {o}"
        for o in result.offers
        if o.framework not in by_name
        or o.role not in by_name[o.framework].roles
        or o.role in by_name[o.framework].suppressed_roles
    ]


def gpu_nodes_for_gpu_frameworks(
    snapshot: Snapshot, result: AllocationResult, _: AllocatorConfig
) -> list[str]:
    """A node with GPUs is offered only to frameworks with the GPU_RESOURCES capability."""
    view = View(snapshot)
    capable = {fw.name for fw in snapshot.frameworks if GPU_RESOURCES in fw.capabilities}
    return [
        f"GPU node offered to {o.framework} without {GPU_RESOURCES}: {o}"
        for o in result.offers
        if view.is_gpu_node(o.node) and o.framework not in capable
    ]


def filters_respected(
    snapshot: Snapshot, result: AllocationResult, _: AllocatorConfig
) -> list[str]:
    """An unexpired filter whose ``refused`` covers what the node could offer blocks offers."""
    view = View(snapshot)
    blocked = {
        (f.framework, f.role, f.node)
        for f in snapshot.filters
        if snapshot.now < f.expires_at
        and f.node in view.nodes
        and view.offerable(f.node, f.role) <= f.refused
    }
    return [
        f"filtered offer: {o}" for o in result.offers if (o.framework, o.role, o.node) in blocked
    ]


def classic_offers_meet_min_allocatable(
    snapshot: Snapshot, result: AllocationResult, config: AllocatorConfig
) -> list[str]:
    """Classic mode: each offer holds one of the framework's minimums (else the config's)."""
    if config.mode != "classic":
        return []
    by_name = {fw.name: fw for fw in snapshot.frameworks}
    found = []
    for o in result.offers:
        own = by_name[o.framework].min_allocatable
        alternatives = config.min_allocatable if own is None else own
        if alternatives and not any(alt <= o.resources for alt in alternatives):
            found.append(f"offer below min_allocatable {alternatives}: {o}")
    return found


CHECKERS: tuple[Checker, ...] = (
    no_overcommit,
    one_offer_per_resource,
    reservations_respected,
    quota_limits_respected,
    guarantees_served_first,
    headroom_only_when_it_blocks,
    demand_offers_hold_whole_tasks,
    no_demand_no_offers,
    subscribed_roles_only,
    gpu_nodes_for_gpu_frameworks,
    filters_respected,
    classic_offers_meet_min_allocatable,
)


def violations(snapshot: Snapshot, result: AllocationResult, config: AllocatorConfig) -> list[str]:
    return [v for check in CHECKERS for v in check(snapshot, result, config)]


# -- the properties ------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(snapshot=snapshots(), config=configs(mode="demand"))
def test_demand_mode_keeps_every_invariant(snapshot: Snapshot, config: AllocatorConfig) -> None:
    assert violations(snapshot, allocate(snapshot, config), config) == []


@settings(max_examples=300, deadline=None)
@given(snapshot=snapshots(), config=configs(mode="classic"))
def test_classic_mode_keeps_every_invariant(snapshot: Snapshot, config: AllocatorConfig) -> None:
    assert violations(snapshot, allocate(snapshot, config), config) == []


@st.composite
def contested_snapshots(draw: st.DrawFn) -> Snapshot:
    """Snapshots whose guarantees compete: every role without a quota gets a guarantee
    (often on resources its tasks need besides, sometimes far beyond the cluster), and a
    role no framework uses guarantees a lot, as a quota nobody came for does."""
    snapshot = draw(snapshots())
    taken = {q.role for q in snapshot.quotas}
    roles = sorted({role for fw in snapshot.frameworks for role in fw.roles} - taken)
    added = [
        Quota(role, draw(resource_maps(cpu=40, memory=40, gpu=2).filter(bool)))
        for role in roles
        if draw(st.booleans())
    ]
    if draw(st.booleans()):
        added.append(Quota("ghost", units(cpu=2000, memory=200)))
    return replace(snapshot, quotas=snapshot.quotas + tuple(added))


@settings(max_examples=300, deadline=None)
@given(snapshot=contested_snapshots(), config=configs(mode="demand"))
def test_guarantees_are_served_first_however_many_compete(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    result = allocate(snapshot, config)
    assert guarantees_served_first(snapshot, result, config) == []
    assert headroom_only_when_it_blocks(snapshot, result, config) == []


@settings(max_examples=100, deadline=None)
@given(snapshot=contested_snapshots(), config=configs(mode="classic"))
def test_classic_mode_reports_headroom_only_when_it_blocks(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    assert headroom_only_when_it_blocks(snapshot, allocate(snapshot, config), config) == []


@settings(max_examples=50, deadline=None)
@given(
    snapshot=snapshots(),
    config=st.sampled_from(["demand", "classic"]).flatmap(lambda mode: configs(mode=mode)),
)
def test_the_same_snapshot_and_config_give_the_same_result(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    first = allocate(snapshot, config)
    # A structurally equal copy, so no identity or per-object cache can tell them apart.
    copy = replace(snapshot, nodes=tuple(replace(n) for n in snapshot.nodes))
    assert allocate(copy, config) == first
    assert allocate(snapshot, config) == first


# -- DRF's own properties, in DRF's setting ------------------------------------------------
#
# One node, demand mode, equal weights, no quotas or reservations, every framework in one
# role with one task shape and more demand than fits (``drf_snapshots``).


def fitting(tasks_of: Resources, within: Resources) -> int:
    """How many tasks of shape ``tasks_of`` fit in ``within``."""
    return min(within[name] // amount for name, amount in tasks_of.items())


def shape_of(framework: Framework) -> Resources:
    assert framework.demand is not None
    return framework.demand[0].resources


@settings(max_examples=200, deadline=None)
@given(snapshot=drf_snapshots(), data=st.data())
def test_overstating_demand_pays_only_by_pushing_others_out(
    snapshot: Snapshot, data: st.DataObject
) -> None:
    """Strategy-proofness, as far as it survives indivisible tasks.

    Divisible DRF is strategy-proof. With indivisible tasks it is not: on a 9-CPU node, A's
    tasks need 1 CPU and B's 8; honestly A gets 1 task and B 1. If A claims 2 CPU per task,
    B's 8-CPU task no longer fits beside A's first one, and A ends with 4 tasks
    (``test_overstating_can_pay_off_with_indivisible_tasks``). That is inherent to
    indivisibility, not a bug.

    What holds: a liar (declaring a shape ≥ its true one, larger somewhere) gains tasks only
    if some other framework ends with fewer. Proof: the honest run ends with the liar's next
    task not fitting in the leftover L, so the liar honestly holds k tasks and k·d + L is all
    the others leave. If no other framework loses a task, the liar's k' inflated tasks fit
    in that: k'·d ≤ k'·d' ≤ k·d + L, and k' ≥ k + 1 would put d within L.
    The liar can run one true task per inflated one, so its gain is counted in offered tasks.
    """
    honest = allocate(snapshot)
    liar = data.draw(st.sampled_from(snapshot.frameworks))
    extra = data.draw(resource_maps(cpu=6, memory=6).filter(bool))
    inflated = replace(liar, demand=(TaskShape(shape_of(liar) + extra, 1000),))
    lying = allocate(
        replace(
            snapshot, frameworks=tuple(inflated if fw is liar else fw for fw in snapshot.frameworks)
        )
    )
    if tasks_offered(lying, liar.name) > tasks_offered(honest, liar.name):
        assert any(
            tasks_offered(lying, fw.name) < tasks_offered(honest, fw.name)
            for fw in snapshot.frameworks
            if fw is not liar
        )


def test_overstating_can_pay_off_with_indivisible_tasks() -> None:
    builder = make_snapshot().node("n1", cpu="9", memory="1Gi")
    honest = builder.framework(
        make_framework("A").demand(1000, cpu="1"), make_framework("B").demand(1000, cpu="8")
    )
    assert tasks_offered(allocate(honest.obj()), "A") == 1
    lying = (
        make_snapshot()
        .node("n1", cpu="9", memory="1Gi")
        .framework(
            make_framework("A").demand(1000, cpu="2"), make_framework("B").demand(1000, cpu="8")
        )
    )
    result = allocate(lying.obj())
    assert (tasks_offered(result, "A"), tasks_offered(result, "B")) == (4, 0)


@settings(max_examples=200, deadline=None)
@given(snapshot=drf_snapshots())
def test_no_framework_envies_another_beyond_one_of_its_tasks(snapshot: Snapshot) -> None:
    """Envy-freeness up to one task (EF1): i fits at most k_i of its tasks in A_j − d_j.

    Here k_i is i's task count, A_j j's allocation and d_j one task of j. "i could run at
    most k_i + 1 of its tasks in A_j" does not hold: on a 1-CPU node where A's task needs
    1 CPU and B's 500m, A (first by name) takes the whole node and B, with none, could run
    two tasks in A's allocation. Capacity ran out, not fairness; dropping one of A's tasks
    from the comparison (the usual EF1) removes the envy.

    Why EF1 holds, with s_i, s_j the dominant shares of one task, d* i's dominant resource:
    - if i was still being served when j got its last task, j was picked for having the
      lower share: share(A_j − d_j) ≤ k_i·s_i, so A_j − d_j holds at most k_i·d_i of d*;
    - otherwise i had stopped because d_i did not fit the remaining capacity R (short in
      some resource r), and j got its last m ≥ 1 tasks out of R: m·d_jr ≤ R_r < d_ir. With
      n = 0 tasks before, (m−1)·d_j ≤ R holds no task of i. Else j got its n-th task while
      i was served, so (n−1)·s_j ≤ k_i·s_i. Fitting k_i + 1 tasks of i in (n+m−1)·d_j would
      need, in r, n−1 > k_i·m, and in d*, (n+m−1)·s_j ≥ (k_i+1)·s_i, so m·s_j ≥ s_i;
      together (n−1)·s_j > k_i·s_i, a contradiction.
    """
    result = allocate(snapshot)
    for i in snapshot.frameworks:
        for j in snapshot.frameworks:
            if i is j or not tasks_offered(result, j.name):
                continue
            rest_of_j = offered_to(result, j.name) - shape_of(j)
            assert fitting(shape_of(i), rest_of_j) <= tasks_offered(result, i.name)


def test_envy_up_to_ones_own_extra_task_is_not_guaranteed() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="1", memory="1Gi")
        .framework(
            make_framework("A").demand(1000, cpu="1"), make_framework("B").demand(1000, cpu="500m")
        )
        .obj()
    )
    result = allocate(snapshot)
    assert (tasks_offered(result, "A"), tasks_offered(result, "B")) == (1, 0)
    assert fitting(res(cpu="500m"), offered_to(result, "A")) == 2


# -- the checkers can fail ---------------------------------------------------------------


def broken_cases_base() -> Snapshot:
    return (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .node("n2", cpu="4", memory="4Gi")
        .node("g1", cpu="4", memory="4Gi", gpu=1)
        .reservation("db", "n1", cpu="2")
        .quota("web", limit=res(cpu="2"))
        .quota("batch", guarantee=res(cpu="2"))
        .framework(
            make_framework("W").role("web").demand(10, cpu="1"),
            make_framework("B").role("batch", "x").suppress("x").gpu().demand(10, cpu="1"),
            make_framework("I").no_demand().min_allocatable(cpu="2"),
        )
        .filter("B", "n1", expires_at=100.0, refused=res(cpu="4", memory="4Gi"), role="batch")
        .obj()
    )


def fake(framework: str, role: str, node: str, tasks: int = 1, **quantities: str) -> OfferDecision:
    return OfferDecision(
        framework, role, node, res(**quantities), Stage.FAIR_SHARE, ((0, tasks),) if tasks else ()
    )


BROKEN: list[tuple[Checker, list[OfferDecision], AllocatorConfig]] = [
    (no_overcommit, [fake("B", "batch", "g1", 5, cpu="5")], DEMAND),
    (one_offer_per_resource, [fake("B", "batch", "n2", cpu="1")] * 2, DEMAND),
    (
        reservations_respected,
        [fake("W", "web", "n1", 2, cpu="2"), fake("I", "default", "n1", 0, cpu="1")],
        DEMAND,
    ),
    (
        quota_limits_respected,
        [fake("W", "web", "n1", 2, cpu="2"), fake("W", "web", "n2", cpu="1")],
        DEMAND,
    ),
    (guarantees_served_first, [fake("W", "web", "n2", 2, cpu="2")], DEMAND),
    (demand_offers_hold_whole_tasks, [fake("W", "web", "n2", 1, cpu="2")], DEMAND),
    (no_demand_no_offers, [fake("I", "default", "n2", 0, cpu="1")], DEMAND),
    (subscribed_roles_only, [fake("B", "x", "n2", cpu="1")], DEMAND),
    (gpu_nodes_for_gpu_frameworks, [fake("W", "web", "g1", cpu="1")], DEMAND),
    (filters_respected, [fake("B", "batch", "n1", cpu="1")], DEMAND),
    (classic_offers_meet_min_allocatable, [fake("I", "default", "n2", 0, cpu="1")], CLASSIC),
]


def test_the_real_result_of_the_broken_cases_base_is_sound() -> None:
    snapshot = broken_cases_base()
    for config in (DEMAND, CLASSIC):
        result = allocate(snapshot, config)
        assert result.offers
        assert violations(snapshot, result, config) == []


@pytest.mark.parametrize(
    ("checker", "offers", "config"), BROKEN, ids=[check.__name__ for check, _, _ in BROKEN]
)
def test_each_checker_flags_a_broken_result(
    checker: Checker, offers: list[OfferDecision], config: AllocatorConfig
) -> None:
    assert checker(broken_cases_base(), AllocationResult(tuple(offers)), config)


def test_the_headroom_checker_flags_a_full_cluster_reported_as_held() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="2", memory="2Gi")
        .allocation("W", "web", "n1", cpu="2", memory="2Gi")
        .quota("later", guarantee=res(cpu="2"))
        .framework(make_framework("W").role("web").demand(1, cpu="1"))
        .obj()
    )
    for reason, flagged in ((Reason.HEADROOM, True), (Reason.NO_CAPACITY, False)):
        result = AllocationResult((), (("W", "web", reason),))
        assert bool(headroom_only_when_it_blocks(snapshot, result, DEMAND)) is flagged


# -- regressions the properties found ----------------------------------------------------


def test_a_headroom_shortfall_does_not_block_tasks_that_need_none_of_it() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="2Gi")
        .quota("later", guarantee=res(memory="4Gi"))
        .framework(make_framework("X").role("now").demand(2, cpu="1"))
        .obj()
    )
    # Memory is short of what "later" is guaranteed; X's tasks want none of it.
    assert offered_to(allocate(snapshot), "X") == res(cpu="2")


def test_guarantees_that_overcommit_the_cluster_are_still_served() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .quota("small", guarantee=res(cpu="2"))
        .quota("big", guarantee=res(cpu="6"))
        .framework(make_framework("S").role("small").demand(10, cpu="1"))
        .obj()
    )
    result = allocate(snapshot)
    # Up to its guarantee in stage 1, as Mesos does; the rest stays held for "big".
    assert offered_to(result, "S") == res(cpu="2")
    assert {o.stage for o in result.offers} == {Stage.GUARANTEE}


def test_a_min_allocatable_no_node_can_meet_gets_no_offers() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .framework(make_framework("A").no_demand().min_allocatable(gpu=1))
        .obj()
    )
    assert allocate(snapshot, CLASSIC).offers == ()


def test_an_empty_min_allocatable_accepts_any_offer_and_never_an_empty_one() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="1", memory="1Gi")
        .quota("held", guarantee=res(memory="1Gi"))
        .framework(make_framework("A").role("a").no_demand().min_allocatable(cpu="0"))
        .obj()
    )
    # The memory is held for "held"; the cpu is offered, then nothing is left for A.
    result = allocate(snapshot, CLASSIC)
    assert [o.resources for o in result.offers] == [res(cpu="1")]
