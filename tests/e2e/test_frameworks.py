"""The framework SDK and the example frameworks on the local control plane."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kubedrf.devcluster import cluster as devcluster
from kubedrf.devcluster.cluster import NodeShape
from tests.e2e.support import (
    ROOT,
    FrameworkProcess,
    Frameworks,
    MasterProcess,
    NodePool,
    assert_no_overcommit,
    service_account_kubeconfig,
    settle,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

Launcher = Callable[..., FrameworkProcess]


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
        print(f"--- master log ---\n{process.tail(60)}")


@pytest.fixture
def launch(cluster: devcluster.Cluster, namespace: str, tmp_path: Path) -> Iterator[Launcher]:
    started: list[FrameworkProcess] = []

    def start(script: str, name: str, *args: str) -> FrameworkProcess:
        log = tmp_path / f"{name}.log"
        process = FrameworkProcess(
            cluster, script, log, "--namespace", namespace, "--name", name, *args
        ).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        print(f"--- {process.log.name} ---\n{process.tail(30)}")


def pods(core: client.CoreV1Api, namespace: str, framework: str) -> list[client.V1Pod]:
    selector = f"kubedrf.io/framework={framework}"
    return list(core.list_namespaced_pod(namespace, label_selector=selector).items)


def env_of(pod: client.V1Pod) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env or []}


def test_seed_example_with_two_batch_frameworks(
    pool: NodePool,
    master: MasterProcess,
    launch: Launcher,
    frameworks: Frameworks,
    core: client.CoreV1Api,
) -> None:
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    launch("batch.py", "a", "--tasks", "100", "--cpu", "1", "--memory", "4Gi")
    launch("batch.py", "b", "--tasks", "100", "--cpu", "3", "--memory", "1Gi")
    wait_for(lambda: all(_exists(frameworks, n) for n in "ab"), "both frameworks registered")
    master.start()  # both demands are known before the first cycle
    wait_for(lambda: len(frameworks.running("a")) == 3, "3 tasks of A running")
    wait_for(lambda: len(frameworks.running("b")) == 2, "2 tasks of B running")
    settle()
    assert (len(frameworks.running("a")), len(frameworks.running("b"))) == (3, 2)
    assert frameworks.get("a")["spec"]["demand"][0]["count"] == 97  # kept current by the SDK
    # The pod-mutation hook told every task where it runs.
    for pod in pods(core, frameworks.namespace, "a"):
        env = env_of(pod)
        assert env["KUBEDRF_NODE"] == pool.names[0]
        assert env["KUBEDRF_OFFER"] == pod.metadata.labels["kubedrf.io/offer"]


def test_a_failed_task_is_relaunched(
    pool: NodePool,
    master: MasterProcess,
    launch: Launcher,
    frameworks: Frameworks,
    core: client.CoreV1Api,
) -> None:
    pool.add(1)
    master.start()
    launch("batch.py", "job", "--tasks", "2", "--cpu", "1", "--memory", "1Gi")
    wait_for(lambda: len(frameworks.running("job")) == 2, "2 tasks running")
    victim = frameworks.running("job")[0]
    core.patch_namespaced_pod_status(
        victim, frameworks.namespace, {"status": {"phase": "Failed", "reason": "Crashed"}}
    )
    wait_for(
        lambda: len(frameworks.running("job")) == 2 and victim not in frameworks.running("job"),
        "a replacement task running",
    )
    names = {p.metadata.name for p in pods(core, frameworks.namespace, "job")}
    assert len(names) == 3 and victim in names


def test_a_restarted_framework_adopts_its_tasks(
    pool: NodePool,
    master: MasterProcess,
    launch: Launcher,
    frameworks: Frameworks,
    core: client.CoreV1Api,
) -> None:
    pool.add(1)
    master.start()
    first = launch("batch.py", "job", "--tasks", "3", "--cpu", "1", "--memory", "1Gi")
    wait_for(lambda: len(frameworks.running("job")) == 3, "3 tasks running")
    before = {p.metadata.name for p in pods(core, frameworks.namespace, "job")}
    first.stop(kill=True)
    launch("batch.py", "job", "--tasks", "3", "--cpu", "1", "--memory", "1Gi")
    settle(4)
    assert {p.metadata.name for p in pods(core, frameworks.namespace, "job")} == before
    assert frameworks.get("job")["spec"]["demand"][0]["count"] == 0


def test_backups_start_after_the_primary_and_know_where_it_runs(
    pool: NodePool,
    master: MasterProcess,
    launch: Launcher,
    frameworks: Frameworks,
    core: client.CoreV1Api,
) -> None:
    pool.add(2)
    master.start()
    launch("primary_backup.py", "pg", "--cpu", "1", "--memory", "1Gi")
    wait_for(lambda: len(frameworks.running("pg")) == 3, "primary and two backups running")
    tasks = {p.metadata.name: p for p in pods(core, frameworks.namespace, "pg")}
    (primary,) = [p for name, p in tasks.items() if "-primary-" in name]
    backups = [p for name, p in tasks.items() if "-backup-" in name]
    assert len(backups) == 2
    for backup in backups:
        env = env_of(backup)
        assert env["PRIMARY_IP"] == primary.status.pod_ip
        assert env["PRIMARY_NODE"] == primary.spec.node_name
        started = primary.status.start_time
        assert started is not None and backup.metadata.creation_timestamp >= started


def test_a_gang_launches_all_or_nothing(
    pool: NodePool,
    master: MasterProcess,
    launch: Launcher,
    frameworks: Frameworks,
    core: client.CoreV1Api,
) -> None:
    pool.add(2, NodeShape(cpu="4", memory="16Gi"))
    # A gang's all-or-none is the framework's own rule: its demand says "5 tasks", so
    # revocation would free a task of "fits" for "big", which still cannot launch any. Until
    # demand can say "all or none", this example runs without revocation.
    master.flags["revocation"] = "off"
    master.start()
    launch("gang.py", "big", "--size", "5", "--cpu", "2", "--memory", "1Gi")  # needs 10 CPU of 8
    wait_for(lambda: frameworks.offers("big", phase="Declined"), "the too-small offers declined")
    settle()
    assert pods(core, frameworks.namespace, "big") == []
    launch("gang.py", "fits", "--size", "4", "--cpu", "2", "--memory", "1Gi")
    wait_for(lambda: len(frameworks.running("fits")) == 4, "the whole gang running", 120)
    assert pods(core, frameworks.namespace, "big") == []


def _exists(frameworks: Frameworks, name: str) -> bool:
    try:
        frameworks.get(name)
    except client.exceptions.ApiException:
        return False
    return True


def test_the_deployable_example_runs_with_its_least_privilege_account(
    cluster: devcluster.Cluster,
    pool: NodePool,
    master: MasterProcess,
    api: client.ApiClient,
    tmp_path: Path,
) -> None:
    manifest = ROOT / "examples" / "frameworks" / "deploy" / "batch.yaml"
    cluster.kubectl("apply", "-f", str(manifest))
    try:
        # The Deployment would run the image; here the same code runs locally as its account.
        cluster.kubectl("scale", "deployment/batch-framework", "-n", "batch", "--replicas=0")
        kubeconfig = service_account_kubeconfig(
            cluster, "batch", "batch-framework", tmp_path / "framework.kubeconfig"
        )
        pool.add(1)
        master.start()
        process = FrameworkProcess(
            cluster,
            "batch.py",
            tmp_path / "batch.log",
            "--namespace",
            "batch",
            "--name",
            "batch",
            "--tasks",
            "2",
            kubeconfig=kubeconfig,
        ).start()
        try:
            frameworks = Frameworks(api, "batch")
            wait_for(lambda: len(frameworks.running("batch")) == 2, "2 tasks running")
        finally:
            process.stop()
        assert "Forbidden" not in process.log.read_text(), process.tail()
    finally:
        cluster.kubectl("delete", "-f", str(manifest), "--wait=true", timeout=180)


def test_a_running_framework_stays_connected_and_a_stopped_one_is_disconnected(
    pool: NodePool, master: MasterProcess, launch: Launcher, frameworks: Frameworks
) -> None:
    pool.add(1)
    master.start()
    process = launch("batch.py", "a", "--tasks", "1", "--failover-timeout", "3")
    wait_for(lambda: len(frameworks.running("a")) == 1, "its task running")
    time.sleep(8)  # well past the failoverTimeout: only the heartbeat keeps it connected
    assert (frameworks.condition("a", "Connected") or {}).get("status") == "True"
    process.stop()
    wait_for(
        lambda: (frameworks.condition("a", "Connected") or {}).get("status") == "False",
        "a Disconnected once its controller stopped",
        15,
    )
    assert len(frameworks.running("a")) == 1  # no taskTeardownTimeout: its task runs on
