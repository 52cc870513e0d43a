"""End-to-end fixtures: one local control plane per session, nodes and namespaces per test.

The cluster is named ``kubedrf-e2e-<pid>``: it never collides with a developer's ``kubedrf dev
up`` cluster, nor with another pytest session running at the same time. Clusters left behind
by sessions that died are deleted when the next session starts. Set ``KUBEDRF_E2E_KEEP=1`` to
leave the cluster running after the session (until the next one); ``kubedrf dev env --name
kubedrf-e2e-<pid>`` then points a shell at it.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from kubedrf.devcluster import cluster as devcluster
from tests.e2e.support import (
    BASE_SHAPE,
    Frameworks,
    MasterProcess,
    NodePool,
    assert_no_overcommit,
    install_crds,
    wait_for,
)

E2E_PREFIX = "kubedrf-e2e-"
#: Nodes every test can rely on; tests needing more add their own with the ``pool`` fixture.
BASE_NODES = 2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_orphans() -> None:
    """Delete e2e clusters whose pytest session is gone (killed, or kept for debugging)."""
    for name in devcluster.names():
        pid = name.removeprefix(E2E_PREFIX)
        if name.startswith(E2E_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            try:
                devcluster.down(name)
            except devcluster.ClusterError as exc:
                warnings.warn(f"could not delete stale e2e cluster {name}: {exc}", stacklevel=1)


@pytest.fixture(scope="session")
def cluster() -> Iterator[devcluster.Cluster]:
    """The local control plane, brought up once and torn down when the session ends."""
    _reap_orphans()
    name = f"{E2E_PREFIX}{os.getpid()}"
    dev = devcluster.up(name, nodes=BASE_NODES, shape=BASE_SHAPE)
    try:
        yield dev
    finally:
        if os.environ.get("KUBEDRF_E2E_KEEP") != "1":
            devcluster.down(name, dev.binaries)


@pytest.fixture(scope="session")
def api(cluster: devcluster.Cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def crds(cluster: devcluster.Cluster) -> None:
    """The generated CRDs, applied once per session (tests that need them ask for it)."""
    install_crds(cluster)


@pytest.fixture
def pool(cluster: devcluster.Cluster) -> Iterator[NodePool]:
    """Nodes of this test alone; removed when it ends."""
    nodes = NodePool(cluster)
    try:
        yield nodes
    finally:
        nodes.cleanup()


@pytest.fixture
def frameworks(api: client.ApiClient, namespace: str) -> Frameworks:
    return Frameworks(api, namespace)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace, usable once its ``default`` service account exists."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def has_account() -> bool:
        accounts: Any = core.list_namespaced_service_account(name)
        return any(sa.metadata.name == "default" for sa in accounts.items)

    wait_for(has_account, f"the default service account of {name}")
    try:
        yield name
    finally:
        core.delete_namespace(name)

        def gone() -> bool:
            try:
                core.read_namespace(name)
            except client.exceptions.ApiException as error:
                return bool(error.status == 404)
            return False

        # Wait, so the next test's master never sees this test's Frameworks (and their demand).
        wait_for(gone, f"namespace {name} to be deleted", timeout=120)


MasterFactory = Callable[..., MasterProcess]


@pytest.fixture
def start_master(
    cluster: devcluster.Cluster,
    pool: NodePool,
    api: client.ApiClient,
    tmp_path: Path,
) -> Iterator[MasterFactory]:
    started: list[MasterProcess] = []

    def start(**flags: str) -> MasterProcess:
        master = MasterProcess(cluster, pool, tmp_path / "master.log", **flags)
        master.start()
        started.append(master)
        return master

    yield start
    try:
        assert_no_overcommit(api, pool.names)
    finally:
        for master in started:
            master.stop()
        if started:  # pytest shows this only when the test failed
            print(f"--- master log ---\n{started[-1].tail(80)}")
