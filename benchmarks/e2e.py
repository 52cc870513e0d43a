"""End-to-end figures on the local control plane (kwok nodes), measured in one run:

* first offer: from creating a Framework with demand to its first Offer, at the default 1 s
  allocation interval (target ≤ 2 s);
* placement: tasks placed per second through offers (a framework built on the SDK launches
  them; the master binds them) against the same Pods placed by plain kube-scheduler, created
  with the same client concurrency (target at 1,000 nodes and 20,000 tasks: ≥ 2×);
* the master at that size: its peak RSS (target ≤ 300 MB), the mean allocation cycle time
  with every task running, and the time from a restart to its first cycle (target ≤ 20 s);
* where each placement's time went: CPU seconds of every process (etcd, kube-apiserver,
  kube-scheduler, the master, this process) during it.

    python benchmarks/e2e.py --nodes 1000 --tasks 20000 [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubedrf.devcluster import cluster as devcluster
from kubedrf.devcluster import processes
from kubedrf.framework import (
    KubedrfSchedulerDriver,
    Offer,
    Scheduler,
    SchedulerDriver,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from kubedrf.framework.driver import LAUNCH_CONCURRENCY
from kubedrf.framework.watch import Stream, WatchEvent
from kubedrf.resources import Resources

ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION = "kubedrf.io", "v1alpha1"
TASK = Resources.parse({"cpu": "100m", "memory": "64Mi"})
METRICS = "kubedrf_allocator"


class Filler(Scheduler):
    """Launch ``total`` tasks, as many per offer as fit.

    Each offer's launch runs in its own asyncio task, as Mesos' ``launchTasks`` returns at
    once: the driver keeps hearing of its Pods and of new offers while thousands of Pods are
    created (through the driver's one gate, in the order the offers came). Tasks never
    launched (their offer expired first) or lost before running are wanted again.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.launched = 0
        self._launching: set[asyncio.Task[None]] = set()

    async def registered(self, driver: SchedulerDriver) -> None:
        await driver.set_demand([(TASK, self.total)])

    async def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            count = min(offer.fit(TASK), self.total - self.launched)
            if count <= 0:
                await driver.decline(offer)
                continue
            self.launched += count
            tasks = [TaskInfo(driver.new_task_name("t"), TASK) for _ in range(count)]
            launch = asyncio.create_task(self._launch(driver, offer, tasks))
            self._launching.add(launch)
            launch.add_done_callback(self._launching.discard)
        await self._want_the_rest(driver)

    async def _launch(self, driver: SchedulerDriver, offer: Offer, tasks: list[TaskInfo]) -> None:
        launched = await driver.launch(offer, tasks)
        self.launched -= len(tasks) - len(launched)
        await self._want_the_rest(driver)

    async def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        if status.state.terminal and status.state is not TaskState.FINISHED:
            self.launched -= 1
            await self._want_the_rest(driver)

    async def _want_the_rest(self, driver: SchedulerDriver) -> None:
        await driver.set_demand([(TASK, self.total - self.launched)])


async def wait_running(api: client.ApiClient, namespace: str, count: int, timeout: float) -> float:
    """Wait until ``count`` Pods of ``namespace`` are Running, from a watch of Running Pods
    (listing thousands of Pods every few hundred milliseconds would load the apiserver it
    measures); returns the monotonic time it happened."""
    queue: asyncio.Queue[tuple[str, WatchEvent]] = asyncio.Queue()
    stream = Stream(
        api,
        list_function=client.CoreV1Api(api).list_namespaced_pod,
        namespace=namespace,
        label_selector="",
        field_selector="status.phase=Running",
        queue=queue,
        name="running",
    )
    watching = asyncio.create_task(stream.run())
    seen: set[str] = set()
    try:
        async with asyncio.timeout(timeout):
            while len(seen) < count:
                _, event = await queue.get()
                if event.type != "DELETED":
                    seen |= {body["metadata"]["name"] for body in event.objects}
    except TimeoutError:
        raise TimeoutError(f"{len(seen)} of {count} Pods Running after {timeout:.0f}s") from None
    finally:
        stream.stop()
        watching.cancel()
    return time.monotonic()


def namespace(core: client.CoreV1Api) -> str:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    while not core.list_namespaced_service_account(name).items:
        time.sleep(0.1)
    return name


def delete_namespace(core: client.CoreV1Api, name: str) -> None:
    """Delete and wait: a namespace still draining its Pods would slow the next phase.

    Deleting 20,000 Pods outlasts the apiserver's one-minute request timeout (504): what the
    collection's deletion left, the namespace's deletion ends.
    """
    try:
        core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
    except ApiException as error:
        if error.status != 504:
            raise
    core.delete_namespace(name)
    while any(ns.metadata and ns.metadata.name == name for ns in core.list_namespace().items):
        time.sleep(1)


def first_offer_seconds(custom: client.CustomObjectsApi, core: client.CoreV1Api) -> float:
    ns = namespace(core)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Framework",
        "metadata": {"name": "probe"},
        "spec": {"demand": [{"resources": TASK.to_quantities(), "count": 1}]},
    }
    started = time.monotonic()
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "frameworks", body)
    offers: Any = custom.list_namespaced_custom_object
    while not offers(GROUP, VERSION, ns, "offers")["items"]:
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    delete_namespace(core, ns)
    return elapsed


