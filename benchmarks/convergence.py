"""Revocation on the pure allocator (no cluster): how fast shares converge, at what cost.

``convergence``: ``--nodes`` nodes of 16 CPU / 64 GiB and ``--frameworks`` frameworks that
arrive one by one, each wanting more long tasks than the cluster holds (four task shapes in
turn). Every cycle revokes, ends the revoked tasks at once, holds the freed nodes for their
beneficiaries, allocates, and accepts every offer as new tasks. After each arrival, cycles
run until nothing was revoked for two cycles. Reported per arrival: cycles that revoked,
tasks revoked, a lower bound (what the arrival needs to come within one task of its target,
beyond free capacity, over the most one running task frees), and the largest remaining gap
between a share and its target, in units of the largest task's share.

``scale``: the cycle time with revocation at ``--scale-nodes`` × ``--scale-frameworks``, on
the nodes of ``benchmarks/allocator.py``'s DeclineOffers (24 CPU / 4 GiB), each full with 8
tasks of 3 CPU / 512 MiB of framework ``i % F``, when one more framework wanting such tasks
has just arrived: ``allocate`` alone, the first ``revocations`` (the DRF target must be
computed) and a steady one (same demand: the target is reused).

    python benchmarks/convergence.py --json convergence.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from kubedrf.allocator import (
    Allocation,
    AllocatorConfig,
    Framework,
    Node,
    RevocationPolicy,
    Snapshot,
    Task,
    TaskShape,
    allocate,
    hold_freed,
    revocation_target,
    revocations,
    without_revoked,
)
from kubedrf.allocator.filters import expire
from kubedrf.resources import Resources, total

#: Seconds between cycles (Mesos' default allocation interval).
INTERVAL = 1.0

#: Task shapes the arriving frameworks take in turn: memory-heavy, CPU-heavy, small, even.
SHAPES = (
    Resources.parse({"cpu": "1", "memory": "4Gi"}),
    Resources.parse({"cpu": "3", "memory": "1Gi"}),
    Resources.parse({"cpu": "1", "memory": "1Gi"}),
    Resources.parse({"cpu": "2", "memory": "2Gi"}),
)


def with_tasks(snapshot: Snapshot, tasks: Sequence[Task]) -> Snapshot:
    """``snapshot`` also running ``tasks``, each inside an allocation of its own."""
    allocations = tuple(Allocation(t.framework, t.role, t.node, t.resources) for t in tasks)
    return replace(
        snapshot, allocations=snapshot.allocations + allocations, tasks=(*snapshot.tasks, *tasks)
    )


def step(
    snapshot: Snapshot,
    policy: RevocationPolicy | None = None,
    config: AllocatorConfig | None = None,
) -> tuple[Snapshot, int]:
    """One cycle with revocation: the chosen tasks end at once, their nodes are held for the
    beneficiaries, every offer is accepted in full as new tasks, and ``INTERVAL`` passes.
    Returns the next snapshot and how many tasks were revoked."""
    chosen = revocations(snapshot, config, policy)
    after = without_revoked(snapshot, chosen)
    after = replace(after, filters=after.filters + hold_freed(after, chosen, after.now + 1))
    result = allocate(after, config)
    demand = {fw.name: list(fw.demand or ()) for fw in after.frameworks}
    launched = []
    for o in result.offers:
        for s, count in o.tasks:
            shape = demand[o.framework][s]
            demand[o.framework][s] = replace(shape, count=shape.count - count)
            launched += [
                Task(
                    f"{o.framework}-{after.now:g}-{o.node}-{s}-{k}",
                    o.framework,
                    o.role,
                    o.node,
                    shape.resources,
                    after.now,
                )
                for k in range(count)
            ]
    frameworks = tuple(
        fw if fw.demand is None else replace(fw, demand=tuple(demand[fw.name]))
        for fw in after.frameworks
    )
    now = after.now + INTERVAL
    after = replace(after, frameworks=frameworks, now=now, filters=expire(after.filters, now))
    return with_tasks(after, launched), sum(len(r.tasks) for r in chosen)


@dataclass(slots=True)
class Arrival:
    """What happened after one framework arrived."""

    framework: str
    cycles: int
    revoked: int
    lower_bound: int
    largest_gap: float


def lower_bound(snapshot: Snapshot, arrival: str) -> int:
    """Tasks that must end for ``arrival`` to come within one task of its target: what it
    needs beyond free capacity, over the most that one running task of another frees."""
    target = next(s for s in revocation_target(snapshot) if s.framework == arrival)
    shapes = {fw.name: fw.demand[0].resources for fw in snapshot.frameworks if fw.demand}
    need = shapes[arrival] * max(0, target.target_tasks - 1)
    free = total(node.allocatable for node in snapshot.nodes) - total(
        a.resources for a in snapshot.allocations
    )
    short = (need - free).clamped()
    others = [shape for name, shape in shapes.items() if name != arrival]
    bound = 0
    for name, amount in short.items():
        most = max((shape[name] for shape in others), default=0)
        if most:
            bound = max(bound, math.ceil(amount / most))
    return bound


def largest_gap(snapshot: Snapshot) -> float:
    """The largest distance of a share from its target, in the largest task's share: the
    shares are "within one task" of the target when this is at most 1."""
    whole = total(node.allocatable for node in snapshot.nodes)
    task = max(
        fw.demand[0].resources.dominant_share(whole) for fw in snapshot.frameworks if fw.demand
    )
    return max(abs(s.share - s.target_share) for s in revocation_target(snapshot)) / task


def convergence(nodes: int, frameworks: int, max_cycles: int) -> list[Arrival]:
    node = Resources.parse({"cpu": "16", "memory": "64Gi"})
    snapshot = Snapshot(
        nodes=tuple(Node(f"node-{i:04d}", node) for i in range(nodes)), frameworks=()
    )
    wanted = nodes * 64  # more than the cluster can hold of any shape
    arrivals = []
    for f in range(frameworks):
        name = f"fw-{f:02d}"
        arriving = Framework(name, demand=(TaskShape(SHAPES[f % len(SHAPES)], wanted),))
        snapshot = replace(snapshot, frameworks=(*snapshot.frameworks, arriving))
        bound = lower_bound(snapshot, name)
        revoked, quiet, cycles = 0, 0, 0
        while quiet < 2 and cycles < max_cycles:
            snapshot, count = step(snapshot)
            revoked += count
            cycles += 1
            quiet = quiet + 1 if count == 0 else 0
        gap = largest_gap(snapshot)
        arrivals.append(Arrival(name, cycles - quiet, revoked, bound, round(gap, 2)))
    return arrivals


@dataclass(slots=True)
class Scale:
    nodes: int
    frameworks: int
    tasks: int
    allocate_s: float
    first_revocation_s: float
    steady_revocation_s: float
    revoked: int


def _timed(function: object) -> tuple[float, object]:
    assert callable(function)
    gc.collect()
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def scale(nodes: int, frameworks: int) -> Scale:
    agent = Resources.parse({"cpu": "24", "memory": "4096Mi"})
    task = Resources.parse({"cpu": "3", "memory": "512Mi"})
    fws = tuple(
        Framework(f"framework-{i:04d}", demand=(TaskShape(task, 0),)) for i in range(frameworks)
    )
    arrival = Framework("framework-new", demand=(TaskShape(task, nodes),))
    tasks = [
        Task(f"t-{n}-{k}", fws[n % frameworks].name, "default", f"agent-{n:05d}", task)
        for n in range(nodes)
        for k in range(8)
    ]
    allocations = tuple(
        Allocation(fws[n % frameworks].name, "default", f"agent-{n:05d}", task * 8, 8)
        for n in range(nodes)
    )
    snapshot = Snapshot(
        nodes=tuple(Node(f"agent-{n:05d}", agent) for n in range(nodes)),
        frameworks=(*fws, arrival),
        allocations=allocations,
        tasks=tuple(tasks),
        now=100.0,
    )
    config = AllocatorConfig(mode="demand")
    allocate_s, _ = _timed(lambda: allocate(snapshot, config))
    first_s, chosen = _timed(lambda: revocations(snapshot, config))
    steady_s, _ = _timed(lambda: revocations(snapshot, config))
    assert isinstance(chosen, tuple)
    return Scale(
        nodes,
        frameworks,
        len(tasks),
        round(allocate_s, 3),
        round(first_s, 3),
        round(steady_s, 3),
        sum(len(r.tasks) for r in chosen),
    )


@dataclass(slots=True)
class Report:
    nodes: int
    frameworks: int
    arrivals: list[Arrival] = field(default_factory=list)
    scale: Scale | None = None
    loadavg_1m: float = 0.0
    python: str = ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--frameworks", type=int, default=20)
    parser.add_argument("--max-cycles", type=int, default=30, help="per arrival")
    parser.add_argument("--scale-nodes", type=int, default=10_000)
    parser.add_argument("--scale-frameworks", type=int, default=1_000)
    parser.add_argument("--skip-scale", action="store_true", help="convergence only")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if min(args.nodes, args.frameworks, args.max_cycles) < 1:
        parser.error("--nodes, --frameworks and --max-cycles must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    report = Report(args.nodes, args.frameworks)
    report.arrivals = convergence(args.nodes, args.frameworks, args.max_cycles)
    print(f"convergence: {args.nodes} nodes, {args.frameworks} frameworks arriving one by one")
    print(f"{'arrival':>8} {'cycles':>6} {'revoked':>7} {'bound':>5} {'gap (tasks)':>11}")
    for a in report.arrivals:
        print(
            f"{a.framework:>8} {a.cycles:>6} {a.revoked:>7} {a.lower_bound:>5}"
            f" {a.largest_gap:>11.2f}"
        )
    if not args.skip_scale:
        report.scale = s = scale(args.scale_nodes, args.scale_frameworks)
        print(f"scale: {s.nodes} nodes, {s.frameworks} frameworks, {s.tasks} tasks running")
        print(
            f"  allocate {s.allocate_s:.3f} s; revocations: first cycle {s.first_revocation_s:.3f}"
            f" s, steady {s.steady_revocation_s:.3f} s ({s.revoked} tasks revoked)"
        )
    report.loadavg_1m = os.getloadavg()[0]
    report.python = sys.version.split()[0]
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")


if __name__ == "__main__":
    main()
