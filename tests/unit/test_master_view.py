"""One frozen view per cycle: reconcile, snapshot, status and gauges agree (no cluster)."""

from __future__ import annotations

from kubedrf.allocator import allocate
from kubedrf.allocator.oversized import oversized
from kubedrf.allocator.shares import shares
from kubedrf.api import FrameworkStatus, OfferStatus
from kubedrf.api.conventions import format_time
from kubedrf.api.offer import OfferPhase
from kubedrf.master.lifecycle import reconcile
from kubedrf.master.metrics import Metrics
from kubedrf.master.status import framework_status, role_statuses, status_patch
from tests.unit.test_master_lifecycle import NOW, cache_with, framework, node, offer, pod

A_TASKS = [{"resources": {"cpu": "1", "memory": "4Gi"}, "count": 3}]


def test_status_shows_the_share_drf_sorted_by_not_counting_unusable_nodes() -> None:
    cache = cache_with(
        nodes=[node("n1"), node("n2", ready=False)],
        frameworks=[framework("A", [])],
        pods=[pod(f"t{i}", "A", "a-0") for i in range(3)],  # 3 CPU on n1
    )
    view = cache.freeze(NOW)
    assert set(view.usable) == {"n1"}
    status = status_patch(
        framework_status(
            view, view.frameworks["team/A"], shares=shares(view.snapshot()), result=None
        )
    )
    assert status["dominantShare"] == round(12 / 18, 4)  # 12Gi of n1's 18Gi, not of 36Gi
    assert status["tasks"] == 3


def test_a_written_framework_status_reads_back_unchanged_through_its_model() -> None:
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", A_TASKS)],
        pods=[pod("t0", "A", "a-0")],
    )
    view = cache.freeze(NOW)
    result = allocate(view.snapshot())
    written = status_patch(
        framework_status(
            view, view.frameworks["team/A"], shares=shares(view.snapshot(), result), result=result
        )
    )
    # A key the model does not know would be dropped on the way back, and the two would differ.
    assert status_patch(FrameworkStatus.model_validate(written)) == written
    assert {"allocated", "dominantShare", "tasks", "outstandingOffers", "revoking"} <= set(written)
    assert {c["type"] for c in written["conditions"]} >= {"Ready", "Connected", "Offered"}


def test_a_condition_keeps_its_transition_time_and_a_malformed_one_restarts_at_now() -> None:
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", A_TASKS)])
    body = cache.freeze(NOW).bodies[("framework", "team/A")]
    body["status"] = {
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
            {"type": "Connected", "status": "True", "lastTransitionTime": "yesterday"},
        ]
    }
    cache.apply("framework", "MODIFIED", body)
    view = cache.freeze(NOW)
    status = framework_status(
        view, view.frameworks["team/A"], shares=shares(view.snapshot()), result=None
    )
    since = {c["type"]: c["lastTransitionTime"] for c in status_patch(status)["conditions"]}
    assert since["Ready"] == "2020-01-01T00:00:00Z"
    assert since["Connected"] == format_time(NOW)


def test_status_lists_the_roles_as_plain_text_for_the_roles_column() -> None:
    cache = cache_with(
        nodes=[node("n1")], frameworks=[framework("A", A_TASKS, roles=["eng", "ops"])]
    )
    view = cache.freeze(NOW)
    status = framework_status(
        view, view.frameworks["team/A"], shares=shares(view.snapshot()), result=None
    )
    assert status.role_list == "eng,ops"


def test_a_task_larger_than_every_node_turns_tasks_fit_false_naming_shape_and_node() -> None:
    huge = [{"resources": {"cpu": "16", "memory": "1Gi"}, "count": 2}]
    cache = cache_with(
        nodes=[node("n1")], frameworks=[framework("A", huge), framework("B", A_TASKS)]
    )
    view = cache.freeze(NOW)
    snapshot = view.snapshot()
    too_large = oversized(snapshot)
    conditions = {}
    for name in ("team/A", "team/B"):
        status = framework_status(
            view, view.frameworks[name], shares=shares(snapshot), result=None, oversized=too_large
        )
        conditions[name] = {c["type"]: c for c in status_patch(status)["conditions"]}
    fit = conditions["team/A"]["TasksFit"]
    assert (fit["status"], fit["reason"]) == ("False", "TaskLargerThanAnyNode")
    assert "cpu=16, memory=1Gi" in fit["message"] and "n1, has cpu=9" in fit["message"]
    assert conditions["team/B"]["TasksFit"]["status"] == "True"


def test_a_frozen_view_does_not_change_when_the_cache_does() -> None:
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", A_TASKS)])
    view = cache.freeze(NOW)
    cache.apply("node", "ADDED", node("n2"))
    cache.apply("framework", "DELETED", framework("A", []))
    assert set(view.usable) == {"n1"} and set(view.frameworks) == {"team/A"}


def test_the_cycle_allocates_on_the_view_its_settlements_leave() -> None:
    declined = offer("a-1", "A", response={"action": "Decline", "refuseSeconds": 60})
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", A_TASKS)], offers=[declined])
    view = cache.freeze(NOW)
    plan = reconcile(view)
    assert [t.phase for t in plan.transitions] == [OfferPhase.DECLINED]
    settled = plan.applied_to(view)
    # The decline's filter holds in this very cycle, before the API has echoed the write.
    assert [f.node for f in settled.filters()] == ["n1"]
    assert allocate(settled.snapshot()).offers == ()
    # Read before settling, the same node would be offered again, decline or not.
    assert allocate(view.snapshot()).offers != ()


def test_a_cycle_that_settles_nothing_derives_its_view_only_once() -> None:
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", A_TASKS)])
    view = cache.freeze(NOW)
    plan = reconcile(view)
    assert not plan.transitions and not plan.refusals
    assert plan.applied_to(view) is view


def test_role_statuses_and_gauges_take_the_allocators_shares() -> None:
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", A_TASKS)])
    view = cache.freeze(NOW)
    snapshot = view.snapshot()
    result = allocate(snapshot)
    cycle_shares = shares(snapshot, result)
    assert cycle_shares.frameworks["team/A"] == 12 / 18
    assert role_statuses(view, cycle_shares, result) == {}  # no Role objects to report on

    metrics = Metrics()
    metrics.record_cycle(view, cycle_shares)
    share = metrics.registry.get_sample_value(
        "kubedrf_allocator_framework_dominant_share", {"namespace": "team", "framework": "A"}
    )
    assert share == 12 / 18
    default = metrics.registry.get_sample_value(
        "kubedrf_allocator_role_dominant_share", {"role": "default"}
    )
    assert default == 12 / 18  # the implicit default role is reported too

    # The framework goes: its series goes with it.
    cache.apply("framework", "DELETED", framework("A", []))
    gone = cache.freeze(NOW + 1)
    metrics.record_cycle(gone, shares(gone.snapshot()))
    assert (
        metrics.registry.get_sample_value(
            "kubedrf_allocator_framework_dominant_share", {"namespace": "team", "framework": "A"}
        )
        is None
    )


def test_an_offer_settled_in_the_view_keeps_what_it_offered_and_to_whom() -> None:
    cache = cache_with(nodes=[node("n1")], offers=[offer("a-0", "A", resources={"cpu": "2"})])
    view = cache.freeze(NOW)
    declined = view.after(statuses={"team/a-0": OfferStatus(phase=OfferPhase.DECLINED)})
    record = declined.offers["team/a-0"]
    assert (record.framework_key, record.resources().to_quantities()) == ("team/A", {"cpu": "2"})
    assert not declined.outstanding and declined.usage == {}
