"""Revocation: the rules of issue 13, one behaviour per test, and the seed's acceptance case."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from benchmarks.convergence import step, with_tasks

from kubedrf.allocator import (
    AllocatorConfig,
    FairShare,
    Quota,
    Reservation,
    Revocation,
    RevocationPolicy,
    Snapshot,
    Task,
    allocate,
    hold_freed,
    revocation_target,
    revocations,
    without_revoked,
)
from tests.builders import make_framework, make_snapshot, res

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "convergence.py"

A_TASK = res(cpu="1", memory="4Gi")
B_TASK = res(cpu="3", memory="1Gi")
C_TASK = res(cpu="1", memory="1Gi")


def seed(arrival: bool = True) -> Snapshot:
    """The seed node held by A (3 tasks) and B (2 tasks); C arrives wanting 100 tasks."""
    tasks = [Task(f"a{i}", "A", "default", "n1", A_TASK, started_at=i) for i in range(3)]
    tasks += [Task(f"b{i}", "B", "default", "n1", B_TASK, started_at=i) for i in range(2)]
    frameworks = [
        make_framework("A").demand(97, cpu="1", memory="4Gi"),
        make_framework("B").demand(98, cpu="3", memory="1Gi"),
    ]
    if arrival:
        frameworks.append(make_framework("C").demand(100, cpu="1", memory="1Gi"))
    snapshot = make_snapshot().node("n1", cpu="9", memory="18Gi").framework(*frameworks).at(10)
    return with_tasks(snapshot.obj(), tasks)


def a_task_of_a_on_each_of_two_nodes() -> Snapshot:
    """A (role a) runs a 2-CPU task on n1 (2 CPU) and on n2 (2.5 CPU); C (role c) wants two
    1-CPU tasks: its target is one of A's nodes."""
    snapshot = (
        make_snapshot()
        .node("n1", cpu="2", memory="2Gi")
        .node("n2", cpu="2500m", memory="2Gi")
        .framework(
            make_framework("A").role("a").demand(0, cpu="2"),
            make_framework("C").role("c").demand(2, cpu="1"),
        )
        .at(10)
        .obj()
    )
    tasks = [Task(f"a{i}", "A", "a", f"n{i}", res(cpu="2")) for i in (1, 2)]
    return with_tasks(snapshot, tasks)


def shares(snapshot: Snapshot) -> dict[str, FairShare]:
    return {s.framework: s for s in revocation_target(snapshot)}


def within_one_task(snapshot: Snapshot) -> bool:
    total = res(cpu="9", memory="18Gi")
    task = {"A": A_TASK, "B": B_TASK, "C": C_TASK}
    return all(
        abs(s.share - s.target_share) <= task[s.framework].dominant_share(total) + 1e-9
        for s in shares(snapshot).values()
    )


# -- the target ---------------------------------------------------------------------------


def test_target_is_progressive_filling_of_what_is_held_and_still_wanted() -> None:
    target = shares(seed())
    assert {name: s.target_tasks for name, s in target.items()} == {"A": 2, "B": 1, "C": 4}
    assert target["A"].target == res(cpu="2", memory="8Gi")
    assert target["C"].share == 0.0
    assert target["C"].target_share == pytest.approx(4 / 9)


def test_target_without_an_arrival_is_what_is_held() -> None:
    target = shares(seed(arrival=False))
    assert {name: s.target_tasks for name, s in target.items()} == {"A": 3, "B": 2}


# -- the acceptance case ------------------------------------------------------------------


def test_seed_arrival_converges_to_the_target_after_two_revocations() -> None:
    snapshot, revoked = step(seed())
    assert revoked == 2
    assert within_one_task(snapshot)
    assert all(s.share == pytest.approx(s.target_share) for s in shares(snapshot).values())
    for _ in range(5):
        snapshot, revoked = step(snapshot)
        assert revoked == 0


def test_seed_revokes_the_newest_task_of_each_client_above_its_target() -> None:
    assert revocations(seed()) == (
        Revocation("B", "default", "n1", ("b1",), B_TASK, "C", "default", shape=0),
        Revocation("A", "default", "n1", ("a2",), A_TASK, "C", "default", shape=0),
    )


# -- rules ---------------------------------------------------------------------------------


def test_nothing_is_revoked_while_shares_match_the_target() -> None:
    assert revocations(seed(arrival=False)) == ()


