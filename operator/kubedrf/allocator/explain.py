"""Why a (framework, role) got no offer, with numbers: the explain step after a cycle.

``allocate`` records one ``Reason`` per client it left without an offer and nothing more,
so a cycle costs what it did. ``explain`` reads the same snapshot and result afterwards,
only for those clients, and adds what a user needs to act: the resource that blocks and by
how much, the share beside the fair share, who holds above theirs, and what happens next.
The master puts it in Framework status; ``kubectl drf why`` prints it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from kubedrf.allocator.cycle import capacity, wanting_roles
from kubedrf.allocator.model import (
    GPU_RESOURCES,
    AllocationResult,
    AllocatorConfig,
    Framework,
    Reason,
    Snapshot,
)
from kubedrf.allocator.nodes import NodePool, ResourceIndex, Vector
from kubedrf.allocator.revocation import EPSILON
from kubedrf.allocator.roles import in_subtree, lineage
from kubedrf.allocator.shares import FairShares, Shares, fair_shares, shares
from kubedrf.resources import CPU, EMPTY, Resources, format_amount


@dataclass(frozen=True, slots=True)
class RevocationUnderWay:
    """An inverse offer asked and not yet settled. The allocator keeps no such state, so the
    caller (the master's view) passes these in: ``framework`` gives ``tasks`` back on
    ``node`` by ``deadline`` for ``beneficiary`` under ``beneficiary_role``."""

    framework: str
    role: str
    node: str
    tasks: int
    beneficiary: str
    beneficiary_role: str
    deadline: float


@dataclass(frozen=True, slots=True)
class Holder:
    """A client holding more than its DRF fair share: where a revocation takes from."""

    framework: str
    role: str
    share: float
    fair_share: float


@dataclass(frozen=True, slots=True)
class Next:
    """What ends the wait, if anything does by itself: ``deadline`` when it has a time."""

    kind: str
    text: str
    deadline: float | None = None

    def describe(self, when: Callable[[float], str] = lambda t: f"t={t:g}s") -> str:
        """The text with its deadline, formatted by ``when`` (seconds since the epoch in the
        master); an absolute time, so the sentence stays the same from cycle to cycle."""
        return self.text if self.deadline is None else f"{self.text} at {when(self.deadline)}"


@dataclass(frozen=True, slots=True)
class Waiting:
    """The answer to "why is my framework waiting?" for one (framework, role).

    ``resource``, ``needed`` and ``available`` (canonical units) say what blocks one task:
    ``available`` is the most any usable node has free for capacity reasons, or what the
    quota limit still leaves for ``QuotaLimitReached``. ``resource`` is ``None`` when no
    amount blocks (no demand, suppressed).
    """

    framework: str
    role: str
    reason: Reason
    dominant_share: float
    fair_share: float
    resource: str | None = None
    needed: int = 0
    available: int = 0
    holders: tuple[Holder, ...] = ()
    next: tuple[Next, ...] = ()

    def shortfall(self) -> str | None:
        """The blocking amounts as a sentence, or ``None`` when no amount blocks."""
        if self.resource is None:
            return None
        need = quantity(self.resource, self.needed)
        have = quantity(self.resource, self.available)
        if self.reason is Reason.QUOTA_LIMIT:
            return f"a task needs {need}; the quota limit leaves {have}"
        if self.available >= self.needed:
            return f"a task needs {need} on one node with the rest of its shape; no node has both"
        return f"a task needs {need} on one node; the most free on any node is {have}"

    def sentence(self, when: Callable[[float], str] = lambda t: f"t={t:g}s") -> str:
        """One line for a condition message or an Event; ``when`` formats a deadline."""
        parts = [self.reason.value]
        if (short := self.shortfall()) is not None:
            parts.append(short)
        parts.append(f"dominant share {self.dominant_share:.3f}, fair share {self.fair_share:.3f}")
        if self.holders:
            above = ", ".join(
                f"{h.framework} ({h.role}) {h.share:.3f} > {h.fair_share:.3f}" for h in self.holders
            )
            parts.append(f"above their fair share: {above}")
        parts += [f"next: {step.describe(when)}" for step in self.next]
        return "; ".join(parts)


#: Holders a sentence names; the structured field has them all.
_NAMED = 5


def quantity(name: str, amount: int) -> str:
    """``1 CPU``, ``4Gi memory``: an amount as people read it."""
    if name == CPU:
        return f"{format_amount(name, amount)} CPU"
    return f"{format_amount(name, amount)} {name}"


def explain(
    snapshot: Snapshot,
    result: AllocationResult,
    config: AllocatorConfig | None = None,
    *,
    under_way: Iterable[RevocationUnderWay] = (),
    fair: FairShares | None = None,
    held: Shares | None = None,
) -> tuple[Waiting, ...]:
    """A ``Waiting`` for every client ``result`` left without an offer, in its order.

    ``fair`` (``fair_shares(snapshot, config)``) and ``held`` (``shares(snapshot, result,
    config)``) spare computing them again when the cycle has them: at 10,000 nodes and
    1,000 frameworks the fair shares alone cost a fifth of a second.
    """
    if not result.idle:
        return ()
    config = config or AllocatorConfig()
    fair = fair if fair is not None else fair_shares(snapshot, config)
    context = _Context(snapshot, result, config, tuple(under_way), fair, held=held)
    return tuple(context.waiting(fw, role, reason) for fw, role, reason in result.idle)


#: The reasons free capacity (not a rule) stands behind: a shortfall on nodes explains them.
_CAPACITY = frozenset({Reason.NO_CAPACITY, Reason.FILTERED, Reason.HEADROOM})


class _Context:
    """What several waiting clients share, each part built on first use."""

    def __init__(
        self,
        snapshot: Snapshot,
        result: AllocationResult,
        config: AllocatorConfig,
        under_way: tuple[RevocationUnderWay, ...],
        fair: FairShares,
        *,
        held: Shares | None,
    ) -> None:
        self.snapshot = snapshot
        self.result = result
        self.config = config
        self.under_way = under_way
        self.fair = fair
        self.frameworks = {fw.name: fw for fw in snapshot.frameworks}
        self._free: tuple[NodePool, ResourceIndex, list[Vector]] | None = None
        self._held: Mapping[str, Resources] | None = held.role_allocations if held else None
        self._lent: frozenset[str] | None = None
        self._taken: dict[str, dict[int, int]] | None = None
        self._most: dict[tuple[str, bool], Vector] = {}
        self._holders: tuple[Holder, ...] | None = None

    def waiting(self, framework: str, role: str, reason: Reason) -> Waiting:
        client = self.fair.clients.get((framework, role))
        share = client.share if client else 0.0
        fair_share = client.target_share if client else 0.0
        holders: tuple[Holder, ...] = ()
        if fair_share > share + EPSILON:
            holders = tuple(h for h in self._above() if (h.framework, h.role) != (framework, role))
        waiting = Waiting(framework, role, reason, share, fair_share, holders=holders)
        fw = self.frameworks.get(framework)
        if fw is None or reason in (Reason.NO_DEMAND, Reason.SUPPRESSED):
            return replace(waiting, next=tuple(self._next(framework, role, reason, fw, "")))
        shapes = self._shapes(fw)
        limit_note = "a quota limit leaves too little for one more task"
        if reason is Reason.QUOTA_LIMIT:
            blocked = self._quota_shortfall(role, shapes)
            if blocked is not None:
                name, needed, available, limit_note = blocked
                waiting = replace(waiting, resource=name, needed=needed, available=available)
        elif (found := self._node_shortfall(fw, role, shapes)) is not None:
            name, needed, available = found
            waiting = replace(waiting, resource=name, needed=needed, available=available)
        return replace(waiting, next=tuple(self._next(framework, role, reason, fw, limit_note)))

    def _above(self) -> tuple[Holder, ...]:
        """Every client above its fair share, furthest above first: the same for each
        waiting client, so sorted once."""
        if self._holders is None:
            self._holders = tuple(
                Holder(f.framework, f.role, f.share, f.target_share)
                for f in sorted(
                    self.fair.clients.values(),
                    key=lambda f: (f.target_share - f.share, f.framework, f.role),
                )
                if f.share > f.target_share + EPSILON
            )
        return self._holders

    # -- shortfalls ------------------------------------------------------------------------

    def _shapes(self, fw: Framework) -> list[Resources]:
        """What one more unit needs: the shapes still demanded (after this cycle's offers),
        or in classic mode the smallest offer it takes."""
        if fw.demand is None:
            return list(fw.min_allocatable or self.config.min_allocatable)
        taken = self._taken_tasks().get(fw.name, {})
        return [
            shape.resources
            for i, shape in enumerate(fw.demand)
            if shape.count - taken.get(i, 0) > 0 and not shape.resources.is_empty()
        ]

    def _taken_tasks(self) -> dict[str, dict[int, int]]:
        """Per framework and shape, the tasks this cycle's offers are sized for."""
        if self._taken is None:
            self._taken = {}
            for offer in self.result.offers:
                counts = self._taken.setdefault(offer.framework, {})
                for i, count in offer.tasks:
                    counts[i] = counts.get(i, 0) + count
        return self._taken

    def _node_shortfall(
        self, fw: Framework, role: str, shapes: Sequence[Resources]
    ) -> tuple[str, int, int] | None:
        """For the shape nearest to fitting, its scarcest resource: what one task needs of
        it and the most any node the client may use has free after this cycle's offers."""
        _, index, _ = self._free_after_offers()
        most = self._most_free(role, GPU_RESOURCES in fw.capabilities)
        best: tuple[float, str, int, int] | None = None
        for shape in shapes:
            for name, needed in sorted(shape.items()):
                i = index.position.get(name)
                available = 0 if i is None else most[i]
                ratio = available / needed
                if best is None or ratio < best[0]:
                    best = (ratio, name, needed, available)
        return None if best is None else best[1:]

    def _most_free(self, role: str, gpu_allowed: bool) -> Vector:
        """Per resource, the most any node ``role`` may use has free: once per role, not
        per waiting client, since thousands may wait on thousands of nodes."""
        key = (role, gpu_allowed)
        most = self._most.get(key)
        if most is None:
            pool, index, free = self._free_after_offers()
            most = [0] * len(index)
            for n in range(len(free)):
                if gpu_allowed or not pool.gpu[n]:
                    most = [
                        max(m, f)
                        for m, f in zip(most, self._offerable(pool, free, n, role), strict=True)
                    ]
            self._most[key] = most
        return most

    def _free_after_offers(self) -> tuple[NodePool, ResourceIndex, list[Vector]]:
        if self._free is None:
            pool, _, index = capacity(self.snapshot, self.config)
            free = [list(vector) for vector in pool.free]
            for offer in self.result.offers:
                n = pool.position.get(offer.node)
                if n is None:
                    continue
                for name, amount in offer.resources.items():
                    i = index.position[name]
                    free[n][i] = max(0, free[n][i] - amount)
            self._free = (pool, index, free)
        return self._free

    @staticmethod
    def _offerable(pool: NodePool, free: list[Vector], n: int, role: str) -> Vector:
        vector = free[n]
        for _, reserved in pool.reserved_for(n, role):
            vector = [x + y for x, y in zip(vector, reserved, strict=True)]
        return vector

    def _quota_shortfall(
        self, role: str, shapes: Sequence[Resources]
    ) -> tuple[str, int, int, str] | None:
        """The first limit on the role's lineage one task would pass: the resource, what
        the task needs, what the limit leaves, and the limit as a sentence."""
        held = self._role_holdings()
        for quota in self.snapshot.quotas:
            if not in_subtree(role, quota.role):
                continue
            limit = quota.limit or EMPTY
            consumed = held.get(quota.role, EMPTY)
            for shape in shapes:
                for name, needed in sorted(shape.items()):
                    if name not in limit and name not in quota.zero_limit:
                        continue
                    left = max(0, limit[name] - consumed[name])
                    if needed > left:
                        note = (
                            f"quota of role {quota.role}: {quantity(name, consumed[name])} in use"
                            f" of its limit {quantity(name, limit[name])}; waits until its tasks"
                            " end or the limit is raised"
                        )
                        return name, needed, left, note
        return None

    def _role_holdings(self) -> Mapping[str, Resources]:
        if self._held is None:
            self._held = shares(self.snapshot, self.result, self.config).role_allocations
        return self._held

    # -- what next ---------------------------------------------------------------------------

    def _next(
        self, framework: str, role: str, reason: Reason, fw: Framework | None, limit_note: str
    ) -> list[Next]:
        steps: list[Next] = []
        now = self.snapshot.now
        for r in self.under_way:
            if (r.beneficiary, r.beneficiary_role) == (framework, role):
                steps.append(
                    Next(
                        "Revocation",
                        f"{r.framework} gives back {r.tasks} task(s) on {r.node} for it by the"
                        " deadline",
                        r.deadline,
                    )
                )
        if reason is Reason.SUPPRESSED:
            steps.append(Next("Suppressed", f"role {role} is suppressed: revive it to get offers"))
        elif reason is Reason.NO_DEMAND:
            steps.append(Next("NoDemand", "nothing until it declares more demand"))
        elif reason is Reason.QUOTA_LIMIT:
            steps.append(Next("QuotaLimit", limit_note))
        elif reason is Reason.HEADROOM:
            below = self._below_guarantee(role)
            steps.append(
                Next(
                    "HeldForGuarantees",
                    "free capacity is held for roles below their guarantee: " + ", ".join(below)
                    if below
                    else "free capacity is held for roles below their guarantee",
                )
            )
        if reason is Reason.FILTERED or (fw is not None and reason in _CAPACITY):
            expiring = [
                f.expires_at
                for f in self.snapshot.filters
                if (f.framework, f.role) == (framework, role) and f.expires_at > now
            ]
            if expiring:
                first = min(expiring)
                steps.append(
                    Next(
                        "FilterExpires",
                        f"declined offers filter {len(expiring)} node(s) for it; the first"
                        " filter expires",
                        first,
                    )
                )
        if fw is not None and reason in _CAPACITY:
            steps += self._reserved_elsewhere(fw, role)
        if not steps and reason in _CAPACITY:
            steps.append(Next("Capacity", "waits for tasks to end or nodes to be added"))
        return steps

    def _below_guarantee(self, role: str) -> list[str]:
        """Roles below their guarantee whose headroom is held (a lent one holds none)."""
        held = self._role_holdings()
        own = set(lineage(role))
        lent = self._lent_guarantees()
        return sorted(
            q.role
            for q in self.snapshot.quotas
            if q.role not in own
            and not q.guarantee <= held.get(q.role, EMPTY)
            and not any(in_subtree(q.role, root) for root in lent)
        )

    def _lent_guarantees(self) -> frozenset[str]:
        """The roles whose guarantee the cycle lent: the same for every waiting client, so
        worked out (a quota book over every node) once."""
        if self._lent is not None:
            return self._lent
        lent: frozenset[str] = frozenset()
        if self.config.lend_guarantees:
            # What the cycle lent, asked with what frameworks still want after its offers.
            remaining = None
            if self.config.mode == "demand":
                taken = self._taken_tasks()
                remaining = {
                    fw.name: [
                        s.count - taken.get(fw.name, {}).get(i, 0) for i, s in enumerate(fw.demand)
                    ]
                    for fw in self.snapshot.frameworks
                    if fw.demand is not None
                }
            book = capacity(self.snapshot, self.config)[1]
            book.lend(wanting_roles(self.snapshot.frameworks, remaining))
            lent = frozenset(book.lent)
        self._lent = lent
        return lent

    def _reserved_elsewhere(self, fw: Framework, role: str) -> list[Next]:
        """Nodes where a task would fit if reservations of other roles were free."""
        pool, index, free = self._free_after_offers()
        steps = []
        for n in sorted(pool.reserved):
            others = [
                (owner, vector)
                for owner, vector in pool.reserved[n].items()
                if not in_subtree(role, owner)
            ]
            if not others:
                continue
            room = list(self._offerable(pool, free, n, role))
            for _, reserved in others:
                room = [x + y for x, y in zip(room, reserved, strict=True)]
            for shape in self._shapes(fw):
                need = index.dense_strict(shape)
                if need is not None and all(v <= r for v, r in zip(need, room, strict=True)):
                    owners = ", ".join(sorted(owner for owner, _ in others))
                    steps.append(
                        Next(
                            "ReservedElsewhere",
                            f"node {pool.names[n]} has room, reserved for role {owners}",
                        )
                    )
                    break
        return steps
