"""kubedrf in real containers: the chart's master in its Pods, tasks whose commands really run.

Nothing here is faked by kwok: the node is a kubelet with containerd on this machine, the
master replicas are processes in containers of the image built from the Dockerfile, the task
Pod's container runs ``sh`` and exits, and the metrics come through the Service's ClusterIP,
which kube-proxy routes to the leader's Pod.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.support import Frameworks, wait_for
from tests.kind.conftest import BATCH_NAMESPACE, NODE, RELEASE, RELEASE_NAMESPACE, RealCluster
from tests.kind.support import example_manifest

pytestmark = pytest.mark.kind

LEASE = "kubedrf-master"
MASTER_SELECTOR = "app.kubernetes.io/name=kubedrf"
#: The release is named like the chart, so the chart's full name is just ``kubedrf``.
METRICS_SERVICE = f"{RELEASE}-metrics"


def _masters(core: client.CoreV1Api) -> list[Any]:
    pods: list[Any] = core.list_namespaced_pod(
        RELEASE_NAMESPACE, label_selector=MASTER_SELECTOR
    ).items
    return [pod for pod in pods if pod.metadata.deletion_timestamp is None]


def _leader(api: client.ApiClient) -> str | None:
    lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE, RELEASE_NAMESPACE)
    holder: str | None = lease.spec.holder_identity
    return holder or None


def test_both_master_replicas_run_in_real_containers_of_the_built_image(
    real: RealCluster, core: client.CoreV1Api
) -> None:
    masters = _masters(core)
    assert len(masters) == 2
    for pod in masters:
        assert pod.spec.node_name == NODE
        assert pod.status.phase == "Running"
        (status,) = pod.status.container_statuses
        assert status.ready
        # A container ID is what only a real runtime gives; kwok's fake Pods have none.
        assert status.container_id.startswith("containerd://")
        assert status.image.endswith(real.images.kubedrf.rpartition("/")[2])


def test_a_task_pod_runs_its_command_to_completion_in_a_real_container(
    real: RealCluster, core: client.CoreV1Api, frameworks: Frameworks, namespace: str
) -> None:
    frameworks.create("batch", tasks={"cpu": "100m", "memory": "64Mi"}, count=1)
    (offer, *_) = frameworks.wait_offers("batch", timeout=60)
    name = frameworks.launch(
        offer,
        "task-0",
        {"cpu": "100m", "memory": "64Mi"},
        image=real.images.base,
        command=["sh", "-c", "echo task ran on $(cat /etc/debian_version); exit 0"],
        restart_policy="Never",
    )
    frameworks.respond(offer, {"action": "Accept", "tasks": [name]})

    def finished() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    pod = wait_for(finished, "the task Pod to finish", timeout=120)
    assert pod.status.phase == "Succeeded"
    (status,) = pod.status.container_statuses
    assert status.state.terminated.exit_code == 0
    # The log comes from the kubelet, through the apiserver: the command ran in Debian 12.
    assert core.read_namespaced_pod_log(name, namespace).startswith("task ran on 12.")


def test_the_metrics_service_answers_through_its_cluster_ip(
    real: RealCluster, core: client.CoreV1Api
) -> None:
    service = core.read_namespaced_service(METRICS_SERVICE, RELEASE_NAMESPACE)
    url = f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}/metrics"

    def scraped() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            return None

    body = wait_for(scraped, f"metrics at {url}", timeout=60)
    assert "kubedrf_allocator_allocation_runs_total" in body


def test_leadership_moves_to_the_other_replica_when_the_leader_pod_is_killed(
    real: RealCluster, api: client.ApiClient, core: client.CoreV1Api
) -> None:
    pods = {pod.metadata.name for pod in _masters(core)}
    leader = wait_for(lambda: _leader(api), "a leader")
    (leader_pod,) = [pod for pod in pods if leader.startswith(f"{pod}-")]
    core.delete_namespaced_pod(leader_pod, RELEASE_NAMESPACE, grace_period_seconds=0)

    def taken_over() -> str | None:
        holder = _leader(api)
        return holder if holder and not holder.startswith(f"{leader_pod}-") else None

    successor = wait_for(taken_over, "another replica to take the Lease", timeout=90)
    assert any(successor.startswith(f"{pod}-") for pod in pods - {leader_pod})


def _batch_manifest(real: RealCluster, tasks: int) -> str:
    """Small tasks that run a command and exit."""
    flags = {"--tasks": str(tasks), "--cpu": "100m", "--memory": "64Mi"}
    flags |= {"--image": real.images.base, "--command": "sh -c 'echo batch task done'"}
    return example_manifest(real, "batch.yaml", {"batch": flags})


def test_the_batch_example_deployed_as_a_pod_runs_its_tasks_to_completion(
    real: RealCluster, core: client.CoreV1Api
) -> None:
    real.dev.kubectl("apply", "-f", "-", stdin=_batch_manifest(real, tasks=3))
    try:

        def succeeded() -> list[Any] | None:
            pods = core.list_namespaced_pod(
                BATCH_NAMESPACE, label_selector="kubedrf.io/framework=batch"
            ).items
            done = [pod for pod in pods if pod.status.phase == "Succeeded"]
            return done if len(done) >= 3 else None

        tasks = wait_for(succeeded, "3 batch tasks to succeed", timeout=180)
        for pod in tasks:
            assert pod.spec.node_name == NODE
            (status,) = pod.status.container_statuses
            assert status.state.terminated.exit_code == 0
            log = core.read_namespaced_pod_log(pod.metadata.name, BATCH_NAMESPACE)
            assert log == "batch task done\n"
        controller = core.list_namespaced_pod(
            BATCH_NAMESPACE, label_selector="app.kubernetes.io/name=batch-framework"
        ).items
        assert [pod.status.phase for pod in controller] == ["Running"]
    finally:
        real.dev.kubectl("delete", "-f", "-", "--wait=false", stdin=_batch_manifest(real, 3))
