"""Task Pods: how a task becomes a Pod pinned to its offer's node, and a Pod a task state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubedrf.api.conventions import LABEL_FRAMEWORK, LABEL_OFFER, LABEL_ROLE
from kubedrf.framework.hooks import PodBody
from kubedrf.framework.model import (
    PAUSE_IMAGE,
    Offer,
    TaskInfo,
    TaskState,
    TaskStatus,
    TaskTemplateError,
)
from kubedrf.resources import PODS, Resources, total

MANAGED_TOLERATION = {"key": "kubedrf.io/managed", "operator": "Exists", "effect": "NoSchedule"}
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def task_pod(task: TaskInfo, offer: Offer) -> PodBody:
    """The Pod for ``task``: its pod template, with the kubedrf parts on top: the labels,
    the managed-node toleration, required node affinity on the offer's node, requests (and
    equal limits on the task's container) adding up to the task's resources, and the
    ``schedulerName`` the offer names (the master's binder), if it names one."""
    spec = task.pod_spec
    for init in spec.get("initContainers") or []:
        if not _requests(task, init) <= task.resources:
            raise TaskTemplateError(
                f"task {task.name}: init container {init.get('name')} requests more than"
                f" TaskInfo.resources {task.resources.to_quantities()}"
            )
    containers = spec.get("containers") or [{}]
    spec["containers"] = [_task_container(task, containers[0], containers[1:]), *containers[1:]]
    spec.setdefault("restartPolicy", "Never")
    tolerations = spec.get("tolerations") or []
    if MANAGED_TOLERATION not in tolerations:
        spec["tolerations"] = [*tolerations, MANAGED_TOLERATION]
    owner = f"task {task.name}: pod template"
    spec["affinity"] = pinned_affinity(spec.get("affinity") or {}, offer.node, owner)
    if offer.scheduler_name:
        # The master binds the Pod itself; the node affinity stays, so the kubelet and any
        # reader still see where it must run.
        spec["schedulerName"] = offer.scheduler_name
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
        "spec": spec,
    }


def _task_container(
    task: TaskInfo, template: Mapping[str, Any], sidecars: list[dict[str, Any]]
) -> dict[str, Any]:
    """The task's container gets what the other containers leave of the task's resources,
    so the Pod asks the offer for exactly ``task.resources``."""
    others = total(_requests(task, c) for c in sidecars)
    own = task.resources.without([PODS]) - others
    if any(amount < 0 for amount in own.values()):
        raise TaskTemplateError(
            f"task {task.name}: pod template containers request {others.to_quantities()},"
            f" more than TaskInfo.resources {task.resources.to_quantities()}"
        )
    container = {**template, "name": template.get("name") or "task"}
    container["image"] = task.image or template.get("image") or PAUSE_IMAGE
    requests = own.to_quantities()
    container["resources"] = {"requests": requests, "limits": dict(requests)}
    if task.command:
        container["command"] = list(task.command)
    if task.env:
        kept = [e for e in template.get("env") or [] if e.get("name") not in task.env]
        container["env"] = [*kept, *({"name": k, "value": v} for k, v in task.env.items())]
    return container


def _requests(task: TaskInfo, container: Mapping[str, Any]) -> Resources:
    field = f"task {task.name}: container {container.get('name')}: resources.requests"
    return Resources.parse((container.get("resources") or {}).get("requests"), field)


def pinned_affinity(affinity: Mapping[str, Any], node: str, owner: str) -> dict[str, Any]:
    """``affinity`` with the offer's node required in every node selector term (terms are
    alternatives, so each must be pinned); a term that names other nodes is refused, the
    error naming ``owner`` (the task or Pod whose affinity it is)."""
    pin = {"key": "metadata.name", "operator": "In", "values": [node]}
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    terms = (node_affinity.get(REQUIRED) or {}).get("nodeSelectorTerms") or [{}]
    pinned = []
    for term in terms:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and not _admits(field, node):
                raise TaskTemplateError(
                    f"{owner}: affinity.nodeAffinity requires"
                    f" {field}, which excludes the offer's node {node}"
                )
        pinned.append({**term, "matchFields": [*(term.get("matchFields") or []), pin]})
    node_affinity[REQUIRED] = {"nodeSelectorTerms": pinned}
    return {**affinity, "nodeAffinity": node_affinity}


def _admits(requirement: Mapping[str, Any], node: str) -> bool:
    values = requirement.get("values") or []
    operator = requirement.get("operator")
    return (operator == "In" and node in values) or (operator == "NotIn" and node not in values)


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
