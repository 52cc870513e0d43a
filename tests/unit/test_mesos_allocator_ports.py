"""Classic mode against Mesos' HierarchicalDRF: the rules kubedrf keeps, and cases ported
from Mesos' own allocator tests (``src/tests/hierarchical_allocator_tests.cpp``).

Each ported case is a scenario run through the simulator, so it exercises the allocator code
the master runs; its docstring names the Mesos test and says how the setup was translated.
Mesos' ``recoverResources(..., None)`` (a decline without a filter) is a framework with
``declineAll`` and ``refuseSeconds: 0``; an agent that a framework uses completely is one
its tasks fill exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from kubedrf.allocator import AllocatorConfig, Reason, Snapshot, allocate
from kubedrf.allocator.filters import refusal_expiry
from kubedrf.api.offer import OfferPhase
from kubedrf.master.lifecycle import reconcile
from kubedrf.resources import zero_named
from kubedrf.simulator import SimulationResult, parse_scenario, simulate
from tests.builders import (
    FrameworkBuilder,
    SnapshotBuilder,
    make_framework,
    make_snapshot,
    offered_to,
    res,
)
from tests.unit.test_master_lifecycle import NOW, cache_with, framework, node, offer

CLASSIC = AllocatorConfig(mode="classic")

# -- the rules where classic mode follows Mesos ---------------------------------------------


def test_a_share_tie_goes_to_the_client_that_received_fewer_allocations() -> None:
    def snapshot() -> SnapshotBuilder:
        return (
            make_snapshot()
            .node("n1", cpu="2", memory="1Gi")
            .framework(make_framework("A").no_demand(), make_framework("B").no_demand())
        )

    fresh = allocate(snapshot().received("A", 0).obj(), CLASSIC)
    assert [o.framework for o in fresh.offers] == ["A"]  # nothing received yet: by name
    served = allocate(snapshot().received("A", 1).obj(), CLASSIC)
    assert [o.framework for o in served.offers] == ["B"]


def test_without_a_counter_a_share_tie_goes_to_the_client_holding_fewer_units() -> None:
    # The master passes no counter: it rebuilds ties from tasks and open offers alone.
    snapshot = (
        make_snapshot()
        .node("n1", cpu="2", memory="1Gi")
        .node("n2", cpu="2", memory="1Gi")
        .framework(make_framework("A").no_demand(), make_framework("B").no_demand())
        .allocation("A", "default", "n1", count=2, cpu="1")
        .allocation("B", "default", "n1", count=1, cpu="1")
        .obj()
    )
    assert allocate(snapshot, CLASSIC).offers[0].framework == "B"


def test_a_quota_limit_of_zero_allows_none_of_that_resource() -> None:
    def snapshot(zero_limit: frozenset[str]) -> Snapshot:
        return (
            make_snapshot()
            .node("n1", cpu="4", memory="4Gi")
            .framework(make_framework("A").role("eng").no_demand())
            .quota("eng", limit=res(memory="2Gi"), zero_limit=zero_limit)
            .obj()
        )

    assert offered_to(allocate(snapshot(frozenset()), CLASSIC), "A") == res(cpu="4", memory="2Gi")
    assert offered_to(allocate(snapshot(frozenset({"cpu"})), CLASSIC), "A") == res(memory="2Gi")


def test_a_task_needing_a_zero_limited_resource_is_held_by_the_quota_limit() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .framework(make_framework("A").role("eng").demand(1, cpu="1", memory="1Gi"))
        .quota("eng", zero_limit=frozenset({"cpu"}))
        .obj()
    )
    result = allocate(snapshot, AllocatorConfig())
    assert result.offers == ()
    assert result.reasons()[("A", "eng")] is Reason.QUOTA_LIMIT


def test_the_master_reads_a_zero_limit_from_the_quota_object() -> None:
    quota = {
        "metadata": {"name": "eng", "resourceVersion": "1"},
        "spec": {"role": "default", "limit": {"cpu": "0", "memory": "2Gi"}},
    }
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A")], quotas=[quota])
    (read,) = cache.freeze(NOW).snapshot().quotas
    assert read.zero_limit == {"cpu"}
    assert zero_named({"cpu": "0m", "memory": "1Gi"}) == {"cpu"}


def test_an_explicitly_empty_min_allocatable_allows_any_non_empty_offer() -> None:
    def snapshot(fw: FrameworkBuilder) -> Snapshot:
        # 5m CPU and no memory: below Mesos' default minimum of 10m CPU or 32 MiB.
        return make_snapshot().node("n1", cpu="5m").framework(fw).obj()

    default = snapshot(make_framework("A").no_demand())
    assert allocate(default, CLASSIC).offers == ()
    own_empty = snapshot(make_framework("A").no_demand().min_allocatable())
    assert offered_to(allocate(own_empty, CLASSIC), "A") == res(cpu="5m")
    master_empty = AllocatorConfig(mode="classic", min_allocatable=())
    assert offered_to(allocate(default, master_empty), "A") == res(cpu="5m")


def test_the_master_keeps_an_empty_min_allocatable_apart_from_none() -> None:
    empty = framework("A", offerFilters={"minAllocatable": {}})
    cache = cache_with(nodes=[node("n1")], frameworks=[empty, framework("B")])
    frameworks = {fw.name: fw.min_allocatable for fw in cache.freeze(NOW).snapshot().frameworks}
    assert frameworks == {"team/A": (res(),), "team/B": None}


@pytest.mark.parametrize(
    ("refuse", "expected"),
    [(0.0, None), (0.2, "after the next cycle"), (1.0, "after the next cycle"), (3.0, 13.0)],
)
def test_a_refusal_filter_lasts_until_the_next_cycle_has_run(
    refuse: float, expected: float | str | None
) -> None:
    expiry = refusal_expiry(10.0, refuse, interval=1.0)
    if expected == "after the next cycle":
        assert expiry is not None and 11.0 < expiry < 11.001
    else:
        assert expiry == expected


def test_the_master_stretches_a_short_refusal_to_the_allocation_interval() -> None:
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [{"resources": {"cpu": "1"}, "count": 1}])],
        offers=[offer("a-1", "A", response={"action": "Decline", "refuseSeconds": 0.1})],
    )
    (declined,) = reconcile(cache.freeze(NOW)).transitions
    assert declined.phase is OfferPhase.DECLINED
    assert declined.filter_expires_at is not None
    assert declined.filter_expires_at >= NOW + cache.settings.allocation_interval


# -- ported cases ---------------------------------------------------------------------------

NODE = {"cpu": "1", "memory": "512Mi"}
TASK = {"count": 1000, "resources": {"cpu": "1", "memory": "512Mi"}}


def offers(result: SimulationResult) -> list[list[tuple[str, str]]]:
    """Per cycle, who was offered which node."""
    return [[(o.framework, o.node) for o in record.offers] for record in result.cycles]


def classic(**document: Any) -> dict[str, Any]:
    return {"mode": "classic", "allocationInterval": "1s", **document}


@dataclass(frozen=True)
class Port:
    scenario: dict[str, Any]
    check: Callable[[SimulationResult], None]


def unreserved_drf() -> Port:
    """UnreservedDRF: agents join one at a time and frameworks register later; each new
    agent goes whole to the framework of the role with the lowest share. Agents are sized in
    whole tasks (1 CPU : 512 MiB) so each is used up, as in Mesos' event-triggered runs."""

    def agent(name: str, cpu: int) -> dict[str, Any]:
        return {"name": name, "allocatable": {"cpu": str(cpu), "memory": f"{512 * cpu}Mi"}}

    scenario = classic(
        cycles=5,
        nodes=[agent("agent1", 2)],
        frameworks=[
            {"name": "fw1", "roles": ["role1"], "tasks": TASK},
            {"name": "fw2", "roles": ["role2"], "tasks": TASK, "arrivesAt": "1s"},
            {"name": "fw3", "roles": ["role1"], "tasks": TASK, "arrivesAt": "3s"},
            {"name": "fw4", "roles": ["role1"], "tasks": TASK, "arrivesAt": "4s"},
        ],
        events=[
            {"at": "1s", "addNodes": [agent("agent2", 1)]},
            {"at": "2s", "addNodes": [agent("agent3", 3)]},
            {"at": "3s", "addNodes": [agent("agent4", 4)]},
            {"at": "4s", "addNodes": [agent("agent5", 1)]},
        ],
    )

    def check(result: SimulationResult) -> None:
        assert offers(result) == [
            [("fw1", "agent1")],
            [("fw2", "agent2")],
            [("fw2", "agent3")],  # role2 0.17 < role1 0.33
            [("fw3", "agent4")],  # role1 0.2 < role2 0.4; fw3 lowest within role1
            [("fw2", "agent5")],  # role2 0.36 < role1 0.55, though fw4 holds nothing
        ]

    return Port(scenario, check)


