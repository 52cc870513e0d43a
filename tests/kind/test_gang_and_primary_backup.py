"""The gang and primary-backup examples deployed as Pods from ``examples/frameworks/deploy/``,
their tasks real containers on the real node.

Their tasks name no image, so they run Kubernetes' pause image, here the built one under that
name (``conftest``): they run until deleted, which is what a gang member or a database replica
does. The tasks are made small; what the examples decide (all four at once, backups told the
primary's address) is unchanged.
"""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client

from kubedrf.api.conventions import LABEL_FRAMEWORK
from kubedrf.devcluster.node import POD_SUBNET
from tests.e2e.support import settle
from tests.kind.conftest import GANG_NAMESPACE, NODE, PRIMARY_BACKUP_NAMESPACE, RealCluster
from tests.kind.support import (
    assert_real_containers_on_the_node,
    example_manifest,
    remove,
    wait_running,
)

pytestmark = pytest.mark.kind

SMALL = {"--cpu": "100m", "--memory": "64Mi"}


def test_the_gang_example_deployed_as_a_pod_runs_its_four_tasks_together(
    real: RealCluster, core: client.CoreV1Api
) -> None:
    manifest = example_manifest(real, "gang.yaml", {"job": {"--size": "4", **SMALL}})
    real.dev.kubectl("apply", "-f", "-", stdin=manifest)
    try:
        assert_real_containers_on_the_node(wait_running(core, GANG_NAMESPACE, "job", 4))
        settle(2)  # launched once: no task beyond the gang's four
        pods = core.list_namespaced_pod(GANG_NAMESPACE, label_selector=f"{LABEL_FRAMEWORK}=job")
        assert len(pods.items) == 4
    finally:
        remove(real, core, manifest, GANG_NAMESPACE)


def test_the_primary_backup_example_deployed_as_a_pod_gives_its_backups_the_primarys_address(
    real: RealCluster, core: client.CoreV1Api
) -> None:
    manifest = example_manifest(real, "primary-backup.yaml", {"pg": SMALL})
    real.dev.kubectl("apply", "-f", "-", stdin=manifest)
    try:
        tasks = wait_running(core, PRIMARY_BACKUP_NAMESPACE, "pg", 3)
        assert_real_containers_on_the_node(tasks)
        (primary,) = [pod for pod in tasks if "-primary-" in pod.metadata.name]
        backups = [pod for pod in tasks if "-backup-" in pod.metadata.name]
        assert len(backups) == 2
        # The primary's address is a real one, given by the CNI plugin on the node's bridge.
        assert ipaddress.ip_address(primary.status.pod_ip) in ipaddress.ip_network(POD_SUBNET)
        for backup in backups:
            (container,) = backup.spec.containers
            env = {var.name: var.value for var in container.env or []}
            assert env["PRIMARY_IP"] == primary.status.pod_ip
            assert env["PRIMARY_NODE"] == NODE
    finally:
        remove(real, core, manifest, PRIMARY_BACKUP_NAMESPACE)
