"""Framework liveness (Mesos' failover timeout), from API bodies (no cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client
from pydantic import ValidationError

from kubedrf.allocator.shares import shares
from kubedrf.api import FrameworkSpec
from kubedrf.api.conventions import format_micro_time, heartbeat_lease
from kubedrf.api.offer import OfferPhase
from kubedrf.framework import KubedrfSchedulerDriver, Scheduler, SchedulerDriver
from kubedrf.framework.watch import WatchEvent
from kubedrf.master.cache import ClusterCache
from kubedrf.master.lifecycle import reconcile
from kubedrf.master.settings import MasterSettings
from kubedrf.master.status import framework_status, status_patch
from tests.unit.test_master_lifecycle import NOW, framework, node, offer, pod

TASKS = [{"resources": {"cpu": "1", "memory": "4Gi"}, "count": 3}]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def lease(fw: str, renewed: float) -> dict[str, Any]:
    return {
        "metadata": {
            "name": heartbeat_lease(fw),
            "namespace": "team",
            "labels": {"kubedrf.io/framework": fw},
        },
        "spec": {"holderIdentity": "host-1", "renewTime": format_micro_time(renewed)},
    }


def cluster(clock: Clock, **spec: Any) -> ClusterCache:
    """Node n1, framework A (with ``spec``) and its outstanding offer a-0, all seen at NOW."""
    cache = ClusterCache(MasterSettings(), clock=clock)
    cache.apply("node", "ADDED", node("n1"))
    cache.apply("framework", "ADDED", framework("A", TASKS, **spec))
    cache.apply("offer", "ADDED", offer("a-0", "A", expires=NOW + 3600))
    return cache


def test_a_framework_silent_past_its_failover_timeout_gets_no_offers_and_loses_its_own() -> None:
    clock = Clock()
    cache = cluster(clock, failoverTimeout=60)
    assert reconcile(cache.freeze(NOW + 59)).transitions == []
    view = cache.freeze(NOW + 60)
    (rescinded,) = reconcile(view).transitions
    assert (rescinded.phase, rescinded.reason) == (OfferPhase.RESCINDED, "FrameworkDisconnected")
    assert "spec.failoverTimeout (60s)" in rescinded.message
    assert [fw.name for fw in view.snapshot().frameworks] == []


def test_a_renewed_lease_is_hearing_from_the_framework_and_an_unchanged_one_is_not() -> None:
    clock = Clock()
    cache = cluster(clock, failoverTimeout=60)
    cache.apply("lease", "ADDED", lease("A", renewed=NOW))
    clock.now = NOW + 50
    cache.apply("lease", "MODIFIED", lease("A", renewed=NOW + 50))
    assert "team/A" not in cache.freeze(NOW + 100).disconnected
    clock.now = NOW + 100
    cache.apply("lease", "MODIFIED", lease("A", renewed=NOW + 50))  # a resync: same renewTime
    assert "team/A" in cache.freeze(NOW + 110).disconnected


def test_the_lease_time_is_never_compared_with_the_masters_clock() -> None:
    clock = Clock()
    cache = cluster(clock, failoverTimeout=60)
    # The framework's clock runs an hour behind: its renewals still count as it makes them.
    clock.now = NOW + 30
    cache.apply("lease", "ADDED", lease("A", renewed=NOW - 3600))
    assert "team/A" not in cache.freeze(NOW + 89).disconnected
    assert "team/A" in cache.freeze(NOW + 90).disconnected


def test_a_restarted_master_gives_every_framework_a_whole_failover_timeout() -> None:
    clock = Clock()
    cache = cluster(clock, failoverTimeout=60)
    assert "team/A" in cache.freeze(NOW + 500).disconnected
    clock.now = NOW + 500
    restarted = cluster(clock, failoverTimeout=60)
    restarted.apply("lease", "ADDED", lease("A", renewed=NOW))
    assert restarted.freeze(NOW + 559).disconnected == {}
    assert "team/A" in restarted.freeze(NOW + 560).disconnected


def test_what_the_framework_writes_counts_as_heard_from_but_not_what_the_master_writes() -> None:
    clock = Clock()
    cache = cluster(clock, failoverTimeout=60)
    clock.now = NOW + 40
    written = framework("A", TASKS, failoverTimeout=60)
    written["status"] = {"tasks": 0}  # the master's status patch: same generation
    cache.apply("framework", "MODIFIED", written)
    cache.apply("offer", "ADDED", offer("a-1", "A"))  # the master's new offer
    assert cache.heard_at["team/A"] == NOW
    cache.apply("offer", "MODIFIED", offer("a-0", "A", response={"action": "Decline"}))
    assert cache.heard_at["team/A"] == NOW + 40
    clock.now = NOW + 50
    cache.apply("pod", "ADDED", pod("a-task", "A", "a-0"))
    assert cache.heard_at["team/A"] == NOW + 50
    clock.now = NOW + 52
    running = pod("a-task", "A", "a-0")
    running["status"] = {"phase": "Running"}  # the kubelet's write, not the framework's
    cache.apply("pod", "MODIFIED", running)
    assert cache.heard_at["team/A"] == NOW + 50
    clock.now = NOW + 55
    respec = framework("A", TASKS, failoverTimeout=60)
    respec["metadata"]["generation"] = 2
    cache.apply("framework", "MODIFIED", respec)
    assert cache.heard_at["team/A"] == NOW + 55


def test_status_says_disconnected_and_since_when() -> None:
    clock = Clock()
    view = cluster(clock, failoverTimeout=60).freeze(NOW + 61)
    status = status_patch(
        framework_status(
            view, view.frameworks["team/A"], shares=shares(view.snapshot()), result=None
        )
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Connected"]["status"] == "False"
    assert conditions["Connected"]["reason"] == "Disconnected"
    assert "last heard from at 1970-01-12T13:46:40Z" in conditions["Connected"]["message"]
    assert conditions["Ready"]["status"] == "False"
    connected = cluster(clock, failoverTimeout=60).freeze(NOW + 59)
    status = status_patch(
        framework_status(
            connected,
            connected.frameworks["team/A"],
            shares=shares(connected.snapshot()),
            result=None,
        )
    )
    assert {c["type"]: c["status"] for c in status["conditions"]}["Connected"] == "True"


def test_a_disconnected_frameworks_tasks_run_on_until_its_task_teardown_timeout() -> None:
    clock = Clock()
    cache = cluster(clock, failoverTimeout=60, taskTeardownTimeout=300)
    cache.apply("pod", "ADDED", pod("a-task", "A", "a-0"))
    assert reconcile(cache.freeze(NOW + 299)).refusals == []
    (ended,) = reconcile(cache.freeze(NOW + 300)).refusals
    assert (ended.pod.name, ended.reason) == ("a-task", "FrameworkTornDown")
    assert "spec.taskTeardownTimeout (300s" in ended.message


def test_without_a_task_teardown_timeout_a_disconnected_frameworks_tasks_are_left_alone() -> None:
    clock = Clock()
    cache = cluster(clock, failoverTimeout=60)
    cache.apply("pod", "ADDED", pod("a-task", "A", "a-0"))
    plan = reconcile(cache.freeze(NOW + 10_000))
    assert plan.refusals == []


def test_a_teardown_shorter_than_the_failover_timeout_is_refused_naming_both_fields() -> None:
    with pytest.raises(ValidationError, match=r"spec.taskTeardownTimeout \(30s\) must be at least"):
        FrameworkSpec.model_validate({"failoverTimeout": 60, "taskTeardownTimeout": 30})
    with pytest.raises(ValidationError, match="failoverTimeout"):
        FrameworkSpec.model_validate({"failoverTimeout": 0})
    assert FrameworkSpec().failover_timeout == 60


class Told(Scheduler):
    def __init__(self) -> None:
        self.errors: list[str] = []

    async def error(self, driver: SchedulerDriver, message: str) -> None:
        self.errors.append(message)


def status_event(roles_allowed: str, message: str) -> WatchEvent:
    condition = {"type": "RolesAllowed", "status": roles_allowed, "message": message}
    return WatchEvent("MODIFIED", [{"status": {"conditions": [condition]}}])


def test_the_scheduler_is_told_once_through_error_when_its_roles_refuse_its_namespace() -> None:
    told = Told()
    driver = KubedrfSchedulerDriver(told, name="job", namespace="ns", api=client.ApiClient())
    refused = status_event("False", "role eng does not allow namespace ns")

    async def deliver() -> None:
        for event in (refused, refused, status_event("True", "ok"), refused):
            await driver._on_framework(event)

    asyncio.run(deliver())
    assert (
        told.errors
        == ["framework job: RolesAllowed is False: role eng does not allow namespace ns"] * 2
    )
