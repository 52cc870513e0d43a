"""The allocation rules of docs/design.md, one behaviour per test."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kubedrf.allocator import AllocatorConfig, Reason, Stage, allocate
from kubedrf.allocator.filters import revive
from tests.builders import (
    SnapshotBuilder,
    make_framework,
    make_snapshot,
    offered_on,
    offered_to,
    res,
    tasks_offered,
    with_offers_as_allocations,
)

CLASSIC = AllocatorConfig(mode="classic")


def seed_snapshot() -> SnapshotBuilder:
    return (
        make_snapshot()
        .node("n1", cpu="9", memory="18Gi")
        .framework(
            make_framework("A").demand(100, cpu="1", memory="4Gi"),
            make_framework("B").demand(100, cpu="3", memory="1Gi"),
        )
    )


def test_seed_example_equalises_dominant_shares_in_demand_mode() -> None:
    result = allocate(seed_snapshot().obj())

    assert tasks_offered(result, "A") == 3
    assert tasks_offered(result, "B") == 2
    assert offered_to(result, "A") == res(cpu="3", memory="12Gi")
    assert offered_to(result, "B") == res(cpu="6", memory="2Gi")
    total = res(cpu="9", memory="18Gi")
    assert offered_to(result, "A").dominant_share(total) == pytest.approx(2 / 3)
    assert offered_to(result, "B").dominant_share(total) == pytest.approx(2 / 3)


def test_seed_example_is_stable_once_accepted() -> None:
    snapshot = seed_snapshot().obj()
    after = with_offers_as_allocations(snapshot, allocate(snapshot))
    again = allocate(after)
    assert again.offers == ()
    assert again.reasons()[("A", "default")] is Reason.NO_CAPACITY


def test_classic_mode_offers_the_whole_node_as_mesos_does() -> None:
    result = allocate(seed_snapshot().obj(), CLASSIC)
    assert [(o.framework, o.resources) for o in result.offers] == [
        ("A", res(cpu="9", memory="18Gi"))
    ]
    assert result.reasons()[("B", "default")] is Reason.NO_CAPACITY


def test_classic_mode_spreads_many_small_nodes_by_share() -> None:
    snapshot = (
        make_snapshot()
        .nodes(4, cpu="4", memory="4Gi")
        .framework(make_framework("A").no_demand(), make_framework("B").no_demand())
        .obj()
    )
    result = allocate(snapshot, CLASSIC)
    per_framework = {name: [o for o in result.offers if o.framework == name] for name in "AB"}
    assert [len(offers) for offers in per_framework.values()] == [2, 2]
    assert all(o.resources == res(cpu="4", memory="4Gi") for o in result.offers)
    assert len({o.node for o in result.offers}) == 4


def test_demand_mode_gives_nothing_to_frameworks_without_demand() -> None:
    snapshot = (
        make_snapshot().node("n1", cpu="4").framework(make_framework("idle").no_demand()).obj()
    )
    result = allocate(snapshot)
    assert result.offers == ()
    assert result.reasons() == {("idle", "default"): Reason.NO_DEMAND}


def test_weighted_roles_share_in_proportion_to_weight() -> None:
    snapshot = (
        make_snapshot()
        .nodes(3, cpu="10", memory="10Gi")
        .role("gold", weight=2)
        .role("silver", weight=1)
        .framework(
            make_framework("G").role("gold").demand(100, cpu="1", memory="1Gi"),
            make_framework("S").role("silver").demand(100, cpu="1", memory="1Gi"),
        )
        .obj()
    )
    result = allocate(snapshot)
    assert (tasks_offered(result, "G"), tasks_offered(result, "S")) == (20, 10)


def test_nested_roles_compete_as_siblings_then_within_the_subtree() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="12", memory="12Gi")
        .framework(
            make_framework("web").role("eng.web").demand(100, cpu="1", memory="1Gi"),
            make_framework("batch").role("eng.batch").demand(100, cpu="1", memory="1Gi"),
            make_framework("ops").role("ops").demand(100, cpu="1", memory="1Gi"),
        )
        .obj()
    )
    result = allocate(snapshot)
    assert tasks_offered(result, "ops") == 6
    assert tasks_offered(result, "web") == 3
    assert tasks_offered(result, "batch") == 3


def test_a_role_below_its_guarantee_is_served_first() -> None:
    builder = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .allocation("P", "prod", "n1", count=2, cpu="2", memory="2Gi")
        .framework(
            make_framework("P").role("prod").demand(100, cpu="1", memory="1Gi"),
            make_framework("D").role("dev").demand(100, cpu="1", memory="1Gi"),
        )
    )
    without_quota = allocate(builder.obj())
    with_quota = allocate(builder.quota("prod", guarantee=res(cpu="6")).obj())

    # Plain DRF lets dev catch up first; the guarantee puts prod ahead of it.
    assert tasks_offered(without_quota, "P") == 3
    assert tasks_offered(with_quota, "P") == 4
    assert tasks_offered(with_quota, "D") == 4
    prod_offer = next(o for o in with_quota.offers if o.framework == "P")
    assert prod_offer.stage is Stage.GUARANTEE


def test_a_quota_limit_is_never_exceeded() -> None:
    builder = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .quota("capped", limit=res(cpu="3"))
        .framework(make_framework("C").role("capped").demand(100, cpu="1", memory="1Gi"))
    )
    assert offered_to(allocate(builder.obj()), "C") == res(cpu="3", memory="3Gi")

    full = builder.allocation("C", "capped", "n1", count=3, cpu="3", memory="3Gi").obj()
    result = allocate(full)
    assert result.offers == ()
    assert result.reasons() == {("C", "capped"): Reason.QUOTA_LIMIT}


def test_fair_share_holds_back_headroom_for_unmet_guarantees() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .quota("later", guarantee=res(cpu="4"))
        .framework(make_framework("X").role("now").demand(100, cpu="1", memory="1Gi"))
        .obj()
    )
    result = allocate(snapshot)
    assert offered_to(result, "X") == res(cpu="6", memory="6Gi")

    starved = allocate(with_offers_as_allocations(snapshot, result))
    assert starved.reasons() == {("X", "now"): Reason.HEADROOM}


def test_reserved_resources_go_only_to_their_role_subtree() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .reservation("db", "n1", cpu="4", memory="4Gi")
        .framework(
            make_framework("web").role("web").demand(100, cpu="1", memory="1Gi"),
            make_framework("replica").role("db.replica").demand(100, cpu="1", memory="1Gi"),
        )
        .obj()
    )
    result = allocate(snapshot)
    # web may only take the unreserved 6; db.replica gets the reservation and shares the rest.
    assert offered_to(result, "web") == res(cpu="5", memory="5Gi")
    assert offered_to(result, "replica") == res(cpu="5", memory="5Gi")

    alone = allocate(
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .reservation("db", "n1", cpu="4", memory="4Gi")
        .framework(make_framework("web").role("web").demand(100, cpu="1", memory="1Gi"))
        .obj()
    )
    assert offered_to(alone, "web") == res(cpu="6", memory="6Gi")


def test_reservations_count_toward_quota_consumption() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .reservation("db", "n1", cpu="4")
        .quota("db", guarantee=res(cpu="4"))
        .framework(make_framework("web").role("web").demand(100, cpu="1", memory="1Gi"))
        .obj()
    )
    # The reservation already meets db's guarantee, so no extra headroom is held back.
    assert offered_to(allocate(snapshot), "web") == res(cpu="6", memory="6Gi")


def test_a_filter_hides_the_node_until_it_expires() -> None:
    def snapshot_at(now: float) -> SnapshotBuilder:
        return (
            make_snapshot()
            .node("n1", cpu="4", memory="4Gi")
            .node("n2", cpu="4", memory="4Gi")
            .framework(make_framework("A").demand(1, cpu="1", memory="1Gi"))
            .filter("A", "n1", expires_at=5.0, refused=res(cpu="4", memory="4Gi"))
            .at(now)
        )

    early = allocate(snapshot_at(0.0).obj())
    assert [o.node for o in early.offers] == ["n2"]
    late = allocate(snapshot_at(5.0).obj())
    assert [o.node for o in late.offers] == ["n1"]


def test_a_filter_stops_applying_when_more_frees_up_on_the_node() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .framework(make_framework("A").demand(1, cpu="1", memory="1Gi"))
        .filter("A", "n1", expires_at=100.0, refused=res(cpu="2", memory="4Gi"))
        .obj()
    )
    assert [o.node for o in allocate(snapshot).offers] == ["n1"]


def test_a_fully_filtered_framework_is_told_why() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .framework(make_framework("A").demand(1, cpu="1", memory="1Gi"))
        .filter("A", "n1", expires_at=100.0, refused=res(cpu="4", memory="4Gi"))
        .obj()
    )
    result = allocate(snapshot)
    assert result.offers == ()
    assert result.reasons() == {("A", "default"): Reason.FILTERED}


def test_suppress_removes_a_role_and_revive_clears_filters() -> None:
    builder = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .framework(
            make_framework("A").role("x", "y").suppress("x").demand(10, cpu="1", memory="1Gi")
        )
    )
    result = allocate(builder.obj())
    assert {o.role for o in result.offers} == {"y"}
    assert result.reasons()[("A", "x")] is Reason.SUPPRESSED

    filtered = builder.filter("A", "n1", 100.0, res(cpu="4", memory="4Gi"), role="y").obj()
    assert allocate(filtered).offers == ()
    revived = replace(filtered, filters=revive(filtered.filters, "A"))
    assert {o.role for o in allocate(revived).offers} == {"y"}


def test_gpu_nodes_are_hidden_from_frameworks_without_the_capability() -> None:
    builder = (
        make_snapshot()
        .node("gpu-1", cpu="8", memory="8Gi", gpu=2)
        .framework(make_framework("plain").demand(1, cpu="1", memory="1Gi"))
    )
    assert allocate(builder.obj()).offers == ()
    opted_in = builder.framework(make_framework("trainer").gpu().demand(1, cpu="1", gpu=1)).obj()
    result = allocate(opted_in)
    assert [(o.framework, o.node) for o in result.offers] == [("trainer", "gpu-1")]
    assert offered_to(result, "trainer") == res(cpu="1", gpu=1)


def test_offers_below_min_allocatable_are_not_made() -> None:
    tiny = (
        make_snapshot()
        .node("n1", external=res(cpu="3995m", memory="4080Mi"), cpu="4", memory="4Gi")
        .framework(make_framework("A").no_demand())
        .obj()
    )
    # 5m CPU and 16Mi memory left: below both of Mesos' defaults (10m CPU or 32Mi memory).
    assert allocate(tiny, CLASSIC).offers == ()
    picky = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .framework(make_framework("A").no_demand().min_allocatable(cpu="8"))
        .obj()
    )
    assert allocate(picky, CLASSIC).offers == ()


def test_fairness_excluded_resources_do_not_count_toward_shares() -> None:
    builder = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi", licenses=10)
        .allocation("A", "default", "n1", licenses=10)
        .framework(
            make_framework("A").demand(10, cpu="1"),
            make_framework("B").demand(10, cpu="1"),
        )
    )
    counted = allocate(builder.obj())
    excluded = allocate(builder.obj(), AllocatorConfig(fairness_excluded=frozenset({"licenses"})))
    assert (tasks_offered(counted, "A"), tasks_offered(counted, "B")) == (0, 4)
    assert (tasks_offered(excluded, "A"), tasks_offered(excluded, "B")) == (2, 2)


def test_the_same_inputs_and_seed_give_the_same_offers() -> None:
    builder = (
        make_snapshot()
        .nodes(20, cpu="4", memory="4Gi")
        .framework(*(make_framework(f"f{i}").demand(7, cpu="1", memory="1Gi") for i in range(5)))
    )
    config = AllocatorConfig(seed=7)
    first = allocate(builder.obj(), config)
    assert allocate(builder.obj(), config) == first
    assert sum(offered_on(first, f"n{i:04d}")["cpu"] for i in range(20)) == 35_000


def test_stage_one_serves_only_what_the_guarantee_lacks() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .node("g1", cpu="4", memory="4Gi", gpu=1)
        .quota("a", guarantee=res(gpu=1))
        .framework(
            make_framework("A").role("a").gpu().demand(100, cpu="1", memory="1Gi"),
            make_framework("B").role("b").demand(100, cpu="1", memory="1Gi"),
        )
        .obj()
    )
    result = allocate(snapshot)
    # A's CPU-only tasks do nothing for its GPU guarantee: no stage-1 head start for them.
    assert all(o.stage is Stage.FAIR_SHARE for o in result.offers)
    assert tasks_offered(result, "B") >= 5
