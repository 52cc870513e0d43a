"""End-to-end figures on the local control plane (docs/design.md, targets), measured in one run:

* first offer: from creating a Framework with demand to its first Offer, at the default 1 s
  allocation interval (target ≤ 2 s);
* placement: tasks placed per second through offers (a framework built on the SDK launches
  them) against the same number of Pods placed by plain kube-scheduler (target: ≥).

    python benchmarks/e2e.py --nodes 10 --tasks 200 [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config

from kubedrf.devcluster import cluster as devcluster
from kubedrf.devcluster import processes
from kubedrf.framework import KubedrfSchedulerDriver, Offer, Scheduler, SchedulerDriver, TaskInfo
from kubedrf.resources import Resources

ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION = "kubedrf.io", "v1alpha1"
TASK = Resources.parse({"cpu": "100m", "memory": "64Mi"})


class Filler(Scheduler):
    """Launch ``total`` tasks, as many per offer as fit."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.launched = 0

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
            await driver.launch(offer, tasks)
        await driver.set_demand([(TASK, self.total - self.launched)])


def running(core: client.CoreV1Api, namespace: str) -> int:
    pods = core.list_namespaced_pod(namespace).items
    return sum(1 for p in pods if p.status is not None and p.status.phase == "Running")


def namespace(core: client.CoreV1Api) -> str:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    while not core.list_namespaced_service_account(name).items:
        time.sleep(0.1)
    return name


def delete_namespace(core: client.CoreV1Api, name: str) -> None:
    """Delete and wait: a namespace still draining its Pods would slow the next phase."""
    core.delete_namespace(name)
    while any(ns.metadata and ns.metadata.name == name for ns in core.list_namespace().items):
        time.sleep(0.5)


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


def through_offers(api: client.ApiClient, core: client.CoreV1Api, tasks: int) -> float:
    ns = namespace(core)
    driver = KubedrfSchedulerDriver(Filler(tasks), name="filler", namespace=ns, api=api)

    async def go() -> float:
        stopped = asyncio.Event()
        started = time.monotonic()
        runner = asyncio.create_task(driver.run(stopped))
        while await asyncio.to_thread(running, core, ns) < tasks:
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        stopped.set()
        await runner
        return elapsed

    elapsed = asyncio.run(go())
    delete_namespace(core, ns)
    return elapsed


def through_kube_scheduler(core: client.CoreV1Api, tasks: int) -> float:
    ns = namespace(core)
    toleration = {"key": "kubedrf.io/managed", "operator": "Exists", "effect": "NoSchedule"}
    requests = TASK.to_quantities()
    create: Any = core.create_namespaced_pod  # takes a plain dict body too
    started = time.monotonic()
    for i in range(tasks):
        create(
            ns,
            {
                "metadata": {"name": f"p-{i}"},
                "spec": {
                    "containers": [
                        {"name": "t", "image": "t", "resources": {"requests": requests}}
                    ],
                    "tolerations": [toleration],
                },
            },
        )
    while running(core, ns) < tasks:
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    delete_namespace(core, ns)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--probes", type=int, default=5, help="first-offer measurements")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args(argv)

    name = "kubedrf-bench"
    processes.stop(name)
    devcluster.down(name)  # a fresh cluster: leftovers of an interrupted run would skew it
    shape = devcluster.NodeShape(cpu="16", memory="64Gi", pods="250")
    dev = devcluster.up(name, nodes=args.nodes, shape=shape)
    dev.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    dev.kubectl("wait", "--for=condition=Established", "-f", str(ROOT / "crds"))
    processes.start(
        name, "master", [sys.executable, "-m", "kubedrf.cli.main", "master", "--metrics-port=0"]
    )
    api = config.new_client_from_config(config_file=str(dev.kubeconfig))  # type: ignore[no-untyped-call]
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    try:
        first_offer_seconds(custom, core)  # warm-up: the master lists the cluster first
        probes = [first_offer_seconds(custom, core) for _ in range(args.probes)]
        offers_s = through_offers(api, core, args.tasks)
        scheduler_s = through_kube_scheduler(core, args.tasks)
    finally:
        processes.stop(name)
        if not args.keep:
            devcluster.down(name, dev.binaries)
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "tasks": args.tasks,
        "first_offer_median_s": statistics.median(probes),
        "first_offer_max_s": max(probes),
        "offers_tasks_per_s": args.tasks / offers_s,
        "kube_scheduler_pods_per_s": args.tasks / scheduler_s,
    }
    print(
        f"first offer: median {result['first_offer_median_s']:.2f}s,"
        f" max {result['first_offer_max_s']:.2f}s over {args.probes} frameworks (target ≤ 2 s)"
    )
    print(
        f"placement of {args.tasks} tasks on {args.nodes} nodes:"
        f" through offers {result['offers_tasks_per_s']:.1f}/s,"
        f" plain kube-scheduler {result['kube_scheduler_pods_per_s']:.1f}/s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
