"""Revocation in the simulator: the late arrival converges, answered or evicted, and only once.

The decision is the allocator's (``allocator/revocation.py``, tested on its own in
``test_revocation*.py``); these tests check the simulator's model of the master around it:
who ends the tasks and when, the hold on the freed node, the trace, and that random runs
keep the invariants and come to rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubedrf.allocator import (
    AllocationResult,
    AllocatorConfig,
    Revocation,
    RevocationPolicy,
    Snapshot,
    allocate,
    revocations,
)
from kubedrf.cli.main import main
from kubedrf.resources import Resources
from kubedrf.simulator import SimulationResult, engine, parse_scenario, simulate
from kubedrf.simulator.engine import CycleRecord, Simulation
from tests.strategies import resource_maps, task_shapes
from tests.unit.test_allocator_properties import violations
from tests.unit.test_revocation import A_TASK, B_TASK, C_TASK, seed, shares
from tests.unit.test_revocation_properties import no_victim_below_target_or_guarantee
from tests.unit.test_simulator import ROOT, kubedrf

SCENARIOS = ROOT / "examples" / "scenarios"


def load(name: str, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SCENARIOS / name).read_text())
    return {**document, **changes}


def run(document: dict[str, Any]) -> SimulationResult:
    return simulate(parse_scenario(document, "inline"))


def tasks(result: SimulationResult | list[CycleRecord], framework: str) -> list[int]:
    cycles = result.cycles if isinstance(result, SimulationResult) else result
    return [record.frameworks[framework].tasks for record in cycles]


def revoking_cycles(cycles: list[CycleRecord]) -> list[int]:
    return [record.cycle for record in cycles if record.revocations]


def long_run(document: dict[str, Any], cycles: int) -> list[CycleRecord]:
    """Every cycle up to ``cycles``, past the point where ``simulate`` stops for rest."""
    simulation = Simulation(parse_scenario(document, "inline"))
    return [simulation.step(cycle)[0] for cycle in range(cycles)]


def within_one_task_of_target(record: CycleRecord) -> None:
    whole = Resources.parse({"cpu": "9", "memory": "18Gi"})
    task = {"A": A_TASK, "B": B_TASK, "C": C_TASK}
    for name, target in shares(seed()).items():
        gap = abs(record.frameworks[name].dominant_share - target.target_share)
        assert gap <= task[name].dominant_share(whole) + 1e-9, name


# -- the acceptance case ------------------------------------------------------------------


def test_the_late_arrival_converges_after_two_answered_revocations_and_then_rests() -> None:
    result = run(load("late-arrival-revocation.yaml"))
    # DRF target for the three: A 2, B 1, C 4 tasks. One task of B and one of A end at
    # 10 s, and C runs its four in the same cycle.
    b_task, a_task = [r for record in result.cycles for r in record.revocations]
    assert b_task == Revocation("B", "default", "n1", ("B-4",), B_TASK, "C", "default", 0)
    assert (a_task.framework, a_task.resources, a_task.beneficiary) == ("A", A_TASK, "C")
    assert revoking_cycles(result.cycles) == [10]
    assert tasks(result, "B")[9:11] == [2, 1]
    assert tasks(result, "C")[9:11] == [0, 4]
    final = result.final
    assert {name: u.tasks for name, u in final.frameworks.items()} == {"A": 2, "B": 1, "C": 4}
    within_one_task_of_target(final)
    # Nothing more changes, so the run stops early; a long run past that revokes nothing.
    assert len(result.cycles) == 12
    cycles = long_run(load("late-arrival-revocation.yaml"), 300)
    assert revoking_cycles(cycles) == [10]
    assert tasks(cycles, "B")[11:] == [1] * 289
    assert sum(record.launched["B"] for record in cycles[1:]) == 0  # the lost task never reruns


def test_a_framework_that_ignores_revocation_gets_the_same_result_later_by_eviction() -> None:
    result = run(load("late-arrival-eviction.yaml"))
    assert revoking_cycles(result.cycles) == [10]
    # B keeps its task through the 10 s grace period; the eviction at 20 s lets C run.
    assert tasks(result, "B")[9:21] == [2] * 11 + [1]
    assert tasks(result, "C")[19:21] == [0, 4]
    assert {name: u.tasks for name, u in result.final.frameworks.items()} == {
        "A": 2,
        "B": 1,
        "C": 4,
    }
    within_one_task_of_target(result.final)
    assert revoking_cycles(long_run(load("late-arrival-eviction.yaml"), 200)) == [10]


def test_without_the_revocation_key_or_with_it_disabled_the_late_arrival_starves() -> None:
    for document in (
        load("late-arrival.yaml"),
        load("late-arrival-revocation.yaml", revocation={"enabled": False}),
    ):
        result = run(document)
        assert tasks(result, "C") == [0] * len(result.cycles)
        assert revoking_cycles(result.cycles) == []


def test_a_present_revocation_key_enables_revocation_by_default() -> None:
    result = run(load("late-arrival.yaml", revocation={}))
    assert revoking_cycles(result.cycles) == [10]


# -- timing ---------------------------------------------------------------------------------


def test_no_task_younger_than_min_runtime_is_revoked() -> None:
    document = load("late-arrival-revocation.yaml", revocation={"minRuntime": "25s"})
    result = run(document)
    # A's and B's tasks started at 0 s: revocable from 25 s, though C arrived at 10 s.
    assert revoking_cycles(result.cycles) == [25]
    assert tasks(result, "C")[24:26] == [0, 4]


def test_a_revoked_task_is_wanted_again_and_reruns_when_capacity_frees() -> None:
    document = load("late-arrival-revocation.yaml")
    document["frameworks"][2]["leavesAt"] = "20s"
    result = run(document)
    assert tasks(result, "B")[9:11] == [2, 1]
    assert tasks(result, "B")[19:21] == [1, 2]
    assert revoking_cycles(result.cycles) == [10]


def test_the_node_being_freed_is_held_for_the_beneficiary_through_the_grace_period() -> None:
    # B ignores the inverse offer; A's tasks finish at 15 s and free 3 CPU / 12 GiB while
    # B's task is still being revoked. A would take them back (it wants more and its
    # share is the lowest then), but the node is held for C until the eviction at 20 s.
    document = load("late-arrival-eviction.yaml")
    document["frameworks"][0] = {
        "name": "A",
        "tasks": {"count": 6, "resources": {"cpu": "1", "memory": "4Gi"}, "duration": "15s"},
    }
    result = run(document)
    assert revoking_cycles(result.cycles)[0] == 10
    assert tasks(result, "A")[14:16] == [2, 0]
    offers = [(r.cycle, o.framework) for r in result.cycles[10:21] for o in r.offers]
    assert all(framework == "C" for _, framework in offers)
    assert tasks(result, "C")[15] > 0  # the room A's tasks freed went to C at once


# -- output ---------------------------------------------------------------------------------


def test_json_counts_revoked_tasks_and_traces_each_revocation_where_it_started() -> None:
    run_ = kubedrf("simulate", "examples/scenarios/late-arrival-eviction.yaml", "--json")
    assert run_.returncode == 0, run_.stderr
    report = json.loads(run_.stdout)
    assert {name: fw["revoked"] for name, fw in report["frameworks"].items()} == {
        "A": 1,
        "B": 1,
        "C": 0,
    }
    started = {entry["cycle"]: entry["revocations"] for entry in report["trace"]}
    assert started[10] == [
        {
            "framework": "B",
            "role": "default",
            "node": "n1",
            "resources": {"cpu": 3, "memory": 2**30},
            "beneficiary": "C",
        },
        {
            "framework": "A",
            "role": "default",
            "node": "n1",
            "resources": {"cpu": 1, "memory": 4 * 2**30},
            "beneficiary": "C",
        },
    ]
    assert all(not revoked for cycle, revoked in started.items() if cycle != 10)


def test_the_table_has_a_revoked_column_only_when_revocation_is_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", str(SCENARIOS / "late-arrival-revocation.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["cycle", "time", "offers", "revoked"]
    assert lines[11].split()[:4] == ["10", "10.0s", "1", "2"]
    assert "(revoked 1)" in next(line for line in lines if line.strip().startswith("B "))
    assert main(["simulate", str(SCENARIOS / "late-arrival.yaml")]) == 0
    assert "revoked" not in capsys.readouterr().out


BAD = {
    "revocation: {gracePeriod: soon}": "revocation.gracePeriod: 'soon' is not a duration",
    "revocation: {graceperiod: 30s}": "revocation.graceperiod: unknown field",
    "revocation: {minRuntime: -1}": "revocation.minRuntime: must not be negative, got -1",
    "revocation: {enabled: maybe}": "revocation.enabled: Input should be a valid boolean",
    "revocation: 30s": "revocation: Input should be a valid dictionary",
    "frameworks:\n  - {name: A, ignoresRevocation: sometimes}": (
        "frameworks[0].ignoresRevocation: Input should be a valid boolean"
    ),
}


@pytest.mark.parametrize("line", sorted(BAD))
def test_bad_revocation_keys_are_one_line_errors_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"nodes:\n  - {{name: n1, allocatable: {{cpu: '4'}}}}\n{line}\n")
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {BAD[line]}")
    assert len(err.splitlines()) == 1


# -- random runs ----------------------------------------------------------------------------


@st.composite
def runs(draw: st.DrawFn) -> dict[str, Any]:
    """1–3 nodes filled from t=0 by 1–3 frameworks that want more than fits, then 1–2
    arrivals within 6 s wanting small tasks; sometimes a guarantee; revocation on with a
    drawn grace period and minimum runtime, and frameworks that answer or ignore it."""
    nodes = [
        {"name": f"n{i}", "allocatable": _quantities(draw(NODES))}
        for i in range(draw(st.integers(1, 3)))
    ]
    frameworks = [
        _framework(draw, f"f{f}", 0, draw(st.integers(4, 40)), draw(task_shapes(gpu=False)))
        for f in range(draw(st.integers(1, 3)))
    ]
    for a in range(draw(st.integers(1, 2))):
        arrives, count = draw(st.integers(1, 6)), draw(st.integers(2, 20))
        shape = draw(resource_maps(cpu=4, memory=4, min_cpu=1))
        frameworks.append(_framework(draw, f"new{a}", arrives, count, shape))
    quotas = []
    if draw(st.booleans()):
        quotas = [{"role": "a", "guarantee": _quantities(draw(resource_maps(cpu=8, memory=8)))}]
    revocation = {
        "gracePeriod": draw(st.sampled_from((0, 2, 5))),
        "minRuntime": draw(st.sampled_from((0, 3))),
    }
    return {"nodes": nodes, "frameworks": frameworks, "quotas": quotas, "revocation": revocation}


NODES = resource_maps(cpu=16, memory=16, min_cpu=4, min_memory=4)


def _framework(
    draw: st.DrawFn, name: str, arrives: int, count: int, shape: Resources
) -> dict[str, Any]:
    return {
        "name": name,
        "roles": [draw(st.sampled_from(("a", "b")))],
        "arrivesAt": arrives,
        "ignoresRevocation": draw(st.booleans()),
        "tasks": {"count": count, "resources": _quantities(shape)},
    }


def _quantities(resources: Resources) -> dict[str, str]:
    return dict(resources.to_quantities())


@settings(max_examples=40, deadline=None)
@given(runs())
def test_random_runs_keep_the_invariants_and_rest_once_demand_is_steady(
    document: dict[str, Any],
) -> None:
    decided: list[tuple[Snapshot, AllocationResult, AllocatorConfig]] = []
    revoked: list[tuple[Snapshot, tuple[Revocation, ...]]] = []

    def recorded_allocate(snapshot: Snapshot, config: AllocatorConfig) -> AllocationResult:
        result = allocate(snapshot, config)
        decided.append((snapshot, result, config))
        return result

    def recorded_revocations(
        snapshot: Snapshot, config: AllocatorConfig, policy: RevocationPolicy
    ) -> tuple[Revocation, ...]:
        chosen = revocations(snapshot, config, policy)
        revoked.append((snapshot, chosen))
        return chosen

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "allocate", recorded_allocate)
        patch.setattr(engine, "revocations", recorded_revocations)
        cycles = long_run(document, 60)
    for snapshot, result, config in decided:
        assert violations(snapshot, result, config) == []
    for snapshot, chosen in revoked:
        no_victim_below_target_or_guarantee(snapshot, chosen)
    # Every framework has arrived by 6 s and wants a fixed count: demand is steady from
    # then on, and the run comes to rest well before the end, revoking nothing more.
    quiet = cycles[-25:]
    assert [r.cycle for r in quiet if r.revocations or r.offers] == []


def test_nothing_is_revoked_for_a_task_that_headroom_would_still_hold_back() -> None:
    # Role a's guarantee (nobody uses it) holds 1.5 CPU of the free capacity back. Ending
    # f0's task on n1 frees 0.5 CPU, too little for new1's 1-CPU task past the headroom:
    # f0 took it straight back, cycle after cycle, until freeing counted against the cap.
    document = {
        "cycles": 40,
        "nodes": [
            {"name": "n0", "allocatable": {"cpu": "2", "memory": "4Gi"}},
            {"name": "n1", "allocatable": {"cpu": "2", "memory": "5Gi"}},
        ],
        "frameworks": [
            {
                "name": "f0",
                "roles": ["b"],
                "tasks": {"count": 4, "resources": {"cpu": "500m", "memory": "5Gi"}},
            },
            {
                "name": "new0",
                "roles": ["b"],
                "arrivesAt": 1,
                "tasks": {"count": 4, "resources": {"cpu": "500m"}},
            },
            {
                "name": "new1",
                "roles": ["b"],
                "arrivesAt": 1,
                "tasks": {"count": 2, "resources": {"cpu": "1", "memory": "4Gi"}},
            },
        ],
        "quotas": [{"role": "a", "guarantee": {"cpu": "1500m", "memory": "1Gi"}}],
        "revocation": {"gracePeriod": 0, "minRuntime": 0},
    }
    assert revoking_cycles(long_run(document, 40)) == []