def offer_filter() -> Port:
    """OfferFilter: a filter of twice the allocation interval keeps the declined agent away
    for one batch allocation, and it comes back in the one after."""
    scenario = classic(
        cycles=5,
        nodes=[{"name": "agent", "allocatable": NODE}],
        frameworks=[{"name": "fw", "declineAll": True, "refuseSeconds": "2s", "tasks": TASK}],
    )

    def check(result: SimulationResult) -> None:
        assert [bool(o) for o in offers(result)] == [True, False, True, False, True]

    return Port(scenario, check)


def small_offer_filter_timeout() -> Port:
    """SmallOfferFilterTimeout (MESOS-4302): a filter shorter than the allocation interval
    still holds for the next batch allocation, so the agent goes to the other framework even
    though its share is higher; after that the filter is gone."""
    scenario = classic(
        cycles=4,
        nodes=[{"name": "agent1", "allocatable": NODE}],
        frameworks=[
            {"name": "fw1", "tasks": {**TASK, "count": 2}, "refuseSeconds": 0},
            {"name": "fw2", "declineAll": True, "refuseSeconds": "100ms", "tasks": TASK},
        ],
        events=[{"at": "1s", "addNodes": [{"name": "agent2", "allocatable": NODE}]}],
    )

    def check(result: SimulationResult) -> None:
        assert offers(result)[:3] == [
            [("fw1", "agent1")],
            [("fw2", "agent2")],  # fw2 (share 0) declines with a 0.1 s filter
            [("fw1", "agent2")],  # the filter still holds in this batch allocation
        ]

    return Port(scenario, check)


