"""The offer protocol's decisions, pure: a cycle's frozen view in, actions out.

Accept, decline, expiry, rescind, clean-up, and the refusal of Pods that claim what was not
offered to them (invariant 7). The writer carries the actions out; nothing here does I/O,
so every rule is a unit test away.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum

from kubedrf.allocator.filters import refusal_expiry
from kubedrf.api.conventions import moment, parse_time
from kubedrf.api.offer import OfferPhase, OfferStatus
from kubedrf.master.liveness import torn_down
from kubedrf.master.records import OfferRecord, PodRecord
from kubedrf.master.view import MasterView
from kubedrf.resources import Resources

#: A Pod naming an offer the master has not seen yet gets this long before it is refused
#: (watches of different kinds are not ordered against each other).
CLAIM_GRACE_SECONDS = 10.0
#: An Accept whose listed tasks the master has not seen for this long has them read afresh.
LISTED_TASK_WAIT = 5.0


class _Later(Enum):
    """A claim neither valid nor refused yet: its offer is not in the view (too young to
    judge, or so old that its offer may have been cleaned up since it was accepted)."""

    LATER = "later"


LATER = _Later.LATER


@dataclass(frozen=True, slots=True)
class OfferTransition:
    offer: OfferRecord
    phase: OfferPhase
    reason: str
    message: str
    tasks: tuple[str, ...] = ()
    filter_expires_at: float | None = None
    refused: Resources | None = None

    def status(self, now: float) -> OfferStatus:
        """The Offer status this transition writes, and that the rest of its cycle assumes."""
        return OfferStatus(
            observed_generation=self.offer.generation,
            phase=self.phase,
            reason=self.reason,
            message=self.message,
            tasks=list(self.tasks),
            filter_expires_at=(
                moment(self.filter_expires_at) if self.filter_expires_at is not None else None
            ),
            refused=self.refused.to_quantities() if self.refused is not None else {},
            finished_at=moment(now),
        )


@dataclass(frozen=True, slots=True)
class PodRefusal:
    pod: PodRecord
    reason: str
    message: str


@dataclass(slots=True)
class Reconciliation:
    transitions: list[OfferTransition] = field(default_factory=list)
    refusals: list[PodRefusal] = field(default_factory=list)
    deletions: list[OfferRecord] = field(default_factory=list)
    #: Pods an Accept lists that the cache has not seen for LISTED_TASK_WAIT: read them
    #: afresh (namespace/name) before the offer is settled without them.
    unconfirmed: list[str] = field(default_factory=list)

    def applied_to(self, view: MasterView) -> MasterView:
        """The view as it will be once this plan is written: what allocation decides on."""
        return view.after(
            statuses={t.offer.key: t.status(view.now) for t in self.transitions},
            deleted_pods=frozenset(r.pod.key for r in self.refusals),
            deleted_offers=frozenset(o.key for o in self.deletions),
        )


def reconcile(view: MasterView) -> Reconciliation:
    plan = Reconciliation()
    now = view.now
    claims, plan.refusals = _claims(view)
    refused: dict[str, set[str]] = defaultdict(set)
    for refusal in plan.refusals:
        if refusal.pod.offer_key is not None:
            refused[refusal.pod.offer_key].add(refusal.pod.name)
    # Frameworks creating task Pods on some outstanding offer: they are answering, only slowly.
    launching = {offer.framework_key for offer in view.outstanding if claims.get(offer.key)}
    settled: set[str] = set()
    for offer in view.outstanding:
        grace = view.settings.offer_timeout if offer.framework_key in launching else 0.0
        mine = claims.get(offer.key, [])
        unseen = _unseen_listed(view, offer, mine, refused.get(offer.key, set()))
        if unseen:
            # Not judged before every task it lists is seen: the offer keeps holding them.
            waited = now - view.answered_at.get(offer.key, now)
            if waited >= LISTED_TASK_WAIT:
                plan.unconfirmed += [f"{offer.namespace}/{name}" for name in unseen]
            continue
        transition = _settle(view, offer, mine, grace)
        if transition is not None:
            plan.transitions.append(transition)
            settled.add(offer.key)
    plan.transitions += _rescind_shrunk(view, settled | _holding(claims))
    judged = {refusal.pod.key for refusal in plan.refusals}
    plan.refusals += [
        PodRefusal(pod, "FrameworkTornDown", message)
        for pod, message in torn_down(view.pods.values(), view.disconnected)
        if pod.key not in judged
    ]
    plan.deletions = [offer for offer in view.offers.values() if _finished(view, offer)]
    return plan


def _unseen_listed(
    view: MasterView, offer: OfferRecord, claims: list[PodRecord], refused: set[str]
) -> list[str]:
    """Tasks an Accept lists whose Pods the cache has not seen (nor a fresh read ruled out).

    Watches of Offers and Pods are not ordered against each other, and a restarted or
    reconnected master may hear of the Accept first: judging then would refuse valid tasks.
    """
    spec = offer.spec
    assert spec is not None
    if spec.response is None or spec.response.action != "Accept":
        return []
    seen = {pod.name for pod in claims} | refused
    return sorted(
        name
        for name in set(spec.response.tasks) - seen
        if f"{offer.namespace}/{name}" not in view.confirmed_absent
    )


def _holding(claims: dict[str, list[PodRecord]]) -> set[str]:
    """Offers with tasks launched on them: never rescinded for shrinking (the tasks are the
    reason the node is full), only settled."""
    return {key for key, pods in claims.items() if pods}


def _settle(
    view: MasterView, offer: OfferRecord, claims: list[PodRecord], grace: float
) -> OfferTransition | None:
    """The offer's fate this cycle; ``grace`` extends its expiry while its framework is
    creating tasks (creating thousands of Pods takes longer than one offerTimeout)."""
    spec = offer.spec
    assert spec is not None and offer.framework_key is not None
    response = spec.response
    names = tuple(sorted(pod.name for pod in claims))
    if response is not None and response.action == "Accept":
        missing = sorted(set(response.tasks) - set(names))
        message = f"accepted with {len(names)} task(s)"
        if missing:
            message += f"; listed but not valid claims: {', '.join(missing)}"
        return OfferTransition(offer, OfferPhase.ACCEPTED, "Accepted", message, tasks=names)
    if response is not None and response.action == "Decline":
        framework = view.frameworks.get(offer.framework_key)
        refuse = response.refuse_seconds
        if refuse is None:
            spec_ = framework.spec if framework else None
            refuse = spec_.offer_filters.refuse_seconds if spec_ else 5.0
        node = view.nodes.get(spec.node_name)
        usage = view.usage.get(spec.node_name, Resources()) - offer.resources()
        free = (node.allocatable - usage).clamped() if node else Resources()
        return OfferTransition(
            offer,
            OfferPhase.DECLINED,
            "Declined",
            f"declined; node {spec.node_name} filtered for {refuse:g}s",
            filter_expires_at=refusal_expiry(view.now, refuse, view.settings.allocation_interval),
            refused=free,
        )
    expires = parse_time(spec.expires_at)
    fate: tuple[str, str] | None
    if offer.bad_response is not None:
        fate = ("InvalidResponse", f"spec.response cannot be used: {offer.bad_response}")
    elif expires is not None and expires + grace <= view.now:
        fate = ("Expired", "not answered before spec.expiresAt")
    else:
        fate = _rescind_reason(view, offer)
    if fate is None:
        return None
    if names:
        # Tasks launched on an offer while it was outstanding are valid uses of it: the offer
        # ends accepted with them rather than taking them down with it.
        return OfferTransition(
            offer,
            OfferPhase.ACCEPTED,
            "Launched",
            f"{fate[1]}; accepted the {len(names)} task(s) launched on it",
            tasks=names,
        )
    if fate[0] == "Expired":
        return OfferTransition(offer, OfferPhase.EXPIRED, *fate)
    return OfferTransition(offer, OfferPhase.RESCINDED, *fate)


def _rescind_reason(view: MasterView, offer: OfferRecord) -> tuple[str, str] | None:
    spec = offer.spec
    assert spec is not None and offer.framework_key is not None
    node = view.nodes.get(spec.node_name)
    if node is None or node.name not in view.managed:
        return "NodeGone", f"node {spec.node_name} is gone or no longer managed"
    if not node.ready or node.unschedulable:
        return "NodeNotReady", f"node {spec.node_name} is not ready or is cordoned"
    framework = view.frameworks.get(offer.framework_key)
    if framework is None or framework.spec is None:
        return "FrameworkGone", f"framework {spec.framework} is gone or invalid"
    silence = view.disconnected.get(framework.key)
    if silence is not None:
        return "FrameworkDisconnected", f"framework {spec.framework} {silence.message()}"
    fw_spec = framework.spec
    if fw_spec.suppressed or spec.role in fw_spec.suppressed_roles:
        return "Suppressed", f"framework {spec.framework} suppressed role {spec.role}"
    if spec.role not in fw_spec.roles:
        return "RoleRemoved", f"framework {spec.framework} no longer names role {spec.role}"
    refused = view.refused.get(framework.key, {}).get(spec.role)
    if refused is not None:
        return "RoleRefused", refused
    return None


def _rescind_shrunk(view: MasterView, settled: set[str]) -> list[OfferTransition]:
    """Rescind the newest offers on nodes whose capacity shrank below what is promised."""
    transitions = []
    offers_by_node: dict[str, list[OfferRecord]] = defaultdict(list)
    for offer in view.outstanding:
        if offer.key not in settled and offer.spec is not None:
            offers_by_node[offer.spec.node_name].append(offer)
    for node_name, offers in offers_by_node.items():
        node = view.nodes.get(node_name)
        if node is None:
            continue
        used = view.pod_usage.get(node_name, Resources())
        for offer in sorted(offers, key=lambda o: (o.created_at, o.name)):
            used += offer.resources()
            if not used <= node.allocatable:
                used -= offer.resources()
                transitions.append(
                    OfferTransition(
                        offer,
                        OfferPhase.RESCINDED,
                        "NodeShrunk",
                        f"node {node_name} no longer has room for this offer",
                    )
                )
    return transitions


def valid_claims(view: MasterView) -> dict[str, list[PodRecord]]:
    """Per offer key, the Pods that validly claim it: the only Pods the master binds."""
    return _claims(view)[0]


def _claims(view: MasterView) -> tuple[dict[str, list[PodRecord]], list[PodRefusal]]:
    """Valid claims per offer, and the Pods refused for claiming what they may not."""
    claims: dict[str, list[PodRecord]] = defaultdict(list)
    refusals = []
    claimed: dict[str, Resources] = defaultdict(Resources)
    # A claim on an offer gone for longer than offers are kept waits (``_judge_claim``) and
    # adds nothing to what is claimed: most Pods at scale, left out before sorting.
    now, retention, offers = view.now, view.settings.offer_retention, view.offers
    pods = sorted(
        (
            p
            for p in view.pods.values()
            if p.framework
            and not p.terminal
            and (p.offer_key is None or p.offer_key in offers or now - p.created_at < retention)
        ),
        key=lambda p: (p.created_at, p.name),
    )
    for pod in pods:
        verdict = _judge_claim(view, pod, claimed)
        if verdict is None:
            assert pod.offer_key is not None
            claims[pod.offer_key].append(pod)
            claimed[pod.offer_key] += pod.requests
        elif verdict is not LATER:
            refusals.append(PodRefusal(pod, *verdict))
    return claims, refusals


def _judge_claim(
    view: MasterView, pod: PodRecord, claimed: dict[str, Resources]
) -> tuple[str, str] | _Later | None:
    """``None`` for a valid claim, ``LATER`` for one not to judge yet, else (reason, message)."""
    if pod.offer_key is None:
        return "NoOffer", f"task {pod.name} names no offer (label kubedrf.io/offer)"
    offer = view.offers.get(pod.offer_key)
    if offer is None or offer.spec is None:
        age = view.now - pod.created_at
        if age >= view.settings.offer_retention or (age < CLAIM_GRACE_SECONDS and not pod.bound):
            # Old enough that its offer may have been accepted and cleaned up since (an offer
            # is kept for offer_retention after it finishes), or too young to judge while it
            # holds nothing. A young claim already bound (by another scheduler) runs on what
            # was not offered to it: it is refused now, once a fresh read of its offer (the
            # confirmation every refusal gets) finds none.
            return LATER
        return "OfferNotFound", f"offer {pod.offer} does not exist in namespace {pod.namespace}"
    spec = offer.spec
    if spec.framework != pod.framework:
        return (
            "OfferOfAnotherFramework",
            f"offer {offer.name} was made to framework {spec.framework}, not {pod.framework}",
        )
    if pod.role != spec.role:
        return "RoleMismatch", f"offer {offer.name} is for role {spec.role}, task says {pod.role}"
    if pod.node != spec.node_name:
        return (
            "WrongNode",
            f"offer {offer.name} is on node {spec.node_name}; the task is pinned to {pod.node}",
        )
    if offer.phase is OfferPhase.ACCEPTED:
        if pod.name not in offer.status.tasks:
            return "OfferAlreadyAccepted", f"offer {offer.name} was accepted without this task"
    elif offer.phase is not OfferPhase.OFFERED:
        return "OfferNotOutstanding", f"offer {offer.name} is {offer.phase.value}"
    assert pod.offer_key is not None
    if not claimed[pod.offer_key] + pod.requests <= offer.resources():
        return (
            "ExceedsOffer",
            f"tasks of offer {offer.name} would request more than it offered"
            f" ({offer.resources().describe()})",
        )
    return None


def _finished(view: MasterView, offer: OfferRecord) -> bool:
    if offer.outstanding or offer.spec is None:
        return False
    finished_at = parse_time(offer.status.finished_at)
    now = view.now
    if finished_at is None or now < finished_at + view.settings.offer_retention:
        return False
    if offer.phase is OfferPhase.DECLINED and offer.status.filter_expires_at is not None:
        expires = parse_time(offer.status.filter_expires_at)
        return expires is None or expires <= now
    return True
