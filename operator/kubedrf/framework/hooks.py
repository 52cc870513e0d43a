"""Pod-mutation hooks: Mesos' prelaunch hooks, called on every task Pod before it is created.

A hook takes the Pod body, the task and the offer, and returns the (possibly new) body.
Installed hooks are entry points in the group ``kubedrf.pod_mutation_hooks``; a driver runs
the ones it is given, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

from kubedrf.framework.model import Offer, TaskInfo

PodBody = dict[str, Any]
PodMutationHook = Callable[[PodBody, TaskInfo, Offer], PodBody]
ENTRY_POINT_GROUP = "kubedrf.pod_mutation_hooks"


def load_hooks(names: Iterable[str]) -> list[PodMutationHook]:
    """Resolve installed hooks by name; an unknown name is an error that lists the known."""
    available = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    hooks = []
    for name in names:
        if name not in available:
            known = ", ".join(sorted(available)) or "none"
            raise ValueError(f"unknown pod-mutation hook {name!r} (installed: {known})")
        hooks.append(available[name].load())
    return hooks


def inject_offer_env(pod: PodBody, task: TaskInfo, offer: Offer) -> PodBody:
    """Tell the task where it runs: its offer, role and node as environment variables."""
    extra = [
        {"name": "KUBEDRF_OFFER", "value": offer.name},
        {"name": "KUBEDRF_ROLE", "value": offer.role},
        {"name": "KUBEDRF_NODE", "value": offer.node},
        {"name": "KUBEDRF_TASK", "value": task.name},
    ]
    for container in pod["spec"]["containers"]:
        container["env"] = [*container.get("env", []), *extra]
    return pod
