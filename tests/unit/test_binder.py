"""The master binds task Pods it judged valid, and only those; a lean master's triggers."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubedrf.api.conventions import ANNOTATION_SCHEDULER, SCHEDULER_NAME
from kubedrf.framework import Offer, TaskInfo
from kubedrf.framework.pods import task_pod
from kubedrf.master.binder import Binder, bindings
from kubedrf.master.core import _worth_a_cycle
from kubedrf.master.lifecycle import reconcile
from kubedrf.master.metrics import Metrics
from kubedrf.master.records import NodeRecord, PodRecord
from kubedrf.master.settings import MasterSettings
from kubedrf.master.view import MasterView
from kubedrf.master.watched import BY_NAME, Selectors
from tests.builders import res
from tests.unit.test_master_lifecycle import NOW, cache_with, framework, node, offer, pod


def waiting(name: str, fw: str, offer_name: str, *, node_name: str = "n1", **kw: Any) -> Any:
    """A task Pod as the SDK creates it for the master to bind: pinned, not bound."""
    body = pod(name, fw, offer_name, node_name=node_name, **kw)
    spec = body["spec"]
    del spec["nodeName"]
    spec["schedulerName"] = SCHEDULER_NAME
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
    spec["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }
    body["status"] = {"phase": "Pending"}
    return body


def settled(view: MasterView) -> MasterView:
    """The view as a cycle's settlements leave it: what binding decides on."""
    return reconcile(view).applied_to(view)


def bound(view: MasterView) -> list[tuple[str, str]]:
    return [(b.pod.name, b.node) for b in bindings(settled(view))]


def test_valid_claims_waiting_for_the_master_are_bound_to_their_offers_node() -> None:
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [])],
        offers=[offer("a-1", "A", response={"action": "Accept", "tasks": ["t1", "t2"]})],
        pods=[waiting("t1", "A", "a-1"), waiting("t2", "A", "a-1")],
    )
    assert bound(cache.freeze(NOW)) == [("t1", "n1"), ("t2", "n1")]


def test_a_pod_claiming_what_was_not_offered_to_it_is_never_bound() -> None:
    cache = cache_with(
        nodes=[node("n1"), node("n2")],
        frameworks=[framework("A", []), framework("B", [])],
        offers=[offer("a-1", "A")],
        pods=[
            waiting("thief", "B", "a-1"),
            waiting("elsewhere", "A", "a-1", node_name="n2"),
            waiting("ok", "A", "a-1", created=NOW - 3),
            waiting("one-too-many", "A", "a-1", cpu="3", created=NOW - 2),
        ],
    )
    view = cache.freeze(NOW)
    refused = {r.pod.name for r in reconcile(view).refusals}
    assert refused == {"thief", "elsewhere", "one-too-many"}
    assert bound(view) == [("ok", "n1")]


def test_pods_left_to_kube_scheduler_or_already_bound_are_not_bound_again() -> None:
    default = waiting("default", "A", "a-1")
    del default["spec"]["schedulerName"]
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [])],
        offers=[offer("a-1", "A")],
        pods=[default, pod("running", "A", "a-1")],
    )
    assert bound(cache.freeze(NOW)) == []


def test_a_pod_whose_offer_is_rescinded_before_it_was_judged_waits_unbound() -> None:
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [])],
        offers=[offer("a-1", "A", phase="Rescinded", finishedAt="2020-01-01T00:00:00Z")],
        pods=[waiting("late", "A", "a-1")],
    )
    assert bound(cache.freeze(NOW)) == []


def test_a_pod_on_a_cordoned_node_waits_until_the_node_is_usable_again() -> None:
    cordoned = node("n1")
    cordoned["spec"]["unschedulable"] = True
    cache = cache_with(
        nodes=[cordoned],
        frameworks=[framework("A", [])],
        offers=[offer("a-1", "A", response={"action": "Accept", "tasks": ["t1"]})],
        pods=[waiting("t1", "A", "a-1")],
    )
    assert bound(cache.freeze(NOW)) == []
    cache.apply("node", "MODIFIED", node("n1"))
    assert bound(cache.freeze(NOW)) == [("t1", "n1")]


class FakeWriter:
    def __init__(self, status: int | None = None) -> None:
        self.status = status
        self.calls: list[tuple[str, ...]] = []

    async def bind_pod(self, namespace: str, name: str, node: str) -> None:
        self.calls.append(("bind", name, node))
        if self.status is not None:
            raise ApiException(status=self.status, reason="Refused")

    async def event(self, regarding: Any, reason: str, note: str, *_: str) -> None:
        self.calls.append(("event", regarding["kind"], reason))

    async def delete_pod(self, namespace: str, name: str) -> None:
        self.calls.append(("delete", name))


def carry_out(writer: FakeWriter) -> list[tuple[str, ...]]:
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[{**framework("A", []), "kind": "Framework"}],
        offers=[offer("a-1", "A")],
        pods=[waiting("t1", "A", "a-1")],
    )
    view = settled(cache.freeze(NOW))
    (binding,) = bindings(view)
    binder = Binder(writer, Metrics())  # type: ignore[arg-type]
    asyncio.run(binder.bind(binding, view))
    return writer.calls


def test_a_bound_pod_is_only_bound() -> None:
    assert carry_out(FakeWriter()) == [("bind", "t1", "n1")]


