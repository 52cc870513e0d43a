"""What a framework's scheduler sees and says: offers, tasks and task states."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubedrf.api.conventions import parse_time
from kubedrf.resources import Resources


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

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Offer:
        spec = body["spec"]
        return cls(
            name=body["metadata"]["name"],
            framework=spec["framework"],
            role=spec["role"],
            node=spec["nodeName"],
            resources=Resources.parse(spec["resources"]),
            expires_at=parse_time(spec.get("expiresAt")) or 0.0,
            sized_for=tuple(
                (Resources.parse(task["resources"]), int(task["count"]))
                for task in spec.get("sizedFor") or []
            ),
        )


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task to launch: one Pod. ``resources`` are its requests (and limits)."""

    name: str
    resources: Resources
    image: str = "registry.k8s.io/pause:3.10"
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


class TaskState(StrEnum):
    """Mesos' task states, read from Pod phases."""

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
