"""The seed's DRF example end to end in real containers: the master in its Pods from the chart,
frameworks A and B deployed as Pods from ``examples/frameworks/deploy/seed.yaml``, and task
containers that keep running, so the allocation stands still and can be read off the node.

The real node's allocatable is this machine's (2 CPUs here, not 9), and a kubelet cannot
report more than it has, so the tasks are sized to it instead, in the seed's proportions: one
unit is a ninth of the node's CPU and an eighteenth of its memory, A's tasks need {1, 4}
units and B's {3, 1}. The masters run without requests (``conftest``) and the controllers'
are dropped here, so the whole allocatable is the tasks' and shares come out as in the seed.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from kubedrf.api import FRAMEWORK, GROUP, VERSION
from kubedrf.resources import parse_amount
from tests.e2e.support import settle, wait_for
from tests.kind.conftest import NODE, SEED_NAMESPACE, RealCluster
from tests.kind.support import (
    assert_real_containers_on_the_node,
    example_manifest,
    remove,
    requested_on_node,
    running_tasks,
)

pytestmark = pytest.mark.kind

MI = 1024**2
#: The seed's node is 9 CPU / 18 GiB: a unit of each is a ninth and an eighteenth of it.
CPU_UNITS, MEMORY_UNITS = 9, 18
#: A task that runs until it is told to stop, and stops at once when told (a shell as PID 1
#: would otherwise ignore TERM until the grace period ends).
RUN_UNTIL_STOPPED = (
    "sh -c 'trap \"exit 0\" TERM; echo seed task running; while :; do sleep 1; done'"
)


def _seed_manifest(real: RealCluster, core: client.CoreV1Api) -> str:
    allocatable = core.read_node(NODE).status.allocatable
    cpu = parse_amount("cpu", allocatable["cpu"]) // CPU_UNITS
    memory = parse_amount("memory", allocatable["memory"]) // MEMORY_UNITS // MI
    task = {"--image": real.images.base, "--command": RUN_UNTIL_STOPPED}
    flags = {
        "a": {"--cpu": f"{cpu}m", "--memory": f"{4 * memory}Mi", **task},
        "b": {"--cpu": f"{3 * cpu}m", "--memory": f"{memory}Mi", **task},
    }
    return example_manifest(real, "seed.yaml", flags, best_effort=True)


def _live_tasks(core: client.CoreV1Api, framework: str) -> list[Any]:
    pods = core.list_namespaced_pod(
        SEED_NAMESPACE, label_selector=f"kubedrf.io/framework={framework}"
    ).items
    return [pod for pod in pods if pod.status.phase not in ("Succeeded", "Failed")]


def _share(custom: client.CustomObjectsApi, framework: str) -> float:
    body = custom.get_namespaced_custom_object(
        GROUP, VERSION, SEED_NAMESPACE, FRAMEWORK.plural, framework
    )
    return float(body.get("status", {}).get("dominantShare") or 0.0)


def test_the_seed_example_gives_a_three_tasks_and_b_two_with_equal_dominant_shares(
    real: RealCluster, api: client.ApiClient, core: client.CoreV1Api
) -> None:
    # Earlier tests' Pods may still be ending; the seed needs the node to itself.
    wait_for(lambda: not requested_on_node(core), "the node's requests to drain", timeout=90)
    manifest = _seed_manifest(real, core)
    real.dev.kubectl("apply", "-f", "-", stdin=manifest)
    custom = client.CustomObjectsApi(api)
    try:
        wait_for(
            lambda: [len(running_tasks(core, SEED_NAMESPACE, f)) for f in ("a", "b")] == [3, 2],
            "A's 3 tasks and B's 2 running",
            timeout=180,
        )
        settle(3)  # more cycles: the node is full, nothing more is launched
        assert [len(_live_tasks(core, f)) for f in ("a", "b")] == [3, 2]
        for framework in ("a", "b"):
            tasks = _live_tasks(core, framework)
            assert_real_containers_on_the_node(tasks)
            for pod in tasks:
                log = core.read_namespaced_pod_log(pod.metadata.name, SEED_NAMESPACE)
                assert log == "seed task running\n"

        def both_shares() -> tuple[float, float] | None:
            a, b = _share(custom, "a"), _share(custom, "b")
            return (a, b) if a and b else None

        shares = wait_for(both_shares, "both frameworks' dominant shares")
        # 2/3 in the seed; the units are rounded down to a millicore and a MiB.
        assert shares == pytest.approx((2 / 3, 2 / 3), abs=0.01)
    finally:
        remove(real, core, manifest, SEED_NAMESPACE)
