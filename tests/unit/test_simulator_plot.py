"""``kubedrf simulate --plot``: fair share beside dominant share, arrivals marked."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubedrf.simulator import parse_scenario, simulate
from kubedrf.simulator.report import fair_shares_over_time, plot

LATE_ARRIVAL = {
    "cycles": 12,
    "nodes": [{"name": "n1", "allocatable": {"cpu": "9", "memory": "18Gi"}}],
    "frameworks": [
        {"name": "A", "tasks": {"count": 100, "resources": {"cpu": "1", "memory": "4Gi"}}},
        {
            "name": "B",
            "arrivesAt": "5s",
            "tasks": {"count": 100, "resources": {"cpu": "3", "memory": "1Gi"}},
        },
    ],
}


def test_fair_share_follows_the_demand_of_each_moment() -> None:
    result = simulate(parse_scenario(LATE_ARRIVAL, "late.yaml"))
    fair = fair_shares_over_time(result)
    assert len(fair) == len(result.cycles)
    # Alone, A is due all it can use: 4 tasks of 4Gi in 18Gi.
    assert fair[0]["A"] == pytest.approx(16 / 18) and "B" not in fair[0]
    # Once B arrives, DRF owes both 2/3, whatever A already holds.
    arrived = next(i for i, r in enumerate(result.cycles) if r.time >= 5)
    assert fair[arrived]["A"] == pytest.approx(2 / 3)
    assert fair[arrived]["B"] == pytest.approx(2 / 3)
    # Without revocation A keeps its 4 tasks: its share stays above its fair share.
    assert result.final.frameworks["A"].dominant_share > fair[-1]["A"]


def test_the_plot_is_written_as_a_png(tmp_path: Path) -> None:
    path = tmp_path / "late.png"
    plot(simulate(parse_scenario(LATE_ARRIVAL, "late.yaml")), str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
