"""Hypothesis strategies for allocator inputs: small random clusters that respect their own limits.

Amounts are drawn in coarse units (500m CPU, 1 GiB memory, one GPU) so that exact fits, ties
and full nodes happen often. Every generated snapshot is internally consistent: external
usage and allocations fit their nodes, allocations stay within quota limits, reservations fit
their node (at most one per node), and filters name a framework's own role.
"""

from __future__ import annotations

from hypothesis import strategies as st

from kubedrf.allocator import (
    GPU_RESOURCES,
    Allocation,
    AllocatorConfig,
    Filter,
    Framework,
    Mode,
    Node,
    Quota,
    Reservation,
    Role,
    Snapshot,
    TaskShape,
)
from kubedrf.allocator.roles import in_subtree, lineage
from kubedrf.resources import CPU, MEMORY, Resources, total

GPU = "nvidia.com/gpu"
GIB = 2**30

#: Canonical amount of one drawn unit of each resource.
UNIT = {CPU: 500, MEMORY: GIB, GPU: 1}

#: Roles to draw from: flat ones and a small tree (``eng`` is implicit unless drawn).
ROLE_POOL = ("a", "b", "eng", "eng.a", "eng.b", "eng.a.x")

#: ``now`` of every generated snapshot; filters expire either before or after it.
NOW = 10.0


def units(**counts: int) -> Resources:
    """``units(cpu=2, memory=3)`` → 1 CPU, 3 GiB."""
    return Resources(
        {(GPU if k == "gpu" else k): v * UNIT[GPU if k == "gpu" else k] for k, v in counts.items()}
    )


def chance(draw: st.DrawFn, percent: int) -> bool:
    """True about ``percent`` % of the time, shrinking to False.

    (Hypothesis draws small integers far more often than uniformly, so ``integers(0, 4) == 0``
    would be true in about half of all examples.)
    """
    return draw(st.integers(0, 99)) >= 100 - percent


