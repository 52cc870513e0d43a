"""The local control plane is a real one: kube-scheduler binds, taints hold, pods live and end."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubedrf.devcluster import cluster as devcluster
from kubedrf.devcluster import stages, versions
from tests.e2e.support import NodePool, wait_for

pytestmark = pytest.mark.e2e

MANAGED_TOLERATION = client.V1Toleration(
    key=devcluster.MANAGED_KEY, operator="Exists", effect="NoSchedule"
)


def make_pod(
    name: str,
    node: str | None = None,
    tolerate: bool = True,
    annotations: dict[str, str] | None = None,
) -> client.V1Pod:
    affinity = None
    if node is not None:
        term = client.V1NodeSelectorTerm(
            match_expressions=[
                client.V1NodeSelectorRequirement(
                    key="kubernetes.io/hostname", operator="In", values=[node]
                )
            ]
        )
        affinity = client.V1Affinity(
            node_affinity=client.V1NodeAffinity(
                required_during_scheduling_ignored_during_execution=client.V1NodeSelector(
                    node_selector_terms=[term]
                )
            )
        )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="task",
                    image="registry.k8s.io/pause:3.10",
                    resources=client.V1ResourceRequirements(
                        requests={"cpu": "500m", "memory": "256Mi"}
                    ),
                )
            ],
            affinity=affinity,
            tolerations=[MANAGED_TOLERATION] if tolerate else None,
        ),
    )


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    return core.read_namespaced_pod(name, namespace)


def scheduled_condition(pod: Any) -> Any:
    return next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)


def test_tolerating_pod_is_bound_by_kube_scheduler_and_runs(
    core: client.CoreV1Api, namespace: str, pool: NodePool
) -> None:
    (node,) = pool.add()
    core.create_namespaced_pod(namespace, make_pod("bound", node=node))

    pod = wait_for(
        lambda: (p := read_pod(core, namespace, "bound")).status.phase == "Running" and p,
        "the pod to reach Running",
    )

    assert pod.spec.node_name == node
    assert scheduled_condition(pod).status == "True"
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=bound")
    scheduled = [event for event in events.items if event.reason == "Scheduled"]
    assert scheduled, "kube-scheduler records a Scheduled event when it binds a pod"
    assert scheduled[0].reporting_component == "default-scheduler"


def test_pod_without_toleration_is_never_placed_on_a_managed_node(
    core: client.CoreV1Api, namespace: str, cluster: devcluster.Cluster
) -> None:
    core.create_namespaced_pod(namespace, make_pod("intolerant", tolerate=False))

    condition = wait_for(
        lambda: (
            (c := scheduled_condition(read_pod(core, namespace, "intolerant")))
            and c.reason == "Unschedulable"
            and c
        ),
        "kube-scheduler to find the pod unschedulable",
    )

    assert "untolerated taint" in condition.message
    time.sleep(2)  # another scheduling attempt must not change that
    assert read_pod(core, namespace, "intolerant").spec.node_name is None


def test_pod_without_toleration_goes_to_an_unmanaged_node(
    core: client.CoreV1Api, namespace: str, pool: NodePool
) -> None:
    pool.add(2)  # managed capacity it must not take
    (plain,) = pool.add(shape=devcluster.NodeShape(cpu="4", memory="16Gi", managed=False))
    core.create_namespaced_pod(namespace, make_pod("elsewhere", tolerate=False))

    pod = wait_for(
        lambda: (p := read_pod(core, namespace, "elsewhere")).status.phase == "Running" and p,
        "the pod to run on the unmanaged node",
    )

    assert pod.spec.node_name == plain


def test_annotated_pod_completes_after_the_asked_delay(
    core: client.CoreV1Api, namespace: str
) -> None:
    annotations = {stages.COMPLETE_AFTER_ANNOTATION: "3s"}
    core.create_namespaced_pod(namespace, make_pod("task", annotations=annotations))

    wait_for(
        lambda: read_pod(core, namespace, "task").status.phase == "Running",
        "the task to start running",
    )
    running_at = time.monotonic()
    pod = wait_for(
        lambda: (p := read_pod(core, namespace, "task")).status.phase == "Succeeded" and p,
        "the task to succeed",
    )

    assert time.monotonic() - running_at >= 2.5
    (status,) = pod.status.container_statuses
    assert status.state.terminated.reason == "Completed"
    assert status.state.terminated.exit_code == 0


def test_unannotated_pod_keeps_running(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, make_pod("service"))
    wait_for(
        lambda: read_pod(core, namespace, "service").status.phase == "Running",
        "the pod to run",
    )
    time.sleep(3)
    assert read_pod(core, namespace, "service").status.phase == "Running"


def test_removed_node_leaves_the_cluster(cluster: devcluster.Cluster, pool: NodePool) -> None:
    (node,) = pool.add()
    assert node in cluster.node_names()
    pool.remove(node)
    wait_for(lambda: node not in cluster.node_names(), f"node {node} to be deleted")


def test_down_deletes_the_named_cluster_and_its_configuration_and_nothing_else(
    cluster: devcluster.Cluster,
) -> None:
    name = f"{cluster.name}-down"
    devcluster.up(name, nodes=1)
    config = devcluster.kwokctl_config_path(name)
    assert config.exists() and devcluster.exists(name)

    assert devcluster.down(name)

    assert not devcluster.exists(name) and not config.exists()
    assert cluster.is_healthy() and devcluster.kwokctl_config_path(cluster.name).exists()


def test_kubectl_reports_the_pinned_version_for_client_and_server(
    cluster: devcluster.Cluster,
) -> None:
    reported = json.loads(cluster.kubectl("version", "--output=json"))

    assert reported["clientVersion"]["gitVersion"] == versions.KUBERNETES
    assert reported["serverVersion"]["gitVersion"] == versions.KUBERNETES


def helm(cluster: devcluster.Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.binaries["helm"]), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_helm_reports_the_pinned_version(cluster: devcluster.Cluster) -> None:
    result = helm(cluster, "version", "--short")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == versions.HELM


def test_helm_kube_version_checks_see_the_real_version(
    cluster: devcluster.Cluster, namespace: str, tmp_path: Path
) -> None:
    minor = int(versions.KUBERNETES.split(".")[1])
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n"
        "data:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )

    def write_chart(kube_version: str) -> None:
        (chart / "Chart.yaml").write_text(
            f"apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: {kube_version!r}\n"
        )

    write_chart(f">=1.{minor}.0-0 <1.{minor + 1}.0-0")
    server = helm(cluster, "install", "probe", str(chart), "-n", namespace, "--dry-run=server")
    offline = helm(cluster, "template", "probe", str(chart))
    assert server.returncode == 0, server.stderr
    assert f"kube: {json.dumps(versions.KUBERNETES)}" in server.stdout
    assert offline.returncode == 0, offline.stderr

    write_chart(f">=1.{minor + 1}.0-0")
    refused = helm(cluster, "install", "probe", str(chart), "-n", namespace, "--dry-run=server")
    assert refused.returncode != 0
    assert "incompatible with Kubernetes" in refused.stderr


def test_node_shape_and_marking(cluster: devcluster.Cluster, pool: NodePool) -> None:
    shape = devcluster.NodeShape(cpu="3", memory="5Gi", pods="7")
    (node,) = pool.add(shape=shape, prefix=f"shape-{uuid.uuid4().hex[:4]}")

    item = json.loads(cluster.kubectl("get", "node", node, "-o", "json"))

    assert item["metadata"]["labels"][devcluster.MANAGED_KEY] == "true"
    assert {"key": devcluster.MANAGED_KEY, "effect": "NoSchedule"} in item["spec"]["taints"]
    assert item["status"]["allocatable"] == {"cpu": "3", "memory": "5Gi", "pods": "7"}
