"""What ``kubectl drf`` shows, computed from one frozen view: pure, so tests need no cluster.

One ``Analysis`` per invocation: the view's snapshot, what one cycle would offer on it (the
allocator run in full, as the master runs it), the shares held now and each client's DRF
fair share for the current demand. ``status``, ``why`` and ``top`` are readings of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from kubedrf.allocator import (
    AllocationResult,
    AllocatorConfig,
    FairShare,
    Framework,
    Reason,
    Snapshot,
    allocate,
)
from kubedrf.allocator.explain import Next, Waiting, explain
from kubedrf.allocator.roles import in_subtree, lineage, role_weights
from kubedrf.allocator.shares import Shares, fair_shares, shares
from kubedrf.api.conventions import format_time, parse_time
from kubedrf.master.view import MasterView
from kubedrf.resources import EMPTY, Resources, total

#: What each reason means for the user, and what would change it.
REASON_HELP: dict[Reason, str] = {
    Reason.NO_DEMAND: "it declares no demand beyond what it holds (spec.demand)",
    Reason.SUPPRESSED: "the framework suppressed this role (spec.suppressed); revive it",
    Reason.QUOTA_LIMIT: "one more task would take the role past its quota limit",
    Reason.HEADROOM: "what is free is held back for roles still below their quota guarantee",
    Reason.FILTERED: "it declined offers on every node that fits; the filters expire or a revive"
    " lifts them",
    Reason.NO_CAPACITY: "no usable node has room for one more task of a shape it wants",
}


@dataclass(frozen=True, slots=True)
class Analysis:
    view: MasterView
    snapshot: Snapshot
    config: AllocatorConfig
    #: What the next cycle would offer on this state.
    result: AllocationResult
    #: Shares of what is held now: running tasks and outstanding offers.
    held: Shares
    #: Per (framework, role), its holding beside its DRF target for the current demand.
    fair: Mapping[tuple[str, str], FairShare]
    #: Per role, its weighted fair share.
    fair_roles: Mapping[str, float]
    weights: dict[str, float]
    #: Per (framework, role) the next cycle offers nothing, the allocator's explanation.
    waiting: Mapping[tuple[str, str], Waiting]


def analyse(view: MasterView) -> Analysis:
    config = view.settings.allocator_config()
    snapshot = view.snapshot()
    held = shares(snapshot, None, config)
    fair = fair_shares(snapshot, config)
    referenced = [role for fw in snapshot.frameworks for role in fw.roles]
    referenced += [q.role for q in snapshot.quotas] + list(held.roles)
    result = allocate(snapshot, config)
    waiting = explain(snapshot, result, config, under_way=view.revocations_under_way(), fair=fair)
    return Analysis(
        view=view,
        snapshot=snapshot,
        config=config,
        result=result,
        held=held,
        fair=fair.clients,
        fair_roles=fair.roles,
        weights=role_weights({r.name: r.weight for r in snapshot.roles}, referenced),
        waiting={(w.framework, w.role): w for w in waiting},
    )


def _demand(framework: Framework | None) -> Resources:
    if framework is None or framework.demand is None:
        return EMPTY
    return total(shape.resources * shape.count for shape in framework.demand)


def _tree_order(role: str) -> tuple[str, ...]:
    return tuple(role.split("."))


# -- status ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameworkRow:
    name: str
    role: str
    allocated: Resources
    tasks: int
    offers: int
    share: float
    fair_share: float
    demand: Resources
    #: Why the next cycle would offer it nothing, or ``None`` when it would.
    reason: str | None


@dataclass(frozen=True, slots=True)
class RoleRow:
    name: str
    depth: int
    weight: float
    guarantee: Resources
    limit: Resources | None
    allocated: Resources
    share: float
    fair_share: float
    demand: Resources
    frameworks: tuple[FrameworkRow, ...] = field(default=())


def status(analysis: Analysis, namespace: str | None = None) -> tuple[RoleRow, ...]:
    """The role tree, parents before children, each with the frameworks directly under it.

    Role shares are weighted, as DRF sorts roles; framework shares are not. ``namespace``
    narrows the frameworks listed, never the roles, whose shares count every namespace.
    """
    a = analysis
    cluster, excluded = a.held.cluster, a.config.fairness_excluded
    quotas = {q.role: q for q in a.snapshot.quotas}
    by_name = {fw.name: fw for fw in a.snapshot.frameworks}
    holdings: dict[tuple[str, str], list[tuple[Resources, int, int]]] = defaultdict(list)
    for h in a.view.holdings:
        holdings[h.framework, h.role].append((h.resources, h.tasks, h.offers))
    clients = set(holdings) | set(a.fair)
    clients |= {(fw.name, role) for fw in a.snapshot.frameworks for role in fw.roles}
    reasons = a.result.reasons()
    offered = {(o.framework, o.role) for o in a.result.offers}
    demand_by_role: dict[str, list[Resources]] = defaultdict(list)
    for fw_name, role in clients:
        for name in lineage(role):
            demand_by_role[name].append(_demand(by_name.get(fw_name)))
    rows = []
    for role in sorted(a.weights, key=_tree_order):
        members = []
        for fw_name, client_role in sorted(clients):
            if client_role != role:
                continue
            if namespace is not None and not fw_name.startswith(f"{namespace}/"):
                continue
            held = holdings.get((fw_name, role), [])
            allocated = total(r for r, _, _ in held)
            fair = a.fair.get((fw_name, role))
            why = reasons.get((fw_name, role))
            refused = a.view.refused.get(fw_name, {}).get(role)
            members.append(
                FrameworkRow(
                    name=fw_name,
                    role=role,
                    allocated=allocated,
                    tasks=sum(t for _, t, _ in held),
                    offers=sum(o for _, _, o in held),
                    share=allocated.dominant_share(cluster, excluded),
                    fair_share=fair.target_share if fair else 0.0,
                    demand=_demand(by_name.get(fw_name)),
                    reason=(
                        "RoleRefused"
                        if refused
                        else None
                        if (fw_name, role) in offered
                        else (why.value if why else None)
                    ),
                )
            )
        quota = quotas.get(role)
        weight = a.weights[role]
        rows.append(
            RoleRow(
                name=role,
                depth=role.count("."),
                weight=weight,
                guarantee=quota.guarantee if quota else EMPTY,
                limit=quota.limit if quota else None,
                allocated=a.held.role_allocations.get(role, EMPTY),
                share=a.held.roles.get(role, 0.0),
                fair_share=a.fair_roles.get(role, 0.0),
                demand=total(demand_by_role.get(role, [])),
                frameworks=tuple(members),
            )
        )
    return tuple(rows)


# -- why ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One link of the chain: ``kind`` names it for tools, ``message`` says it for people."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class RoleExplanation:
    role: str
    #: The next cycle's verdict: ``Offered`` or a ``Reason``.
    outcome: str
    share: float
    fair_share: float
    steps: tuple[Step, ...]
    #: The allocator's explanation when the next cycle offers the role nothing.
    waiting: Waiting | None = None


class UnknownFrameworkError(LookupError):
    """The framework ``why`` was asked about is not in the cluster, or cannot be read."""


def _amounts(resources: Resources) -> str:
    return ", ".join(f"{k}={v}" for k, v in resources.to_quantities().items()) or "nothing"


def why(analysis: Analysis, framework: str) -> tuple[RoleExplanation, ...]:
    """For each role of ``framework`` (``namespace/name``), the chain of reasons behind what
    the next cycle would do for it: verdict, then for a role offered nothing the allocator's
    own explanation (shortfall, who holds above their fair share, what happens next), then
    the guarantees owed and the role's share."""
    a = analysis
    record = a.view.frameworks.get(framework)
    if record is None:
        known = ", ".join(sorted(a.view.frameworks)) or "none"
        raise UnknownFrameworkError(f"framework {framework!r} not found (frameworks: {known})")
    if record.spec is None:
        raise UnknownFrameworkError(f"framework {framework!r} has an invalid spec: {record.error}")
    return tuple(_explain_role(a, framework, role) for role in record.spec.roles)


