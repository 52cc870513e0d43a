"""Property tests of revocation over random small clusters, demands and arrivals.

Each cluster has 1–3 nodes and 2–4 frameworks in one or two roles, each framework running
tasks of its one shape and wanting some more, plus one or two arrivals that run nothing and
want much; sometimes a role has a guarantee. The checks
are stated on the snapshot alone, independently of how the planner chose.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from benchmarks.convergence import step, with_tasks
from hypothesis import given, settings
from hypothesis import strategies as st

from kubedrf.allocator import (
    AllocatorConfig,
    FairShare,
    Framework,
    Node,
    Quota,
    Revocation,
    RevocationPolicy,
    Snapshot,
    Task,
    TaskShape,
    revocation_target,
    revocations,
)
from kubedrf.allocator.roles import in_subtree
from kubedrf.resources import EMPTY, Resources, total
from tests.strategies import resource_maps, task_shapes

NOW = 10.0
EPSILON = 1e-9


@st.composite
def clusters(draw: st.DrawFn) -> Snapshot:
    """A few nodes mostly filled by tasks of some frameworks, and an arrival or two."""
    nodes = tuple(
        Node(f"n{i}", draw(resource_maps(cpu=16, memory=16, min_cpu=2, min_memory=2)))
        for i in range(draw(st.integers(1, 3)))
    )
    frameworks = []
    tasks: list[Task] = []
    used = {node.name: EMPTY for node in nodes}
    for f in range(draw(st.integers(2, 4))):
        name, role = f"f{f}", draw(st.sampled_from(("a", "b")))
        shape = draw(task_shapes(gpu=False))
        frameworks.append(
            Framework(name, roles=(role,), demand=(TaskShape(shape, draw(st.integers(0, 8))),))
        )
        for k in range(draw(st.integers(0, 12))):
            # Round-robin from a drawn node, to the first node the task fits on.
            start = draw(st.integers(0, len(nodes) - 1))
            for node in nodes[start:] + nodes[:start]:
                if used[node.name] + shape <= node.allocatable:
                    used[node.name] = used[node.name] + shape
                    started = draw(st.sampled_from((0.0, 5.0, 9.0)))
                    tasks.append(Task(f"{name}-{k}", name, role, node.name, shape, started))
                    break
    for a in range(draw(st.integers(1, 2))):  # arrivals: nothing running, much wanted
        shape = draw(resource_maps(cpu=4, memory=4, min_cpu=1))
        role = draw(st.sampled_from(("a", "b")))
        wanted = TaskShape(shape, draw(st.integers(2, 20)))
        frameworks.append(Framework(f"new{a}", roles=(role,), demand=(wanted,)))
    quotas: tuple[Quota, ...] = ()
    if draw(st.booleans()):
        quotas = (Quota("a", guarantee=draw(resource_maps(cpu=8, memory=8))),)
    snapshot = Snapshot(nodes=nodes, frameworks=tuple(frameworks), quotas=quotas, now=NOW)
    return with_tasks(snapshot, tasks)


POLICIES = st.builds(
    RevocationPolicy,
    min_runtime=st.sampled_from((0.0, 3.0, 8.0)),
    max_per_cycle=st.integers(1, 10),
)


def cluster_total(snapshot: Snapshot) -> Resources:
    return total(node.allocatable for node in snapshot.nodes)


def targets(
    snapshot: Snapshot, config: AllocatorConfig | None = None
) -> dict[tuple[str, str], FairShare]:
    return {(s.framework, s.role): s for s in revocation_target(snapshot, config)}


def revoked_tasks(snapshot: Snapshot, chosen: Sequence[Revocation]) -> list[Task]:
    by_name = {t.name: t for t in snapshot.tasks}
    return [by_name[name] for r in chosen for name in r.tasks]


@given(clusters(), POLICIES)
@settings(max_examples=300, deadline=None)
def test_revocations_name_real_old_enough_tasks_once_each(
    snapshot: Snapshot, policy: RevocationPolicy
) -> None:
    chosen = revocations(snapshot, policy=policy)
    by_name = {t.name: t for t in snapshot.tasks}
    names = [name for r in chosen for name in r.tasks]
    assert len(names) == len(set(names)) <= policy.max_per_cycle
    for r in chosen:
        tasks = [by_name[name] for name in r.tasks]
        assert all((t.framework, t.role, t.node) == (r.framework, r.role, r.node) for t in tasks)
        assert all(t.started_at <= snapshot.now - policy.min_runtime for t in tasks)
        assert r.resources == total(t.resources for t in tasks)
        assert (r.framework, r.role) != (r.beneficiary, r.beneficiary_role)


def no_victim_below_target_or_guarantee(
    snapshot: Snapshot, chosen: Sequence[Revocation], config: AllocatorConfig | None = None
) -> None:
    """What ``chosen`` takes leaves every victim at or above its target, and every role at or
    above its guarantee unless the beneficiary is in that role. (The simulator's tests check
    its every decision with this too.)"""
    shares = targets(snapshot, config)
    whole = cluster_total(snapshot)
    lost: dict[tuple[str, str], Resources] = {}
    for task in revoked_tasks(snapshot, chosen):
        client = (task.framework, task.role)
        lost[client] = lost.get(client, EMPTY) + task.resources
    for client, resources in lost.items():
        after = (shares[client].held - resources).dominant_share(whole)
        assert after >= shares[client].target_share - EPSILON, client
    for quota in snapshot.quotas:
        if any(in_subtree(r.beneficiary_role, quota.role) for r in chosen):
            continue
        before = total(a.resources for a in snapshot.allocations if in_subtree(a.role, quota.role))
        taken = total(r.resources for r in chosen if in_subtree(r.role, quota.role))
        for name, amount in quota.guarantee.items():
            if taken[name]:
                assert before[name] - taken[name] >= amount, (quota.role, name)


@given(clusters(), POLICIES)
@settings(max_examples=300, deadline=None)
def test_no_victim_goes_below_its_target_or_its_guarantee(
    snapshot: Snapshot, policy: RevocationPolicy
) -> None:
    no_victim_below_target_or_guarantee(snapshot, revocations(snapshot, policy=policy))


@given(clusters())
@settings(max_examples=300, deadline=None)
def test_every_beneficiary_can_run_its_task_where_tasks_are_freed(snapshot: Snapshot) -> None:
    chosen = revocations(snapshot)
    shares = targets(snapshot)
    whole = cluster_total(snapshot)
    demand = {fw.name: fw.demand or () for fw in snapshot.frameworks}
    for r in chosen:
        beneficiary = shares[(r.beneficiary, r.beneficiary_role)]
        shape = demand[r.beneficiary][r.shape].resources
        # It was at least one task below its target.
        gap = beneficiary.target_share - beneficiary.share
        assert gap >= shape.dominant_share(whole) - EPSILON
        node = next(n for n in snapshot.nodes if n.name == r.node)
        held = total(a.resources for a in snapshot.allocations if a.node == r.node)
        freed = total(x.resources for x in chosen if x.node == r.node)
        assert shape <= node.allocatable - held + freed


def minimal_tasks(snapshot: Snapshot, shape: Resources) -> int | None:
    """Brute force: the fewest tasks of clients above their target, each left at or above
    it, whose end lets one task of ``shape`` fit on some node."""
    shares = targets(snapshot)
    whole = cluster_total(snapshot)
    best = None
    for node in snapshot.nodes:
        held = total(a.resources for a in snapshot.allocations if a.node == node.name)
        free = node.allocatable - held
        here = [
            t
            for t in snapshot.tasks
            if t.node == node.name
            and shares[(t.framework, t.role)].share
            > shares[(t.framework, t.role)].target_share + EPSILON
        ]
        for size in range(len(here) + 1):
            if best is not None and size >= best:
                break
            if any(
                shape <= free + total(t.resources for t in subset)
                and stays_at_target(subset, shares, whole)
                for subset in combinations(here, size)
            ):
                best = size
                break
    return best


def stays_at_target(
    subset: Sequence[Task], shares: dict[tuple[str, str], FairShare], whole: Resources
) -> bool:
    lost: dict[tuple[str, str], Resources] = {}
    for t in subset:
        lost[(t.framework, t.role)] = lost.get((t.framework, t.role), EMPTY) + t.resources
    return all(
        (shares[c].held - r).dominant_share(whole) >= shares[c].target_share - EPSILON
        for c, r in lost.items()
    )


@given(clusters())
@settings(max_examples=100, deadline=None)
def test_the_first_beneficiary_costs_at_most_one_task_more_than_the_minimum(
    snapshot: Snapshot,
) -> None:
    chosen = revocations(snapshot, policy=RevocationPolicy(max_per_cycle=1_000))
    if not chosen:
        return
    first = chosen[0]
    fw = next(f for f in snapshot.frameworks if f.name == first.beneficiary)
    assert fw.demand is not None
    minimum = minimal_tasks(snapshot, fw.demand[first.shape].resources)
    assert minimum is not None
    # The first revocation is (part of) what was freed for the first beneficiary's task.
    assert len(first.tasks) <= minimum + 1


@given(clusters())
@settings(max_examples=60, deadline=None)
def test_once_converged_nothing_is_revoked_while_demand_is_steady(snapshot: Snapshot) -> None:
    quiet = 0
    for _ in range(25):
        snapshot, revoked = step(snapshot)
        quiet = quiet + 1 if revoked == 0 else 0
        if quiet == 3:
            break
    assert quiet == 3, "did not converge in 25 cycles"
    for _ in range(3):
        snapshot, revoked = step(snapshot)
        assert revoked == 0


@given(clusters(), st.data())
@settings(max_examples=200, deadline=None)
def test_blocked_tasks_are_never_chosen_and_the_others_keep_every_rule(
    snapshot: Snapshot, data: st.DataObject
) -> None:
    names = sorted(t.name for t in snapshot.tasks)
    blocked = data.draw(st.frozensets(st.sampled_from(names)) if names else st.just(frozenset()))
    chosen = revocations(snapshot, policy=RevocationPolicy(blocked=blocked))
    assert not blocked & {name for r in chosen for name in r.tasks}
    no_victim_below_target_or_guarantee(snapshot, chosen)
