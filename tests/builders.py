"""Test builders in Kueue's style: short, readable construction of allocator inputs.

snapshot = (
    make_snapshot()
    .node("n1", cpu="9", memory="18Gi")
    .framework(make_framework("A").demand(cpu="1", memory="4Gi", count=100))
    .obj()
)
"""

from __future__ import annotations

from dataclasses import replace

from kubedrf.allocator import (
    DEFAULT_ROLE,
    GPU_RESOURCES,
    Allocation,
    AllocationResult,
    Filter,
    Framework,
    Node,
    Quota,
    Received,
    Reservation,
    Role,
    Snapshot,
    TaskShape,
)
from kubedrf.resources import Resources, total


def res(**quantities: str | int) -> Resources:
    """``res(cpu="1", memory="4Gi", gpu=1)``; ``gpu`` means ``nvidia.com/gpu``."""
    named = {
        ("nvidia.com/gpu" if k == "gpu" else k.replace("_", "-")): v for k, v in quantities.items()
    }
    return Resources.parse(named)


class FrameworkBuilder:
    def __init__(self, name: str) -> None:
        self._fw = Framework(name=name, roles=(DEFAULT_ROLE,))
        self._roles_set = False

    def role(self, *roles: str) -> FrameworkBuilder:
        self._fw = replace(self._fw, roles=(*self._fw.roles, *roles) if self._roles_set else roles)
        self._roles_set = True
        return self

    def demand(self, count: int, **quantities: str | int) -> FrameworkBuilder:
        shapes = self._fw.demand or ()
        self._fw = replace(self._fw, demand=(*shapes, TaskShape(res(**quantities), count)))
        return self

    def no_demand(self) -> FrameworkBuilder:
        self._fw = replace(self._fw, demand=None)
        return self

    def gpu(self) -> FrameworkBuilder:
        self._fw = replace(self._fw, capabilities=self._fw.capabilities | {GPU_RESOURCES})
        return self

    def suppress(self, *roles: str) -> FrameworkBuilder:
        self._fw = replace(self._fw, suppressed_roles=frozenset(roles or self._fw.roles))
        return self

    def min_allocatable(self, **quantities: str | int) -> FrameworkBuilder:
        """One alternative; with no quantities, an explicitly empty one (any offer)."""
        self._fw = replace(self._fw, min_allocatable=(res(**quantities),))
        return self

    def obj(self) -> Framework:
        return self._fw


def make_framework(name: str) -> FrameworkBuilder:
    return FrameworkBuilder(name)


class SnapshotBuilder:
    def __init__(self) -> None:
        self._nodes: list[Node] = []
        self._frameworks: list[Framework] = []
        self._roles: list[Role] = []
        self._quotas: list[Quota] = []
        self._reservations: list[Reservation] = []
        self._allocations: list[Allocation] = []
        self._filters: list[Filter] = []
        self._received: list[Received] | None = None
        self._now = 0.0

    def node(
        self, name: str, external: Resources | None = None, **quantities: str | int
    ) -> SnapshotBuilder:
        self._nodes.append(Node(name, res(**quantities), external or Resources()))
        return self

    def nodes(self, count: int, prefix: str = "n", **quantities: str | int) -> SnapshotBuilder:
        for i in range(count):
            self.node(f"{prefix}{i:04d}", **quantities)
        return self

    def framework(self, *frameworks: FrameworkBuilder | Framework) -> SnapshotBuilder:
        for fw in frameworks:
            self._frameworks.append(fw.obj() if isinstance(fw, FrameworkBuilder) else fw)
        return self

    def role(self, name: str, weight: float = 1.0) -> SnapshotBuilder:
        self._roles.append(Role(name, weight))
        return self

    def quota(
        self,
        role: str,
        guarantee: Resources | None = None,
        limit: Resources | None = None,
        zero_limit: frozenset[str] = frozenset(),
    ) -> SnapshotBuilder:
        self._quotas.append(Quota(role, guarantee or Resources(), limit, zero_limit))
        return self

    def reservation(self, role: str, node: str, **quantities: str | int) -> SnapshotBuilder:
        self._reservations.append(Reservation(role, node, res(**quantities)))
        return self

    def allocation(
        self, framework: str, role: str, node: str, count: int = 1, **quantities: str | int
    ) -> SnapshotBuilder:
        self._allocations.append(Allocation(framework, role, node, res(**quantities), count))
        return self

    def filter(
        self,
        framework: str,
        node: str,
        expires_at: float,
        refused: Resources,
        role: str = DEFAULT_ROLE,
    ) -> SnapshotBuilder:
        self._filters.append(Filter(framework, role, node, expires_at, refused))
        return self

    def received(self, framework: str, count: int, role: str = DEFAULT_ROLE) -> SnapshotBuilder:
        """How many allocations a client has received so far (turns the counter on)."""
        self._received = [*(self._received or []), Received(framework, role, count)]
        return self

    def at(self, now: float) -> SnapshotBuilder:
        self._now = now
        return self

    def obj(self) -> Snapshot:
        return Snapshot(
            nodes=tuple(self._nodes),
            frameworks=tuple(self._frameworks),
            roles=tuple(self._roles),
            quotas=tuple(self._quotas),
            reservations=tuple(self._reservations),
            allocations=tuple(self._allocations),
            filters=tuple(self._filters),
            now=self._now,
            received=None if self._received is None else tuple(self._received),
        )


def make_snapshot() -> SnapshotBuilder:
    return SnapshotBuilder()


# -- reading results ----------------------------------------------------------------------


def offered_to(result: AllocationResult, framework: str, role: str | None = None) -> Resources:
    return total(
        o.resources
        for o in result.offers
        if o.framework == framework and (role is None or o.role == role)
    )


def tasks_offered(result: AllocationResult, framework: str) -> int:
    return sum(count for o in result.offers if o.framework == framework for _, count in o.tasks)


def offered_on(result: AllocationResult, node: str) -> Resources:
    return total(o.resources for o in result.offers if o.node == node)


def with_offers_as_allocations(snapshot: Snapshot, result: AllocationResult) -> Snapshot:
    """The next cycle's snapshot when every offer was accepted in full."""
    accepted = tuple(
        Allocation(o.framework, o.role, o.node, o.resources, o.units) for o in result.offers
    )
    frameworks = []
    for fw in snapshot.frameworks:
        if fw.demand is None:
            frameworks.append(fw)
            continue
        taken = {i: 0 for i in range(len(fw.demand))}
        for o in result.offers:
            if o.framework == fw.name:
                for i, c in o.tasks:
                    taken[i] += c
        demand = tuple(
            TaskShape(shape.resources, shape.count - taken[i]) for i, shape in enumerate(fw.demand)
        )
        frameworks.append(replace(fw, demand=demand))
    return replace(
        snapshot,
        allocations=snapshot.allocations + accepted,
        frameworks=tuple(frameworks),
    )
