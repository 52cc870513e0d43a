"""The explain step: why a waiting (framework, role) waits, with the numbers behind it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubedrf.allocator import (
    Mode,
    Reason,
    Snapshot,
    allocate,
    revocation_target,
    revocations,
)
from kubedrf.allocator.explain import RevocationUnderWay, Waiting, explain
from kubedrf.allocator.shares import fair_shares, shares
from kubedrf.resources import CPU, MEMORY
from tests.builders import make_framework, make_snapshot, res
from tests.strategies import configs, snapshots
from tests.unit.test_revocation import seed


def waiting_of(waits: tuple[Waiting, ...], framework: str) -> Waiting:
    (found,) = [w for w in waits if w.framework == framework]
    return found


def test_a_late_framework_sees_the_cpu_shortfall_and_who_holds_above_their_fair_share() -> None:
    snapshot = seed()
    result = allocate(snapshot)
    c = waiting_of(explain(snapshot, result), "C")
    assert c.reason is Reason.NO_CAPACITY
    assert (c.resource, c.needed, c.available) == (CPU, 1000, 0)
    assert c.dominant_share == 0.0 and c.fair_share == pytest.approx(4 / 9)
    assert [h.framework for h in c.holders] == ["B", "A"]  # furthest above its own first
    assert c.holders[0].share == pytest.approx(6 / 9)
    assert c.holders[0].fair_share == pytest.approx(3 / 9)
    assert "a task needs 1 CPU on one node; the most free on any node is 0 CPU" in c.sentence()
    assert "above their fair share: B (default) 0.667 > 0.333, A (default) 0.667 > 0.444" in (
        c.sentence()
    )


def test_a_revocation_under_way_for_the_client_is_what_happens_next_with_its_deadline() -> None:
    snapshot = seed()
    asked = RevocationUnderWay("A", "default", "n1", 1, "C", "default", deadline=40.0)
    unrelated = RevocationUnderWay("B", "default", "n1", 1, "A", "default", deadline=50.0)
    c = waiting_of(explain(snapshot, allocate(snapshot), under_way=[asked, unrelated]), "C")
    (step,) = c.next
    assert (step.kind, step.deadline) == ("Revocation", 40.0)
    assert step.describe() == "A gives back 1 task(s) on n1 for it by the deadline at t=40s"
    assert "next: A gives back 1 task(s) on n1 for it by the deadline at T40" in c.sentence(
        lambda t: f"T{t:g}"
    )


def test_a_framework_at_its_fair_share_names_no_holders() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="2", memory="4Gi")
        .framework(make_framework("A").demand(1, cpu="3", memory="1Gi"))
        .obj()
    )
    (a,) = explain(snapshot, allocate(snapshot))
    assert a.holders == () and (a.resource, a.needed, a.available) == (CPU, 3000, 2000)
    assert [n.kind for n in a.next] == ["Capacity"]


def test_a_shape_no_single_node_holds_says_so_rather_than_a_false_shortfall() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="1Gi")
        .node("n2", cpu="1", memory="8Gi")
        .framework(make_framework("A").demand(1, cpu="2", memory="2Gi"))
        .obj()
    )
    (a,) = explain(snapshot, allocate(snapshot))
    assert a.available >= a.needed
    assert "no node has both" in (a.shortfall() or "")


def test_a_reached_quota_limit_reports_what_the_limit_leaves() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="8", memory="16Gi")
        .quota("default", limit=res(cpu="3"))
        .allocation("A", "default", "n1", count=2, cpu="2", memory="2Gi")
        .framework(make_framework("A").demand(5, cpu="2", memory="1Gi"))
        .obj()
    )
    (a,) = explain(snapshot, allocate(snapshot))
    assert a.reason is Reason.QUOTA_LIMIT
    assert (a.resource, a.needed, a.available) == (CPU, 2000, 1000)
    assert a.shortfall() == "a task needs 2 CPU; the quota limit leaves 1 CPU"
    assert a.next[0].kind == "QuotaLimit"
    assert a.next[0].text.startswith("quota of role default: 2 CPU in use of its limit 3 CPU")


def test_a_filter_says_when_it_expires() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="8Gi")
        .framework(make_framework("A").demand(1, cpu="1", memory="1Gi"))
        .filter("A", "n1", expires_at=25.0, refused=res(cpu="4", memory="8Gi"))
        .at(10)
        .obj()
    )
    (a,) = explain(snapshot, allocate(snapshot))
    assert a.reason is Reason.FILTERED
    (step,) = a.next
    assert (step.kind, step.deadline) == ("FilterExpires", 25.0)
    assert step.describe().endswith("the first filter expires at t=25s")


def test_capacity_reserved_for_another_role_is_named_with_its_node() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="2", memory="4Gi")
        .node("n2", cpu="4", memory="8Gi")
        .reservation("ops", "n2", cpu="4", memory="8Gi")
        .allocation("B", "default", "n1", cpu="2", memory="1Gi")
        .framework(make_framework("A").demand(1, cpu="1", memory="1Gi"))
        .framework(make_framework("B").role("default"))
        .obj()
    )
    a = waiting_of(explain(snapshot, allocate(snapshot)), "A")
    assert (a.resource, a.available) == (CPU, 0)
    reserved = [n for n in a.next if n.kind == "ReservedElsewhere"]
    assert [n.text for n in reserved] == ["node n2 has room, reserved for role ops"]


def test_a_suppressed_role_is_told_to_revive_and_has_no_shortfall() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="8Gi")
        .framework(make_framework("A").demand(1, cpu="1", memory="1Gi").suppress())
        .obj()
    )
    (a,) = explain(snapshot, allocate(snapshot))
    assert a.reason is Reason.SUPPRESSED and a.resource is None
    assert [n.kind for n in a.next] == ["Suppressed"]
    assert "revive" in a.next[0].text


def test_held_for_guarantees_names_the_roles_still_below_theirs() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="8Gi")
        .quota("eng", guarantee=res(cpu="4"))
        .framework(make_framework("A").demand(1, cpu="1", memory="1Gi"))
        .obj()
    )
    (a,) = explain(snapshot, allocate(snapshot))
    assert a.reason is Reason.HEADROOM
    assert a.next[0].kind == "HeldForGuarantees" and a.next[0].text.endswith(": eng")


def test_nothing_is_explained_when_every_client_was_offered() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="8Gi")
        .framework(make_framework("A").demand(1, cpu="1", memory="1Gi"))
        .obj()
    )
    assert explain(snapshot, allocate(snapshot)) == ()


def test_memory_reads_in_binary_units() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="1Gi")
        .framework(make_framework("A").demand(1, cpu="1", memory="2Gi"))
        .obj()
    )
    (a,) = explain(snapshot, allocate(snapshot))
    assert a.resource == MEMORY
    assert (
        a.shortfall()
        == "a task needs 2Gi memory on one node; the most free on any node is 1Gi memory"
    )


@settings(max_examples=60, deadline=None)
@given(snapshots(), st.sampled_from(("demand", "classic")), st.data())
def test_explain_on_the_cycles_own_fair_shares_says_what_it_says_on_its_own(
    snapshot: Snapshot, mode: Mode, data: st.DataObject
) -> None:
    config = data.draw(configs(mode=mode))
    result = allocate(snapshot, config)
    targets = revocation_target(snapshot, config)
    fair = fair_shares(snapshot, config, targets)
    assert fair == fair_shares(snapshot, config)
    reused = explain(snapshot, result, config, fair=fair, held=shares(snapshot, result, config))
    assert reused == explain(snapshot, result, config)
    # Revocation plans the same on targets handed in as on targets it works out itself.
    assert revocations(snapshot, config, targets=targets) == revocations(snapshot, config)
