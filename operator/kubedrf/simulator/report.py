"""How a simulation is shown: a table per cycle for people, JSON for tools, a PNG of shares."""

from __future__ import annotations

import json
from typing import Any

from kubedrf.allocator import Revocation, Snapshot
from kubedrf.allocator.shares import fair_shares
from kubedrf.simulator.engine import CycleRecord, Simulation, SimulationResult, Usage
from kubedrf.simulator.scenario import Scenario


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "tasks": usage.tasks,
        "allocated": usage.allocated.to_canonical(),
        "dominant_share": usage.dominant_share,
    }


def _revocation_json(revocation: Revocation) -> dict[str, Any]:
    return {
        "framework": revocation.framework,
        "role": revocation.role,
        "node": revocation.node,
        "resources": revocation.resources.to_canonical(),
        "beneficiary": revocation.beneficiary,
    }


def revoked(result: SimulationResult) -> dict[str, int]:
    """Tasks revoked from each framework over the run, answered or evicted alike."""
    counts = dict.fromkeys(result.final.frameworks, 0)
    for record in result.cycles:
        for revocation in record.revocations:
            counts[revocation.framework] += len(revocation.tasks)
    return counts


def _trace_json(record: CycleRecord) -> dict[str, Any]:
    return {
        "cycle": record.cycle,
        "time": record.time,
        "offers": [
            {
                "framework": offer.framework,
                "role": offer.role,
                "node": offer.node,
                "resources": offer.resources.to_canonical(),
            }
            for offer in record.offers
        ],
        "revocations": [_revocation_json(r) for r in record.revocations],
        "frameworks": {
            name: {
                "tasks": usage.tasks,
                "dominant_share": usage.dominant_share,
                "launched": record.launched.get(name, 0),
                "declined": record.declined.get(name, 0),
            }
            for name, usage in record.frameworks.items()
        },
    }


def to_json(result: SimulationResult) -> str:
    """Final tasks, allocations and dominant shares, and a trace of every cycle."""
    final = result.final
    lost = revoked(result)
    document = {
        "cycles": len(result.cycles),
        "time": final.time,
        "mode": result.scenario.mode,
        "frameworks": {
            name: {**_usage_json(u), "revoked": lost[name]} for name, u in final.frameworks.items()
        },
        "roles": {name: _usage_json(u) for name, u in final.roles.items()},
        "trace": [_trace_json(record) for record in result.cycles],
        "warnings": result.warnings,
    }
    return json.dumps(document, indent=2, sort_keys=True)


def to_table(result: SimulationResult) -> str:
    """One row per cycle (offers, tasks revoked when revocation is on, tasks and dominant
    share per framework), then the final allocation."""
    names = list(result.final.frameworks)
    width = max([len(n) for n in names] + [12])
    revokes = result.scenario.revokes
    lost = revoked(result)
    header = f"{'cycle':>5} {'time':>7} {'offers':>6}" + (f" {'revoked':>7}" if revokes else "")
    header += "  " + "  ".join(f"{name + ' tasks/share':>{width + 12}}" for name in names)
    lines = [header]
    for record in result.cycles:
        cells = "  ".join(
            f"{record.frameworks[n].tasks:>{width + 4}} {record.frameworks[n].dominant_share:>7.3f}"
            for n in names
        )
        row = f"{record.cycle:>5} {record.time:>6.1f}s {len(record.offers):>6}"
        if revokes:
            row += f" {sum(len(r.tasks) for r in record.revocations):>7}"
        lines.append(f"{row}  {cells}")
    lines += ["", "Final allocation:"]
    lines.append(f"  {'framework':<{width}} {'tasks':>6} {'dominant':>9}  allocated")
    for name, usage in result.final.frameworks.items():
        line = _usage_line(name, usage, width)
        lines.append(f"{line}  (revoked {lost[name]})" if revokes else line)
    lines.append(f"  {'role':<{width}} {'tasks':>6} {'dominant':>9}  allocated")
    for name, usage in result.final.roles.items():
        lines.append(_usage_line(name, usage, width))
    if result.warnings:
        lines += ["", *(f"warning: {warning}" for warning in result.warnings)]
    return "\n".join(lines)


def _usage_line(name: str, usage: Usage, width: int) -> str:
    allocated = usage.allocated.describe() or "-"
    return f"  {name:<{width}} {usage.tasks:>6} {usage.dominant_share:>9.3f}  {allocated}"


class _Replay(Simulation):
    """The same run again, noting each cycle's DRF fair shares before it allocates."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        self.fair: dict[float, dict[str, float]] = {}

    def _snapshot(self, now: float) -> Snapshot:
        snapshot = super()._snapshot(now)
        if now not in self.fair:  # the first snapshot of a cycle is the one it allocates on
            self.fair[now] = dict(fair_shares(snapshot, self.config).frameworks)
        return snapshot


def fair_shares_over_time(result: SimulationResult) -> list[dict[str, float]]:
    """Per cycle, each framework's DRF fair share for the demand of that moment.

    The records say what frameworks got, not what DRF owed them; the run is deterministic,
    so replaying it and reading each cycle's snapshot gives the latter without the engine
    carrying it.
    """
    replay = _Replay(result.scenario)
    for record in result.cycles:
        replay.step(record.cycle)
    return [replay.fair.get(record.time, {}) for record in result.cycles]


def plot(result: SimulationResult, path: str) -> None:
    """Dominant share of every framework over the cycles (solid) beside its fair share
    (dashed), with arrivals and departures as vertical lines and revocations as crosses on
    the victim's line, as a PNG."""
    # matplotlib is optional and slow to import: load it only when a plot is asked for.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(9, 5))
    times = [record.time for record in result.cycles]
    fair = fair_shares_over_time(result)
    colors: dict[str, Any] = {}
    for name in result.final.frameworks:
        shares = [record.frameworks[name].dominant_share for record in result.cycles]
        (line,) = axes.step(times, shares, where="post", label=name, marker="o", markersize=3)
        colors[name] = line.get_color()
        due = [cycle.get(name, 0.0) for cycle in fair]
        axes.step(
            times,
            due,
            where="post",
            linestyle="--",
            color=colors[name],
            alpha=0.7,
            label=f"{name} fair share",
        )
    for fw in result.scenario.frameworks:
        moments = [(fw.arrives_at, "arrives")] if fw.arrives_at > 0 else []
        moments += [(fw.leaves_at, "leaves")] if fw.leaves_at is not None else []
        for at, what in moments:
            axes.axvline(at, color=colors.get(fw.name, "grey"), linestyle=":", alpha=0.8)
            axes.annotate(
                f"{fw.name} {what}",
                (at, 1.0),
                rotation=90,
                fontsize=7,
                va="top",
                ha="right",
                color=colors.get(fw.name, "grey"),
            )
    revoked = False
    for record in result.cycles:
        # Revocations are recorded per cycle once the engine runs them (a scenario's
        # ``revocation:``); older results have none to mark.
        for revocation in getattr(record, "revocations", ()):
            victim = record.frameworks.get(revocation.framework)
            if victim is None:
                continue
            axes.plot(
                record.time,
                victim.dominant_share,
                marker="x",
                markersize=9,
                color=colors.get(revocation.framework, "black"),
                linestyle="none",
                label=None if revoked else "revocation",
            )
            revoked = True
    axes.set_xlabel("virtual time (s)")
    axes.set_ylabel("dominant share")
    axes.set_ylim(0, 1.05)
    axes.set_title(f"kubedrf simulate ({result.scenario.mode} mode): share and fair share")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
