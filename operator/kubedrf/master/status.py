"""What the master reports in status: computed from a cycle's view and result, pure.

Statuses carry conditions with ``observedGeneration``; a condition keeps its
``lastTransitionTime`` until its status changes, as the API conventions ask.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from kubedrf.allocator import AllocationResult, Reason, Waiting
from kubedrf.allocator.oversized import Oversized
from kubedrf.allocator.roles import lineage
from kubedrf.allocator.shares import Shares
from kubedrf.api import FrameworkStatus, QuotaStatus, ReservationStatus, RoleStatus
from kubedrf.api.conventions import format_time, moment, parse_time
from kubedrf.api.framework import (
    MAX_WAITING_ITEMS,
    HolderAboveFairShare,
    RoleWaiting,
    WaitingNext,
)
from kubedrf.api.types import Condition, ConditionType, KubeModel, to_api
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
        self.items: list[Condition] = []

    def set(self, type_: ConditionType, status: bool, reason: str, message: str) -> None:
        value = "True" if status else "False"
        old = self.previous.get(type_)
        # A time that does not parse (written by hand, say) restarts at now, never fails.
        kept = (
            parse_time(old.get("lastTransitionTime"))
            if old and old.get("status") == value
            else None
        )
        since = moment(self.now if kept is None else kept)
        self.items.append(
            Condition(
                type=type_,
                status=value,
                reason=reason,
                message=message,
                observed_generation=self.generation,
                last_transition_time=since,
            )
        )


def framework_status(
    view: MasterView,
    record: FrameworkRecord,
    *,
    shares: Shares,
    result: AllocationResult | None,
    oversized: Sequence[Oversized] = (),
    waiting: Sequence[Waiting] = (),
    held: Sequence[Holding] | None = None,
) -> FrameworkStatus:
    """Allocated, tasks and offers from the view's holdings; the share DRF sorted by.

    ``oversized`` are the cycle's task shapes that no node can hold (``allocator.oversized``);
    this framework's get a condition, and so a Warning Event when it turns False.
    ``waiting`` is the allocator's explanation for each of its roles offered nothing.
    """
    body = view.bodies.get(("framework", record.key))
    generation = record.generation
    mine = held if held is not None else holdings_by_framework(view, result).get(record.key, [])
    by_role: dict[str, list[Resources]] = defaultdict(list)
    for h in mine:
        by_role[h.role].append(h.resources)
    outstanding = sum(h.offers for h in mine)
    refused = view.refused.get(record.key, {})
    conditions = ConditionSet(body, generation, view.now)
    if record.spec is None:
        conditions.set(ConditionType.READY, False, "InvalidSpec", record.error or "invalid spec")
    elif (silence := view.disconnected.get(record.key)) is not None:
        conditions.set(ConditionType.READY, False, "Disconnected", silence.message())
    elif len(refused) == len(record.spec.roles):
        conditions.set(ConditionType.READY, False, "RoleRefused", "; ".join(refused.values()))
    elif not record.spec.active_roles():
        conditions.set(ConditionType.READY, False, "Suppressed", "every role is suppressed")
    else:
        usable = [r for r in record.spec.active_roles() if r not in refused]
        message = "receiving offers under " + ", ".join(usable)
        conditions.set(ConditionType.READY, True, "Registered", message)
    if refused:
        message = "; ".join(refused.values())
        conditions.set(ConditionType.ROLES_ALLOWED, False, "RoleRefused", message)
    else:
        message = "every role allows this namespace"
        conditions.set(ConditionType.ROLES_ALLOWED, True, "Allowed", message)
    if record.key in view.disconnected:
        message = view.disconnected[record.key].message()
        conditions.set(ConditionType.CONNECTED, False, "Disconnected", message)
    else:
        message = "heard from within spec.failoverTimeout"
        conditions.set(ConditionType.CONNECTED, True, "Heard", message)
    idle = idle_reasons(record, result)
    offered_now = result is not None and any(o.framework == record.key for o in result.offers)
    if outstanding or offered_now:
        conditions.set(ConditionType.OFFERED, True, "OffersMade", "offers outstanding")
    elif idle:
        explained = {w.role: w.sentence(format_time) for w in waiting}
        message = " | ".join(
            f"role {role}: {explained.get(role, why.value)}" for role, why in sorted(idle.items())
        )
        reason = next(iter(sorted(idle.items())))[1].value
        conditions.set(ConditionType.OFFERED, False, reason, message)
    else:
        conditions.set(ConditionType.OFFERED, False, "NoOffers", "no offers outstanding")
    too_large = [o.message() for o in oversized if o.framework == record.key]
    if too_large:
        message = "; ".join(too_large)
        conditions.set(ConditionType.TASKS_FIT, False, "TaskLargerThanAnyNode", message)
    else:
        message = "every task it demands fits some node"
        conditions.set(ConditionType.TASKS_FIT, True, "TasksFit", message)
    asked = pending_inverse_offers(view, record.key)
    if asked:
        message = "; ".join(_asked(r) for r in asked)
        conditions.set(ConditionType.REVOKING, True, "InverseOffers", message)
    else:
        conditions.set(ConditionType.REVOKING, False, "NothingAsked", "no resources asked back")
    return FrameworkStatus(
        observed_generation=generation,
        role_list=",".join(record.spec.roles) if record.spec else None,
        allocated={role: total(items).to_quantities() for role, items in by_role.items()},
        dominant_share=round(shares.frameworks.get(record.key, 0.0), 4),
        tasks=sum(h.tasks for h in mine),
        outstanding_offers=outstanding,
        revoking=sum(len(r.spec.tasks) for r in asked if r.spec),
        waiting=[role_waiting(w) for w in waiting[:MAX_WAITING_ITEMS]],
        conditions=conditions.items,
    )


def role_waiting(waiting: Waiting) -> RoleWaiting:
    """The allocator's explanation as the Framework status carries it."""
    amount = waiting.resource
    return RoleWaiting(
        role=waiting.role,
        reason=waiting.reason.value,
        message=waiting.sentence(format_time),
        resource=amount,
        needed=None if amount is None else format_amount(amount, waiting.needed),
        available=None if amount is None else format_amount(amount, waiting.available),
        dominant_share=round(waiting.dominant_share, 4),
        fair_share=round(waiting.fair_share, 4),
        holders_above_fair_share=[
            HolderAboveFairShare(
                framework=h.framework,
                role=h.role,
                dominant_share=round(h.share, 4),
                fair_share=round(h.fair_share, 4),
            )
            for h in waiting.holders[:MAX_WAITING_ITEMS]
        ],
        next=[
            WaitingNext(
                kind=n.kind,
                message=n.text,
                at=None if n.deadline is None else moment(n.deadline),
            )
            for n in waiting.next[:MAX_WAITING_ITEMS]
        ],
    )


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


