"""Ordinary workloads under DRF on the local control plane: batch/v1 Jobs whose Pods carry
the kubedrf.io/offer gate, released by the master's built-in framework."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubedrf.api import GROUP, ROLE, VERSION
from kubedrf.devcluster import cluster as devcluster
from kubedrf.devcluster import webhook as devwebhook
from kubedrf.devcluster.cluster import NodeShape
from kubedrf.workloads.tasks import GATE
from tests.e2e.support import (
    Frameworks,
    MasterProcess,
    NodePool,
    assert_no_overcommit,
    free_port,
    settle,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


@pytest.fixture
def master(
    cluster: devcluster.Cluster, pool: NodePool, api: client.ApiClient, tmp_path: Path
) -> Iterator[MasterProcess]:
    process = MasterProcess(cluster, pool, tmp_path / "master.log")
    yield process
    try:
        assert_no_overcommit(api, pool.names)
    finally:
        process.stop()
        if process.log.exists():
            print(f"--- master log ---\n{process.tail(60)}")


@pytest.fixture
def team(core: client.CoreV1Api, api: client.ApiClient) -> Iterator[Any]:
    """Make a namespace labelled with its own Role (which allows only it)."""
    custom = client.CustomObjectsApi(api)
    made: list[tuple[str, str]] = []

    def make(allowed: bool = True) -> tuple[str, str]:
        suffix = uuid.uuid4().hex[:6]
        namespace, role = f"wl-{suffix}", f"team-{suffix}"
        labels = {"kubedrf.io/role": role}
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels))
        )
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Role",
            "metadata": {"name": role},
            "spec": {"namespaces": [namespace if allowed else "elsewhere"]},
        }
        custom.create_cluster_custom_object(GROUP, VERSION, ROLE.plural, body)
        made.append((namespace, role))
        return namespace, role

    yield make
    for namespace, role in made:
        core.delete_namespace(namespace)
        custom.delete_cluster_custom_object(GROUP, VERSION, ROLE.plural, role)


def job(name: str, cpu: str, memory: str, parallelism: int, completions: int) -> dict[str, Any]:
    """A plain Job whose Pods wait behind the gate (the explicit-gate path)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "parallelism": parallelism,
            "completions": completions,
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"kubedrf.io/complete-after": "2s"}},
                "spec": {
                    "schedulingGates": [{"name": GATE}],
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "work",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": cpu, "memory": memory}},
                        }
                    ],
                },
            },
        },
    }


