"""The master's cost per allocation cycle at scale, in memory and with no cluster.

Feeds a ``ClusterCache`` the bodies its watches would deliver (managed nodes, Frameworks
with demand left, running task Pods labelled with their framework, role and offer, and
one outstanding Offer per framework) through the same ``Master.observe`` the watch handlers
call, then times ``Master.cycle`` (freeze, reconcile, bind, revoke, snapshot, allocate,
explain, the statuses and Events it would write, gauges) with the master's writer answered
at once by no API (the Offers it creates land in the cache, as the API's answers do): after
a first cycle has offered what the frameworks still want, rounds with nothing changed, then
rounds where a few Pods end and as many start between cycles. Memory is what the cache and
one cycle's view hold (tracemalloc), per 1,000 Pods.

    python benchmarks/master.py --nodes 1000 --tasks 20000 --frameworks 10 --json master.json
    python benchmarks/master.py --profile 25     # also the top of a cProfile of the cycles
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from prometheus_client import CollectorRegistry

from kubedrf.api.conventions import format_time
from kubedrf.master.cache import ClusterCache
from kubedrf.master.core import Master
from kubedrf.master.metrics import Metrics
from kubedrf.master.settings import MasterSettings
from kubedrf.master.writer import ApiWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from allocator import _names as names
from allocator import peak_rss_mb  # a sibling script, not a package

#: The benchmark's clock: fixed, so offers stay outstanding and every round is alike.
NOW = 2_000_000_000.0
NAMESPACE = "bench"
TASK = {"cpu": "1", "memory": "2Gi"}
NODE = {"cpu": "32", "memory": "128Gi", "pods": "110"}


@dataclass(slots=True)
class Report:
    """What one run measured: seconds per cycle, steady and with a few Pods changed, and
    what the cache and one view hold (tracemalloc bytes, per 1,000 Pods)."""

    nodes: int
    tasks: int
    frameworks: int
    rounds: int
    changes: int
    steady_median_s: float
    changed_median_s: float
    steady_median_cpu_s: float
    changed_median_cpu_s: float
    #: Offers the last timed cycle made, and offers outstanding after it.
    offers: int
    outstanding_offers: int
    cache_kb_per_1000_pods: float
    view_kb_per_1000_pods: float
    feed_s: float
    peak_rss_mb: float
    steady_seconds: list[float] = field(default_factory=list)
    changed_seconds: list[float] = field(default_factory=list)
    loadavg_1m: float = 0.0
    python: str = ""


class AnsweringWriter(ApiWriter):
    """The master's own writer, answered at once by no API: a created Offer or InverseOffer
    comes back named and lands in the cache as the API's answer would (so later cycles see
    it outstanding, the steady state of a running cluster); every other write succeeds and
    changes nothing, so rounds stay alike."""

    def __init__(self, cache: ClusterCache) -> None:
        super().__init__(client.ApiClient(), cache)
        self.created = 0

    async def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if getattr(function, "__name__", "") != "create_namespaced_custom_object":
            return None
        self.created += 1
        body = args[-1]
        meta = body["metadata"]
        return {
            **body,
            "metadata": {
                **meta,
                "name": f"{meta['generateName']}{self.created}",
                "uid": f"uid-created-{self.created}",
                "generation": 1,
                "resourceVersion": str(10_000_000 + self.created),
                "creationTimestamp": format_time(NOW),
            },
            "status": {"phase": "Offered"},
        }


def node_body(name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubedrf.io/managed": "true"},
            "resourceVersion": "1",
        },
        "spec": {"taints": [{"key": "kubedrf.io/managed", "effect": "NoSchedule"}]},
        "status": {"allocatable": NODE, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def framework_body(name: str, wanted: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "generation": 1},
        "spec": {"roles": ["default"], "demand": [{"resources": TASK, "count": wanted}]},
    }


def offer_body(name: str, framework: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "generation": 1,
            "creationTimestamp": format_time(NOW - 1),
        },
        "spec": {
            "framework": framework,
            "role": "default",
            "nodeName": node,
            "resources": {**TASK, "pods": "1"},
            "expiresAt": format_time(NOW + 3600),
        },
        "status": {"phase": "Offered"},
    }


def pod_body(name: str, framework: str, node: str, version: int, phase: str) -> dict[str, Any]:
    """A running task Pod as the API returns it (a few containers' worth of spec)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "resourceVersion": str(version),
            "creationTimestamp": format_time(NOW - 3600),
            "labels": {
                "kubedrf.io/framework": framework,
                "kubedrf.io/role": "default",
                "kubedrf.io/offer": f"{framework}-settled-{version % 97}",
            },
        },
        "spec": {
            "nodeName": node,
            "schedulerName": "default-scheduler",
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchFields": [
                                    {"key": "metadata.name", "operator": "In", "values": [node]}
                                ]
                            }
                        ]
                    }
                }
            },
            "tolerations": [{"key": "kubedrf.io/managed", "effect": "NoSchedule"}],
            "containers": [
                {"name": "task", "image": "busybox", "resources": {"requests": TASK}},
            ],
        },
        "status": {"phase": phase},
    }


@dataclass(slots=True)
class Cluster:
    """The fed master and what is needed to change a few Pods between cycles."""

    master: Master
    nodes: list[str]
    frameworks: list[str]
    tasks: int
    version: int = 1_000_000
    cache_bytes: int = 0
    view_bytes: int = 0
    feed_s: float = 0.0

    def change(self, count: int, round_: int) -> None:
        """``count`` Pods end and as many new ones start, as watch events."""
        for i in range(count):
            n = (round_ * count + i) % self.tasks
            fw = self.frameworks[n % len(self.frameworks)]
            node = self.nodes[n % len(self.nodes)]
            self.version += 1
            ended = pod_body(f"task-{n}", fw, node, self.version, "Succeeded")
            self.master.observe("pod", "MODIFIED", ended)
            self.version += 1
            started = pod_body(f"task-{n}-r{round_}", fw, node, self.version, "Running")
            self.master.observe("pod", "ADDED", started)