def holdings_by_framework(
    view: MasterView, result: AllocationResult | None
) -> dict[str, list[Holding]]:
    """``holdings`` per framework: grouped once per cycle, not scanned once per framework
    (a thousand frameworks would each read every node's holdings)."""
    grouped: dict[str, list[Holding]] = defaultdict(list)
    for h in holdings(view, result):
        grouped[h.framework].append(h)
    return grouped


def role_statuses(
    view: MasterView, shares: Shares, result: AllocationResult | None
) -> dict[str, RoleStatus]:
    frameworks: dict[str, set[str]] = defaultdict(set)
    for h in holdings(view, result):
        for name in lineage(h.role):
            frameworks[name].add(h.framework)
    return {
        name: RoleStatus(
            observed_generation=record.generation,
            dominant_share=round(shares.roles.get(name, 0.0), 4),
            allocated=shares.role_allocations.get(name, Resources()).to_quantities(),
            frameworks=len(frameworks.get(name, ())),
        )
        for name, record in view.roles.items()
    }


def quota_statuses(view: MasterView, shares: Shares) -> dict[str, QuotaStatus]:
    statuses = {}
    for name, record in view.quotas.items():
        conditions = ConditionSet(view.bodies.get(("quota", name)), record.generation, view.now)
        consumed: dict[str, str] | None = None
        if record.spec is None:
            message = record.error or "invalid spec"
            conditions.set(ConditionType.VALID, False, "InvalidSpec", message)
        elif (owner := view.quota_owners[record.spec.role]) != name:
            message = f"role {record.spec.role} already has quota {owner}"
            conditions.set(ConditionType.VALID, False, "Conflict", message)
        else:
            conditions.set(ConditionType.VALID, True, "Active", "in force")
            consumed = shares.role_allocations.get(record.spec.role, Resources()).to_quantities()
            _guarantee_fits(conditions, record.spec.guarantee_resources(), shares.cluster)
        fields: dict[str, Any] = {
            "observed_generation": record.generation,
            "conditions": conditions.items,
        }
        if consumed is not None:  # Unset, not empty, when invalid: the patch leaves it be.
            fields["consumed"] = consumed
        statuses[name] = QuotaStatus.model_validate(fields)
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
        conditions.set(ConditionType.GUARANTEE_FITS, False, "GuaranteeExceedsCluster", message)
    else:
        message = "the usable nodes can hold it"
        conditions.set(ConditionType.GUARANTEE_FITS, True, "WithinCluster", message)


def reservation_statuses(view: MasterView) -> dict[str, ReservationStatus]:
    statuses = {}
    for name, record in view.reservations.items():
        body = view.bodies.get(("reservation", name))
        conditions = ConditionSet(body, record.generation, view.now)
        spec = record.spec
        node = view.nodes.get(spec.node_name) if spec else None
        if spec is None:
            message = record.error or "invalid spec"
            conditions.set(ConditionType.READY, False, "InvalidSpec", message)
        elif node is None or node.name not in view.managed:
            message = f"spec.nodeName: node {spec.node_name} is not a managed node"
            conditions.set(ConditionType.READY, False, "NodeNotFound", message)
        elif not spec.reserved() <= node.allocatable:
            message = f"spec.resources exceed node {node.name}'s allocatable"
            conditions.set(ConditionType.READY, False, "ExceedsNode", message)
        else:
            conditions.set(ConditionType.READY, True, "Reserved", f"reserved on {node.name}")
        statuses[name] = ReservationStatus(
            observed_generation=record.generation, conditions=conditions.items
        )
    return statuses


def status_patch(status: KubeModel) -> dict[str, Any]:
    """A status model as the master writes it: only the fields computed, so the merge patch
    leaves the others alone."""
    return to_api(status, only_set=True)


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
