"""Why a framework waits, as the master reports it: Framework status and Events (no cluster)."""

from __future__ import annotations

from typing import Any, cast

from kubedrf.allocator import AllocationResult, Waiting, allocate, explain
from kubedrf.allocator.shares import shares
from kubedrf.api.conventions import format_time
from kubedrf.master.cache import ClusterCache
from kubedrf.master.metrics import Metrics
from kubedrf.master.reporter import Reporter
from kubedrf.master.status import framework_status, status_patch
from kubedrf.master.view import MasterView
from kubedrf.master.writer import ApiWriter
from tests.unit.test_master_lifecycle import NOW
from tests.unit.test_master_revoking import inverse_offer, seed_held


class RecordingWriter:
    """Records the Events the reporter asks for; writes nothing."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def event(self, regarding: Any, reason: str, note: str, *args: Any) -> None:
        self.events.append((regarding["metadata"]["name"], note))

    def about(self, name: str) -> list[str]:
        return [note for regarding, note in self.events if regarding == name]

    def patch_status(self, *args: Any, **kwargs: Any) -> None:
        return None


def explained(cache: ClusterCache) -> tuple[MasterView, AllocationResult, tuple[Waiting, ...]]:
    view = cache.freeze(NOW)
    snapshot = view.snapshot()
    result = allocate(snapshot)
    return view, result, explain(snapshot, result, under_way=view.revocations_under_way())


def test_the_status_of_a_late_framework_carries_its_shortfall_holders_and_revocation() -> None:
    cache = seed_held(inverseoffers=[inverse_offer("b-revoke-1", "B", ["b1"], deadline=NOW + 30)])
    view, result, waiting = explained(cache)
    status = status_patch(
        framework_status(
            view,
            view.frameworks["team/C"],
            shares=shares(view.snapshot(), result),
            result=result,
            waiting=[w for w in waiting if w.framework == "team/C"],
        )
    )
    (c,) = status["waiting"]
    assert (c["role"], c["reason"]) == ("default", "InsufficientCapacity")
    assert (c["resource"], c["needed"], c["available"]) == ("cpu", "1", "0")
    assert [h["framework"] for h in c["holdersAboveFairShare"]] == ["team/B", "team/A"]
    assert c["next"] == [
        {
            "kind": "Revocation",
            "message": "team/B gives back 1 task(s) on n1 for it by the deadline",
            "at": format_time(NOW + 30),
        }
    ]
    offered = next(x for x in status["conditions"] if x["type"] == "Offered")
    assert offered["reason"] == "InsufficientCapacity"
    assert offered["message"] == f"role default: {c['message']}"
    assert "a task needs 1 CPU on one node; the most free on any node is 0 CPU" in c["message"]


def test_an_event_tells_why_only_when_the_answer_changes() -> None:
    writer = RecordingWriter()
    reporter = Reporter(cast(ApiWriter, writer), Metrics())
    cache = seed_held()
    for _ in range(2):
        view, result, waiting = explained(cache)
        reporter.writes(view, view.snapshot(), result, shares(view.snapshot(), result), waiting)
    (first,) = writer.about("C")
    assert first.startswith("no (further) offer: role default: InsufficientCapacity; a task")
    asked = inverse_offer("b-revoke-1", "B", ["b1"], deadline=NOW + 30)
    cache.apply("inverseoffer", "ADDED", asked)
    view, result, waiting = explained(cache)
    reporter.writes(view, view.snapshot(), result, shares(view.snapshot(), result), waiting)
    (_, second) = writer.about("C")
    assert "next: team/B gives back 1 task(s) on n1 for it by the deadline at" in second