def coarse_grained() -> Port:
    """CoarseGrained: allocation is per agent; two frameworks in two roles and two agents
    give each framework one whole agent."""
    agent = {"cpu": "2", "memory": "1024Mi"}
    scenario = classic(
        cycles=1,
        nodes=[{"name": "slave1", "allocatable": agent}, {"name": "slave2", "allocatable": agent}],
        frameworks=[
            {"name": "framework1", "roles": ["role1"], "tasks": TASK},
            {"name": "framework2", "roles": ["role2"], "tasks": TASK},
        ],
    )

    def check(result: SimulationResult) -> None:
        assert offers(result) == [[("framework1", "slave1"), ("framework2", "slave2")]]

    return Port(scenario, check)


def same_share_fairness() -> Port:
    """SameShareFairness: two frameworks with the same share get an equal number of
    allocations over time, not all of them for the lexicographically first."""
    scenario = classic(
        cycles=10,
        nodes=[{"name": "slave", "allocatable": {"cpu": "2", "memory": "1024Mi"}}],
        frameworks=[
            {"name": name, "declineAll": True, "refuseSeconds": 0, "tasks": TASK}
            for name in ("framework1", "framework2")
        ],
    )

    def check(result: SimulationResult) -> None:
        got = Counter(fw for cycle in offers(result) for fw, _ in cycle)
        assert got == {"framework1": 5, "framework2": 5}
        assert [cycle[0][0] for cycle in offers(result)][:4] == [
            "framework1",
            "framework2",
            "framework1",
            "framework2",
        ]

    return Port(scenario, check)


def reservations() -> Port:
    """Reservations: reserved resources go only to their role; a reservation for a role
    without frameworks is never offered; a framework registering later gets its own."""
    scenario = classic(
        cycles=2,
        nodes=[
            {"name": "slave1", "allocatable": {"cpu": "2", "memory": "1024Mi"}},
            {"name": "slave2", "allocatable": {"cpu": "3", "memory": "1536Mi"}},
            {"name": "slave3", "allocatable": {"cpu": "1", "memory": "1024Mi"}},
        ],
        reservations=[
            {"role": "role1", "nodeName": "slave1", "resources": {"cpu": "2", "memory": "1Gi"}},
            {"role": "role2", "nodeName": "slave2", "resources": {"cpu": "2", "memory": "1Gi"}},
            {"role": "role3", "nodeName": "slave3", "resources": {"cpu": "1", "memory": "1Gi"}},
        ],
        frameworks=[
            {"name": "framework1", "roles": ["role1"], "tasks": TASK},
            {
                "name": "framework2",
                "roles": ["role2"],
                "declineAll": True,
                "refuseSeconds": 60,
                "arrivesAt": "1s",
            },
        ],
    )

    def check(result: SimulationResult) -> None:
        first, second = result.cycles
        assert {(o.node, o.resources.to_canonical()["cpu"]) for o in first.offers} == {
            ("slave1", 2),
            ("slave2", 1),  # only the unreserved part
        }
        assert [(o.framework, o.node, o.resources.to_quantities()) for o in second.offers] == [
            ("framework2", "slave2", {"cpu": "2", "memory": "1Gi"})
        ]

    return Port(scenario, check)