def test_a_victim_is_never_taken_below_its_guarantee() -> None:
    # Role a is guaranteed 2.5 CPUs; A runs two 2-CPU tasks, and its target is one (the
    # guarantee stage cannot give it half a task). Ending one would help C, but would leave
    # role a below its guarantee.
    snapshot = a_task_of_a_on_each_of_two_nodes()
    assert [r.tasks for r in revocations(snapshot)] == [("a1",)]
    guaranteed = replace(snapshot, quotas=(Quota("a", guarantee=res(cpu="2500m")),))
    assert shares(guaranteed)["A"].target_tasks == 1
    assert revocations(guaranteed) == ()


def test_no_revocation_once_every_client_is_at_its_target() -> None:
    # A and B gave a task each and C runs its 4: nobody is a task below its target.
    snapshot = seed()
    snapshot = with_tasks(
        without_revoked(snapshot, revocations(snapshot)),
        [Task(f"c{i}", "C", "default", "n1", C_TASK) for i in range(4)],
    )
    assert revocations(snapshot) == ()


def test_a_framework_wanting_a_single_task_gets_it() -> None:
    # One task below its target is a whole task: served, or it would starve for good.
    snapshot = seed()
    lone = replace(
        snapshot,
        frameworks=tuple(
            replace(fw, demand=(replace(fw.demand[0], count=1),))
            if fw.name == "C" and fw.demand
            else fw
            for fw in snapshot.frameworks
        ),
    )
    assert [r.beneficiary for r in revocations(lone)] == ["C"]


def test_one_large_task_is_revoked_rather_than_many_small_ones_further_above() -> None:
    # n1 has 1 CPU and no memory free; the newcomer's task needs {1.5 CPU, 3 GiB}. Small
    # has three {0.5, 1 GiB} tasks there and is the furthest above its target; Large has
    # a {0.5, 3 GiB} task whose end alone makes room. Found by the property test below.
    small = res(cpu="500m", memory="1Gi")
    large = res(cpu="500m", memory="3Gi")
    tasks = [
        Task(f"large{i}", "Large", "a", n, large)
        for i, n in enumerate(["n0", "n1", "n1", "n2", "n2"])
    ]
    tasks += [Task(f"small{i}", "Small", "a", "n1", small) for i in range(3)]
    tasks += [Task(f"small{i}", "Small", "a", "n2", small) for i in range(3, 10)]
    snapshot = (
        make_snapshot()
        .node("n0", cpu="1", memory="3Gi")
        .node("n1", cpu="3500m", memory="9Gi")
        .node("n2", cpu="4500m", memory="13Gi")
        .framework(
            make_framework("Large").role("a").demand(0, cpu="500m", memory="3Gi"),
            make_framework("Small").role("a").demand(0, cpu="500m", memory="1Gi"),
            make_framework("New").role("a").demand(2, cpu="1500m", memory="3Gi"),
        )
        .at(10)
    )
    first = revocations(with_tasks(snapshot.obj(), tasks))[0]
    assert (first.framework, first.node, len(first.tasks)) == ("Large", "n1", 1)


def test_tasks_younger_than_min_runtime_are_not_revoked() -> None:
    snapshot = seed()  # now = 10; b1 started at 1, b0 at 0, a2 at 2
    assert revocations(snapshot, policy=RevocationPolicy(min_runtime=9.5)) == (
        Revocation("B", "default", "n1", ("b0",), B_TASK, "C", "default", shape=0),
        Revocation("A", "default", "n1", ("a0",), A_TASK, "C", "default", shape=0),
    )
    assert revocations(snapshot, policy=RevocationPolicy(min_runtime=11)) == ()


def test_no_revocation_for_a_beneficiary_that_free_capacity_can_serve() -> None:
    snapshot = replace(
        seed(),
        nodes=(*seed().nodes, *make_snapshot().node("n2", cpu="1", memory="1Gi").obj().nodes),
    )
    assert revocations(snapshot) == ()


def test_no_revocation_for_a_beneficiary_its_quota_limit_stops() -> None:
    snapshot = seed()
    limited = replace(
        snapshot,
        frameworks=tuple(
            replace(fw, roles=("c",)) if fw.name == "C" else fw for fw in snapshot.frameworks
        ),
        quotas=(Quota("c", limit=res(cpu="500m")),),
    )
    assert shares(limited)["C"].target_tasks == 0
    assert revocations(limited) == ()


