"""The allocator's shortcuts give exactly what the straightforward code gives.

A cycle without quotas or reservations runs stage 2 in one inlined loop
(``_Cycle._plain_fair_share``), which in demand mode, and in classic mode on nodes of one
free size, serves clients in turns the sorter computes ahead (``_plain_in_turns``);
revocation's target sums a cycle's offers without building them (``offered_totals``). Each
is compared here with the general code on random snapshots: small ones from
``tests/strategies.py`` with their quotas and reservations sometimes
dropped, and wide ones where searches run past the nodes they probe one by one.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubedrf.allocator import (
    Allocation,
    AllocatorConfig,
    Filter,
    Framework,
    Node,
    Received,
    Role,
    Snapshot,
    TaskShape,
    allocate,
    cycle,
    revocations,
)
from kubedrf.allocator.cycle import offered_totals
from kubedrf.allocator.nodes import _PROBES
from kubedrf.allocator.sorter import DRFSorter
from kubedrf.resources import EMPTY, Resources
from tests.strategies import (
    NOW,
    ROLE_POOL,
    chance,
    configs,
    resource_maps,
    snapshots,
    task_shapes,
)

MODES = st.sampled_from(["demand", "classic"]).flatmap(lambda mode: configs(mode=mode))


@contextmanager
def general_loop_only() -> Iterator[None]:
    """Run cycles through the general loop alone, the reference the shortcut must match."""
    cycle._Cycle.fast_paths = False
    try:
        yield
    finally:
        cycle._Cycle.fast_paths = True


@contextmanager
def turn_by_turn() -> Iterator[None]:
    """Run the plain loop asking the sorter for each turn, the reference for the turns it
    computes ahead."""
    cycle._Cycle.in_turns = False
    try:
        yield
    finally:
        cycle._Cycle.in_turns = True


def reference(snapshot: Snapshot, config: AllocatorConfig) -> object:
    with general_loop_only():
        return allocate(snapshot, config)


@st.composite
def plain_snapshots(draw: st.DrawFn) -> Snapshot:
    """Random snapshots, most of them without quotas and reservations (the shortcut's
    case); the rest keep theirs, where the general loop must still be taken."""
    snapshot = draw(snapshots())
    if chance(draw, 80):
        snapshot = replace(snapshot, quotas=(), reservations=())
    return snapshot


@st.composite
def wide_snapshots(draw: st.DrawFn) -> Snapshot:
    """Many small nodes, frameworks with large demand, and filters on many nodes: searches
    pass more than ``_PROBES`` nodes and switch to the vectorised scan."""
    count = draw(st.integers(_PROBES + 1, 3 * _PROBES))
    nodes = tuple(
        Node(f"n{i:03d}", draw(resource_maps(cpu=8, memory=8, min_cpu=1, min_memory=1)))
        for i in range(count)
    )
    frameworks = tuple(
        Framework(f"f{i}", demand=(TaskShape(draw(task_shapes(gpu=False)), 200),))
        for i in range(draw(st.integers(1, 4)))
    )
    filters = tuple(
        Filter(fw.name, "default", node.name, NOW + 5, node.allocatable)
        for fw in frameworks
        for node in nodes
        if chance(draw, 60)
    )
    return Snapshot(nodes=nodes, frameworks=frameworks, filters=filters, now=NOW)


@st.composite
def crowded_snapshots(draw: st.DrawFn) -> Snapshot:
    """Many clients competing for many nodes: a role tree with weights, frameworks in one or
    two roles (sharing one demand), several shapes, demands past what fits, tasks held, and
    allocation counts carried over (``received``), so turns tie, interleave across roles,
    switch shapes and end mid-way."""
    nodes = tuple(
        Node(f"n{i:02d}", draw(resource_maps(cpu=8, memory=8, min_cpu=1, min_memory=1)))
        for i in range(draw(st.integers(1, 12)))
    )
    roles = draw(st.lists(st.sampled_from(ROLE_POOL), min_size=1, max_size=4, unique=True))
    frameworks = tuple(
        Framework(
            f"f{i}",
            roles=tuple(
                draw(st.lists(st.sampled_from(roles), min_size=1, max_size=2, unique=True))
            ),
            demand=tuple(
                TaskShape(draw(task_shapes(gpu=False)), draw(st.integers(0, 40)))
                for _ in range(draw(st.integers(1, 3)))
            ),
        )
        for i in range(draw(st.integers(1, 10)))
    )
    clients = [(fw.name, role) for fw in frameworks for role in fw.roles]
    allocations = tuple(
        Allocation(fw, role, draw(st.sampled_from(nodes)).name, draw(task_shapes(gpu=False)))
        for fw, role in clients
        if chance(draw, 30)
    )
    received = None
    if chance(draw, 40):
        received = tuple(Received(fw, role, draw(st.integers(0, 5))) for fw, role in clients)
    weights = (0.5, 1.0, 2.0, 3.0)
    return Snapshot(
        nodes=nodes,
        frameworks=frameworks,
        roles=tuple(Role(r, draw(st.sampled_from(weights))) for r in roles if chance(draw, 50)),
        allocations=allocations,
        received=received,
        now=NOW,
    )


@st.composite
def uniform_snapshots(draw: st.DrawFn) -> Snapshot:
    """Classic mode's case for turns computed ahead: every node with room has the same free
    capacity (some nodes full, GPUs on all or none), many clients in a weighted role tree
    with holdings elsewhere, allocation counters, minimums and filters."""
    gpu = chance(draw, 20)
    size = draw(resource_maps(cpu=8, memory=8, min_cpu=1, min_memory=1))
    if gpu:
        size = size + Resources({"nvidia.com/gpu": 1})
    count = draw(st.integers(1, 3 * _PROBES))
    full = set(draw(st.lists(st.integers(0, count - 1), max_size=count // 2)))
    roles = draw(st.lists(st.sampled_from(ROLE_POOL), min_size=1, max_size=4, unique=True))
    frameworks = tuple(
        Framework(
            f"f{i}",
            roles=tuple(
                draw(st.lists(st.sampled_from(roles), min_size=1, max_size=2, unique=True))
            ),
            capabilities=frozenset({"GPU_RESOURCES"}) if chance(draw, 50) else frozenset(),
            min_allocatable=((draw(task_shapes(gpu=False)),) if chance(draw, 30) else None),
        )
        for i in range(draw(st.integers(1, 12)))
    )
    clients = [(fw.name, role) for fw in frameworks for role in fw.roles]
    nodes = tuple(Node(f"n{i:03d}", size) for i in range(count))
    # A node is full through a holding of all it has; two more holdings fill an extra node
    # of another size, so shares start uneven without breaking the pool.
    other = Node("z-other", size + size)
    allocations = [
        Allocation(*draw(st.sampled_from(clients)), nodes[n].name, size) for n in sorted(full)
    ]
    allocations += [Allocation(*draw(st.sampled_from(clients)), other.name, size) for _ in range(2)]
    filters = tuple(
        Filter(fw, role, node.name, NOW + 5, size)
        for fw, role in clients
        for node in nodes
        if chance(draw, 10)
    )
    received = None
    if chance(draw, 40):
        received = tuple(Received(fw, role, draw(st.integers(0, 5))) for fw, role in clients)
    return Snapshot(
        nodes=(*nodes, other),
        frameworks=frameworks,
        roles=tuple(Role(r, draw(st.sampled_from((0.5, 1.0, 3.0)))) for r in roles),
        allocations=tuple(allocations),
        filters=filters,
        received=received,
        now=NOW,
    )


@settings(max_examples=300, deadline=None)
@given(snapshot=uniform_snapshots(), config=configs(mode="classic"))
def test_classic_turns_computed_ahead_on_nodes_of_one_size_offer_what_each_turn_offers(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    with turn_by_turn():
        expected = allocate(snapshot, config)

    assert allocate(snapshot, config) == expected
    assert expected == reference(snapshot, config)


def test_classic_mode_on_nodes_of_one_size_computes_its_turns_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planned: list[int] = []
    runs = cycle._Cycle._classic_runs

    def spy(self: cycle._Cycle, *args: object) -> object:
        result = runs(self, *args)  # type: ignore[arg-type]
        planned.append(sum(run.n for run in result.values()))
        return result

    monkeypatch.setattr(cycle._Cycle, "_classic_runs", spy)
    size = Resources({"cpu": 4000})
    nodes = tuple(Node(f"n{i}", size) for i in range(6))
    snapshot = Snapshot(nodes=nodes, frameworks=(Framework("a"), Framework("b")))
    result = allocate(snapshot, AllocatorConfig(mode="classic"))

    assert planned and planned[0] == 12  # twice each one's even part of 6 nodes
    assert sorted((o.framework, o.node) for o in result.offers) == [
        ("a", "n0"),
        ("a", "n2"),
        ("a", "n4"),
        ("b", "n1"),
        ("b", "n3"),
        ("b", "n5"),
    ]


@settings(max_examples=300, deadline=None)
@given(
    snapshot=st.one_of(plain_snapshots(), crowded_snapshots()),
    config=configs(mode="demand"),
)
def test_turns_computed_ahead_offer_exactly_what_asking_the_sorter_each_turn_offers(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    with turn_by_turn():
        expected = allocate(snapshot, config), offered_totals(snapshot, config)

    assert (allocate(snapshot, config), offered_totals(snapshot, config)) == expected


@settings(max_examples=400, deadline=None)
@given(snapshot=plain_snapshots(), config=MODES)
def test_the_plain_fair_share_loop_offers_exactly_what_the_general_loop_offers(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    assert allocate(snapshot, config) == reference(snapshot, config)


@settings(max_examples=100, deadline=None)
@given(snapshot=wide_snapshots(), config=MODES)
def test_the_plain_loop_matches_the_general_loop_when_searches_scan_many_filtered_nodes(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    assert allocate(snapshot, config) == reference(snapshot, config)


def test_a_cycle_without_quotas_or_reservations_takes_the_plain_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: list[bool] = []
    plain = cycle._Cycle._plain_fair_share

    def spy(self: cycle._Cycle) -> None:
        taken.append(True)
        plain(self)

    monkeypatch.setattr(cycle._Cycle, "_plain_fair_share", spy)
    node = Node("n0", Resources({"cpu": 4000}))
    framework = Framework("f", demand=(TaskShape(Resources({"cpu": 1000}), 2),))
    result = allocate(Snapshot(nodes=(node,), frameworks=(framework,)))

    assert taken == [True]
    assert [o.tasks for o in result.offers] == [((0, 2),)]


@settings(max_examples=300, deadline=None)
@given(snapshot=st.one_of(plain_snapshots(), uniform_snapshots()), config=MODES)
def test_filters_compared_in_one_array_operation_apply_where_each_compared_alone_applies(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    state = cycle._Cycle(replace(snapshot, reservations=()), config, DRFSorter)

    assert state._active_filters_unreserved() == state._active_filters_by_role()


@settings(max_examples=300, deadline=None)
@given(snapshot=snapshots(), config=configs(mode="demand"))
def test_offered_totals_are_the_sums_of_the_offers_allocate_makes(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    offered: dict[tuple[str, str], Resources] = {}
    tasks: dict[tuple[str, str], int] = {}
    for offer in allocate(snapshot, config).offers:
        client = (offer.framework, offer.role)
        offered[client] = offered.get(client, EMPTY) + offer.resources
        tasks[client] = tasks.get(client, 0) + sum(count for _, count in offer.tasks)

    assert offered_totals(snapshot, config) == (offered, tasks)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_cycle_and_revocation_leave_the_garbage_collector_as_they_found_it(
    enabled: bool,
) -> None:
    snapshot = Snapshot(nodes=(Node("n0", Resources({"cpu": 1000})),), frameworks=())
    was = gc.isenabled()
    try:
        if not enabled:
            gc.disable()
        allocate(snapshot)
        assert gc.isenabled() is enabled
        revocations(snapshot)
        assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()
