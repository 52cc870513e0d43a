"""Gated Pods as tasks of the built-in framework, and its decisions about them, pure: which
role a Pod runs under, what the framework demands, which Pods an offer releases, the patch
that releases one, and why a Pod still waits."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kubedrf.api import RoleSpec
from kubedrf.api.conventions import LABEL_FRAMEWORK, LABEL_OFFER, LABEL_ROLE, parse_time
from kubedrf.framework.model import Offer, ask
from kubedrf.framework.pods import MANAGED_TOLERATION, pinned_affinity
from kubedrf.master.records import pod_requests
from kubedrf.resources import PODS, Resources

#: The scheduling gate that makes a Pod a task of the built-in framework.
GATE = "kubedrf.io/offer"
#: Pods sharing this label's value are released all or none ...
LABEL_GANG = "kubedrf.io/gang"
#: ... once this many of them wait (default: one, which is no gang at all).
LABEL_GANG_SIZE = "kubedrf.io/gang-size"
#: The Framework the built-in framework registers in each namespace with gated Pods.
FRAMEWORK_NAME = "workloads"
#: Labels on that Framework, so people and tools can tell it is kubedrf's own.
FRAMEWORK_LABELS = {"app.kubernetes.io/managed-by": "kubedrf"}
DEFAULT_ROLE = "default"
#: A Framework names at most this many task shapes in spec.demand (the API's bound).
MAX_SHAPES = 16

Body = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class GatedPod:
    """A Pod waiting behind the gate: one task of the built-in framework."""

    namespace: str
    name: str
    role: str
    shape: Resources
    created_at: float
    gang: str | None = None
    gang_size: int = 1
    #: Why the Pod cannot be a task, in words its owner can act on; None when it can.
    problem: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def unit(self) -> str:
        """What is released together: the gang, or the Pod alone."""
        return f"gang {self.gang}" if self.gang else f"pod {self.name}"


def is_gated(body: Body) -> bool:
    gates = (body.get("spec") or {}).get("schedulingGates") or []
    return any(gate.get("name") == GATE for gate in gates)


def role_of(pod_labels: Mapping[str, str], namespace_labels: Mapping[str, str]) -> str:
    """The Pod's ``kubedrf.io/role`` label, else its Namespace's, else ``default``."""
    return pod_labels.get(LABEL_ROLE) or namespace_labels.get(LABEL_ROLE) or DEFAULT_ROLE


def parse_gated(body: Body, namespace_labels: Mapping[str, str]) -> GatedPod | None:
    """The task a gated Pod is, or None for a Pod without the gate."""
    if not is_gated(body):
        return None
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    labels = meta.get("labels") or {}
    shape = pod_requests(spec).without([PODS])
    problem = None
    if shape.is_empty():
        problem = "it requests no resources: give its containers resources.requests"
    size_text = labels.get(LABEL_GANG_SIZE, "1")
    size = int(size_text) if size_text.isdigit() else 0
    if size < 1:
        problem = f"label {LABEL_GANG_SIZE}: must be a whole number >= 1, not {size_text!r}"
    return GatedPod(
        namespace=meta.get("namespace", ""),
        name=meta["name"],
        role=role_of(labels, namespace_labels),
        shape=shape,
        created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
        gang=labels.get(LABEL_GANG),
        gang_size=max(size, 1),
        problem=problem,
    )


def units(waiting: Sequence[GatedPod]) -> tuple[list[list[GatedPod]], dict[str, str]]:
    """The waiting Pods as units released together, oldest first, and why the others (by
    Pod key) cannot be released yet: a gang with fewer members than its size, a bad Pod."""
    held: dict[str, str] = {}
    gangs: dict[tuple[str, str], list[GatedPod]] = defaultdict(list)
    ready: list[list[GatedPod]] = []
    for pod in sorted(waiting, key=lambda p: (p.created_at, p.name)):
        if pod.problem:
            held[pod.key] = pod.problem
        elif pod.gang:
            gangs[pod.role, pod.gang].append(pod)
        else:
            ready.append([pod])
    for (_, gang), members in gangs.items():
        size = max(p.gang_size for p in members)
        if len(members) < size:
            why = f"gang {gang} has {len(members)} of its {size} Pods; it starts all or none"
            held.update((p.key, why) for p in members)
        else:
            ready.append(members[:size])
    ready.sort(key=lambda unit: (unit[0].created_at, unit[0].name))
    return ready, held


def demand(waiting: Sequence[GatedPod]) -> list[tuple[Resources, int]]:
    """What the framework still wants: releasable Pods grouped by shape, the most numerous
    shapes first, at most MAX_SHAPES of them (the rest are asked for once those run)."""
    ready, _ = units(waiting)
    counts = Counter(pod.shape for unit in ready for pod in unit)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], sorted(item[0].items())))
    return ranked[:MAX_SHAPES]


def plan(offers: Sequence[Offer], waiting: Sequence[GatedPod]) -> dict[str, list[GatedPod]]:
    """Which waiting Pods each offer releases (by offer name), oldest unit first; a gang
    goes only when every member fits in the offers of its role, spread over nodes if need
    be. Offers given no Pod are left out: the caller declines them."""
    ready, _ = units(waiting)
    room = {offer.name: offer.resources for offer in offers}
    placed: dict[str, list[GatedPod]] = defaultdict(list)
    for unit in ready:
        tentative: list[tuple[str, GatedPod]] = []
        for pod in unit:
            where = next(
                (
                    o
                    for o in offers
                    if o.role == pod.role and ask(o.resources, pod.shape) <= room[o.name]
                ),
                None,
            )
            if where is None:
                break
            room[where.name] -= ask(where.resources, pod.shape)
            tentative.append((where.name, pod))
        if len(tentative) < len(unit):  # all or none: give back what the unit took
            for name, pod in tentative:
                offer = next(o for o in offers if o.name == name)
                room[name] += ask(offer.resources, pod.shape)
            continue
        for name, pod in tentative:
            placed[name].append(pod)
    return dict(placed)


def release_patch(body: Body, offer: Offer) -> list[dict[str, Any]]:
    """The JSON patch that turns a gated Pod into a task of ``offer``: the task labels, the
    managed-node toleration and required node affinity on the offer's node, and the gate
    removed (other gates stay). It first tests that the gates are as read, so a Pod changed
    or released meanwhile is left alone. Labels go in before the toleration, as the chart's
    admission policy wants tolerating Pods labelled."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    gates = spec.get("schedulingGates") or []
    labels = {LABEL_FRAMEWORK: offer.framework, LABEL_ROLE: offer.role, LABEL_OFFER: offer.name}
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/spec/schedulingGates", "value": gates}]
    if meta.get("labels"):
        ops += [
            {"op": "add", "path": f"/metadata/labels/{_pointer(key)}", "value": value}
            for key, value in labels.items()
        ]
    else:
        ops.append({"op": "add", "path": "/metadata/labels", "value": labels})
    tolerations = spec.get("tolerations") or []
    if MANAGED_TOLERATION not in tolerations:
        ops.append(
            {"op": "add", "path": "/spec/tolerations", "value": [*tolerations, MANAGED_TOLERATION]}
        )
    owner = f"pod {meta.get('name')}"
    affinity = pinned_affinity(spec.get("affinity") or {}, offer.node, owner)
    ops.append({"op": "add", "path": "/spec/affinity", "value": affinity})
    kept = [gate for gate in gates if gate.get("name") != GATE]
    ops.append({"op": "add", "path": "/spec/schedulingGates", "value": kept})
    return ops


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class RoleStanding:
    """Where a role stands, as the master reports it: its dominant share, and its fair share
    (its weight over the weights of the roles in use)."""

    share: float
    fair_share: float


