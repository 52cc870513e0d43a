"""Headroom for guarantees: how much is held back, who may still be served, and what is
reported when a framework gets nothing (issues: a guarantee nobody uses starves everyone;
a full cluster reported as held for guarantees)."""

from __future__ import annotations

from typing import Any

from kubedrf.allocator import Reason, Stage, allocate
from kubedrf.allocator.nodes import ResourceIndex
from kubedrf.allocator.quota import QuotaBook
from kubedrf.allocator.shares import shares
from kubedrf.api import QuotaStatus
from kubedrf.master.status import quota_statuses, status_patch
from tests.builders import make_framework, make_snapshot, offered_to, res
from tests.unit.test_master_lifecycle import NOW, cache_with, node


def test_a_role_below_its_guarantee_is_served_though_another_guarantee_holds_its_memory() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="10", memory="20Gi")
        .quota("ghost", guarantee=res(cpu="1000", memory="100Ti"))
        .quota("prod", guarantee=res(cpu="4"))
        .framework(
            make_framework("P").role("prod").demand(100, cpu="1", memory="1Gi"),
            make_framework("D").role("dev").demand(100, cpu="1", memory="1Gi"),
        )
        .obj()
    )
    result = allocate(snapshot)
    # prod's tasks need memory that "ghost" (no frameworks) holds back; its CPU guarantee
    # still puts it first, up to that guarantee.
    assert offered_to(result, "P") == res(cpu="4", memory="4Gi")
    assert {o.stage for o in result.offers} == {Stage.GUARANTEE}
    # The rest would fit but is held for "ghost", as Mesos holds it.
    assert result.reasons() == {("D", "dev"): Reason.HEADROOM}


def test_a_full_cluster_is_reported_as_full_to_roles_whose_guarantee_is_met() -> None:
    builder = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .allocation("P", "prod", "n1", count=3, cpu="3", memory="3Gi")
        .allocation("D", "dev", "n1", count=1, cpu="1", memory="1Gi")
        .framework(
            make_framework("P").role("prod").demand(10, cpu="1", memory="1Gi"),
            make_framework("D").role("dev").demand(10, cpu="1", memory="1Gi"),
        )
    )
    full = {("P", "prod"): Reason.NO_CAPACITY, ("D", "dev"): Reason.NO_CAPACITY}
    assert allocate(builder.obj()).reasons() == full
    # prod consumes 3 CPU, more than its guarantee of 2: nothing is held back, the cluster
    # is simply full, with or without the quota.
    assert allocate(builder.quota("prod", guarantee=res(cpu="2")).obj()).reasons() == full


def test_a_full_cluster_is_reported_as_full_even_while_a_guarantee_is_unmet() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="4Gi")
        .allocation("D", "dev", "n1", count=4, cpu="4", memory="4Gi")
        .quota("later", guarantee=res(cpu="4"))
        .framework(make_framework("D").role("dev").demand(10, cpu="1", memory="1Gi"))
        .obj()
    )
    # Nothing is free: holding headroom back is not what keeps D waiting.
    assert allocate(snapshot).reasons() == {("D", "dev"): Reason.NO_CAPACITY}


def test_the_headroom_held_never_exceeds_what_is_free() -> None:
    index = ResourceIndex(["cpu", "memory"])
    book = QuotaBook(
        quotas=make_snapshot()
        .quota("ghost", guarantee=res(cpu="1000", memory="100Ti"))
        .quota("prod", guarantee=res(cpu="4"))
        .obj()
        .quotas,
        allocations=(),
        reservations=(),
        reserved_in_use={},
        unreserved_free=index.dense(res(cpu="10", memory="20Gi")),
        index=index,
    )
    assert book.held() == index.dense(res(cpu="10", memory="20Gi"))
    # For prod, only what "ghost" needs counts; the cap still stops at what is free.
    assert book.held("prod") == index.dense(res(cpu="10", memory="20Gi"))


def quota_body(name: str, role: str, guarantee: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"role": role, "guarantee": guarantee},
    }


def conditions_of(status: QuotaStatus) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status_patch(status)["conditions"]}


def test_a_guarantee_larger_than_the_cluster_is_reported_on_the_quota() -> None:
    cache = cache_with(
        nodes=[node("n1", cpu="9", memory="18Gi")],
        quotas=[
            quota_body("ghost", "ghost", {"cpu": "1000", "memory": "100Ti"}),
            quota_body("prod", "prod", {"cpu": "4"}),
        ],
    )
    view = cache.freeze(NOW)
    statuses = quota_statuses(view, shares(view.snapshot()))

    ghost = conditions_of(statuses["ghost"])
    assert ghost["Valid"]["status"] == "True"
    assert ghost["GuaranteeFits"]["status"] == "False"
    assert ghost["GuaranteeFits"]["reason"] == "GuaranteeExceedsCluster"
    message = ghost["GuaranteeFits"]["message"]
    assert "cpu 1000 > 9" in message
    assert "memory 100Ti > 18Gi" in message
    prod = conditions_of(statuses["prod"])
    assert prod["GuaranteeFits"]["status"] == "True"


def test_a_written_quota_status_reads_back_unchanged_and_leaves_consumed_alone_when_invalid() -> (
    None
):
    cache = cache_with(
        nodes=[node("n1", cpu="9", memory="18Gi")],
        quotas=[
            quota_body("prod", "prod", {"cpu": "4"}),
            quota_body("again", "prod", {"cpu": "1"}),
        ],
    )
    view = cache.freeze(NOW)
    statuses = {
        name: status_patch(s) for name, s in quota_statuses(view, shares(view.snapshot())).items()
    }
    for written in statuses.values():
        assert status_patch(QuotaStatus.model_validate(written)) == written
    owner = view.quota_owners["prod"]
    other = ({"again", "prod"} - {owner}).pop()
    assert "consumed" in statuses[owner]
    assert "consumed" not in statuses[other]  # a merge patch keeps what it had, as before