def test_a_pod_the_api_will_not_bind_gets_events_and_its_resources_return() -> None:
    assert carry_out(FakeWriter(status=422)) == [
        ("bind", "t1", "n1"),
        ("event", "Pod", "BindingFailed"),
        ("event", "Framework", "BindingFailed"),
        ("delete", "t1"),
    ]


def test_a_transient_binding_failure_is_left_for_a_later_cycle() -> None:
    writer = FakeWriter(status=503)
    with pytest.raises(ApiException):
        carry_out(writer)
    assert writer.calls == [("bind", "t1", "n1")]


def test_offers_name_the_masters_binder_and_task_pods_carry_it() -> None:
    assert MasterSettings().scheduler_name() == SCHEDULER_NAME
    assert MasterSettings(binder="kube-scheduler").scheduler_name() is None
    body = {
        "metadata": {"name": "o1", "annotations": {ANNOTATION_SCHEDULER: SCHEDULER_NAME}},
        "spec": {
            "framework": "fw",
            "role": "default",
            "nodeName": "n7",
            "resources": {"cpu": "1", "memory": "1Gi"},
            "expiresAt": "2030-01-01T00:00:00Z",
        },
    }
    task = TaskInfo("t", res(cpu="1", memory="1Gi"))
    ours = task_pod(task, Offer.from_body(body))
    assert ours["spec"]["schedulerName"] == SCHEDULER_NAME
    assert (
        PodRecord.parse({**ours, "metadata": {**ours["metadata"], "namespace": "x"}}).node == "n7"
    )
    del body["metadata"]["annotations"]
    assert "schedulerName" not in task_pod(task, Offer.from_body(body))["spec"]


def test_the_cache_keeps_of_a_pod_only_its_record_which_names_it_in_events() -> None:
    body = waiting("t1", "A", "a-1")
    body["metadata"].update(uid="u1", resourceVersion="7", managedFields=[{"manager": "x"}])
    cache = cache_with(pods=[body])
    assert ("pod", "team/t1") not in cache.bodies
    assert cache.pods["team/t1"].reference() == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "t1", "namespace": "team", "uid": "u1", "resourceVersion": "7"},
    }
    assert cache.pods["team/t1"].scheduler == SCHEDULER_NAME


def test_a_node_heartbeat_or_a_pod_starting_runs_no_cycle_but_freed_capacity_does() -> None:
    n = node("n1")
    beat = copy.deepcopy(n)
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
    bigger = copy.deepcopy(n)
    bigger["status"]["allocatable"]["cpu"] = "10"
    assert not _worth_a_cycle("node", "MODIFIED", NodeRecord.parse(n), NodeRecord.parse(beat))
    assert _worth_a_cycle("node", "MODIFIED", NodeRecord.parse(n), NodeRecord.parse(bigger))
    pending = waiting("t1", "A", "a-1")
    running = {**pod("t1", "A", "a-1"), "metadata": pending["metadata"]}
    finished = {**running, "status": {"phase": "Succeeded"}}
    was, now = PodRecord.parse(pending), PodRecord.parse(running)
    assert not _worth_a_cycle("pod", "MODIFIED", was, now)  # bound and Running: nothing freed
    assert _worth_a_cycle("pod", "MODIFIED", now, PodRecord.parse(finished))
    assert _worth_a_cycle("pod", "ADDED", None, was)  # a new claim to judge and bind


def test_a_pod_of_no_framework_created_or_bound_runs_no_cycle_but_its_end_does() -> None:
    """kube-scheduler placing thousands of Pods only takes capacity: no offer can come of it
    (the periodic cycle still rescinds an offer a new Pod no longer fits beside)."""
    spec = {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}
    meta = {"name": "web", "namespace": "team", "uid": "u", "resourceVersion": "1"}
    created = PodRecord.parse({"metadata": meta, "spec": spec, "status": {"phase": "Pending"}})
    bound = PodRecord.parse(
        {"metadata": meta, "spec": {**spec, "nodeName": "n1"}, "status": {"phase": "Running"}}
    )
    ended = PodRecord.parse(
        {"metadata": meta, "spec": {**spec, "nodeName": "n1"}, "status": {"phase": "Failed"}}
    )
    assert bound.framework is None and bound.offer is None
    assert not _worth_a_cycle("pod", "ADDED", None, created)
    assert not _worth_a_cycle("pod", "MODIFIED", created, bound)
    assert _worth_a_cycle("pod", "MODIFIED", bound, ended)  # capacity freed
    assert _worth_a_cycle("pod", "DELETED", bound, None)
    resized = PodRecord.parse(
        {
            "metadata": meta,
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {}}]},
            "status": {"phase": "Running"},
        }
    )
    assert _worth_a_cycle("pod", "MODIFIED", bound, resized)  # asks for less: capacity freed


def test_finished_pods_and_unmanaged_nodes_are_not_watched() -> None:
    settings = MasterSettings(managed_label="pool=drf")
    assert BY_NAME["pod"].selectors(settings) == Selectors(
        fields="status.phase!=Failed,status.phase!=Succeeded"
    )
    assert BY_NAME["node"].selectors(settings) == Selectors(labels="pool=drf")
    assert BY_NAME["framework"].selectors(settings) == Selectors()


def test_a_heartbeat_lease_renewal_is_no_reason_for_a_cycle() -> None:
    # Lease records are the name of the framework they speak for: plain strings.
    assert not _worth_a_cycle("lease", "MODIFIED", "team/a", "team/a")
    assert _worth_a_cycle("lease", "ADDED", None, "team/a")