def waiting_note(
    pod: GatedPod,
    standing: RoleStanding | None,
    held: str | None = None,
    refused: str | None = None,
) -> tuple[str, str]:
    """(reason, note) for an Event on a waiting Pod, in its owner's terms: ``held`` says why
    it cannot be released yet, ``refused`` why its role is closed to its namespace. The
    reason alone decides whether a new Event is due, so shares moving every cycle repeat
    nothing."""
    if refused:
        return "RoleRefused", f"Not scheduled: {refused} (set label kubedrf.io/role)"
    if held:
        return ("WaitingForGang" if pod.problem is None else "NotSchedulable"), f"Waiting: {held}"
    shape = ", ".join(f"{k}={v}" for k, v in pod.shape.to_quantities().items())
    note = f"Waiting for an offer of {shape} to role {pod.role}"
    if standing is None:
        return "WaitingForOffer", note + " (the role has no allocation yet)"
    state = "at or above" if standing.share >= standing.fair_share - 1e-9 else "below"
    return (
        "WaitingForOffer",
        f"{note}: the role holds a dominant share of {standing.share:.2f}, {state} its fair"
        f" share of {standing.fair_share:.2f}; it runs when capacity frees up on a node"
        + (" and others come down to theirs" if state == "below" else ""),
    )


def standings(roles: Sequence[Body]) -> dict[str, RoleStanding]:
    """Each Role's standing from Role objects (their status is the master's report)."""
    weights = {
        r["metadata"]["name"]: float((r.get("spec") or {}).get("weight") or 1.0) for r in roles
    }
    used = {
        r["metadata"]["name"] for r in roles if ((r.get("status") or {}).get("frameworks") or 0) > 0
    }
    in_use = sum(weights[name] for name in used) or 1.0
    return {
        name: RoleStanding(
            share=float((r.get("status") or {}).get("dominantShare") or 0.0) * weights[name],
            fair_share=weights[name] / in_use if name in used else 0.0,
        )
        for r in roles
        if (name := r["metadata"]["name"])
    }


def role_specs(roles: Sequence[Body]) -> dict[str, RoleSpec]:
    """The readable specs of Role objects, by name (tenancy is decided on these)."""
    specs = {}
    for role in roles:
        try:
            specs[role["metadata"]["name"]] = RoleSpec.model_validate(role.get("spec") or {})
        except ValidationError:
            continue  # the master reports it on the Role
    return specs
