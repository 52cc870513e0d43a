"""What the master reports in status: computed from the cache and the last cycle, pure.

Statuses carry conditions with ``observedGeneration``; a condition keeps its
``lastTransitionTime`` until its status changes, as the API conventions ask.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubedrf.allocator import AllocationResult, Reason
from kubedrf.allocator.roles import lineage
from kubedrf.api.conventions import format_time
from kubedrf.master.cache import ClusterCache
from kubedrf.master.records import FrameworkRecord
from kubedrf.resources import Resources, format_amount, total


@dataclass(frozen=True, slots=True)
class Holding:
    """What one (framework, role) holds: running tasks and outstanding offers."""

    framework: str
    role: str
    resources: Resources
    tasks: int
    offers: int


def holdings(cache: ClusterCache, now: float) -> list[Holding]:
    resources: dict[tuple[str, str], list[Resources]] = defaultdict(list)
    tasks: dict[tuple[str, str], int] = defaultdict(int)
    offers: dict[tuple[str, str], int] = defaultdict(int)
    managed = {name for name, node in cache.nodes.items() if cache.is_managed(node)}
    charged = {pod.key for pod in cache.charged_pods()}
    for pod in cache.live_pods():
        if pod.framework_key and pod.role and pod.node in managed:
            tasks[pod.framework_key, pod.role] += 1
            if pod.key in charged:
                resources[pod.framework_key, pod.role].append(pod.requests)
    for offer in cache.outstanding_offers():
        assert offer.spec is not None and offer.framework_key is not None
        resources[offer.framework_key, offer.spec.role].append(offer.resources())
        offers[offer.framework_key, offer.spec.role] += 1
    return [
        Holding(fw, role, total(items), tasks[fw, role], offers[fw, role])
        for (fw, role), items in sorted(resources.items())
    ]


def cluster_total(cache: ClusterCache) -> Resources:
    return total(n.allocatable for n in cache.nodes.values() if cache.is_managed(n))


class ConditionSet:
    """Conditions of one object for one generation, keeping unchanged transition times."""

    def __init__(self, body: Mapping[str, Any] | None, generation: int, now: float) -> None:
        conditions = ((body or {}).get("status") or {}).get("conditions") or []
        self.previous = {c.get("type"): c for c in conditions if isinstance(c, Mapping)}
        self.generation = generation
        self.now = now
        self.items: list[dict[str, Any]] = []

    def set(self, type_: str, status: bool, reason: str, message: str) -> None:
        value = "True" if status else "False"
        old = self.previous.get(type_)
        since = (
            old["lastTransitionTime"]
            if old and old.get("status") == value and old.get("lastTransitionTime")
            else format_time(self.now)
        )
        self.items.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": message,
                "observedGeneration": self.generation,
                "lastTransitionTime": since,
            }
        )


def framework_status(
    cache: ClusterCache,
    record: FrameworkRecord,
    *,
    mine: list[Holding],
    cluster: Resources,
    result: AllocationResult | None,
    now: float,
) -> dict[str, Any]:
    """``mine``: the framework's holdings; ``cluster``: the managed nodes' total."""
    body = cache.bodies.get(("framework", record.key))
    generation = record.generation
    everything = total(h.resources for h in mine)
    excluded = cache.settings.fairness_excluded
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "allocated": {str(h.role): h.resources.to_quantities() for h in mine},
        "dominantShare": round(everything.dominant_share(cluster, excluded), 4),
        "tasks": sum(h.tasks for h in mine),
        "outstandingOffers": sum(h.offers for h in mine),
    }
    refused = cache.refused_roles(record)
    conditions = ConditionSet(body, generation, now)
    if record.spec is None:
        conditions.set("Ready", False, "InvalidSpec", record.error or "invalid spec")
    elif len(refused) == len(record.spec.roles):
        conditions.set("Ready", False, "RoleRefused", "; ".join(refused.values()))
    elif not record.spec.active_roles():
        conditions.set("Ready", False, "Suppressed", "every role is suppressed")
    else:
        usable = [r for r in record.spec.active_roles() if r not in refused]
        conditions.set("Ready", True, "Registered", "receiving offers under " + ", ".join(usable))
    if refused:
        conditions.set("RolesAllowed", False, "RoleRefused", "; ".join(refused.values()))
    else:
        conditions.set("RolesAllowed", True, "Allowed", "every role allows this namespace")
    idle = idle_reasons(record, result)
    offered_now = result is not None and any(o.framework == record.key for o in result.offers)
    if status["outstandingOffers"] or offered_now:
        conditions.set("Offered", True, "OffersMade", "offers outstanding")
    elif idle:
        message = "; ".join(f"role {role}: {why.value}" for role, why in sorted(idle.items()))
        conditions.set("Offered", False, next(iter(sorted(idle.items())))[1].value, message)
    else:
        conditions.set("Offered", False, "NoOffers", "no offers outstanding")
    status["conditions"] = conditions.items
    return status


def idle_reasons(record: FrameworkRecord, result: AllocationResult | None) -> dict[str, Reason]:
    if result is None:
        return {}
    return {role: why for (fw, role), why in result.reasons().items() if fw == record.key}


def role_statuses(
    cache: ClusterCache, held: list[Holding], cluster: Resources
) -> dict[str, dict[str, Any]]:
    excluded = cache.settings.fairness_excluded
    per_role: dict[str, list[Resources]] = defaultdict(list)
    frameworks: dict[str, set[str]] = defaultdict(set)
    for h in held:
        for name in lineage(h.role):
            per_role[name].append(h.resources)
            frameworks[name].add(h.framework)
    statuses = {}
    for name, record in cache.roles.items():
        allocated = total(per_role.get(name, []))
        weight = record.spec.weight if record.spec else 1.0
        statuses[name] = {
            "observedGeneration": record.generation,
            "dominantShare": round(allocated.dominant_share(cluster, excluded) / weight, 4),
            "allocated": allocated.to_quantities(),
            "frameworks": len(frameworks.get(name, ())),
        }
    return statuses


def quota_statuses(
    cache: ClusterCache, held: list[Holding], now: float
) -> dict[str, dict[str, Any]]:
    per_role: dict[str, list[Resources]] = defaultdict(list)
    for h in held:
        for name in lineage(h.role):
            per_role[name].append(h.resources)
    owners: dict[str, str] = {}
    for name, record in sorted(cache.quotas.items()):
        if record.spec is not None:
            owners.setdefault(record.spec.role, name)
    cluster = cluster_total(cache)
    statuses = {}
    for name, record in cache.quotas.items():
        conditions = ConditionSet(cache.bodies.get(("quota", name)), record.generation, now)
        status: dict[str, Any] = {"observedGeneration": record.generation}
        if record.spec is None:
            conditions.set("Valid", False, "InvalidSpec", record.error or "invalid spec")
        elif owners.get(record.spec.role) != name:
            role = record.spec.role
            conditions.set(
                "Valid", False, "Conflict", f"role {role} already has quota {owners[role]}"
            )
        else:
            conditions.set("Valid", True, "Active", "in force")
            status["consumed"] = total(per_role.get(record.spec.role, [])).to_quantities()
            _guarantee_fits(conditions, record.spec.guarantee_resources(), cluster)
        status["conditions"] = conditions.items
        statuses[name] = status
    return statuses


def _guarantee_fits(conditions: ConditionSet, guarantee: Resources, cluster: Resources) -> None:
    """A guarantee beyond the managed nodes' total can never be met, yet its headroom holds
    back everything free of those resources (as in Mesos): roles without a guarantee then get
    none of them, so say so where the guarantee is declared."""
    over = [
        f"{name} {format_amount(name, amount)} > {format_amount(name, cluster[name])}"
        for name, amount in sorted(guarantee.items())
        if amount > cluster[name]
    ]
    if over:
        message = (
            f"spec.guarantee exceeds the managed nodes' total ({', '.join(over)}): whatever"
            " is free of these is held back for it, and roles without a guarantee get none"
        )
        conditions.set("GuaranteeFits", False, "GuaranteeExceedsCluster", message)
    else:
        conditions.set("GuaranteeFits", True, "WithinCluster", "the managed nodes can hold it")


def reservation_statuses(cache: ClusterCache, now: float) -> dict[str, dict[str, Any]]:
    statuses = {}
    for name, record in cache.reservations.items():
        body = cache.bodies.get(("reservation", name))
        conditions = ConditionSet(body, record.generation, now)
        spec = record.spec
        node = cache.nodes.get(spec.node_name) if spec else None
        if spec is None:
            conditions.set("Ready", False, "InvalidSpec", record.error or "invalid spec")
        elif node is None or not cache.is_managed(node):
            message = f"spec.nodeName: node {spec.node_name} is not a managed node"
            conditions.set("Ready", False, "NodeNotFound", message)
        elif not spec.reserved() <= node.allocatable:
            message = f"spec.resources exceed node {node.name}'s allocatable"
            conditions.set("Ready", False, "ExceedsNode", message)
        else:
            conditions.set("Ready", True, "Reserved", f"reserved on {node.name}")
        statuses[name] = {"observedGeneration": record.generation, "conditions": conditions.items}
    return statuses


def differs(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether a status patch would change anything (ignoring transition times)."""

    def strip(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: strip(v) for k, v in value.items() if k != "lastTransitionTime"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    existing = (current or {}).get("status") or {}
    return any(strip(existing.get(k)) != strip(v) for k, v in desired.items())
