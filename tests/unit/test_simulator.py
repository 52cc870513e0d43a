"""The simulator contract (README, "The simulator"), through the library and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubedrf.cli.main import main
from kubedrf.simulator import load_scenario, parse_scenario, simulate

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))
GI = 2**30


def kubedrf(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``kubedrf`` command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "kubedrf.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def kubedrf_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command without a new interpreter, for the many cheap cases."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_example_json_matches_the_contract() -> None:
    run = kubedrf("simulate", "examples/scenarios/seed-drf.yaml", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    a, b = report["frameworks"]["A"], report["frameworks"]["B"]
    assert (a["tasks"], b["tasks"]) == (3, 2)
    assert a["allocated"] == {"cpu": 3, "memory": 12 * GI}
    assert b["allocated"] == {"cpu": 6, "memory": 2 * GI}
    assert a["dominant_share"] == pytest.approx(2 / 3)
    assert b["dominant_share"] == pytest.approx(2 / 3)
    assert report["roles"]["default"]["allocated"] == {"cpu": 9, "memory": 14 * GI}


def test_classic_mode_cannot_reproduce_the_seed_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = kubedrf_in_process(
        capsys, "simulate", str(ROOT / "examples/scenarios/seed-classic.yaml"), "--json"
    )
    report = json.loads(out)
    shares = {name: fw["dominant_share"] for name, fw in report["frameworks"].items()}
    assert shares["A"] != pytest.approx(shares["B"])
    assert report["frameworks"]["A"]["tasks"] == 4  # A took the whole node first, as in Mesos


def test_human_output_is_a_table_per_cycle_and_plot_writes_a_png(tmp_path: Path) -> None:
    png = tmp_path / "shares.png"
    run = kubedrf("simulate", "examples/scenarios/seed-drf.yaml", "--plot", str(png))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split()[:3] == ["cycle", "time", "offers"]
    assert lines[1].split()[0] == "0"
    assert "Final allocation:" in run.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_runs(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, out, err = kubedrf_in_process(capsys, "simulate", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["frameworks"]


def test_finished_tasks_free_capacity_for_the_next_cycles() -> None:
    scenario = parse_scenario(
        {
            "cycles": 6,
            "nodes": [{"name": "n1", "allocatable": {"cpu": "2", "memory": "2Gi"}}],
            "frameworks": [
                {"name": "A", "tasks": {"count": 6, "resources": {"cpu": "1"}, "duration": "2s"}}
            ],
        },
        "inline",
    )
    result = simulate(scenario)
    running = [record.frameworks["A"].tasks for record in result.cycles]
    assert running[:6] == [2, 2, 2, 2, 2, 2]
    launched = sum(len(r.offers) for r in result.cycles)
    assert launched == 3  # 2 tasks at t=0, 2 at t=2, 2 at t=4


def test_declined_remainders_install_filters_that_expire() -> None:
    scenario = parse_scenario(
        {
            "cycles": 8,
            "mode": "classic",
            "nodes": [{"name": "n1", "allocatable": {"cpu": "4", "memory": "4Gi"}}],
            "frameworks": [
                {
                    "name": "A",
                    "refuseSeconds": "3s",
                    "tasks": {"count": 1, "resources": {"cpu": "1", "memory": "1Gi"}},
                }
            ],
        },
        "inline",
    )
    offers = [len(record.offers) for record in simulate(scenario).cycles]
    # Offer at t=0 (1 task launched, rest declined for 3 s), again at t=3 and t=6.
    assert offers == [1, 0, 0, 1, 0, 0, 1, 0]


def test_the_simulator_runs_until_nothing_changes() -> None:
    scenario = parse_scenario(
        {
            "cycles": 50,
            "nodes": [{"name": "n1", "allocatable": {"cpu": "4"}}],
            "frameworks": [{"name": "A", "tasks": {"count": 2, "resources": {"cpu": "1"}}}],
        },
        "inline",
    )
    assert len(simulate(scenario).cycles) == 2


def test_a_task_larger_than_every_node_is_warned_about_in_the_table_and_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "too-big.yaml"
    path.write_text(
        "nodes:\n  - {name: n1, allocatable: {cpu: '9', memory: 18Gi}}\n"
        "frameworks:\n  - {name: A, tasks: {count: 2, resources: {cpu: '16', memory: 1Gi}}}\n"
        "  - {name: B, tasks: {count: 2, resources: {cpu: '1'}}}\n"
    )
    warning = (
        "framework A: a task of cpu=16, memory=1Gi is larger than every node: the largest for"
        " it, n1, has cpu=9, memory=18Gi allocatable"
    )
    code, out, _ = kubedrf_in_process(capsys, "simulate", str(path), "--json")
    assert code == 0
    assert json.loads(out)["warnings"] == [warning]
    code, out, _ = kubedrf_in_process(capsys, "simulate", str(path))
    assert code == 0
    assert out.rstrip().endswith(f"warning: {warning}")
    assert out.count("warning:") == 1  # once, not once per cycle


def test_a_run_whose_tasks_all_fit_has_no_warnings() -> None:
    report = simulate(load_scenario(ROOT / "examples/scenarios/seed-drf.yaml"))
    assert report.warnings == []