def test_no_revocation_on_a_gpu_node_for_a_beneficiary_without_the_capability() -> None:
    # A (GPU-capable) holds the GPU node n1, B holds n2; C sees only n2.
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi", gpu=1)
        .node("n2", cpu="4", memory="4Gi")
        .framework(
            make_framework("A").gpu().demand(0, cpu="1", memory="1Gi"),
            make_framework("B").gpu().demand(0, cpu="1", memory="1Gi"),
            make_framework("C").demand(10, cpu="1", memory="1Gi"),
        )
        .at(10)
        .obj()
    )
    one = res(cpu="1", memory="1Gi")
    tasks = [Task(f"a{i}", "A", "default", "n1", one) for i in range(4)]
    tasks += [Task(f"b{i}", "B", "default", "n2", one) for i in range(4)]
    chosen = revocations(with_tasks(snapshot, tasks))
    assert chosen
    assert {r.node for r in chosen} == {"n2"}


def test_no_revocation_on_a_node_reserved_for_the_victims_role() -> None:
    snapshot = seed()
    reserved = replace(snapshot, reservations=(Reservation("default", "n1", B_TASK * 2),))
    moved = replace(
        reserved,
        frameworks=tuple(
            replace(fw, roles=("c",)) if fw.name == "C" else fw for fw in reserved.frameworks
        ),
    )
    assert all(r.framework != "B" for r in revocations(moved))


def test_max_per_cycle_bounds_the_tasks_revoked() -> None:
    chosen = revocations(seed(), policy=RevocationPolicy(max_per_cycle=1))
    assert sum(len(r.tasks) for r in chosen) <= 1


def test_a_task_whose_eviction_was_refused_gives_way_to_another_of_its_framework() -> None:
    policy = RevocationPolicy(blocked=frozenset({"a2"}))
    assert revocations(seed(), policy=policy) == (
        Revocation("B", "default", "n1", ("b1",), B_TASK, "C", "default", shape=0),
        Revocation("A", "default", "n1", ("a1",), A_TASK, "C", "default", shape=0),
    )


def test_a_victim_whose_every_task_is_blocked_leaves_the_other_down_to_its_target_only() -> None:
    # A PodDisruptionBudget holds all of A: B gives its one task above target, and no more,
    # however far below its target C stays.
    policy = RevocationPolicy(blocked=frozenset({"a0", "a1", "a2"}))
    chosen = revocations(seed(), policy=policy)
    assert chosen == (Revocation("B", "default", "n1", ("b1",), B_TASK, "C", "default", shape=0),)
    after = without_revoked(seed(), chosen)
    assert shares(after)["B"].share == pytest.approx(shares(after)["B"].target_share)
    assert revocations(after, policy=policy) == ()


def test_a_blocked_task_turns_the_choice_to_another_node() -> None:
    snapshot = a_task_of_a_on_each_of_two_nodes()
    assert [(r.node, r.tasks) for r in revocations(snapshot)] == [("n1", ("a1",))]
    policy = RevocationPolicy(blocked=frozenset({"a1"}))
    assert [(r.node, r.tasks) for r in revocations(snapshot, policy=policy)] == [("n2", ("a2",))]


def test_freed_room_is_held_for_the_beneficiary_not_the_first_served() -> None:
    # D arrives after the decision with C's shape and share: without the hold the cycle
    # would share with it what B's task frees.
    snapshot = seed()
    chosen = revocations(snapshot)
    arrived = replace(
        snapshot,
        frameworks=(
            *snapshot.frameworks,
            make_framework("D0").demand(5, cpu="1", memory="1Gi").obj(),
        ),
    )
    after = without_revoked(arrived, chosen)
    assert "D0" in {o.framework for o in allocate(after).offers}
    held = replace(after, filters=hold_freed(after, chosen, after.now + 1))
    assert {o.framework for o in allocate(held).offers} == {"C"}


def test_without_revoked_returns_the_tasks_to_their_frameworks_demand() -> None:
    snapshot = seed()
    chosen = revocations(snapshot)
    after = without_revoked(snapshot, chosen)
    assert [t.name for t in after.tasks] == ["a0", "a1", "b0"]
    b = next(fw for fw in after.frameworks if fw.name == "B")
    assert b.demand is not None and b.demand[0].count == 99
    assert sum(a.resources["cpu"] for a in after.allocations if a.framework == "B") == 3000