def within(draw: st.DrawFn, cap: Resources) -> Resources:
    """A map with each resource of ``cap`` drawn between zero and its amount, in units."""
    amounts = {}
    for name, amount in cap.items():
        amounts[name] = draw(st.integers(0, amount // UNIT[name])) * UNIT[name]
    return Resources(amounts)


@st.composite
def resource_maps(
    draw: st.DrawFn,
    *,
    cpu: int = 8,
    memory: int = 8,
    gpu: int = 0,
    min_cpu: int = 0,
    min_memory: int = 0,
) -> Resources:
    """A map of up to ``cpu`` units of CPU, ``memory`` GiB and ``gpu`` GPUs."""
    counts = {
        CPU: draw(st.integers(min_cpu, cpu)),
        MEMORY: draw(st.integers(min_memory, memory)),
    }
    if gpu:
        counts[GPU] = draw(st.integers(0, gpu))
    return Resources({name: count * UNIT[name] for name, count in counts.items()})


@st.composite
def task_shapes(draw: st.DrawFn, *, gpu: bool) -> Resources:
    """One task's request: at least 500m CPU, some memory, sometimes a GPU or two."""
    shape = draw(resource_maps(cpu=8, memory=8, min_cpu=1))
    if gpu and chance(draw, 30):
        shape = shape + units(gpu=draw(st.integers(1, 2)))
    return shape


@st.composite
def nodes(draw: st.DrawFn, *, count: int, gpu: bool) -> tuple[Node, ...]:
    result = []
    for i in range(count):
        allocatable = draw(resource_maps(cpu=24, memory=24, min_cpu=1))
        if gpu and draw(st.booleans()):
            allocatable = allocatable + units(gpu=draw(st.integers(1, 4)))
        external = within(draw, allocatable) if draw(st.booleans()) else Resources()
        result.append(Node(f"n{i}", allocatable, external))
    return tuple(result)


@st.composite
def quotas(draw: st.DrawFn, *, role: str, gpu: bool) -> Quota:
    """A quota with guarantee ≤ limit on every limited resource; absent limits are unlimited."""
    limit = None
    if draw(st.booleans()):
        limit = draw(resource_maps(cpu=24, memory=24, gpu=3 if gpu else 0))
        # A resource left out of the limit is unlimited; keep some out.
        limit = Resources({n: v for n, v in limit.items() if draw(st.booleans())})
    guarantee = draw(resource_maps(cpu=24, memory=24, gpu=3 if gpu else 0))
    if limit is not None:
        guarantee = Resources(
            {n: min(v, limit[n]) if n in limit else v for n, v in guarantee.items()}
        )
    if draw(st.booleans()):
        # Often a guarantee on some resources only (Mesos' cpu-only guarantees).
        guarantee = Resources({n: v for n, v in guarantee.items() if draw(st.booleans())})
    return Quota(role, guarantee, limit)


@st.composite
def frameworks(
    draw: st.DrawFn, *, count: int, roles: list[str], gpu: bool
) -> tuple[Framework, ...]:
    result = []
    for i in range(count):
        subscribed = tuple(
            draw(st.lists(st.sampled_from(roles), min_size=1, max_size=2, unique=True))
        )
        suppressed = frozenset(r for r in subscribed if chance(draw, 10))
        capabilities = frozenset({GPU_RESOURCES}) if draw(st.booleans()) else frozenset()
        min_allocatable: tuple[Resources, ...] | None = None
        if chance(draw, 25):
            min_allocatable = (draw(resource_maps(cpu=8, memory=8, gpu=1 if gpu else 0)),)
        demand = None
        if not chance(draw, 15):
            shapes = draw(st.lists(task_shapes(gpu=gpu), min_size=1, max_size=2))
            demand = tuple(
                TaskShape(shape, 0 if chance(draw, 10) else draw(st.integers(1, 20)))
                for shape in shapes
            )
        result.append(
            Framework(
                name=f"f{i}",
                roles=subscribed,
                suppressed_roles=suppressed,
                capabilities=capabilities,
                min_allocatable=min_allocatable,
                demand=demand,
            )
        )
    return tuple(result)


def _fits_limits(quotas: tuple[Quota, ...], allocations: list[Allocation]) -> bool:
    for quota in quotas:
        if quota.limit is None:
            continue
        held = total(a.resources for a in allocations if in_subtree(a.role, quota.role))
        if not all(held[n] <= v for n, v in quota.limit.items()):
            return False
    return True


@st.composite
def snapshots(draw: st.DrawFn, *, gpu: bool | None = None) -> Snapshot:
    """A random, self-consistent snapshot: 1–6 nodes, 1–5 frameworks, 1–4 roles."""
    if gpu is None:
        gpu = draw(st.booleans())
    cluster = draw(nodes(count=draw(st.integers(1, 6)), gpu=gpu))
    chosen = draw(st.lists(st.sampled_from(ROLE_POOL), min_size=1, max_size=4, unique=True))
    tree = sorted({name for role in chosen for name in lineage(role)})
    roles = tuple(
        Role(name, draw(st.sampled_from((0.5, 1.0, 2.0, 3.0))))
        for name in tree
        if draw(st.booleans())
    )
    quota_roles = draw(st.lists(st.sampled_from(tree), max_size=3, unique=True))
    quota_list = tuple(draw(quotas(role=role, gpu=gpu)) for role in sorted(quota_roles))

    reservations = []
    for node in cluster:
        if chance(draw, 30):
            resources = within(draw, node.allocatable)
            if resources:
                reservations.append(Reservation(draw(st.sampled_from(tree)), node.name, resources))

    fws = draw(frameworks(count=draw(st.integers(1, 5)), roles=chosen, gpu=gpu))
    clients = [(fw.name, role) for fw in fws for role in fw.roles]

    allocations: list[Allocation] = []
    used = {node.name: node.external_usage for node in cluster}
    by_name = {node.name: node for node in cluster}
    for _ in range(draw(st.integers(0, 6))):
        framework, role = draw(st.sampled_from(clients))
        node = by_name[draw(st.sampled_from(sorted(by_name)))]
        resources = draw(resource_maps(cpu=8, memory=8, gpu=2 if gpu else 0))
        if not resources:
            continue
        candidate = Allocation(framework, role, node.name, resources, draw(st.integers(1, 3)))
        fits_node = used[node.name] + resources <= node.allocatable
        if fits_node and _fits_limits(quota_list, [*allocations, candidate]):
            allocations.append(candidate)
            used[node.name] = used[node.name] + resources

    filters = []
    for _ in range(draw(st.integers(0, 4))):
        framework, role = draw(st.sampled_from(clients))
        node = by_name[draw(st.sampled_from(sorted(by_name)))]
        refused = node.allocatable if draw(st.booleans()) else within(draw, node.allocatable)
        expires_at = draw(st.sampled_from((NOW - 1, NOW + 5)))
        filters.append(Filter(framework, role, node.name, expires_at, refused))

    return Snapshot(
        nodes=cluster,
        frameworks=fws,
        roles=roles,
        quotas=quota_list,
        reservations=tuple(reservations),
        allocations=tuple(allocations),
        filters=tuple(filters),
        now=NOW,
    )


@st.composite
def configs(draw: st.DrawFn, *, mode: Mode) -> AllocatorConfig:
    """Demand or classic mode, sometimes a node shuffle seed, excluded memory, other minimums
    or guarantees lent while their roles want nothing."""
    seed = draw(st.one_of(st.none(), st.integers(0, 1000)))
    excluded = frozenset({MEMORY}) if chance(draw, 15) else frozenset()
    lend = chance(draw, 20)
    if chance(draw, 25):
        minimum = (draw(resource_maps(cpu=4, memory=4, min_cpu=1)),)
        return AllocatorConfig(
            mode=mode,
            seed=seed,
            fairness_excluded=excluded,
            min_allocatable=minimum,
            lend_guarantees=lend,
        )
    return AllocatorConfig(mode=mode, seed=seed, fairness_excluded=excluded, lend_guarantees=lend)


@st.composite
def drf_snapshots(draw: st.DrawFn, *, max_frameworks: int = 4) -> Snapshot:
    """DRF's own setting: one node, frameworks in one role, one task shape each, endless demand."""
    node = Node("n0", draw(resource_maps(cpu=40, memory=40, min_cpu=2, min_memory=2)))
    count = draw(st.integers(2, max_frameworks))
    fws = tuple(
        Framework(name=f"f{i}", demand=(TaskShape(draw(task_shapes(gpu=False)), 1000),))
        for i in range(count)
    )
    return Snapshot(nodes=(node,), frameworks=fws)
