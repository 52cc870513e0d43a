"""The inverse-offer protocol's decisions, pure: a cycle's view and snapshot in, actions out.

Each cycle, for the InverseOffers still pending: one whose tasks have all ended completes;
one past its deadline has what still runs evicted (the tasks the framework chose if it
answered, else those the master named), newest first; one whose beneficiary or victim
went away is cancelled. When a PodDisruptionBudget refused the eviction of a task lately,
the framework's other tasks on that node (newest first) that free as much are evicted in
its place; if there are none, the revocation stays blocked, retried each cycle, and its
refused tasks are not counted as freed but handed to the planner as ``blocked``, so it may
choose another victim instead. The allocator's revocation module then picks new revocations on
the snapshot as if the pending ones were done, so no task is asked for twice; and a node
freed by a revocation is held for its beneficiary (filters for everyone else) for one
more offer round, so what is freed goes where it was freed for.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from kubedrf.allocator import (
    AllocatorConfig,
    FairShare,
    Filter,
    Revocation,
    RevocationPolicy,
    Snapshot,
)
from kubedrf.allocator.revocation import hold_freed, revocations, without_revoked
from kubedrf.api import InverseOfferPhase, InverseOfferStatus
from kubedrf.api.conventions import moment, parse_time
from kubedrf.master.records import InverseOfferRecord, PodRecord
from kubedrf.master.settings import MasterSettings
from kubedrf.master.view import MasterView
from kubedrf.resources import Resources, total


@dataclass(frozen=True, slots=True)
class InverseOfferTransition:
    record: InverseOfferRecord
    phase: InverseOfferPhase
    reason: str
    message: str
    #: The tasks the master now ends, when it replaced some that a budget protects.
    tasks: tuple[str, ...] | None = None

    def status(self, now: float, evicted: tuple[str, ...] = ()) -> InverseOfferStatus:
        return InverseOfferStatus(
            observed_generation=self.record.generation,
            phase=self.phase,
            reason=self.reason,
            message=self.message,
            evicted=sorted({*self.record.status.evicted, *evicted}),
            tasks=list(self.tasks) if self.tasks is not None else self.record.status.tasks,
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
    #: Tasks whose eviction was refused lately: never chosen again while remembered.
    blocked: frozenset[str] = frozenset()


_FINISHED = (InverseOfferPhase.COMPLETED, InverseOfferPhase.CANCELLED)


def plan_revocations(
    view: MasterView,
    snapshot: Snapshot,
    config: AllocatorConfig,
    policy: RevocationPolicy,
    targets: Sequence[FairShare] | None = None,
) -> RevocationPlan:
    """Settle inverse offers, evict past deadlines, and choose new revocations.

    ``targets`` are the cycle's ``revocation_target(snapshot, config)``; they are reused
    while no revocation under way changes the snapshot the planner decides on.
    """
    plan = RevocationPlan(blocked=refused_lately(view))
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
                revocation = as_revocation(record, transition.tasks)
            if transition is None or transition.phase is InverseOfferPhase.EVICTING:
                # What a budget protects still runs: the planner may look elsewhere for it.
                tasks = tuple(t for t in revocation.tasks if t not in plan.blocked)
                pending.append(replace(revocation, tasks=tasks))
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
        policy = replace(policy, blocked=policy.blocked | plan.blocked)
        planned = without_revoked(snapshot, pending)
        reuse = targets if planned is snapshot else None
        plan.revocations = revocations(planned, config, policy, reuse)
    return plan


def refusal_memory(settings: MasterSettings) -> float:
    """How long a refused eviction keeps its task from being chosen: the grace period, and
    a few cycles at least, so a refusal retried every cycle never lapses between two."""
    return max(settings.grace_period, 3 * settings.allocation_interval)


def refused_lately(view: MasterView) -> frozenset[str]:
    """The Pods (by key) whose eviction a PodDisruptionBudget refused within the memory."""
    since = view.now - refusal_memory(view.settings)
    return frozenset(key for key, at in view.refused_evictions.items() if at > since)


def as_revocation(record: InverseOfferRecord, tasks: Sequence[str] | None = None) -> Revocation:
    """An InverseOffer as the allocator's revocation module knows it (task names are Pod
    keys there), with the tasks it will end: ``tasks`` if given, else those the master put
    in place of protected ones, else the framework's choice if it answered."""
    spec = record.spec
    assert spec is not None and record.framework_key is not None
    chosen = spec.response.tasks if spec.response and spec.response.tasks else spec.tasks
    chosen = list(tasks if tasks is not None else record.status.tasks or chosen)
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
    if protected := [pod for pod in running if pod.key in plan.blocked]:
        # Never one refused before, however long ago: the revocation retries what it names
        # rather than going round the framework's tasks.
        instead = substitutes(view, record, protected, view.refused_evictions)
        if instead:
            spared = {pod.key for pod in protected}
            running = [pod for pod in running if pod.key not in spared] + instead
            plan.evictions += [Eviction(record, pod) for pod in _newest_first(running)]
            return InverseOfferTransition(
                record,
                InverseOfferPhase.EVICTING,
                "Substituted",
                f"a PodDisruptionBudget protects {_names(protected)}: evicting"
                f" {_names(instead)} on {spec.node_name} in their place",
                tasks=tuple(pod.name for pod in running),
            )
        # Blocked: the tasks refused here earlier stay out of the planner's choice for as
        # long as this waits, though only those it names are tried again.
        refused = [p.key for p in _alongside(view, record) if p.key in view.refused_evictions]
        plan.blocked |= frozenset(refused)
    # Protected ones too: the budget may allow it by now (its refusal is remembered anew).
    plan.evictions += [Eviction(record, pod) for pod in _newest_first(running)]
    if record.status.phase is InverseOfferPhase.EVICTING:
        return None
    return InverseOfferTransition(
        record,
        InverseOfferPhase.EVICTING,
        "DeadlinePassed",
        f"evicting {len(running)} task(s) still running after the deadline",
    )