def allocatable() -> Port:
    """Allocatable: an agent with less than the minimum CPU and memory is never offered; one
    with enough of either is."""
    scenario = classic(
        cycles=2,
        nodes=[{"name": "slave1", "allocatable": {"cpu": "5m", "memory": "16Mi"}}],
        frameworks=[{"name": "framework", "declineAll": True, "refuseSeconds": 60}],
        events=[
            {
                "at": "1s",
                "addNodes": [
                    {"name": "slave2", "allocatable": {"cpu": "10m", "memory": "16Mi"}},
                    {"name": "slave3", "allocatable": {"cpu": "5m", "memory": "32Mi"}},
                ],
            }
        ],
    )

    def check(result: SimulationResult) -> None:
        assert offers(result) == [[], [("framework", "slave2"), ("framework", "slave3")]]

    return Port(scenario, check)


QUOTA = {"role": "quota-role", "guarantee": {"cpu": "2", "memory": "1024Mi"}}


def quota_provides_guarantee() -> Port:
    """QuotaProvidesGuarantee: resources a quota'ed framework declines are laid away for its
    role, not handed to a greedy framework in a role without quota."""
    scenario = classic(
        cycles=4,
        nodes=[{"name": "agent1", "allocatable": NODE}],
        quotas=[QUOTA],
        frameworks=[
            {"name": "framework1", "roles": ["quota-role"], "tasks": {**TASK, "count": 1}},
            {"name": "framework2", "roles": ["no-quota-role"], "tasks": TASK},
        ],
        events=[{"at": "1s", "addNodes": [{"name": "agent2", "allocatable": NODE}]}],
    )
    scenario["frameworks"][0]["refuseSeconds"] = "2s"

    def check(result: SimulationResult) -> None:
        assert offers(result) == [
            [("framework1", "agent1")],
            [("framework1", "agent2")],  # declined with a 2 s filter
            [],  # framework2 must wait
            [("framework1", "agent2")],
        ]

    return Port(scenario, check)


def remove_quota() -> Port:
    """RemoveQuota: once the quota is removed and a task of the quota'ed role ends, fair
    sharing gives the freed agent to the role without quota. Two frameworks stand in for
    Mesos' one so that exactly one agent frees up."""
    scenario = classic(
        cycles=3,
        nodes=[{"name": "agent1", "allocatable": NODE}, {"name": "agent2", "allocatable": NODE}],
        quotas=[QUOTA],
        frameworks=[
            {
                "name": "framework1a",
                "roles": ["quota-role"],
                "tasks": {**TASK, "count": 1, "duration": "2s"},
            },
            {"name": "framework1b", "roles": ["quota-role"], "tasks": {**TASK, "count": 1}},
            {"name": "framework2", "roles": ["no-quota-role"], "tasks": TASK},
        ],
        events=[{"at": "1s", "removeQuota": "quota-role"}],
    )

    def check(result: SimulationResult) -> None:
        assert offers(result) == [
            [("framework1a", "agent1"), ("framework1b", "agent2")],
            [],
            [("framework2", "agent1")],
        ]

    return Port(scenario, check)


def drf_with_quota() -> Port:
    """DRFWithQuota: once quotas are satisfied, the rest is shared by DRF among roles
    without quota. Mesos of that test had no limits and gave a quota'ed role nothing beyond
    its quota; here that is a limit equal to the guarantee."""
    guarantee = {"cpu": "250m", "memory": "128Mi"}
    scenario = classic(
        cycles=2,
        nodes=[{"name": "agent1", "allocatable": NODE}],
        quotas=[{"role": "quota-role", "guarantee": guarantee, "limit": guarantee}],
        frameworks=[
            {
                "name": "framework1",
                "roles": ["quota-role"],
                "tasks": {"count": 10, "resources": guarantee},
            },
            {"name": "framework2", "roles": ["no-quota-role"], "tasks": TASK},
        ],
        events=[{"at": "1s", "addNodes": [{"name": "agent2", "allocatable": NODE}]}],
    )

    def check(result: SimulationResult) -> None:
        first, second = result.cycles
        assert offered_cpu(first) == {"framework1": 0.25, "framework2": 0.75}
        assert [(o.framework, o.node) for o in second.offers] == [("framework2", "agent2")]

    return Port(scenario, check)