def build(nodes: int, tasks: int, frameworks: int) -> Cluster:
    """Feed a cache as the watches would, measuring what it keeps with tracemalloc."""
    settings = MasterSettings()
    cache = ClusterCache(settings, clock=lambda: NOW)
    metrics = Metrics(CollectorRegistry())
    master = Master(cache, AnsweringWriter(cache), metrics, clock=lambda: NOW)
    node_names = names("node", nodes)
    fw_names = names("fw", frameworks)
    for name in node_names:
        master.observe("node", "ADDED", node_body(name))
    for i, name in enumerate(fw_names):
        # Demand is what it still wants: as many again as it runs, more than the nodes have
        # free, so after the first cycle every node's room stands offered (10,000 offers).
        master.observe("framework", "ADDED", framework_body(name, tasks // frameworks + 50))
        offer = offer_body(f"{name}-open", name, node_names[i % nodes])
        master.observe("offer", "ADDED", offer)
    cluster = Cluster(master, node_names, fw_names, tasks)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    for n in range(tasks):
        fw, node = fw_names[n % frameworks], node_names[n % nodes]
        master.observe("pod", "ADDED", pod_body(f"task-{n}", fw, node, n + 1, "Running"))
    cluster.feed_s = time.perf_counter() - started
    gc.collect()
    fed = tracemalloc.get_traced_memory()[0]
    view = cache.freeze(NOW)
    view.snapshot()
    gc.collect()
    cluster.cache_bytes = fed - before
    cluster.view_bytes = tracemalloc.get_traced_memory()[0] - fed
    del view
    tracemalloc.stop()
    return cluster


async def rounds(cluster: Cluster, count: int, changes: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``count`` cycles, ``changes`` Pods replaced before each."""
    walls, cpus = [], []
    for r in range(count):
        if changes:
            cluster.change(changes, r)
        gc.collect()  # garbage of the previous round is not this cycle's cost
        start, start_cpu = time.perf_counter(), time.process_time()
        await cluster.master.cycle()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return walls, cpus


def run(args: argparse.Namespace) -> Report:
    cluster = build(args.nodes, args.tasks, args.frameworks)

    async def measure() -> tuple[list[float], list[float], list[float], list[float], int]:
        await cluster.master.cycle()  # warm-up: caches keyed on the first snapshot
        steady, steady_cpu = await rounds(cluster, args.rounds, 0)
        changed, changed_cpu = await rounds(cluster, args.rounds, args.changes)
        result = await cluster.master.cycle()
        return steady, steady_cpu, changed, changed_cpu, len(result.offers)

    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    steady, steady_cpu, changed, changed_cpu, offers = asyncio.run(measure())
    if profiler is not None:
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(args.profile)
    per_thousand = 1000 / max(args.tasks, 1) / 1024
    return Report(
        nodes=args.nodes,
        tasks=args.tasks,
        frameworks=args.frameworks,
        rounds=args.rounds,
        changes=args.changes,
        steady_median_s=statistics.median(steady),
        changed_median_s=statistics.median(changed),
        steady_median_cpu_s=statistics.median(steady_cpu),
        changed_median_cpu_s=statistics.median(changed_cpu),
        offers=offers,
        outstanding_offers=sum(o.outstanding for o in cluster.master.cache.offers.values()),
        cache_kb_per_1000_pods=round(cluster.cache_bytes * per_thousand, 1),
        view_kb_per_1000_pods=round(cluster.view_bytes * per_thousand, 1),
        feed_s=round(cluster.feed_s, 3),
        peak_rss_mb=round(peak_rss_mb(), 1),
        steady_seconds=[round(s, 4) for s in steady],
        changed_seconds=[round(s, 4) for s in changed],
        loadavg_1m=os.getloadavg()[0],
        python=sys.version.split()[0],
    )


def _print(report: Report) -> None:
    print(
        f"master: {report.nodes} nodes, {report.tasks} task Pods, {report.frameworks}"
        f" frameworks, {report.rounds} rounds ({report.changes} Pods changed per round)"
    )
    print(
        f"  seconds per cycle (median): steady {report.steady_median_s:.3f}"
        f" (CPU {report.steady_median_cpu_s:.3f}), changed {report.changed_median_s:.3f}"
        f" (CPU {report.changed_median_cpu_s:.3f}); offers made {report.offers},"
        f" outstanding {report.outstanding_offers}"
    )
    print(
        f"  per 1,000 Pods: cache {report.cache_kb_per_1000_pods:.0f} KiB,"
        f" view {report.view_kb_per_1000_pods:.0f} KiB; feeding {report.feed_s:.1f} s;"
        f" peak RSS {report.peak_rss_mb:.0f} MB; load (1 min) {report.loadavg_1m:.2f}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=20000, help="running task Pods")
    parser.add_argument("--frameworks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="cycles timed in each phase")
    parser.add_argument("--changes", type=int, default=10, help="Pods replaced per round")
    parser.add_argument("--profile", type=int, default=0, help="print this many profile rows")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if min(args.nodes, args.frameworks, args.rounds) < 1 or args.tasks < 0:
        parser.error("--nodes, --frameworks and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    report = run(args)
    _print(report)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")


if __name__ == "__main__":
    main()
