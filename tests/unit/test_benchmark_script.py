"""benchmarks/allocator.py still runs and writes the figures docs/design.md names (tiny shapes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "allocator.py"
FIELDS = {"shape", "nodes", "frameworks", "roles", "rounds", "min_s", "median_s", "max_s"}
FIELDS |= {"offers", "peak_rss_mb"}


@pytest.mark.parametrize(
    ("args", "offers"),
    [
        # Every node goes to some framework each round until all have declined it.
        (["--shape=decline", "--nodes=40", "--frameworks=4", "--rounds=3"], 40),
        # Mesos' split of 12 roles: 10 small and 2 large guarantees on 12 agents.
        (["--shape=quota", "--frameworks=12", "--rounds=2"], None),
        (["--shape=decline", "--nodes=10", "--frameworks=2", "--rounds=2", "--mode=demand"], None),
    ],
)
def test_benchmark_writes_its_figures(tmp_path: Path, args: list[str], offers: int | None) -> None:
    out = tmp_path / "report.json"
    subprocess.run([sys.executable, str(SCRIPT), *args, f"--json={out}"], check=True)
    report = json.loads(out.read_text())
    assert report.keys() >= FIELDS
    assert report["min_s"] <= report["median_s"] <= report["max_s"]
    assert report["offers"] > 0
    if offers is not None:
        assert report["offers_per_round"] == [offers] * report["rounds"]


def test_the_e2e_benchmark_counts_the_cpu_a_phase_spends_in_this_process() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        from e2e import CpuMeter  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    spent: dict[str, float] = {}

    with CpuMeter("kubedrf-no-such-cluster").phase(spent):
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass

    assert set(spent) == {"benchmark"} and spent["benchmark"] >= 0.2


MASTER_SCRIPT = SCRIPT.parent / "master.py"


def test_master_benchmark_times_steady_and_changed_cycles_and_measures_the_cache(
    tmp_path: Path,
) -> None:
    out = tmp_path / "master.json"
    args = ["--nodes=8", "--tasks=40", "--frameworks=2", "--rounds=2", "--changes=3"]
    subprocess.run([sys.executable, str(MASTER_SCRIPT), *args, f"--json={out}"], check=True)
    report = json.loads(out.read_text())
    assert (report["nodes"], report["tasks"], report["frameworks"]) == (8, 40, 2)
    assert len(report["steady_seconds"]) == len(report["changed_seconds"]) == 2
    assert report["steady_median_s"] > 0 and report["changed_median_s"] > 0
    # Every framework wants more than it runs and the nodes have room: its offers stand.
    assert report["outstanding_offers"] > 0
    assert report["cache_kb_per_1000_pods"] > 0