def _explain_role(a: Analysis, framework: str, role: str) -> RoleExplanation:
    cluster, excluded = a.held.cluster, a.config.fairness_excluded
    fair = a.fair.get((framework, role))
    share = fair.share if fair else 0.0
    fair_share = fair.target_share if fair else 0.0
    steps: list[Step] = []
    refused = a.view.refused.get(framework, {}).get(role)
    if refused is not None:
        steps.append(Step("RoleRefused", refused))
        return RoleExplanation(role, "RoleRefused", share, fair_share, tuple(steps))
    offers = [o for o in a.result.offers if o.framework == framework and o.role == role]
    reason = a.result.reasons().get((framework, role))
    if offers:
        tasks = sum(o.units for o in offers)
        nodes = ", ".join(sorted({o.node for o in offers}))
        outcome = "Offered"
        steps.append(
            Step(
                "Offered",
                f"the next cycle offers {_amounts(total(o.resources for o in offers))}"
                f" ({tasks} task(s)) on {nodes}",
            )
        )
    else:
        outcome = reason.value if reason else "NotServed"
        help_text = REASON_HELP.get(reason) if reason else None
        steps.append(
            Step(outcome, f"{outcome}: {help_text}" if help_text else "no offer this cycle")
        )
    steps.append(
        Step(
            "Share",
            f"holds {_amounts(fair.held if fair else EMPTY)}: dominant share {share:.3f},"
            f" fair share {fair_share:.3f}"
            + (
                f" ({fair.target_tasks} task(s) of its demand)"
                if fair and fair.target_tasks
                else ""
            ),
        )
    )
    waiting = a.waiting.get((framework, role)) if not offers else None
    if waiting is not None:
        if (short := waiting.shortfall()) is not None:
            steps.insert(1, Step("Shortfall", short))
        steps += [
            Step(
                "AboveFairShare",
                f"{h.framework} under role {h.role} holds {h.share:.3f},"
                f" above its fair share {h.fair_share:.3f}",
            )
            for h in waiting.holders
        ]
        steps += [_next_step(n) for n in waiting.next]
    steps += _quota_steps(a, role)
    role_share = a.held.roles.get(role, 0.0)
    steps.append(
        Step(
            "RoleShare",
            f"role {role} (weight {a.weights.get(role, 1.0):g}) has weighted share"
            f" {role_share:.3f} of {_amounts(cluster)}"
            + ("" if not excluded else f", not counting {', '.join(sorted(excluded))}"),
        )
    )
    return RoleExplanation(role, outcome, share, fair_share, tuple(steps), waiting)