def offered_cpu(record: Any) -> dict[str, float]:
    return {o.framework: o.resources.to_canonical()["cpu"] for o in record.offers}


def quota_against_starvation() -> Port:
    """QuotaAgainstStarvation: a framework declining with a zero filter keeps getting the
    free agent back; setting quota for the starving role gives it to that role instead."""
    scenario = classic(
        cycles=4,
        nodes=[{"name": "agent1", "allocatable": NODE}, {"name": "agent2", "allocatable": NODE}],
        frameworks=[
            {"name": "framework1", "roles": ["quota-role"], "tasks": {**TASK, "count": 2}},
            {
                "name": "framework2",
                "roles": ["no-quota-role"],
                "declineAll": True,
                "refuseSeconds": 0,
            },
        ],
        events=[{"at": "3s", "setQuota": QUOTA}],
    )

    def check(result: SimulationResult) -> None:
        # Both shares start at 0 and "no-quota-role" sorts first, so the agents swap places
        # against Mesos' test, where framework1 held agent1 from the start.
        assert offers(result) == [
            [("framework2", "agent1"), ("framework1", "agent2")],
            [("framework2", "agent1")],
            [("framework2", "agent1")],
            [("framework1", "agent1")],
        ]

    return Port(scenario, check)


def deactivate_and_reactivate_framework() -> Port:
    """DeactivateAndReactivateFramework: a suppressed framework gets no offers; once it
    revives it is offered the agent again."""
    scenario = classic(
        cycles=4,
        nodes=[{"name": "agent", "allocatable": {"cpu": "2", "memory": "1024Mi"}}],
        frameworks=[
            {"name": "framework", "roles": ["role1"], "declineAll": True, "refuseSeconds": 0}
        ],
        events=[
            {"at": "1s", "suppress": {"framework": "framework"}},
            {"at": "3s", "revive": {"framework": "framework", "role": "role1"}},
        ],
    )

    def check(result: SimulationResult) -> None:
        assert [bool(o) for o in offers(result)] == [True, False, False, True]

    return Port(scenario, check)


def update_weight() -> Port:
    """UpdateWeight: allocation follows each role's weight; after role2's weight becomes 2,
    role2 gets twice as many of the six identical agents as role1."""
    agent = {"cpu": "2", "memory": "1024Mi"}
    scenario = classic(
        cycles=2,
        nodes=[{"name": f"agent{i}", "allocatable": agent} for i in range(6)],
        frameworks=[
            {"name": "framework1", "roles": ["role1"], "declineAll": True, "refuseSeconds": 0},
            {"name": "framework2", "roles": ["role2"], "declineAll": True, "refuseSeconds": 0},
        ],
        events=[{"at": "1s", "setWeight": {"role": "role2", "weight": 2}}],
    )

    def check(result: SimulationResult) -> None:
        per_cycle = [Counter(fw for fw, _ in cycle) for cycle in offers(result)]
        assert per_cycle == [
            {"framework1": 3, "framework2": 3},
            {"framework1": 2, "framework2": 4},
        ]

    return Port(scenario, check)


PORTS = {
    "UnreservedDRF": unreserved_drf,
    "OfferFilter": offer_filter,
    "SmallOfferFilterTimeout": small_offer_filter_timeout,
    "CoarseGrained": coarse_grained,
    "SameShareFairness": same_share_fairness,
    "Reservations": reservations,
    "Allocatable": allocatable,
    "QuotaProvidesGuarantee": quota_provides_guarantee,
    "RemoveQuota": remove_quota,
    "DRFWithQuota": drf_with_quota,
    "QuotaAgainstStarvation": quota_against_starvation,
    "DeactivateAndReactivateFramework": deactivate_and_reactivate_framework,
    "UpdateWeight": update_weight,
}


@pytest.mark.parametrize("mesos_test", sorted(PORTS))
def test_classic_mode_passes_the_mesos_allocator_test(mesos_test: str) -> None:
    port = PORTS[mesos_test]()
    port.check(simulate(parse_scenario(port.scenario, mesos_test)))
