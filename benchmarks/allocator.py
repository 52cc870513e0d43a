"""Allocator benchmarks in the shapes of Mesos' BENCHMARK tests, so the figures compare.

``--shape decline`` mirrors ``HierarchicalAllocator_BENCHMARK_Test.DeclineOffers``
(``src/tests/hierarchical_allocator_tests.cpp``): N agents of ``cpus:24;mem:4096;disk:4096``,
each already running 16 cpus / 2014 MB / 1024 MB disk of framework ``i % F``; F frameworks,
all in one role. Every round is one allocation cycle, after which every framework declines
every offer it got with a practically endless filter, so filters pile up round after round.

``--shape quota`` mirrors ``BENCHMARK_HierarchicalAllocator_WithQuotaParam.LargeAndSmallQuota``
(``src/tests/hierarchical_allocator_benchmarks.cpp``): agents of ``cpus:2;mem:2048;disk:2048``,
roles with one framework each; five in six roles have a small guarantee (half an agent,
``cpus:1;mem:1024;disk:1024``) and one in six a large one (two agents, ``cpus:4;mem:4096;
disk:4096``). 3,000 roles give Mesos' largest case: 2,500 small, 500 large, 3,000 agents.
Every round allocates, then the frameworks recover everything without a filter.

Only the ``allocate`` call is timed (it includes converting the snapshot into the
allocator's internal structures); building the snapshot is not. Mesos' megabytes become
mebibytes and ``disk`` becomes ``ephemeral-storage``.

    python benchmarks/allocator.py --shape decline --nodes 10000 --frameworks 1000 --rounds 5
    python benchmarks/allocator.py --shape quota --nodes 3000 --frameworks 3000 --roles 3000 \\
        --rounds 5
    python benchmarks/allocator.py --sweep --rounds 5 --json sweep.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubedrf.allocator import (
    Allocation,
    AllocatorConfig,
    Filter,
    Framework,
    Mode,
    Node,
    OfferDecision,
    Quota,
    Snapshot,
    TaskShape,
    allocate,
)
from kubedrf.resources import Resources

#: Mesos declines with ``refuse_seconds = INT_MAX``; any horizon past the run will do.
REFUSE_SECONDS = 2.0**31

#: Seconds between cycles (Mesos' default allocation interval).
INTERVAL = 1.0

#: The DeclineOffers grid that ``--sweep`` runs: nodes × frameworks.
SWEEP_NODES = (1_000, 5_000, 10_000)
SWEEP_FRAMEWORKS = (100, 1_000)


@dataclass(slots=True)
class Report:
    """What one benchmark run measured; ``offers`` is the median number per cycle."""

    shape: str
    mode: str
    nodes: int
    frameworks: int
    roles: int
    rounds: int
    min_s: float
    median_s: float
    max_s: float
    median_cpu_s: float
    offers: int
    peak_rss_mb: float
    seconds_per_round: list[float] = field(default_factory=list)
    offers_per_round: list[int] = field(default_factory=list)
    loadavg_1m: float = 0.0
    python: str = ""


def _resources(cpu: str, memory: str, storage: str) -> Resources:
    return Resources.parse({"cpu": cpu, "memory": memory, "ephemeral-storage": storage})


def _names(prefix: str, count: int) -> list[str]:
    # Zero-padded, so name order (the allocator's node order) is creation order.
    width = len(str(max(count - 1, 0)))
    return [f"{prefix}-{i:0{width}d}" for i in range(count)]


def _demand(task: Resources, count: int, mode: Mode) -> tuple[TaskShape, ...] | None:
    """Demand mode needs declared demand; classic mode runs Mesos-style without one."""
    return (TaskShape(task, count),) if mode == "demand" else None


@dataclass(frozen=True, slots=True)
class Sample:
    """One cycle: wall seconds, CPU seconds of this process, and how many offers it made."""

    wall: float
    cpu: float
    offers: int


def _timed(snapshot: Snapshot, config: AllocatorConfig) -> tuple[Sample, tuple[OfferDecision, ...]]:
    gc.collect()  # garbage of the previous round is not this cycle's cost
    start, start_cpu = time.perf_counter(), time.process_time()
    result = allocate(snapshot, config)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return Sample(wall, cpu, len(result.offers)), result.offers


def decline_rounds(
    nodes: int, frameworks: int, roles: int, rounds: int, mode: Mode
) -> Iterator[Sample]:
    """Mesos' DeclineOffers: one sample per cycle, filters accumulating."""
    agent = _resources("24", "4096Mi", "4096Mi")
    used = _resources("16", "2014Mi", "1024Mi")
    free = agent - used
    role_names = _names("role", roles) if roles > 1 else ["default"]
    fw_names = _names("framework", frameworks)
    node_names = _names("agent", nodes)
    per_framework = max(1, nodes * free["cpu"] // 1000 // frameworks)
    fws = tuple(
        Framework(
            name,
            roles=(role_names[i % len(role_names)],),
            demand=_demand(_resources("1", "128Mi", "0"), per_framework, mode),
        )
        for i, name in enumerate(fw_names)
    )
    node_list = tuple(Node(name, agent) for name in node_names)
    running = tuple(
        Allocation(fws[i % frameworks].name, fws[i % frameworks].roles[0], name, used, count=16)
        for i, name in enumerate(node_names)
    )
    config = AllocatorConfig(mode=mode)
    filters: list[Filter] = []
    for r in range(rounds):
        now = r * INTERVAL
        snapshot = Snapshot(
            nodes=node_list,
            frameworks=fws,
            allocations=running,
            filters=tuple(filters),
            now=now,
        )
        sample, offers = _timed(snapshot, config)
        yield sample
        # Decline everything: the offers return to the pool and each leaves a filter for
        # what the node could offer once the offer is back: its whole free capacity. In
        # classic mode that is the offer itself. Each filter holds its own copy, as the
        # master's (read back from the API) would; the allocator may share equal offers.
        filters.extend(
            Filter(
                offer.framework,
                offer.role,
                offer.node,
                now + REFUSE_SECONDS,
                Resources(offer.resources if mode == "classic" else free),
            )
            for offer in offers
        )


def quota_roles(roles: int, large_share: float) -> tuple[int, int]:
    """How many roles get a small and how many a large guarantee."""
    large = round(roles * large_share)
    return roles - large, large


def quota_agents(small: int, large: int) -> int:
    """Mesos' agent count for the quota shape (3,000 for 2,500 small and 500 large roles)."""
    return small // 5 + large * 5


def quota_rounds(
    nodes: int, frameworks: int, roles: tuple[int, int], rounds: int, mode: Mode
) -> Iterator[Sample]:
    """Mesos' LargeAndSmallQuota: one sample per cycle; everything is recovered.

    ``roles`` is (how many with a small guarantee, how many with a large one).
    """
    small, large = roles
    agent = _resources("2", "2048Mi", "2048Mi")
    small_quota = _resources("1", "1024Mi", "1024Mi")
    large_quota = _resources("4", "4096Mi", "4096Mi")
    role_names = [f"small-quota-role-{i}" for i in range(small)]
    role_names += [f"large-quota-role-{i}" for i in range(large)]
    quotas = tuple(
        Quota(name, guarantee=small_quota if i < small else large_quota)
        for i, name in enumerate(role_names)
    )
    fws = tuple(
        Framework(
            name,
            roles=(role_names[i % len(role_names)],),
            demand=_demand(_resources("1", "100Mi", "0"), 100, mode),
        )
        for i, name in enumerate(_names("framework", frameworks))
    )
    snapshot = Snapshot(
        nodes=tuple(Node(name, agent) for name in _names("agent", nodes)),
        frameworks=fws,
        quotas=quotas,
    )
    config = AllocatorConfig(mode=mode)
    for _ in range(rounds):
        yield _timed(snapshot, config)[0]


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def run(args: argparse.Namespace) -> Report:
    mode: Mode = args.mode
    if args.shape == "decline":
        nodes = args.nodes or 10_000
        roles = args.roles or 1
        samples = list(decline_rounds(nodes, args.frameworks, roles, args.rounds, mode))
    else:
        roles = args.roles or args.frameworks
        split = quota_roles(roles, args.large_share)
        nodes = args.nodes or quota_agents(*split)
        samples = list(quota_rounds(nodes, args.frameworks, split, args.rounds, mode))
    seconds = [s.wall for s in samples]
    cpu = [s.cpu for s in samples]
    offers = [s.offers for s in samples]
    return Report(
        shape=args.shape,
        mode=mode,
        nodes=nodes,
        frameworks=args.frameworks,
        roles=roles,
        rounds=args.rounds,
        min_s=min(seconds),
        median_s=statistics.median(seconds),
        max_s=max(seconds),
        median_cpu_s=statistics.median(cpu),
        offers=round(statistics.median(offers)),
        peak_rss_mb=round(peak_rss_mb(), 1),
        seconds_per_round=[round(s, 4) for s in seconds],
        offers_per_round=offers,
        loadavg_1m=os.getloadavg()[0],
        python=sys.version.split()[0],
    )


def _print(report: Report) -> None:
    print(
        f"{report.shape} ({report.mode}): {report.nodes} nodes, {report.frameworks} frameworks,"
        f" {report.roles} roles, {report.rounds} rounds"
    )
    print(
        f"  seconds per cycle: min {report.min_s:.3f}  median {report.median_s:.3f}"
        f"  max {report.max_s:.3f}  (median CPU {report.median_cpu_s:.3f})"
    )
    print(
        f"  offers per cycle (median): {report.offers}  peak RSS: {report.peak_rss_mb:.0f} MB"
        f"  load (1 min): {report.loadavg_1m:.2f}"
    )


def sweep(args: argparse.Namespace) -> list[Report]:
    """The DeclineOffers grid, one process per point so each peak RSS is its own."""
    reports = []
    for nodes in SWEEP_NODES:
        for frameworks in SWEEP_FRAMEWORKS:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "report.json"
                command = [
                    sys.executable,
                    __file__,
                    "--shape=decline",
                    f"--nodes={nodes}",
                    f"--frameworks={frameworks}",
                    f"--rounds={args.rounds}",
                    f"--mode={args.mode}",
                    f"--json={out}",
                ]
                subprocess.run(command, check=True)
                reports.append(Report(**json.loads(out.read_text())))
    return reports


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shape", choices=("decline", "quota"), default="decline")
    parser.add_argument("--nodes", type=int, help="default: 10000 (decline), Mesos' (quota)")
    parser.add_argument("--frameworks", type=int, default=1000)
    parser.add_argument("--roles", type=int, help="default: 1 (decline), one per framework")
    parser.add_argument("--rounds", type=int, default=5, help="allocation cycles to time")
    parser.add_argument("--mode", choices=("classic", "demand"), default="classic")
    parser.add_argument(
        "--large-share",
        type=float,
        default=1 / 6,
        help="quota shape: share of roles with a large guarantee (default 1/6, as Mesos)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--sweep", action="store_true", help="decline at nodes {1k,5k,10k} × frameworks {100,1k}"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.frameworks < 1:
        parser.error("--rounds and --frameworks must be at least 1")
    return args


def _table(reports: Sequence[Report]) -> None:
    print(f"{'nodes':>7} {'frameworks':>10} {'min s':>7} {'median s':>8} {'max s':>7}", end="")
    print(f" {'offers':>7} {'RSS MB':>7}")
    for r in reports:
        print(f"{r.nodes:>7} {r.frameworks:>10} {r.min_s:>7.3f} {r.median_s:>8.3f}", end="")
        print(f" {r.max_s:>7.3f} {r.offers:>7} {r.peak_rss_mb:>7.0f}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.sweep:
        reports = sweep(args)
        _table(reports)
        data: object = [asdict(r) for r in reports]
    else:
        report = run(args)
        _print(report)
        data = asdict(report)
    if args.json is not None:
        args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