def through_offers(
    api: client.ApiClient, core: client.CoreV1Api, tasks: int, timeout: float
) -> tuple[str, float]:
    """Place ``tasks`` through offers; returns the namespace (left running) and seconds."""
    ns = namespace(core)
    driver = KubedrfSchedulerDriver(Filler(tasks), name="filler", namespace=ns, api=api)

    async def go() -> float:
        stopped = asyncio.Event()
        started = time.monotonic()
        runner = asyncio.create_task(driver.run(stopped))
        try:
            done = await wait_running(api, ns, tasks, timeout)
        finally:
            stopped.set()
            await runner
        return done - started

    return ns, asyncio.run(go())


def through_kube_scheduler(
    api: client.ApiClient, core: client.CoreV1Api, tasks: int, timeout: float
) -> float:
    """The same Pods, without offers, created ``LAUNCH_CONCURRENCY`` at a time like the SDK."""
    ns = namespace(core)
    toleration = {"key": "kubedrf.io/managed", "operator": "Exists", "effect": "NoSchedule"}
    requests = TASK.to_quantities()
    create: Any = core.create_namespaced_pod  # takes a plain dict body too

    async def go() -> float:
        gate = asyncio.Semaphore(LAUNCH_CONCURRENCY)

        async def one(i: int) -> None:
            body = {
                "metadata": {"name": f"p-{i}"},
                "spec": {
                    "containers": [
                        {"name": "t", "image": "t", "resources": {"requests": requests}}
                    ],
                    "tolerations": [toleration],
                },
            }
            async with gate:
                await asyncio.to_thread(create, ns, body)

        started = time.monotonic()
        waiting = asyncio.create_task(wait_running(api, ns, tasks, timeout))
        await asyncio.gather(*(one(i) for i in range(tasks)))
        return await waiting - started

    return asyncio.run(go())


# -- the master process ----------------------------------------------------------------------


