"""The inverse-offer protocol's decisions, pure: a cycle's view and snapshot in, actions out.

Each cycle, for the InverseOffers still pending: one whose tasks have all ended completes;
one past its deadline has what still runs evicted (the tasks the framework chose if it
answered, else those the master named), newest first; one whose beneficiary or victim
went away is cancelled. The allocator's revocation module then picks new revocations on
the snapshot as if the pending ones were done, so no task is asked for twice; and a node
freed by a revocation is held for its beneficiary (filters for everyone else) for one
more offer round, so what is freed goes where it was freed for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubedrf.allocator import (
    AllocatorConfig,
    Filter,
    Revocation,
    RevocationPolicy,
    Snapshot,
)
from kubedrf.allocator.revocation import hold_freed, revocations, without_revoked
from kubedrf.api import InverseOfferPhase, InverseOfferStatus
from kubedrf.api.conventions import moment, parse_time
from kubedrf.master.records import InverseOfferRecord, PodRecord
from kubedrf.master.view import MasterView
from kubedrf.resources import Resources


@dataclass(frozen=True, slots=True)
class InverseOfferTransition:
    record: InverseOfferRecord
    phase: InverseOfferPhase
    reason: str
    message: str

    def status(self, now: float, evicted: tuple[str, ...] = ()) -> InverseOfferStatus:
        return InverseOfferStatus(
            observed_generation=self.record.generation,
            phase=self.phase,
            reason=self.reason,
            message=self.message,
            evicted=sorted({*self.record.status.evicted, *evicted}),
            finished_at=moment(now) if self.phase in _FINISHED else None,
        )


@dataclass(frozen=True, slots=True)
class Eviction:
    """Evict ``pod``: the deadline of ``record`` passed and the task still runs."""

    record: InverseOfferRecord
    pod: PodRecord


@dataclass(slots=True)
class RevocationPlan:
    transitions: list[InverseOfferTransition] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    #: New revocations: an InverseOffer to create for each.
    revocations: tuple[Revocation, ...] = ()
    #: Filters that keep freed nodes for their beneficiaries, for the allocator.
    holds: tuple[Filter, ...] = ()
    deletions: list[InverseOfferRecord] = field(default_factory=list)


_FINISHED = (InverseOfferPhase.COMPLETED, InverseOfferPhase.CANCELLED)


def plan_revocations(
    view: MasterView,
    snapshot: Snapshot,
    config: AllocatorConfig,
    policy: RevocationPolicy,
) -> RevocationPlan:
    plan = RevocationPlan()
    pending: list[Revocation] = []
    freed: list[Revocation] = []
    hold_for = max(2 * view.settings.allocation_interval, 2.0)
    for record in sorted(view.inverse_offers.values(), key=lambda r: r.key):
        if record.spec is None:
            continue
        revocation = as_revocation(record)
        if record.pending:
            transition = _settle(view, record, plan)
            if transition is not None:
                plan.transitions.append(transition)
            if transition is None or transition.phase is InverseOfferPhase.EVICTING:
                pending.append(revocation)
            elif transition.phase is InverseOfferPhase.COMPLETED:
                freed.append(revocation)
            continue
        finished = parse_time(record.status.finished_at) or 0.0
        if record.status.phase is InverseOfferPhase.COMPLETED and view.now < finished + hold_for:
            freed.append(revocation)
        if view.now >= finished + view.settings.offer_retention:
            plan.deletions.append(record)
    plan.holds = hold_freed(snapshot, freed, view.now + hold_for)
    if view.settings.revocation:
        plan.revocations = revocations(without_revoked(snapshot, pending), config, policy)
    return plan


def as_revocation(record: InverseOfferRecord) -> Revocation:
    """An InverseOffer as the allocator's revocation module knows it (task names are Pod
    keys there), with the tasks it will end: the framework's choice if it answered."""
    spec = record.spec
    assert spec is not None and record.framework_key is not None
    chosen = spec.response.tasks if spec.response and spec.response.tasks else spec.tasks
    beneficiary = spec.beneficiary
    return Revocation(
        framework=record.framework_key,
        role=spec.role,
        node=spec.node_name,
        tasks=tuple(f"{record.namespace}/{name}" for name in chosen),
        resources=_resources(spec.resources),
        beneficiary=f"{beneficiary.namespace}/{beneficiary.framework}",
        beneficiary_role=beneficiary.role,
        shape=0,
    )


def _settle(
    view: MasterView, record: InverseOfferRecord, plan: RevocationPlan
) -> InverseOfferTransition | None:
    spec = record.spec
    assert spec is not None
    beneficiary = f"{spec.beneficiary.namespace}/{spec.beneficiary.framework}"
    if record.framework_key not in view.frameworks:
        return InverseOfferTransition(
            record, InverseOfferPhase.CANCELLED, "FrameworkGone", "the framework went away"
        )
    if beneficiary not in view.frameworks:
        return InverseOfferTransition(
            record,
            InverseOfferPhase.CANCELLED,
            "BeneficiaryGone",
            f"framework {beneficiary} went away",
        )
    running = [
        pod
        for task in as_revocation(record).tasks
        if (pod := view.pods.get(task)) is not None and not pod.terminal
    ]
    if not running:
        return InverseOfferTransition(
            record,
            InverseOfferPhase.COMPLETED,
            "Freed",
            f"freed on {spec.node_name} for role {spec.beneficiary.role} of {beneficiary}",
        )
    deadline = parse_time(spec.deadline) or 0.0
    if view.now < deadline:
        return None
    newest_first = sorted(running, key=lambda pod: (-pod.created_at, pod.name))
    plan.evictions += [Eviction(record, pod) for pod in newest_first]
    if record.status.phase is InverseOfferPhase.EVICTING:
        return None
    return InverseOfferTransition(
        record,
        InverseOfferPhase.EVICTING,
        "DeadlinePassed",
        f"evicting {len(running)} task(s) still running after the deadline",
    )


def _resources(quantities: dict[str, str]) -> Resources:
    return Resources.parse(quantities, "spec.resources")