def test_a_task_outside_its_allocation_is_refused_naming_the_field() -> None:
    snapshot = replace(seed(), tasks=(*seed().tasks, Task("x", "A", "default", "n1", A_TASK)))
    with pytest.raises(ValueError, match=r"tasks\[5\] \('x'\): exceeds what 'A' holds"):
        revocations(snapshot)


def test_a_repeated_task_name_is_refused() -> None:
    snapshot = seed()
    with pytest.raises(ValueError, match=r"task name 'a0' is not unique"):
        revocations(replace(snapshot, tasks=(*snapshot.tasks, snapshot.tasks[0])))


def test_revocation_policy_refuses_nonsense_naming_the_field() -> None:
    with pytest.raises(ValueError, match="min_runtime: must be at least 0"):
        RevocationPolicy(min_runtime=-1)
    with pytest.raises(ValueError, match="max_per_cycle: must be at least 1"):
        RevocationPolicy(max_per_cycle=0)


def test_demand_mode_target_applies_in_classic_mode_too() -> None:
    assert revocations(seed(), AllocatorConfig(mode="classic")) == revocations(seed())


def test_a_victim_keeps_its_target_even_when_the_beneficiary_wants_more() -> None:
    # A runs one task on n1 and one on n2 but its target is one task; B fills n3 at its
    # target; C's target is four tasks. Ending A's second task would help C, yet A keeps it.
    a_task, b_task = res(cpu="500m", memory="3Gi"), res(cpu="500m")
    snapshot = (
        make_snapshot()
        .node("n1", cpu="1", memory="3Gi")
        .node("n2", cpu="1500m", memory="3Gi")
        .node("n3", cpu="1", memory="2Gi")
        .framework(
            make_framework("A").demand(0, cpu="500m", memory="3Gi"),
            make_framework("B").demand(0, cpu="500m"),
            make_framework("C").demand(4, cpu="500m", memory="1Gi"),
        )
        .at(10)
        .obj()
    )
    tasks = [Task(f"a{i}", "A", "default", f"n{i}", a_task) for i in (1, 2)]
    tasks += [Task(f"b{i}", "B", "default", "n3", b_task) for i in (1, 2)]
    snapshot = with_tasks(snapshot, tasks)
    assert {name: s.target_tasks for name, s in shares(snapshot).items()} == {
        "A": 1,
        "B": 2,
        "C": 4,
    }
    assert [r.tasks for r in revocations(snapshot)] == [("a1",)]


def test_without_revoked_takes_each_ended_task_out_of_its_own_allocation() -> None:
    snapshot = seed()
    two = Revocation("A", "default", "n1", ("a1", "a2"), A_TASK * 2, "C", "default", shape=0)
    after = without_revoked(snapshot, [two])
    assert [a.resources for a in after.allocations if a.framework == "A"] == [A_TASK]


def test_convergence_benchmark_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "convergence.json"
    command = [sys.executable, str(BENCHMARK), "--nodes=4", "--frameworks=3"]
    command += ["--scale-nodes=40", "--scale-frameworks=4", f"--json={out}"]
    subprocess.run(command, check=True, capture_output=True)
    report = json.loads(out.read_text())
    assert [a["framework"] for a in report["arrivals"]] == ["fw-00", "fw-01", "fw-02"]
    assert all(a["revoked"] >= a["lower_bound"] for a in report["arrivals"])
    assert all(a["largest_gap"] <= 1.0 + 1e-9 for a in report["arrivals"])
    assert report["scale"]["revoked"] > 0


def test_two_equal_claimants_to_one_task_do_not_take_it_in_turns() -> None:
    # One node with room for one task; f1 holds it, f0 (identical) wants it too. Whichever
    # the target names, moving the task would only swap who waits: nothing is revoked.
    shape = res(cpu="500m", memory="3Gi")
    snapshot = (
        make_snapshot()
        .node("n1", cpu="2", memory="4Gi")
        .framework(
            make_framework("f0").demand(3, cpu="500m", memory="3Gi"),
            make_framework("f1").demand(2, cpu="500m", memory="3Gi"),
        )
        .at(10)
        .obj()
    )
    held = with_tasks(snapshot, [Task("t0", "f1", "default", "n1", shape)])
    assert revocations(held) == ()


def test_the_target_is_computed_once_while_demand_and_nodes_stay_the_same() -> None:
    from kubedrf.allocator.revocation import _target  # noqa: PLC0415

    _target.cache_clear()
    revocations(seed())
    revocations(replace(seed(), now=seed().now + 1))  # a later cycle, nothing else changed
    assert _target.cache_info().hits >= 1