class Master:
    """The master as its own process, read through /proc and its metrics endpoint."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def start(self) -> float:
        """Start it; returns the monotonic time it was started."""
        args = [sys.executable, "-m", "kubedrf.cli.main", "master", f"--metrics-port={self.port}"]
        started = time.monotonic()
        processes.start(self.cluster, "master", args)
        return started

    @property
    def pid(self) -> int:
        return int((processes.processes_dir(self.cluster) / "master.pid").read_text())

    def stop(self) -> None:
        pid = self.pid
        processes.stop(self.cluster, "master")
        while Path(f"/proc/{pid}").exists() and not _zombie(pid):
            time.sleep(0.1)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def metric(self, name: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            if head == name:
                return float(value)
        return None

    def first_cycle(self, started: float, timeout: float = 300) -> float:
        """Seconds from ``started`` to the end of its first allocation cycle."""
        deadline = started + timeout
        while (self.metric(f"{METRICS}_allocation_runs_total") or 0) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("the master ran no cycle")
            time.sleep(0.05)
        return time.monotonic() - started

    def cycle_seconds(self, window: float) -> float:
        """The mean allocation cycle time over the next ``window`` seconds."""
        name = f"{METRICS}_allocation_run_seconds"
        before = self.metric(f"{name}_sum") or 0.0, self.metric(f"{name}_count") or 0.0
        time.sleep(window)
        after = self.metric(f"{name}_sum") or 0.0, self.metric(f"{name}_count") or 0.0
        runs = after[1] - before[1]
        return (after[0] - before[0]) / runs if runs else float("nan")


class CpuMeter:
    """CPU seconds each process of the run spends in a phase: where a placement's time goes.

    Reads utime + stime from ``/proc`` for the control plane's processes (kwokctl's pid
    files), the master, and this process (the framework, or the client creating Pods).
    """

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster

    def _pids(self) -> dict[str, int]:
        pids = {
            path.stem: int(path.read_text())
            for path in (devcluster.cluster_dir(self.cluster) / "pids").glob("*.pid")
        }
        master = processes.processes_dir(self.cluster) / "master.pid"
        if master.exists():
            pids["master"] = int(master.read_text())
        pids["benchmark"] = os.getpid()
        return pids

    def read(self) -> dict[str, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        seconds: dict[str, float] = {}
        for label, pid in self._pids().items():
            with contextlib.suppress(OSError, ValueError):
                # Fields after the command name (which may hold spaces): utime, stime at 11, 12.
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                seconds[label] = (int(fields[11]) + int(fields[12])) / ticks
        return seconds

    @contextlib.contextmanager
    def phase(self, into: dict[str, float]) -> Iterator[None]:
        before = self.read()
        yield
        after = self.read()
        into.update(
            {label: round(after[label] - before.get(label, 0.0), 1) for label in sorted(after)}
        )


def progress(line: str) -> None:
    """A figure as soon as it is measured (on stderr): a long run that fails later keeps it."""
    print(line, file=sys.stderr, flush=True)


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--probes", type=int, default=5, help="first-offer measurements")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per placement")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args(argv)

    name = f"kubedrf-bench-{uuid.uuid4().hex[:6]}"  # its own: runs may overlap
    shape = devcluster.NodeShape(cpu="16", memory="64Gi", pods="250")
    dev = devcluster.up(name, nodes=args.nodes, shape=shape, timeout=max(300, args.nodes))
    dev.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    dev.kubectl("wait", "--for=condition=Established", "-f", str(ROOT / "crds"))
    master = Master(name)
    master.first_cycle(master.start())
    api = config.new_client_from_config(config_file=str(dev.kubeconfig))  # type: ignore[no-untyped-call]
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    try:
        first_offer_seconds(custom, core)  # warm-up
        probes = [first_offer_seconds(custom, core) for _ in range(args.probes)]
        meter = CpuMeter(name)
        offers_cpu: dict[str, float] = {}
        scheduler_cpu: dict[str, float] = {}
        with meter.phase(offers_cpu):
            offers_ns, offers_s = through_offers(api, core, args.tasks, args.timeout)
        progress(f"through offers: {args.tasks} tasks Running in {offers_s:.1f}s")
        cycle_s = master.cycle_seconds(window=15)  # every task running, the framework gone
        peak_mb = master.peak_rss_mb()
        progress(f"master: cycle {cycle_s:.3f}s, peak RSS {peak_mb:.0f} MB")
        master.stop()
        restart_s = master.first_cycle(master.start())
        progress(f"master: restart to first cycle {restart_s:.1f}s")
        delete_namespace(core, offers_ns)
        with meter.phase(scheduler_cpu):
            scheduler_s = through_kube_scheduler(api, core, args.tasks, args.timeout)
        progress(f"through kube-scheduler: {args.tasks} Pods Running in {scheduler_s:.1f}s")
        peak_mb = max(peak_mb, master.peak_rss_mb())
    finally:
        processes.stop(name)
        if not args.keep:
            devcluster.down(name, dev.binaries)
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "tasks": args.tasks,
        "client_concurrency": LAUNCH_CONCURRENCY,
        "cpus": os.cpu_count(),
        "first_offer_median_s": statistics.median(probes),
        "first_offer_max_s": max(probes),
        "offers_tasks_per_s": args.tasks / offers_s,
        "kube_scheduler_pods_per_s": args.tasks / scheduler_s,
        "offers_over_kube_scheduler": scheduler_s / offers_s,
        "master_peak_rss_mb": peak_mb,
        "allocation_cycle_s": cycle_s,
        "restart_to_first_cycle_s": restart_s,
        "cpu_s": {"offers": offers_cpu, "kube_scheduler": scheduler_cpu},
    }
    print(
        f"first offer: median {result['first_offer_median_s']:.2f}s,"
        f" max {result['first_offer_max_s']:.2f}s over {args.probes} frameworks (target ≤ 2 s)"
    )
    print(
        f"placement of {args.tasks} tasks on {args.nodes} nodes, {LAUNCH_CONCURRENCY} client"
        f" calls at a time: through offers {result['offers_tasks_per_s']:.1f}/s, plain"
        f" kube-scheduler {result['kube_scheduler_pods_per_s']:.1f}/s, ratio"
        f" {result['offers_over_kube_scheduler']:.2f} (target ≥ 2)"
    )
    print(
        f"master: peak RSS {peak_mb:.0f} MB (target ≤ 300), allocation cycle {cycle_s:.3f}s"
        f" with every task running, restart to first cycle {restart_s:.1f}s (target ≤ 20 s)"
    )
    for path, spent in result["cpu_s"].items():
        print(f"CPU seconds through {path}: " + ", ".join(f"{k} {v:g}" for k, v in spent.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
