"""Quota accounting: guarantees, limits, and the headroom that unmet guarantees hold back.

A role's consumption is what its subtree holds outside reservations plus everything reserved
for its subtree (reservations count toward quota, as in Mesos). The required headroom is the
sum of unmet guarantees of the topmost roles that have one; fair sharing may never take
unreserved capacity that this headroom still needs.

As in Mesos, a guarantee holds headroom whether or not any framework can use it: a quota
declares capacity that must be there when its role's frameworks arrive. What is held is
capped at the unreserved capacity still free, so a guarantee larger than the cluster holds
back everything free, never more (the master reports such a guarantee on its Quota), and
it never keeps a role below its own guarantee from being served first (see ``Caps``).

Beyond Mesos, a guarantee may be lent (``QuotaBook.lend``): while nothing in its role's
subtree wants anything more, its headroom is not held, so other roles may use the capacity;
revocation returns it once the role wants it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubedrf.allocator.model import Allocation, Quota, Reservation
from kubedrf.allocator.nodes import ResourceIndex, Vector
from kubedrf.allocator.roles import in_subtree, lineage

#: Stands for "no limit" in dense vectors.
UNLIMITED = 1 << 62


@dataclass(frozen=True, slots=True)
class Caps:
    """Per-resource ceilings on what a role may take next.

    ``unreserved``: of unreserved capacity (limits, headroom, and in stage 1 the guarantee);
    ``anything``: of any capacity, reserved included (limits on allocated resources);
    ``limit``: limits alone, to tell a quota limit from held-back headroom;
    ``unheld``: like ``unreserved`` but without the headroom held for other roles' guarantees,
    to tell whether headroom is what blocks a request, and to serve a role below its
    guarantee in the guarantee stage.
    """

    unreserved: Vector
    anything: Vector
    limit: Vector
    unheld: Vector

    @classmethod
    def unlimited(cls, width: int) -> Caps:
        return cls(*([UNLIMITED] * width for _ in range(4)))


@dataclass(slots=True)
class QuotaState:
    role: str
    guarantee: Vector
    limit: Vector
    allocated: Vector
    consumption: Vector
    guaranteed: list[int] = field(default_factory=list)
    limited: list[int] = field(default_factory=list)

    def unmet(self) -> Vector:
        return [
            g - c if g > c else 0 for g, c in zip(self.guarantee, self.consumption, strict=True)
        ]

    def below_guarantee(self) -> bool:
        consumption, guarantee = self.consumption, self.guarantee
        for i in self.guaranteed:
            if consumption[i] < guarantee[i]:
                break
        else:
            return False
        return True


class QuotaBook:
    """Quota states of every role with a quota, and the cluster's headroom for guarantees."""

    def __init__(
        self,
        *,
        quotas: Sequence[Quota],
        allocations: Sequence[Allocation],
        reservations: Sequence[Reservation],
        reserved_in_use: Mapping[str, Vector],
        unreserved_free: Sequence[int],
        index: ResourceIndex,
    ) -> None:
        width = len(index)
        self.width = width
        self.states: dict[str, QuotaState] = {}
        for quota in quotas:
            limit = [UNLIMITED] * width
            limited = []
            bounds = dict.fromkeys(quota.zero_limit, 0) | dict(quota.limit or {})
            for name, amount in bounds.items():
                if name in index.position:
                    limit[index.position[name]] = amount
                    limited.append(index.position[name])
            guarantee = index.dense(quota.guarantee)
            self.states[quota.role] = QuotaState(
                role=quota.role,
                guarantee=guarantee,
                limit=limit,
                allocated=[0] * width,
                consumption=[0] * width,
                guaranteed=[i for i, g in enumerate(guarantee) if g > 0],
                limited=limited,
            )
        self._chains: dict[str, list[QuotaState]] = {}
        # Without quotas there is nothing to account (and allocations come by the thousand).
        for allocation in allocations if self.states else ():
            chain = self.chain(allocation.role)
            if not chain:
                continue
            amounts = index.dense_view(allocation.resources)
            for state in chain:
                _add(state.allocated, amounts)
                _add(state.consumption, amounts)
        for reservation in reservations:
            vector = index.dense(reservation.resources)
            for state in self.chain(reservation.role):
                _add(state.consumption, vector)
        for owner, in_use in reserved_in_use.items():
            for state in self.chain(owner):
                _add(state.consumption, [-x for x in in_use])

        self.roots = [
            state
            for state in self.states.values()
            if state.guaranteed
            and not any(
                self.states[a].guaranteed for a in lineage(state.role)[:-1] if a in self.states
            )
        ]
        self.available = list(unreserved_free)
        self.required = [0] * width
        for root in self.roots:
            _add(self.required, root.unmet())
        #: Topmost guaranteed roles whose headroom is lent, not held (see ``lend``).
        self.lent: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return bool(self.states)

    def chain(self, role: str) -> list[QuotaState]:
        """Quota states of ``role`` and its ancestors, root first."""
        chain = self._chains.get(role)
        if chain is None:
            chain = [self.states[a] for a in lineage(role) if a in self.states]
            self._chains[role] = chain
        return chain

    def root_of(self, role: str) -> QuotaState | None:
        for state in self.chain(role):
            if state.guaranteed:
                return state
        return None

    def nearest_guarantee(self, role: str) -> QuotaState | None:
        for state in reversed(self.chain(role)):
            if state.guaranteed:
                return state
        return None

    def lend(self, wanting: Iterable[str]) -> None:
        """Stop holding headroom for the guarantees whose subtree has no role in ``wanting``.

        Mesos holds an unmet guarantee's headroom even while its role wants nothing, so the
        capacity sits idle until the role's frameworks come. Lent, it is offered to others
        like any free capacity, and the role gets it back through revocation (its target
        includes its guarantee once it wants something).
        """
        wanted = {root.role for role in wanting if (root := self.root_of(role)) is not None}
        self.lent = frozenset(root.role for root in self.roots if root.role not in wanted)
        self.required = [0] * self.width
        for root in self.roots:
            if root.role not in self.lent:
                _add(self.required, root.unmet())

    def _own_unmet(self, root: QuotaState | None) -> Vector:
        """The headroom ``root`` holds for itself: its unmet guarantee unless lent."""
        if root is None or root.role in self.lent:
            return [0] * self.width
        return root.unmet()

    def held(self, role: str | None = None) -> Vector:
        """Unreserved capacity held back for guarantees other than ``role``'s own.

        Per resource, the unmet guarantees of the topmost guaranteed roles (less the one
        ``role`` falls under), capped at the unreserved capacity still free: headroom can
        hold back what the cluster has, never more.
        """
        own = self._own_unmet(self.root_of(role) if role is not None else None)
        return [
            max(0, min(free, required - mine))
            for free, required, mine in zip(self.available, self.required, own, strict=True)
        ]

    def caps(self, role: str, guarantee_stage: bool) -> Caps:
        """What ``role`` may still take.

        The unreserved cap keeps limits and headroom; in the guarantee stage it also stops at
        the unmet guarantee of the resources the role is guaranteed, and those are exempt from
        the headroom, as in Mesos' first stage: for a topmost guaranteed role, taking them
        lowers the required headroom as much as the available one, and when guarantees
        overcommit the cluster the headroom would otherwise keep every role from its own.
        ``unheld`` drops the headroom altogether: a task that brings a role closer to its
        guarantee may also use the resources it is not guaranteed (memory beside guaranteed
        CPU) that other guarantees hold, and the guarantee bounds how much that takes.
        """
        # Once per step of a cycle with quotas: ``held`` and ``nearest_guarantee`` are
        # inlined, and the unmet guarantee of the role's root computed once.
        width = self.width
        unreserved = [UNLIMITED] * width
        anything = [UNLIMITED] * width
        root: QuotaState | None = None
        nearest: QuotaState | None = None
        limited = False
        for state in self.chain(role):
            if state.guaranteed:
                root = root or state
                nearest = state
            for i in state.limited:
                limited = True
                unreserved[i] = min(unreserved[i], state.limit[i] - state.consumption[i])
                anything[i] = min(anything[i], state.limit[i] - state.allocated[i])
        if limited:
            limit_only = [min(u, a) for u, a in zip(unreserved, anything, strict=True)]
        else:
            limit_only = [UNLIMITED] * width
        unheld = list(unreserved)
        lent = root is not None and root.role in self.lent
        own = self._own_unmet(root)
        for i, (free, required, mine) in enumerate(
            zip(self.available, self.required, own, strict=True)
        ):
            held = max(0, min(free, required - mine))
            unreserved[i] = min(unreserved[i], free - held)
        if guarantee_stage and nearest is not None:
            unmet = own if nearest is root and not lent else nearest.unmet()
            for i in nearest.guaranteed:
                unreserved[i] = unheld[i] = min(unheld[i], unmet[i])
        return Caps(unreserved, anything, limit_only, unheld)

    def record(
        self, role: str, unreserved: Sequence[int], draws: Sequence[tuple[str, Vector]]
    ) -> None:
        """Account an allocation to ``role``: ``unreserved`` plus ``draws`` from reservations."""
        root = self.root_of(role)
        if root is not None and root.role in self.lent:
            root = None  # its headroom is not in ``required``
        before = root.unmet() if root is not None else None
        for state in self.chain(role):
            _add(state.allocated, unreserved)
            _add(state.consumption, unreserved)
            for owner, vector in draws:
                _add(state.allocated, vector)
                if not in_subtree(owner, state.role):
                    _add(state.consumption, vector)
        _add(self.available, [-x for x in unreserved])
        if root is not None and before is not None:
            after = root.unmet()
            for i in range(self.width):
                self.required[i] += after[i] - before[i]


def _add(target: Vector, vector: Sequence[int]) -> None:
    for i, amount in enumerate(vector):
        target[i] += amount
