"""The master binds task Pods through the Binding subresource, after judging their claim."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kubedrf.api.conventions import ANNOTATION_SCHEDULER, SCHEDULER_NAME
from kubedrf.devcluster import cluster as devcluster
from tests.e2e.support import (
    Frameworks,
    MasterProcess,
    NodePool,
    assert_no_overcommit,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


@pytest.fixture
def master(
    request: pytest.FixtureRequest,
    cluster: devcluster.Cluster,
    pool: NodePool,
    api: client.ApiClient,
    tmp_path: Path,
) -> Iterator[MasterProcess]:
    pool.add(1)
    process = MasterProcess(cluster, pool, tmp_path / "master.log", **request.param)
    process.start()
    try:
        yield process
        assert_no_overcommit(api, pool.names)
    finally:
        process.stop()
        print(f"--- master log ---\n{process.tail(80)}")


@pytest.mark.parametrize("master", [{}], indirect=True)
def test_the_master_binds_valid_claims_and_never_binds_a_refused_one(
    master: MasterProcess, frameworks: Frameworks, api: client.ApiClient
) -> None:
    frameworks.create("a", {"cpu": "1", "memory": "1Gi"}, count=1)
    frameworks.create("b", None)
    (offer,) = frameworks.wait_offers("a")
    assert offer["metadata"]["annotations"][ANNOTATION_SCHEDULER] == SCHEDULER_NAME
    node = offer["spec"]["nodeName"]
    thief = dict(offer, spec=dict(offer["spec"], framework="b"))
    frameworks.launch(thief, "thief", {"cpu": "1"}, scheduler=SCHEDULER_NAME)
    frameworks.launch(offer, "good", {"cpu": "1"}, scheduler=SCHEDULER_NAME)
    frameworks.respond(offer, {"action": "Accept", "tasks": ["good"]})
    core = client.CoreV1Api(api)
    bound_thief: list[str] = []

    def settled() -> bool:
        pods = {p.metadata.name: p for p in core.list_namespaced_pod(frameworks.namespace).items}
        if "thief" in pods and pods["thief"].spec.node_name:
            bound_thief.append(pods["thief"].spec.node_name)
        good = pods.get("good")
        return "thief" not in pods and good is not None and good.status.phase == "Running"

    wait_for(settled, "the valid task to run and the thief to be refused")
    assert bound_thief == []  # kube-scheduler leaves it alone, the master never binds it
    good = core.read_namespaced_pod("good", frameworks.namespace)
    assert good.spec.node_name == node
    assert good.spec.scheduler_name == SCHEDULER_NAME
    assert master.metric("kubedrf_allocator_tasks_bound_total", result="bound") == 1.0


@pytest.mark.parametrize("master", [{"binder": "kube-scheduler"}], indirect=True)
def test_with_kube_scheduler_binding_offers_leave_task_pods_to_the_default_scheduler(
    master: MasterProcess, frameworks: Frameworks, api: client.ApiClient
) -> None:
    frameworks.create("a", {"cpu": "1", "memory": "1Gi"}, count=1)
    (offer,) = frameworks.wait_offers("a")
    assert ANNOTATION_SCHEDULER not in (offer["metadata"].get("annotations") or {})
    frameworks.accept(offer)
    wait_for(lambda: frameworks.running("a"), "kube-scheduler to place the task")
    assert master.metric("kubedrf_allocator_tasks_bound_total", result="bound") is None