def _next_step(step: Next) -> Step:
    return Step(step.kind, step.describe(format_time))


def _quota_steps(a: Analysis, role: str) -> Iterator[Step]:
    """Every quota on the role's lineage with a guarantee still owed (served first); a limit
    that blocks is the allocator's explanation's to tell."""
    for quota in a.snapshot.quotas:
        if not in_subtree(role, quota.role):
            continue
        consumed = a.held.role_allocations.get(quota.role, EMPTY)
        if not quota.guarantee <= consumed:
            yield Step(
                "BelowGuarantee",
                f"quota of role {quota.role}: consumes {_amounts(consumed)}, below its"
                f" guarantee {_amounts(quota.guarantee)} (served first)",
            )


# -- top ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeUsage:
    node: str
    allocatable: Resources
    #: What each role holds there: running tasks and outstanding offers.
    roles: dict[str, Resources]
    #: What outstanding offers hold there, a part of ``roles``.
    offered: Resources
    #: Pods no framework launched.
    other: Resources
    free: Resources


@dataclass(frozen=True, slots=True)
class OutstandingOffer:
    name: str
    framework: str
    role: str
    node: str
    resources: Resources
    expires_in: float | None


def top(
    analysis: Analysis, namespace: str | None = None
) -> tuple[tuple[NodeUsage, ...], tuple[OutstandingOffer, ...]]:
    """Usage per usable node by role, and the offers outstanding (in ``namespace`` only, if
    given); node usage always counts every namespace, since capacity does."""
    view = analysis.view
    by_node: dict[str, dict[str, list[Resources]]] = defaultdict(lambda: defaultdict(list))
    offered: dict[str, list[Resources]] = defaultdict(list)
    for h in view.holdings:
        by_node[h.node][h.role].append(h.resources)
    for o in view.outstanding:
        if o.spec is not None:
            offered[o.spec.node_name].append(o.resources())
    nodes = []
    for node in analysis.snapshot.nodes:
        roles = {role: total(items) for role, items in sorted(by_node[node.name].items())}
        nodes.append(
            NodeUsage(
                node=node.name,
                allocatable=node.allocatable,
                roles=roles,
                offered=total(offered[node.name]),
                other=node.external_usage,
                free=(node.allocatable - view.usage.get(node.name, EMPTY)).clamped(),
            )
        )
    offers = []
    for o in view.outstanding:
        if o.spec is None or o.framework_key is None:
            continue
        if namespace is not None and o.namespace != namespace:
            continue
        expires = parse_time(o.spec.expires_at)
        offers.append(
            OutstandingOffer(
                name=o.key,
                framework=o.framework_key,
                role=o.spec.role,
                node=o.spec.node_name,
                resources=o.resources(),
                expires_in=None if expires is None else expires - view.now,
            )
        )
    return tuple(nodes), tuple(offers)