def phases(core: client.CoreV1Api, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in core.list_namespaced_pod(namespace).items:
        gated = any(g.name == GATE for g in pod.spec.scheduling_gates or [])
        phase = "SchedulingGated" if gated else pod.status.phase
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def gated(core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str, at_least: int) -> None:
    """Wait until ``at_least`` Pods of the namespace's Job wait behind the gate; on a timeout,
    say what the Job controller did instead (its status and the namespace's Events)."""
    try:
        wait_for(
            lambda: phases(core, namespace).get("SchedulingGated", 0) >= at_least,
            f"{at_least} Pods gated in {namespace}",
        )
    except AssertionError as error:
        jobs = [(j.metadata.name, j.status) for j in batch.list_namespaced_job(namespace).items]
        notes = [f"{e.reason}: {e.message}" for e in core.list_namespaced_event(namespace).items]
        raise AssertionError(f"{error}; pods {phases(core, namespace)}; {jobs}; {notes}") from None


def test_seed_example_with_two_ordinary_jobs(
    pool: NodePool, master: MasterProcess, team: Any, api: client.ApiClient
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    (ns_a, _), (ns_b, _) = team(), team()
    batch.create_namespaced_job(ns_a, job("a", "1", "4Gi", parallelism=100, completions=12))
    batch.create_namespaced_job(ns_b, job("b", "3", "1Gi", parallelism=100, completions=8))
    # The Job controller keeps min(parallelism, completions left) Pods: all of both wait
    # behind the gate before the master starts, so the first cycle sees all the demand.
    gated(core, batch, ns_a, 12)
    gated(core, batch, ns_b, 8)
    master.start()
    wait_for(lambda: phases(core, ns_a).get("Running") == 3, "3 Pods of A running", timeout=60)
    wait_for(lambda: phases(core, ns_b).get("Running") == 2, "2 Pods of B running", timeout=60)

    def finished() -> bool:
        a, b = phases(core, ns_a), phases(core, ns_b)
        # DRF holds throughout: never more than 3 of A and 2 of B at once.
        assert a.get("Running", 0) + a.get("Pending", 0) <= 3, a
        assert b.get("Running", 0) + b.get("Pending", 0) <= 2, b
        return a.get("Succeeded") == 12 and b.get("Succeeded") == 8

    wait_for(finished, "both Jobs to finish", timeout=120)
    fw: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns_a, "frameworks", "workloads"
    )
    assert fw["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubedrf"


def test_a_pod_in_a_namespace_its_role_does_not_allow_is_told_why(
    pool: NodePool, master: MasterProcess, team: Any, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    namespace, _ = team(allowed=False)
    client.BatchV1Api(api).create_namespaced_job(namespace, job("x", "1", "1Gi", 1, 1))
    master.start()

    def refused() -> bool:
        # Read through core/v1: the Job controller's Events have no eventTime, which the
        # events.k8s.io model of the client refuses.
        notes = [e.message or "" for e in core.list_namespaced_event(namespace).items]
        return any("does not allow namespace" in note for note in notes)

    wait_for(refused, "an Event saying the role refuses the namespace", timeout=30)
    assert phases(core, namespace) == {"SchedulingGated": 1}


def running(core: client.CoreV1Api, namespace: str) -> int:
    return phases(core, namespace).get("Running", 0)


def test_a_gang_job_runs_all_or_nothing(
    pool: NodePool, master: MasterProcess, team: Any, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    pool.add(1, NodeShape(cpu="3", memory="8Gi"))  # room for 3 of the 4: none may start
    namespace, _ = team()
    body = job("gang", "1", "1Gi", parallelism=4, completions=4)
    template = body["spec"]["template"]
    del template["metadata"]["annotations"]  # they keep running, so all four are seen together
    template["metadata"]["labels"] = {"kubedrf.io/gang": "g", "kubedrf.io/gang-size": "4"}
    client.BatchV1Api(api).create_namespaced_job(namespace, body)
    master.start()
    wait_for(lambda: phases(core, namespace) == {"SchedulingGated": 4}, "4 Pods gated")
    deadline = time.monotonic() + 8  # several allocation cycles offer the 3 CPUs
    while time.monotonic() < deadline:
        assert phases(core, namespace) == {"SchedulingGated": 4}
        time.sleep(0.5)
    pool.add(1, NodeShape(cpu="3", memory="8Gi"))
    wait_for(lambda: phases(core, namespace) == {"Running": 4}, "all 4 running", timeout=120)


def test_a_deployment_scaled_up_and_down_follows_its_replicas(
    pool: NodePool, master: MasterProcess, team: Any, api: client.ApiClient
) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    namespace, _ = team()
    template = job("web", "1", "1Gi", 1, 1)["spec"]["template"]
    del template["metadata"]["annotations"]
    template["metadata"]["labels"] = {"app": "web"}
    template["spec"]["restartPolicy"] = "Always"
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template},
    }
    apps.create_namespaced_deployment(namespace, body)
    master.start()
    wait_for(lambda: phases(core, namespace) == {"Running": 2}, "2 replicas running")
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 5}})
    wait_for(lambda: phases(core, namespace) == {"Running": 5}, "5 replicas running")
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 1}})
    wait_for(lambda: phases(core, namespace) == {"Running": 1}, "1 replica left", timeout=90)


def test_an_evicted_pod_of_a_job_is_recreated_gated_and_released_again(
    pool: NodePool, master: MasterProcess, team: Any, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    namespace, _ = team()
    body = job("long", "1", "1Gi", parallelism=2, completions=2)
    del body["spec"]["template"]["metadata"]["annotations"]
    body["spec"]["backoffLimit"] = 2  # an eviction counts as a failure of the Job
    client.BatchV1Api(api).create_namespaced_job(namespace, body)
    master.start()
    wait_for(lambda: running(core, namespace) == 2, "2 Pods running")
    (victim, *_) = core.list_namespaced_pod(namespace).items
    eviction = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=victim.metadata.name, namespace=namespace)
    )
    core.create_namespaced_pod_eviction(victim.metadata.name, namespace, eviction)

    def replaced() -> bool:
        pods = core.list_namespaced_pod(namespace).items
        fresh = [p for p in pods if p.metadata.name != victim.metadata.name]
        return len(fresh) == 2 and all(p.status.phase == "Running" for p in fresh)

    wait_for(replaced, "the evicted Pod replaced by a Pod released again", timeout=90)
    # The Job's template has no framework label: only a release by kubedrf puts it there.
    for pod in core.list_namespaced_pod(namespace).items:
        assert (pod.metadata.labels or {}).get("kubedrf.io/framework") == "workloads"


# -- the admission webhook ----------------------------------------------------------------------


@pytest.fixture
def webhook_master(cluster: devcluster.Cluster, master: MasterProcess) -> Iterator[MasterProcess]:
    """The test's master, to be started with the webhook, registered as ``kubedrf dev webhook``
    does it. Removed after the test, so no other test's Pods meet it."""
    name = f"kubedrf-e2e-{uuid.uuid4().hex[:6]}"
    port = free_port()
    made = devwebhook.register(cluster, port, name=name)
    master.flags.update(
        {
            "webhook-port": str(port),
            "webhook-cert-file": str(made.cert_file),
            "webhook-key-file": str(made.key_file),
        }
    )
    try:
        yield master
    finally:
        devwebhook.unregister(cluster, name)


def bare_pod(name: str, cpu: str = "1") -> dict[str, Any]:
    container = {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}
    return {"metadata": {"name": name}, "spec": {"containers": [container]}}