def substitutes(
    view: MasterView,
    record: InverseOfferRecord,
    protected: Sequence[PodRecord],
    refused: Collection[str],
) -> list[PodRecord]:
    """Other tasks of the framework, under the same role on the same node, to end in place
    of ``protected``: taken newest first until they free at least what those would have
    (so the beneficiary still fits), then those not needed put back; none if they cannot."""
    named = set(as_revocation(record).tasks)
    need = total(pod.requests for pod in protected)
    others = [p for p in _alongside(view, record) if p.key not in named and p.key not in refused]

    def frees_enough(pods: Sequence[PodRecord]) -> bool:
        return not (need - total(pod.requests for pod in pods)).clamped()

    taken: list[PodRecord] = []
    for pod in _newest_first(others):
        if frees_enough(taken):
            break
        taken.append(pod)
    if not frees_enough(taken):
        return []
    for pod in reversed(taken[:-1]):
        rest = [p for p in taken if p is not pod]
        if frees_enough(rest):
            taken = rest
    return taken


def _alongside(view: MasterView, record: InverseOfferRecord) -> list[PodRecord]:
    """The running tasks of the framework, under the role asked, on the node asked."""
    spec = record.spec
    assert spec is not None
    return [
        pod
        for pod in view.live_pods()
        if pod.framework_key == record.framework_key
        and pod.role == spec.role
        and pod.node == spec.node_name
    ]


def _newest_first(pods: Sequence[PodRecord]) -> list[PodRecord]:
    return sorted(pods, key=lambda pod: (-pod.created_at, pod.name))


def _names(pods: Sequence[PodRecord]) -> str:
    return ", ".join(pod.name for pod in pods)


def _resources(quantities: dict[str, str]) -> Resources:
    return Resources.parse(quantities, "spec.resources")
