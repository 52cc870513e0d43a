"""The cache's running Pod sums equal summing every Pod afresh, whatever changes came first."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubedrf.allocator import Task
from kubedrf.master.cache import ClusterCache
from kubedrf.master.pods import PodSums
from kubedrf.master.view import MasterView
from kubedrf.resources import Resources, total
from tests.unit.test_master_lifecycle import NOW, cache_with, node, offer, pod

NODES = ("n1", "n2", "n3")
OFFERS = ("o1", "o2", "o3")


@st.composite
def pod_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A Pod in any state the watches deliver: a task or not, live or ended, on a node or not."""
    body = pod(
        draw(st.sampled_from(("t1", "t2", "t3", "t4", "t5", "t6"))),
        draw(st.sampled_from(("A", "B"))),
        draw(st.sampled_from((*OFFERS, None))),
        node_name=draw(st.sampled_from(NODES)),
        cpu=str(draw(st.integers(1, 3))),
        created=NOW - draw(st.integers(1, 100)),
        bound=draw(st.booleans()),
    )
    labels = body["metadata"]["labels"]
    if draw(st.booleans()):
        del labels["kubedrf.io/role"]  # a Pod of no (framework, role): external usage
    if draw(st.booleans()):
        del body["spec"]["affinity"]  # pinned nowhere: on a node only once bound
    body["status"] = {"phase": draw(st.sampled_from(("Pending", "Running", "Succeeded")))}
    return body


#: One watch event: a Pod added or changed, or deleted.
events = st.lists(st.tuples(st.sampled_from(("MODIFIED", "DELETED")), pod_bodies()), max_size=25)


def fed(changes: list[tuple[str, dict[str, Any]]], outstanding: list[str]) -> ClusterCache:
    cache = cache_with(
        nodes=[node("n1"), node("n2"), node("n3", ready=False)],
        offers=[offer(name, "A", node_name=NODES[i]) for i, name in enumerate(outstanding)],
    )
    for event_type, body in changes:
        cache.apply("pod", event_type, body)
    return cache


def summed_afresh(view: MasterView) -> dict[str, Any]:
    """What the view's Pod facts must be, summed Pod by Pod as the master once did."""
    covered = {o.key for o in view.outstanding}
    pod_usage: dict[str, list[Resources]] = defaultdict(list)
    external: dict[str, list[Resources]] = defaultdict(list)
    held: dict[tuple[str, str, str], list[Resources]] = defaultdict(list)
    tasks: list[Task] = []
    for _, p in sorted(view.pods.items()):
        if p.terminal or not p.node or p.offer_key in covered:
            continue
        pod_usage[p.node].append(p.requests)
        if p.framework_key and p.role:
            # Held wherever it runs; revocable only where a node can take something back.
            held[p.framework_key, p.role, p.node].append(p.requests)
            if p.node in view.usable:
                tasks.append(Task(p.key, p.framework_key, p.role, p.node, p.requests, p.created_at))
        elif p.node in view.usable:
            external[p.node].append(p.requests)
    return {
        "pod_usage": {n: total(items) for n, items in pod_usage.items()},
        "external": {n: total(items) for n, items in external.items()},
        "tasks": tuple(tasks),
        "held tasks": {k: (total(v), len(v)) for k, v in held.items()},
    }


def as_summed(view: MasterView) -> dict[str, Any]:
    return {
        "pod_usage": dict(view.pod_usage),
        "external": dict(view.external),
        "tasks": view.tasks(),
        "held tasks": {
            (h.framework, h.role, h.node): (h.resources - offered(view, h), h.tasks)
            for h in view.holdings
            if h.tasks
        },
    }


def offered(view: MasterView, h: Any) -> Resources:
    return total(
        o.resources()
        for o in view.outstanding
        if (o.framework_key, o.spec and o.spec.role, o.spec and o.spec.node_name)
        == (h.framework, h.role, h.node)
    )


@settings(max_examples=150, deadline=None)
@given(events, st.lists(st.sampled_from(OFFERS), unique=True))
def test_running_sums_equal_summing_every_pod_afresh(
    changes: list[tuple[str, dict[str, Any]]], outstanding: list[str]
) -> None:
    cache = fed(changes, outstanding)
    assert cache.pods.sums() == PodSums.of(cache.pods.values())
    view = cache.freeze(NOW)
    assert as_summed(view) == summed_afresh(view)


@settings(max_examples=100, deadline=None)
@given(events, st.lists(st.sampled_from(OFFERS), unique=True), st.data())
def test_a_view_after_refusals_equals_one_frozen_without_the_refused_pods(
    changes: list[tuple[str, dict[str, Any]]], outstanding: list[str], data: st.DataObject
) -> None:
    cache = fed(changes, outstanding)
    view = cache.freeze(NOW)
    refused = data.draw(st.frozensets(st.sampled_from(sorted(view.pods) or ["none"])))
    after = view.after(deleted_pods=refused)
    for key in refused:
        cache.pods.pop(key, None)
    fresh = cache.freeze(NOW)
    assert after.pod_sums == fresh.pod_sums
    assert (after.usage, after.holdings, after.snapshot()) == (
        fresh.usage,
        fresh.holdings,
        fresh.snapshot(),
    )


def test_a_pod_that_ends_stops_counting_on_its_node_and_for_its_framework() -> None:
    cache = cache_with(nodes=[node("n1")], pods=[pod("t1", "A", None), pod("t2", "A", None)])
    assert cache.freeze(NOW).holdings[0].tasks == 2
    ended = pod("t1", "A", None)
    ended["status"] = {"phase": "Succeeded"}
    cache.apply("pod", "MODIFIED", ended)
    view = cache.freeze(NOW)
    assert [(h.tasks, h.resources.to_quantities()["cpu"]) for h in view.holdings] == [(1, "1")]
    assert [t.name for t in view.tasks()] == ["team/t2"]


def test_pods_of_one_framework_share_one_copy_of_their_repeated_strings() -> None:
    cache = cache_with(pods=[pod("t1", "A", "a-0"), pod("t2", "A", "a-0")])
    one, two = cache.pods["team/t1"], cache.pods["team/t2"]
    assert one.framework_key == "team/A" and one.offer_key == "team/a-0"
    for name in ("namespace", "node", "framework", "role", "offer", "framework_key", "offer_key"):
        assert getattr(one, name) is getattr(two, name), name


def test_an_older_pod_event_does_not_undo_a_newer_one_the_record_remembers() -> None:
    newer = pod("t1", "A", "a-0")
    newer["metadata"]["resourceVersion"] = "20"
    newer["status"] = {"phase": "Succeeded"}
    older = pod("t1", "A", "a-0")
    older["metadata"]["resourceVersion"] = "10"
    cache = cache_with(pods=[newer])
    assert not cache.apply("pod", "MODIFIED", older)
    assert cache.pods["team/t1"].terminal
    assert cache.freeze(NOW).holdings == ()
