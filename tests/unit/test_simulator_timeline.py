"""Scenario timelines (arrivals, departures, events), the per-cycle trace, and piping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from kubedrf.simulator import SimulationResult, parse_scenario, simulate
from tests.unit.test_simulator import ROOT, kubedrf

GI = 2**30


def run(**document: Any) -> SimulationResult:
    return simulate(parse_scenario(document, "inline"))


def tasks(result: SimulationResult, framework: str) -> list[int]:
    return [record.frameworks[framework].tasks for record in result.cycles]


def launched(result: SimulationResult, framework: str) -> list[int]:
    return [record.launched[framework] for record in result.cycles]


def one_cpu(count: int = 100, **more: Any) -> dict[str, Any]:
    return {"count": count, "resources": {"cpu": "1"}, **more}


NODE4 = {"name": "n1", "allocatable": {"cpu": "4"}}


def test_a_late_framework_starves_while_others_hold_the_cluster() -> None:
    run_ = kubedrf("simulate", "examples/scenarios/late-arrival.yaml", "--json")
    assert run_.returncode == 0, run_.stderr
    report = json.loads(run_.stdout)
    trace = report["trace"]
    assert trace[10]["time"] == 10.0
    assert [cycle["frameworks"]["C"]["tasks"] for cycle in trace] == [0] * len(trace)
    assert report["frameworks"]["A"]["tasks"] == 3
    assert report["frameworks"]["B"]["tasks"] == 2


def test_a_framework_that_leaves_releases_what_it_held() -> None:
    result = run(
        cycles=4,
        nodes=[NODE4],
        frameworks=[
            {"name": "A", "tasks": one_cpu(), "leavesAt": "2s"},
            {"name": "B", "tasks": one_cpu()},
        ],
    )
    assert tasks(result, "A") == [2, 2, 0, 0]
    assert tasks(result, "B") == [2, 2, 4, 4]


def test_tasks_on_a_removed_node_are_lost_and_wanted_again() -> None:
    node = {"allocatable": {"cpu": "2"}}
    result = run(
        cycles=5,
        nodes=[{"name": "n1", **node}, {"name": "n2", **node}],
        frameworks=[{"name": "A", "tasks": one_cpu(4)}],
        events=[
            {"at": "2s", "removeNodes": ["n1"]},
            {"at": "3s", "addNodes": [{"name": "n3", **node}]},
        ],
    )
    assert tasks(result, "A") == [4, 4, 2, 4, 4]
    assert launched(result, "A") == [4, 0, 0, 2, 0]
    assert result.final.frameworks["A"].dominant_share == 1.0  # of the cluster as it is now


def test_set_tasks_changes_what_a_framework_wants_in_total() -> None:
    result = run(
        cycles=4,
        nodes=[NODE4],
        frameworks=[{"name": "A", "tasks": one_cpu(1)}],
        events=[{"at": "1500ms", "setTasks": {"framework": "A", "count": 3}}],
    )
    # 1.5 s applies at the first cycle at or after it: t=2.
    assert launched(result, "A") == [1, 0, 2, 0]


def test_a_zero_quota_limit_keeps_a_resource_out_of_offers() -> None:
    result = run(
        cycles=1,
        mode="classic",
        nodes=[{"name": "n1", "allocatable": {"cpu": "4", "memory": "4Gi"}}],
        quotas=[{"role": "eng", "limit": {"cpu": "0"}}],
        frameworks=[{"name": "A", "roles": ["eng"], "declineAll": True}],
    )
    (offer,) = result.cycles[0].offers
    assert offer.resources.to_canonical() == {"memory": 4 * GI}


def test_an_empty_min_allocatable_allows_any_offer_at_either_level() -> None:
    tiny = [{"name": "n1", "allocatable": {"cpu": "5m"}}]
    decliner = {"name": "A", "declineAll": True}

    def offered(**document: Any) -> int:
        result = run(cycles=1, mode="classic", nodes=tiny, **document)
        return len(result.cycles[0].offers)

    assert offered(frameworks=[decliner]) == 0
    assert offered(frameworks=[decliner], minAllocatable=[]) == 1
    assert offered(frameworks=[{**decliner, "minAllocatable": {}}]) == 1
    assert offered(frameworks=[{**decliner, "minAllocatable": [{"cpu": "1"}, {}]}]) == 1


def test_suppress_stops_offers_and_revive_also_lifts_filters() -> None:
    result = run(
        cycles=5,
        mode="classic",
        nodes=[NODE4],
        frameworks=[{"name": "A", "roles": ["x", "y"], "declineAll": True, "refuseSeconds": 60}],
        events=[
            {"at": "1s", "suppress": {"framework": "A", "role": "y"}},
            {"at": "2s", "revive": {"framework": "A", "role": "x"}},
            {"at": "3s", "revive": {"framework": "A"}},
        ],
    )
    roles = [sorted(o.role for o in record.offers) for record in result.cycles]
    # t=0: x takes the node and declines it for 60 s; y has nothing left. t=2: reviving x
    # lifts its filter. t=3: reviving all unsuppresses y, which has received fewer offers;
    # t=4: x, whose filter that revive lifted too.
    assert roles == [["x"], [], ["x"], ["y"], ["x"]]


def test_quota_and_weight_events_change_the_next_cycles() -> None:
    node = {"cpu": "1", "memory": "1Gi"}
    result = run(
        cycles=3,
        mode="classic",
        nodes=[{"name": f"n{i}", "allocatable": node} for i in range(4)],
        frameworks=[
            {"name": "A", "roles": ["a"], "declineAll": True, "refuseSeconds": 0},
            {"name": "B", "roles": ["b"], "declineAll": True, "refuseSeconds": 0},
        ],
        events=[
            {"at": "1s", "setWeight": {"role": "b", "weight": 3}},
            {"at": "2s", "setQuota": {"role": "a", "limit": {"cpu": "1"}}},
        ],
    )
    counts = [
        (sum(o.framework == "A" for o in r.offers), sum(o.framework == "B" for o in r.offers))
        for r in result.cycles
    ]
    assert counts == [(2, 2), (1, 3), (1, 3)]


def test_json_trace_has_one_entry_per_cycle_in_canonical_units() -> None:
    run_ = kubedrf("simulate", "examples/scenarios/seed-classic.yaml", "--json")
    report = json.loads(run_.stdout)
    trace = report["trace"]
    assert len(trace) == report["cycles"]
    first = trace[0]
    assert (first["cycle"], first["time"]) == (0, 0.0)
    assert first["offers"] == [
        {
            "framework": "A",
            "role": "default",
            "node": "n1",
            "resources": {"cpu": 9, "memory": 18 * GI},
        }
    ]
    assert first["frameworks"]["A"] == {
        "tasks": 4,
        "dominant_share": 16 / 18,
        "launched": 4,
        "declined": 1,
    }
    assert trace[-1]["frameworks"]["A"]["tasks"] == report["frameworks"]["A"]["tasks"]


def test_human_output_ends_quietly_when_the_reader_stops(tmp_path: Path) -> None:
    long = tmp_path / "long.yaml"
    long.write_text(
        "cycles: 3000\n"
        "nodes:\n  - {name: n1, allocatable: {cpu: '2'}}\n"
        "frameworks:\n  - {name: A, tasks: {count: 100000, resources: {cpu: '1'}, duration: 1s}}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "kubedrf.cli.main", "simulate", str(long)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().split()[:2] == [b"cycle", b"time"]
    process.stdout.close()  # what `| head -1` does
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert stderr == ""


def test_the_readme_scenario_example_is_a_valid_scenario_that_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Scenario format") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", 1)]
    result = simulate(parse_scenario(yaml.safe_load(example), "README.md"))
    assert result.final.time == 30.0  # through the whole timeline, up to A leaving
    assert result.final.frameworks["A"].tasks == 0
