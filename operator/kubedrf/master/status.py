"""What the master reports in status: computed from a cycle's view and result, pure.

Statuses carry conditions with ``observedGeneration``; a condition keeps its
``lastTransitionTime`` until its status changes, as the API conventions ask.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from kubedrf.allocator import AllocationResult, Reason
from kubedrf.allocator.roles import lineage
from kubedrf.allocator.shares import Shares
from kubedrf.api.conventions import format_time, parse_time
from kubedrf.master.records import FrameworkRecord, InverseOfferRecord
from kubedrf.master.view import Holding, MasterView
from kubedrf.resources import Resources, format_amount, total


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
    view: MasterView,
    record: FrameworkRecord,
    *,
    shares: Shares,
    result: AllocationResult | None,
) -> dict[str, Any]:
    """Allocated, tasks and offers from the view's holdings; the share DRF sorted by."""
    body = view.bodies.get(("framework", record.key))
    generation = record.generation
    mine = [h for h in holdings(view, result) if h.framework == record.key]
    by_role: dict[str, list[Resources]] = defaultdict(list)
    for h in mine:
        by_role[h.role].append(h.resources)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "allocated": {role: total(items).to_quantities() for role, items in by_role.items()},
        "dominantShare": round(shares.frameworks.get(record.key, 0.0), 4),
        "tasks": sum(h.tasks for h in mine),
        "outstandingOffers": sum(h.offers for h in mine),
    }
    refused = view.refused.get(record.key, {})
    conditions = ConditionSet(body, generation, view.now)
    if record.spec is None:
        conditions.set("Ready", False, "InvalidSpec", record.error or "invalid spec")
    elif (silence := view.disconnected.get(record.key)) is not None:
        conditions.set("Ready", False, "Disconnected", silence.message())
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
    if record.key in view.disconnected:
        message = view.disconnected[record.key].message()
        conditions.set("Connected", False, "Disconnected", message)
    else:
        conditions.set("Connected", True, "Heard", "heard from within spec.failoverTimeout")
    idle = idle_reasons(record, result)
    offered_now = result is not None and any(o.framework == record.key for o in result.offers)
    if status["outstandingOffers"] or offered_now:
        conditions.set("Offered", True, "OffersMade", "offers outstanding")
    elif idle:
        message = "; ".join(f"role {role}: {why.value}" for role, why in sorted(idle.items()))
        conditions.set("Offered", False, next(iter(sorted(idle.items())))[1].value, message)
    else:
        conditions.set("Offered", False, "NoOffers", "no offers outstanding")
    asked = pending_inverse_offers(view, record.key)
    status["revoking"] = sum(len(r.spec.tasks) for r in asked if r.spec)
    if asked:
        conditions.set("Revoking", True, "InverseOffers", "; ".join(_asked(r) for r in asked))
    else:
        conditions.set("Revoking", False, "NothingAsked", "no resources asked back")
    status["conditions"] = conditions.items
    return status


def pending_inverse_offers(view: MasterView, framework: str) -> list[InverseOfferRecord]:
    return sorted(
        (r for r in view.inverse_offers.values() if r.pending and r.framework_key == framework),
        key=lambda r: r.key,
    )


def _asked(record: InverseOfferRecord) -> str:
    spec = record.spec
    assert spec is not None
    who = f"role {spec.beneficiary.role} of {spec.beneficiary.namespace}/"
    return (
        f"{record.name}: {len(spec.tasks)} task(s) on {spec.node_name} for {who}"
        f"{spec.beneficiary.framework}, deadline {format_time(parse_time(spec.deadline) or 0)}"
    )


def idle_reasons(record: FrameworkRecord, result: AllocationResult | None) -> dict[str, Reason]:
    if result is None:
        return {}
    return {role: why for (fw, role), why in result.reasons().items() if fw == record.key}


def holdings(view: MasterView, result: AllocationResult | None) -> list[Holding]:
    """The view's holdings and the offers this cycle makes: what holders hold once it ends."""
    made = [
        Holding(o.framework, o.role, o.node, o.resources, tasks=0, offers=1)
        for o in (result.offers if result else ())
    ]
    return [*view.holdings, *made]


def role_statuses(
    view: MasterView, shares: Shares, result: AllocationResult | None
) -> dict[str, dict[str, Any]]:
    frameworks: dict[str, set[str]] = defaultdict(set)
    for h in holdings(view, result):
        for name in lineage(h.role):
            frameworks[name].add(h.framework)
    return {
        name: {
            "observedGeneration": record.generation,
            "dominantShare": round(shares.roles.get(name, 0.0), 4),
            "allocated": shares.role_allocations.get(name, Resources()).to_quantities(),
            "frameworks": len(frameworks.get(name, ())),
        }
        for name, record in view.roles.items()
    }


def quota_statuses(view: MasterView, shares: Shares) -> dict[str, dict[str, Any]]:
    statuses = {}
    for name, record in view.quotas.items():
        conditions = ConditionSet(view.bodies.get(("quota", name)), record.generation, view.now)
        status: dict[str, Any] = {"observedGeneration": record.generation}
        if record.spec is None:
            conditions.set("Valid", False, "InvalidSpec", record.error or "invalid spec")
        elif (owner := view.quota_owners[record.spec.role]) != name:
            role = record.spec.role
            conditions.set("Valid", False, "Conflict", f"role {role} already has quota {owner}")
        else:
            conditions.set("Valid", True, "Active", "in force")
            consumed = shares.role_allocations.get(record.spec.role, Resources())
            status["consumed"] = consumed.to_quantities()
            _guarantee_fits(conditions, record.spec.guarantee_resources(), shares.cluster)
        status["conditions"] = conditions.items
        statuses[name] = status
    return statuses


def _guarantee_fits(conditions: ConditionSet, guarantee: Resources, cluster: Resources) -> None:
    """A guarantee beyond the usable managed nodes' total can never be met, yet its headroom holds
    back everything free of those resources (as in Mesos): roles without a guarantee then get
    none of them, so say so where the guarantee is declared."""
    over = [
        f"{name} {format_amount(name, amount)} > {format_amount(name, cluster[name])}"
        for name, amount in sorted(guarantee.items())
        if amount > cluster[name]
    ]
    if over:
        message = (
            f"spec.guarantee exceeds the usable managed nodes' total ({', '.join(over)}): whatever"
            " is free of these is held back for it, and roles without a guarantee get none"
        )
        conditions.set("GuaranteeFits", False, "GuaranteeExceedsCluster", message)
    else:
        conditions.set("GuaranteeFits", True, "WithinCluster", "the usable nodes can hold it")


def reservation_statuses(view: MasterView) -> dict[str, dict[str, Any]]:
    statuses = {}
    for name, record in view.reservations.items():
        body = view.bodies.get(("reservation", name))
        conditions = ConditionSet(body, record.generation, view.now)
        spec = record.spec
        node = view.nodes.get(spec.node_name) if spec else None
        if spec is None:
            conditions.set("Ready", False, "InvalidSpec", record.error or "invalid spec")
        elif node is None or node.name not in view.managed:
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
