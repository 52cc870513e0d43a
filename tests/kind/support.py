"""What the real-node tests share: the example manifests as a user applies them, offline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from kubernetes import client

from kubedrf.api.conventions import LABEL_FRAMEWORK
from kubedrf.resources import parse_amount
from tests.e2e.support import ROOT, TOLERATION, wait_for
from tests.kind.conftest import NODE, RealCluster

DEPLOY = ROOT / "examples" / "frameworks" / "deploy"


def example_manifest(
    real: RealCluster,
    file: str,
    flags: Mapping[str, Mapping[str, str]],
    *,
    best_effort: bool = False,
) -> str:
    """``examples/frameworks/deploy/<file>`` with the offline image and the managed taint
    tolerated (this cluster has no other node); ``flags`` overrides each controller's command
    line flags, keyed by its ``--name``. ``best_effort`` drops the controllers' requests, for
    a test whose arithmetic needs the node's allocatable all free for tasks."""
    documents: list[dict[str, Any]] = list(yaml.safe_load_all((DEPLOY / file).read_text()))
    for deployment in (doc for doc in documents if doc["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        pod["tolerations"] = [TOLERATION]
        (container,) = pod["containers"]
        container["image"] = real.images.kubedrf
        container["imagePullPolicy"] = "Never"
        args = container["args"]
        given = dict(zip(args[::2], args[1::2], strict=True))
        given |= flags[given["--name"]]
        container["args"] = [part for pair in given.items() for part in pair]
        if best_effort:
            container.pop("resources", None)
    return yaml.safe_dump_all(documents)


def requested_on_node(core: client.CoreV1Api) -> dict[str, int]:
    """What the node's live Pods request, in canonical units (as the master counts it)."""
    used: dict[str, int] = {}
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={NODE}").items
    for pod in pods:
        if pod.status.phase in ("Succeeded", "Failed"):
            continue
        for container in pod.spec.containers:
            for name, value in (
                (container.resources and container.resources.requests) or {}
            ).items():
                used[name] = used.get(name, 0) + parse_amount(name, value)
    return {name: amount for name, amount in used.items() if amount}


def remove(real: RealCluster, core: client.CoreV1Api, manifest: str, namespace: str) -> None:
    """Delete what ``manifest`` made and wait until its namespace's Pods are gone, so the next
    test has the node to itself."""
    real.dev.kubectl("delete", "-f", "-", "--wait=false", "--ignore-not-found", stdin=manifest)
    wait_for(
        lambda: not core.list_namespaced_pod(namespace).items,
        f"the Pods of namespace {namespace} to go",
        timeout=120,
    )


def running_tasks(core: client.CoreV1Api, namespace: str, framework: str) -> list[Any]:
    """The framework's task Pods that are Running with every container ready."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"{LABEL_FRAMEWORK}={framework}")
    return [
        pod
        for pod in pods.items
        if pod.status.phase == "Running"
        and all(status.ready for status in pod.status.container_statuses or [])
    ]


def wait_running(
    core: client.CoreV1Api, namespace: str, framework: str, count: int, timeout: float = 180
) -> list[Any]:
    """Wait until exactly ``count`` of the framework's tasks run; return them."""

    def enough() -> list[Any] | None:
        pods = running_tasks(core, namespace, framework)
        return pods if len(pods) == count else None

    return wait_for(enough, f"{count} tasks of {namespace}/{framework} running", timeout)


def assert_real_containers_on_the_node(pods: list[Any]) -> None:
    """A container ID is what only a real runtime gives; kwok's fake Pods have none."""
    for pod in pods:
        assert pod.spec.node_name == NODE
        (status,) = pod.status.container_statuses
        assert status.container_id.startswith("containerd://")