def gates(pod: Any) -> list[str]:
    return [gate.name for gate in pod.spec.scheduling_gates or []]


def test_the_webhook_gates_pods_in_role_labelled_namespaces_and_no_others(
    pool: NodePool, webhook_master: MasterProcess, team: Any, api: client.ApiClient, namespace: str
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    labelled, _ = team()
    webhook_master.start()

    def answering() -> bool:
        try:
            probe = core.create_namespaced_pod(labelled, bare_pod("probe"), dry_run="All")
        except client.exceptions.ApiException:
            return False  # failurePolicy Fail: refused until the master serves
        return gates(probe) == [GATE]

    wait_for(answering, "the master's webhook to answer", timeout=30)
    body = job("plain", "1", "1Gi", parallelism=2, completions=2)
    template = body["spec"]["template"]
    del template["spec"]["schedulingGates"]  # the manifest as users write it
    del template["metadata"]["annotations"]
    batch.create_namespaced_job(labelled, body)
    wait_for(lambda: running(core, labelled) == 2, "the Job's 2 Pods released and running")
    for pod in core.list_namespaced_pod(labelled).items:
        assert (pod.metadata.labels or {}).get("kubedrf.io/framework") == "workloads"
    # Too big for any offer: it shows the gate the webhook added, and keeps it.
    assert gates(core.create_namespaced_pod(labelled, bare_pod("big", cpu="50"))) == [GATE]
    assert gates(core.create_namespaced_pod(namespace, bare_pod("free"))) == []
    # kube-system is never sent to the webhook, even labelled with a role.
    core.patch_namespace("kube-system", {"metadata": {"labels": {"kubedrf.io/role": "x"}}})
    try:
        system = core.create_namespaced_pod("kube-system", bare_pod("sys"), dry_run="All")
    finally:
        core.patch_namespace("kube-system", {"metadata": {"labels": {"kubedrf.io/role": None}}})
    assert gates(system) == []
    settle(3)
    assert gates(core.read_namespaced_pod("big", labelled)) == [GATE]


def test_a_cronjobs_runs_are_placed_through_offers(
    pool: NodePool,
    master: MasterProcess,
    team: Any,
    api: client.ApiClient,
    cluster: devcluster.Cluster,
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    namespace, _ = team()
    run = job("nightly", "1", "1Gi", parallelism=2, completions=4)["spec"]
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": run}},
    }
    batch.create_namespaced_cron_job(namespace, cron)
    stored = batch.read_namespaced_cron_job("nightly", namespace)
    assert gates(stored.spec.job_template.spec.template) == [GATE]
    master.start()
    # A run now rather than at 3 am: the Job the CronJob controller would create.
    cluster.kubectl("create", "job", "nightly-now", "--from=cronjob/nightly", "-n", namespace)

    def done() -> bool:
        status = batch.read_namespaced_job("nightly-now", namespace).status
        return status.succeeded == 4

    wait_for(done, "the run's 4 Pods to succeed", timeout=120)
    for pod in core.list_namespaced_pod(namespace).items:
        assert (pod.metadata.labels or {}).get("kubedrf.io/framework") == "workloads"


def test_a_job_pod_revoked_for_a_late_framework_is_recreated_gated_and_waits(
    pool: NodePool,
    master: MasterProcess,
    team: Any,
    api: client.ApiClient,
    frameworks: Frameworks,
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    namespace, _ = team()
    body = job("hold", "1", "1Gi", parallelism=9, completions=9)
    del body["spec"]["template"]["metadata"]["annotations"]  # they run until revoked
    body["spec"]["backoffLimit"] = 20  # an eviction counts as a failure of the Job
    batch.create_namespaced_job(namespace, body)
    master.flags["grace-period"] = "2s"
    master.start()
    wait_for(lambda: running(core, namespace) == 9, "the Job holding the whole node")
    # A late framework wanting one such task: below its DRF target, it gets one CPU back.
    # (One only: the Job controller delays replacing n failed Pods by 10 s * 2^(n-1).)
    task = {"cpu": "1", "memory": "1Gi"}
    frameworks.create("late", task, count=1)
    frameworks.wait_offers("late", timeout=60)
    # Holding the offer for the one task it wanted, it says it wants no more, then launches
    # (demand counts the tasks still wanted: the other order asks for a second revocation).
    frameworks.patch("late", {"spec": {"demand": [{"resources": task, "count": 0}]}})

    def late_runs() -> bool:
        frameworks.accept_all("late")
        return len(frameworks.running("late")) == 1

    wait_for(late_runs, "the late framework's task running", timeout=60)
    asked = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "inverseoffers"
    )["items"]
    assert [i["spec"]["framework"] for i in asked] == ["workloads"]
    # The Job controller replaced the revoked Pod; the replacement waits behind the gate.
    gated(core, batch, namespace, 1)
    settle(5)  # demand steady: nothing more moves
    now = phases(core, namespace)
    assert (now.get("Running"), now.get("SchedulingGated")) == (8, 1), now
    assert len(frameworks.running("late")) == 1
