"""What a framework's scheduler sees and says: offers, tasks and task states."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from kubernetes import client
from pydantic import BaseModel, ValidationError

from kubedrf.api import InverseOfferSpec, OfferSpec
from kubedrf.api.conventions import ANNOTATION_SCHEDULER
from kubedrf.api.types import to_resources
from kubedrf.resources import PODS, Resources

#: The image of a task that names none (here or in its pod template): it only holds resources.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


class OfferMismatchError(ValueError):
    """Tasks that do not fit the offer they are launched on (invariant 7, client side)."""


class TaskTemplateError(ValueError):
    """A task's pod template sets what the offer decides (its node, its resources)."""


@dataclass(frozen=True, slots=True)
class Offer:
    """An outstanding offer made to this framework."""

    name: str
    framework: str
    role: str
    node: str
    resources: Resources
    expires_at: float
    sized_for: tuple[tuple[Resources, int], ...] = ()
    #: The ``schedulerName`` the master asks task Pods to carry (None: the default one).
    scheduler_name: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Offer:
        """Read an Offer object through the API's own model, so the two never disagree."""
        name = body["metadata"]["name"]
        spec = _spec(OfferSpec, body, f"offer {name}")
        return cls(
            name=name,
            framework=spec.framework,
            role=spec.role,
            node=spec.node_name,
            resources=to_resources(spec.resources, "spec.resources"),
            expires_at=spec.expires_at.timestamp(),
            sized_for=tuple(
                (to_resources(task.resources, "spec.sizedFor.resources"), task.count)
                for task in spec.sized_for
            ),
            scheduler_name=(body["metadata"].get("annotations") or {}).get(ANNOTATION_SCHEDULER),
        )

    def ask(self, shape: Resources) -> Resources:
        return ask(self.resources, shape)

    def fit(self, shape: Resources) -> int:
        """How many tasks of ``shape`` this offer holds."""
        return fit(self.resources, shape)


@dataclass(frozen=True, slots=True)
class InverseOffer:
    """The master asks for resources back on one node, for a framework below its share.

    ``tasks`` are what the master ends at ``deadline`` if the framework does not answer;
    the framework may end others of its tasks on ``node`` instead (a backup before a
    primary), as long as they free as much.
    """

    name: str
    node: str
    resources: Resources
    tasks: tuple[str, ...]
    beneficiary: str
    beneficiary_role: str
    deadline: float

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> InverseOffer:
        name = body["metadata"]["name"]
        spec = _spec(InverseOfferSpec, body, f"inverse offer {name}")
        return cls(
            name=name,
            node=spec.node_name,
            resources=to_resources(spec.resources, "spec.resources"),
            tasks=tuple(spec.tasks),
            beneficiary=f"{spec.beneficiary.namespace}/{spec.beneficiary.framework}",
            beneficiary_role=spec.beneficiary.role,
            deadline=spec.deadline.timestamp(),
        )


M = TypeVar("M", bound=BaseModel)


def _spec(model: type[M], body: Mapping[str, Any], what: str) -> M:
    """An object's spec read through the API's own model, so the two never disagree."""
    try:
        return model.model_validate(body.get("spec") or {})
    except ValidationError as error:
        problems = "; ".join(
            f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
        )
        raise ValueError(f"{what}: {problems}") from error


def ask(offer_resources: Resources, shape: Resources) -> Resources:
    """What one task of ``shape`` takes from an offer: its requests, plus one Pod where the
    offer counts Pods (a task is always exactly one Pod)."""
    return shape.without([PODS]) + ({PODS: 1} if PODS in offer_resources else {})


def fit(offer_resources: Resources, shape: Resources) -> int:
    """How many tasks of ``shape`` fit in ``offer_resources``, counted as ``launch`` counts."""
    need = ask(offer_resources, shape)
    if need.is_empty():
        raise ValueError(
            "task shape: needs at least one resource, or any number of tasks would fit"
        )
    return min(offer_resources[name] // amount for name, amount in need.items())


#: Pod template fields that would fight the offer, and why.
REFUSED_FIELDS = {
    "nodeName": "the offer chooses the node; the driver pins the Pod to it",
    "nodeSelector": "the offer chooses the node; choose among offers in your scheduler",
}


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task to launch: one Pod whose requests are ``resources``.

    ``pod`` is an optional pod template (a PodSpec as a camelCase dict, or a
    ``kubernetes.client.V1PodSpec``): containers, ports, volumes, service account, init
    containers, priority class and so on. The driver layers the kubedrf parts on top. The
    first container is the task's: it gets ``image``, ``command`` and ``env`` when set here,
    and whatever of ``resources`` the other containers do not request, so that the Pod
    asks exactly ``resources`` of the offer.
    """

    name: str
    resources: Resources
    image: str | None = None
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    pod: Mapping[str, Any] | client.V1PodSpec | None = None

    def __post_init__(self) -> None:
        if self.pod is not None:
            object.__setattr__(self, "pod", check_pod_template(self.name, self.pod))

    @property
    def pod_spec(self) -> dict[str, Any]:
        """A fresh copy of the pod template, to build a Pod from."""
        return copy.deepcopy(dict(self.pod or {}))


def check_pod_template(task: str, pod: Mapping[str, Any] | client.V1PodSpec) -> dict[str, Any]:
    """The template as a plain dict, refusing what the offer decides, with the field."""
    if isinstance(pod, client.V1PodSpec):
        plain: dict[str, Any] = client.ApiClient().sanitize_for_serialization(pod)  # type: ignore[no-untyped-call]
    elif isinstance(pod, Mapping):
        plain = copy.deepcopy(dict(pod))
    else:
        raise TaskTemplateError(f"task {task}: pod must be a PodSpec dict, got {type(pod)}")
    where = f"task {task}: pod template"
    if "spec" in plain or "metadata" in plain:
        raise TaskTemplateError(f"{where}: give a PodSpec (containers, volumes, ...), not a Pod")
    for name, why in REFUSED_FIELDS.items():
        if plain.get(name):
            raise TaskTemplateError(f"{where}: spec.{name} is not allowed: {why}")
    containers = plain.get("containers") or []
    if containers and (containers[0].get("resources") or {}):
        raise TaskTemplateError(
            f"{where}: spec.containers[0].resources is not allowed: the task's container gets"
            " TaskInfo.resources (less what the other containers request)"
        )
    return plain


class TaskState(StrEnum):
    """Mesos' task states, read from Pod phases.

    STAGING: launched (or about to be), its Pod not yet running. RUNNING: the Pod runs.
    FINISHED: it succeeded. FAILED: it failed. KILLED: its Pod was deleted. LOST: its Pod
    went with its node. The last four are terminal: the task will not run again.
    """

    STAGING = "Staging"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"
    KILLED = "Killed"
    LOST = "Lost"

    @property
    def terminal(self) -> bool:
        return self not in (TaskState.STAGING, TaskState.RUNNING)


@dataclass(frozen=True, slots=True)
class TaskStatus:
    task: str
    state: TaskState
    node: str | None = None
    pod_ip: str | None = None
    offer: str | None = None
    message: str = ""
