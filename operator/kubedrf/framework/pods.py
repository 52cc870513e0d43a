"""Task Pods: how a task becomes a Pod pinned to its offer's node, and a Pod a task state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubedrf.api.conventions import LABEL_FRAMEWORK, LABEL_OFFER, LABEL_ROLE
from kubedrf.framework.hooks import PodBody
from kubedrf.framework.model import Offer, TaskInfo, TaskState, TaskStatus
from kubedrf.resources import PODS

MANAGED_TOLERATION = {"key": "kubedrf.io/managed", "operator": "Exists", "effect": "NoSchedule"}


def task_pod(task: TaskInfo, offer: Offer) -> PodBody:
    """The Pod for ``task``: kubedrf labels, the managed-node toleration, required node
    affinity on the offer's node, and requests (and equal limits) within the offer."""
    requests = task.resources.without([PODS]).to_quantities()
    container: dict[str, Any] = {
        "name": "task",
        "image": task.image,
        "resources": {"requests": requests, "limits": dict(requests)},
    }
    if task.command:
        container["command"] = list(task.command)
    if task.env:
        container["env"] = [{"name": k, "value": v} for k, v in task.env.items()]
    node_term = {
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": [offer.node]}]
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": task.name,
            "labels": {
                **task.labels,
                LABEL_FRAMEWORK: offer.framework,
                LABEL_ROLE: offer.role,
                LABEL_OFFER: offer.name,
            },
            "annotations": dict(task.annotations),
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [container],
            "tolerations": [MANAGED_TOLERATION],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [node_term]
                    }
                }
            },
        },
    }


_PHASES = {
    "Pending": TaskState.STAGING,
    "Running": TaskState.RUNNING,
    "Succeeded": TaskState.FINISHED,
    "Failed": TaskState.FAILED,
}


def task_status(
    pod: Mapping[str, Any], deleted: bool = False, node_gone: bool = False
) -> TaskStatus:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    state = _PHASES.get(status.get("phase", "Pending"), TaskState.STAGING)
    message = status.get("message") or status.get("reason") or ""
    if deleted and not state.terminal:
        state = TaskState.LOST if node_gone else TaskState.KILLED
        message = message or ("its node went away" if node_gone else "its Pod was deleted")
    return TaskStatus(
        task=meta["name"],
        state=state,
        node=spec.get("nodeName"),
        pod_ip=status.get("podIP"),
        offer=(meta.get("labels") or {}).get(LABEL_OFFER),
        message=message,
    )
