"""The offer protocol's decisions and the master's snapshot, from API bodies (no cluster)."""

from __future__ import annotations

from typing import Any

from kubedrf.allocator import allocate
from kubedrf.api import MAX_REFUSE_SECONDS
from kubedrf.api.conventions import format_time
from kubedrf.api.offer import OfferPhase
from kubedrf.master.cache import TOMBSTONE_SECONDS, ClusterCache
from kubedrf.master.lifecycle import (
    LISTED_TASK_WAIT,
    Reconciliation,
    reconcile,
)
from kubedrf.master.records import pod_requests
from kubedrf.master.settings import MasterSettings

NOW = 1_000_000.0


def node(name: str, cpu: str = "9", memory: str = "18Gi", ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubedrf.io/managed": "true"},
            "resourceVersion": "1",
        },
        "spec": {"taints": [{"key": "kubedrf.io/managed", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def framework(name: str, demand: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "team", "uid": f"uid-{name}", "generation": 1},
        "spec": dict(spec),
    }
    if demand is not None:
        body["spec"]["demand"] = demand
    return body


def offer(
    name: str,
    fw: str,
    *,
    node_name: str = "n1",
    resources: dict[str, str] | None = None,
    response: dict[str, Any] | None = None,
    phase: str = "Offered",
    expires: float = NOW + 30,
    created: float = NOW - 5,
    **status: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "framework": fw,
        "role": "default",
        "nodeName": node_name,
        "resources": resources or {"cpu": "3", "memory": "12Gi", "pods": "3"},
        "expiresAt": format_time(expires),
    }
    if response is not None:
        spec["response"] = response
    return {
        "metadata": {
            "name": name,
            "namespace": "team",
            "generation": 1,
            "creationTimestamp": format_time(created),
        },
        "spec": spec,
        "status": {"phase": phase, **status},
    }


def pod(
    name: str,
    fw: str,
    offer_name: str | None,
    *,
    node_name: str = "n1",
    cpu: str = "1",
    memory: str = "4Gi",
    created: float = NOW - 1,
    bound: bool = True,
) -> dict[str, Any]:
    labels = {"kubedrf.io/framework": fw, "kubedrf.io/role": "default"}
    if offer_name:
        labels["kubedrf.io/offer"] = offer_name
    return {
        "metadata": {
            "name": name,
            "namespace": "team",
            "labels": labels,
            "creationTimestamp": format_time(created),
        },
        "spec": {
            **({"nodeName": node_name} if bound else {}),
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchFields": [
                                    {
                                        "key": "metadata.name",
                                        "operator": "In",
                                        "values": [node_name],
                                    }
                                ]
                            }
                        ]
                    }
                }
            },
            "containers": [
                {"name": "task", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
            ],
        },
        "status": {"phase": "Running" if bound else "Pending"},
    }


def cache_with(
    settings: MasterSettings | None = None, **kinds: list[dict[str, Any]]
) -> ClusterCache:
    cache = ClusterCache(settings or MasterSettings(offer_retention=60), clock=lambda: NOW)
    for kind, bodies in kinds.items():
        for body in bodies:
            cache.apply(kind.rstrip("s"), "ADDED", body)
    return cache


SEED_DEMAND = {
    "A": [{"resources": {"cpu": "1", "memory": "4Gi"}, "count": 100}],
    "B": [{"resources": {"cpu": "3", "memory": "1Gi"}, "count": 100}],
}


def test_the_seed_example_from_api_objects() -> None:
    cache = cache_with(
        nodes=[node("n1")], frameworks=[framework(n, d) for n, d in SEED_DEMAND.items()]
    )
    result = allocate(cache.freeze(NOW).snapshot(), cache.settings.allocator_config())
    offered = {o.framework: (o.resources.to_quantities(), o.tasks) for o in result.offers}
    assert offered == {
        "team/A": ({"cpu": "3", "memory": "12Gi", "pods": "3"}, ((0, 3),)),
        "team/B": ({"cpu": "6", "memory": "2Gi", "pods": "2"}, ((0, 2),)),
    }


def test_outstanding_offers_count_as_allocated_and_reduce_demand() -> None:
    held = offer("a-1", "A", sizedFor=None)
    held["spec"]["sizedFor"] = [{"resources": {"cpu": "1", "memory": "4Gi"}, "count": 3}]
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [{"resources": {"cpu": "1", "memory": "4Gi"}, "count": 3}])],
        offers=[held],
    )
    snapshot = cache.freeze(NOW).snapshot()
    assert snapshot.frameworks[0].demand is not None
    assert snapshot.frameworks[0].demand[0].count == 0
    assert [(a.framework, a.node) for a in snapshot.allocations] == [("team/A", "n1")]
    assert allocate(snapshot, cache.settings.allocator_config()).offers == ()


def test_accept_moves_valid_claims_and_refuses_the_rest() -> None:
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [])],
        offers=[
            offer("a-1", "A", response={"action": "Accept", "tasks": ["t1", "t2", "t3", "t4"]})
        ],
        pods=[
            pod("t1", "A", "a-1"),
            pod("t2", "A", "a-1"),
            pod("t3", "A", "a-1"),
            pod("t4", "A", "a-1", created=NOW - 0.5),  # a fourth 1-CPU task: more than offered
        ],
    )
    plan = reconcile(cache.freeze(NOW))
    (accepted,) = plan.transitions
    assert accepted.phase is OfferPhase.ACCEPTED
    assert accepted.tasks == ("t1", "t2", "t3")
    assert [(r.pod.name, r.reason) for r in plan.refusals] == [("t4", "ExceedsOffer")]


def test_pods_claiming_what_was_not_offered_to_them_are_refused() -> None:
    cache = cache_with(
        nodes=[node("n1"), node("n2")],
        frameworks=[framework("A", []), framework("B", [])],
        offers=[
            offer("a-1", "A"),
            offer("a-old", "A", phase="Expired", finishedAt=format_time(NOW)),
        ],
        pods=[
            pod("thief", "B", "a-1"),
            pod("elsewhere", "A", "a-1", node_name="n2"),
            pod("late", "A", "a-old"),
            pod("invented", "A", "nope", created=NOW - 20),
            pod("unlabelled", "A", None),
            pod("just-created", "A", "not-yet-seen", created=NOW - 1, bound=False),
            pod("already-running", "A", "not-yet-seen", created=NOW - 1),
        ],
    )
    reasons = {r.pod.name: r.reason for r in reconcile(cache.freeze(NOW)).refusals}
    assert reasons == {
        "thief": "OfferOfAnotherFramework",
        "elsewhere": "WrongNode",
        "late": "OfferNotOutstanding",
        "invented": "OfferNotFound",
        "unlabelled": "NoOffer",
        # Bound by another scheduler before its offer was seen: refused unless a fresh read
        # of the offer finds it (the cycle confirms every refusal that way).
        "already-running": "OfferNotFound",
    }


def test_decline_installs_a_filter_that_survives_in_the_api() -> None:
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [{"resources": {"cpu": "1"}, "count": 1}])],
        offers=[offer("a-1", "A", response={"action": "Decline", "refuseSeconds": 30})],
    )
    (declined,) = reconcile(cache.freeze(NOW)).transitions
    assert declined.phase is OfferPhase.DECLINED
    assert declined.filter_expires_at == NOW + 30
    assert declined.refused is not None and declined.refused["cpu"] == 9000

    # What the writer stores is all a restarted master needs to rebuild the filter.
    stored = offer(
        "a-1",
        "A",
        phase="Declined",
        finishedAt=format_time(NOW),
        filterExpiresAt=format_time(NOW + 30),
        refused=declined.refused.to_quantities(),
    )
    restarted = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [{"resources": {"cpu": "1"}, "count": 1}])],
        offers=[stored],
    )
    (active,) = restarted.freeze(NOW + 1).filters()
    assert (active.framework, active.node) == ("team/A", "n1")
    assert allocate(restarted.freeze(NOW + 1).snapshot()).offers == ()
    assert allocate(restarted.freeze(NOW + 31).snapshot()).offers != ()


def test_revive_lifts_filters_declined_before_it() -> None:
    revived = framework("A", [{"resources": {"cpu": "1"}, "count": 1}])
    revived["metadata"]["annotations"] = {"kubedrf.io/revived-at": format_time(NOW + 5)}
    stored = offer(
        "a-1",
        "A",
        phase="Declined",
        finishedAt=format_time(NOW),
        filterExpiresAt=format_time(NOW + 30),
        refused={"cpu": "9"},
    )
    cache = cache_with(nodes=[node("n1")], frameworks=[revived], offers=[stored])
    assert list(cache.freeze(NOW + 6).filters()) == []


def test_expiry_rescind_and_clean_up() -> None:
    cache = cache_with(
        nodes=[node("n1"), node("n2", ready=False)],
        frameworks=[framework("A", []), framework("S", [], suppressed=True)],
        offers=[
            offer("late", "A", expires=NOW - 1),
            offer("gone", "A", node_name="n9"),
            offer("sick", "A", node_name="n2"),
            offer("quiet", "S"),
            offer("old", "A", phase="Accepted", finishedAt=format_time(NOW - 61)),
            offer("recent", "A", phase="Accepted", finishedAt=format_time(NOW - 10)),
        ],
    )
    plan = reconcile(cache.freeze(NOW))
    outcome = {t.offer.name: (t.phase, t.reason) for t in plan.transitions}
    assert outcome == {
        "late": (OfferPhase.EXPIRED, "Expired"),
        "gone": (OfferPhase.RESCINDED, "NodeGone"),
        "sick": (OfferPhase.RESCINDED, "NodeNotReady"),
        "quiet": (OfferPhase.RESCINDED, "Suppressed"),
    }
    assert [o.name for o in plan.deletions] == ["old"]


def test_a_shrinking_node_rescinds_its_newest_offers_first() -> None:
    cache = cache_with(
        nodes=[node("n1", cpu="4")],
        frameworks=[framework("A", [])],
        offers=[
            offer("first", "A", resources={"cpu": "3"}, created=NOW - 10),
            offer("second", "A", resources={"cpu": "3"}, created=NOW - 5),
        ],
    )
    (rescinded,) = reconcile(cache.freeze(NOW)).transitions
    assert (rescinded.offer.name, rescinded.reason) == ("second", "NodeShrunk")


def test_tenancy_keeps_refused_roles_out_of_the_snapshot() -> None:
    cache = cache_with(
        nodes=[node("n1")],
        roles=[{"metadata": {"name": "eng"}, "spec": {"namespaces": ["other"]}}],
        frameworks=[
            framework("A", [{"resources": {"cpu": "1"}, "count": 1}], roles=["eng", "default"])
        ],
    )
    (fw,) = cache.freeze(NOW).snapshot().frameworks
    assert fw.roles == ("default",)
    assert "namespace 'team'" in cache.freeze(NOW).refused["team/A"]["eng"]


def test_older_watch_events_do_not_undo_newer_writes() -> None:
    cache = ClusterCache(MasterSettings())
    newer = offer("a-1", "A", phase="Declined")
    newer["metadata"]["resourceVersion"] = "20"
    older = offer("a-1", "A")
    older["metadata"]["resourceVersion"] = "10"
    cache.apply("offer", "MODIFIED", newer)
    assert not cache.apply("offer", "ADDED", older)
    assert cache.offers["team/a-1"].phase is OfferPhase.DECLINED


def test_a_framework_launching_tasks_gets_one_more_timeout_for_its_offers() -> None:
    def plan_at(now: float, launching: bool) -> dict[str, str]:
        pods = [pod("t1", "A", "a-1", created=NOW - 40)] if launching else []
        cache = cache_with(
            nodes=[node("n1", cpu="16", memory="64Gi")],
            frameworks=[framework("A", [])],
            offers=[
                offer("a-1", "A", expires=NOW - 5, created=NOW - 35),
                offer("a-2", "A", expires=NOW - 5, created=NOW - 35),  # next in its queue
            ],
            pods=pods,
        )
        return {t.offer.name: t.phase.value for t in reconcile(cache.freeze(now)).transitions}

    assert plan_at(NOW, launching=False) == {"a-1": "Expired", "a-2": "Expired"}
    assert plan_at(NOW, launching=True) == {}  # it is creating tasks: wait for it
    # At the end of the grace, the offer it launched on ends accepted with that task.
    assert plan_at(NOW + 30, launching=True) == {"a-1": "Accepted", "a-2": "Expired"}


def settle(cache: ClusterCache, plan: Reconciliation) -> None:
    """Store the plan's transitions in the cache, as the writer's answers would."""
    for t in plan.transitions:
        body = dict(cache.bodies[("offer", t.offer.key)])
        body["status"] = {
            "phase": t.phase.value,
            "tasks": list(t.tasks),
            "finishedAt": format_time(NOW),
        }
        cache.apply("offer", "MODIFIED", body)


def test_an_accept_waits_until_every_task_it_lists_is_seen() -> None:
    accept = {"action": "Accept", "tasks": ["t1", "t2"]}
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [])],
        offers=[offer("a-1", "A", response=accept)],
        pods=[pod("t1", "A", "a-1")],
    )
    plan = reconcile(cache.freeze(NOW))
    assert plan.transitions == [] and plan.refusals == []
    assert cache.offers["team/a-1"].outstanding  # still holding what t2 will use

    cache.apply("pod", "ADDED", pod("t2", "A", "a-1"))  # the watch delivers it a moment later
    plan = reconcile(cache.freeze(NOW + 1))
    (accepted,) = plan.transitions
    assert accepted.tasks == ("t1", "t2")
    settle(cache, plan)
    assert reconcile(cache.freeze(NOW + 2)).refusals == []  # both tasks live on


def test_a_listed_task_unseen_for_long_is_read_afresh_before_settling_without_it() -> None:
    accept = {"action": "Accept", "tasks": ["t1", "t2"]}
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [])],
        offers=[offer("a-1", "A", response=accept)],
        pods=[pod("t1", "A", "a-1")],
    )
    assert reconcile(cache.freeze(NOW + LISTED_TASK_WAIT - 0.1)).unconfirmed == []
    plan = reconcile(cache.freeze(NOW + LISTED_TASK_WAIT))
    assert plan.unconfirmed == ["team/t2"] and plan.transitions == []

    cache.confirmed_absent.add("team/t2")  # the fresh read found no such Pod
    (accepted,) = reconcile(cache.freeze(NOW + LISTED_TASK_WAIT + 1)).transitions
    assert accepted.tasks == ("t1",)


def test_tasks_launched_on_an_offer_survive_its_rescinding() -> None:
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [], suppressed=True)],
        offers=[offer("a-1", "A")],
        pods=[pod("t1", "A", "a-1")],
    )
    plan = reconcile(cache.freeze(NOW))
    (ended,) = plan.transitions
    assert (ended.phase, ended.reason, ended.tasks) == (OfferPhase.ACCEPTED, "Launched", ("t1",))
    settle(cache, plan)
    assert reconcile(cache.freeze(NOW + 1)).refusals == []


def test_a_refusal_filter_past_its_bound_is_refused_and_frees_the_offer() -> None:
    decline = {"action": "Decline", "refuseSeconds": 1e12}  # year 33715: no cycle may crash
    cache = cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", [])],
        offers=[offer("a-1", "A", response=decline)],
    )
    (refused,) = reconcile(cache.freeze(NOW)).transitions
    assert (refused.phase, refused.reason) == (OfferPhase.RESCINDED, "InvalidResponse")
    assert f"less than or equal to {MAX_REFUSE_SECONDS}" in refused.message


def test_a_framework_the_allocator_cannot_read_is_left_out_and_told_why() -> None:
    bad = framework("Bad", [{"resources": {"": "1"}, "count": 1}])
    cache = cache_with(nodes=[node("n1")], frameworks=[bad, framework("A", SEED_DEMAND["A"])])
    result = allocate(cache.freeze(NOW).snapshot(), cache.settings.allocator_config())
    assert {o.framework for o in result.offers} == {"team/A"}
    error = cache.frameworks["team/Bad"].error
    assert error is not None and "spec.demand[0].resources" in error


def test_an_answer_the_master_cannot_read_is_refused_and_frees_the_offer() -> None:
    garbled = offer("a-1", "A", response={"action": "Accept", "tasks": "t1"})
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", [])], offers=[garbled])
    assert cache.offers["team/a-1"].outstanding  # still holding its resources meanwhile
    (refused,) = reconcile(cache.freeze(NOW)).transitions
    assert (refused.phase, refused.reason) == (OfferPhase.RESCINDED, "InvalidResponse")
    assert "spec.response" in refused.message


def test_pod_requests_count_sidecars_as_the_scheduler_does() -> None:
    def container(cpu: str, **extra: Any) -> dict[str, Any]:
        return {"name": "c", "resources": {"requests": {"cpu": cpu}}, **extra}

    spec = {
        "initContainers": [
            container("1", restartPolicy="Always"),  # a sidecar: runs for the Pod's life
            container("3"),  # runs beside the sidecar: 4 at its peak
            container("500m", restartPolicy="Always"),
        ],
        "containers": [container("2")],
        "overhead": {"cpu": "100m"},
    }
    # max(init peak 1 + 3, containers 2 + sidecars 1.5) + overhead
    assert pod_requests(spec)["cpu"] == 4100
    spec["containers"] = [container("3")]
    assert pod_requests(spec)["cpu"] == 4600  # 3 + 1.5 sidecars beats the init peak


def test_node_resources_an_offer_could_not_name_are_not_offered() -> None:
    odd = node("n1")
    odd["status"]["allocatable"]["attachable-volumes-csi-x"] = "39"
    odd["status"]["allocatable"]["example.com/fpga"] = "2"
    cache = cache_with(nodes=[odd])
    allocatable = cache.nodes["n1"].allocatable
    assert "attachable-volumes-csi-x" not in allocatable
    assert allocatable["example.com/fpga"] == 2


def test_a_late_event_of_a_deleted_object_does_not_bring_it_back() -> None:
    live = pod("t1", "A", "a-1")
    live["metadata"]["resourceVersion"] = "10"
    gone = {"metadata": {**live["metadata"], "resourceVersion": "12"}}
    cache = cache_with(pods=[live])
    assert cache.apply("pod", "DELETED", gone)
    late = {**live, "metadata": {**live["metadata"], "resourceVersion": "11"}}
    assert not cache.apply("pod", "MODIFIED", late)
    assert "team/t1" not in cache.pods


def test_a_late_deletion_of_an_earlier_object_of_the_same_name_leaves_the_newer_one() -> None:
    """A node removed and added back under its name: a relist can hold the new Node before
    a lagging watch delivers the old one's deletion, which must not remove the new one (the
    master would offer nothing on it until its next relist)."""
    back = node("n1")
    back["metadata"]["resourceVersion"] = "20"
    cache = cache_with()
    cache.forget_unlisted("node", cache.apply_listed("node", [back]), 20)  # a relist
    old_end = node("n1")
    old_end["metadata"]["resourceVersion"] = "15"
    assert not cache.apply("node", "DELETED", old_end)
    assert "n1" in cache.freeze(NOW).usable
    # Its own deletion still removes it.
    end = node("n1")
    end["metadata"]["resourceVersion"] = "21"
    assert cache.apply("node", "DELETED", end)
    assert "n1" not in cache.nodes


def test_deletions_are_remembered_for_minutes_not_forever() -> None:
    """Every ended task leaves a tombstone; a master that never relists kept them all, a
    slow leak (one entry per Pod ever ended). They go after TOMBSTONE_SECONDS, and a late
    event within that time is still turned away."""
    now = [NOW]
    cache = ClusterCache(MasterSettings(), clock=lambda: now[0])

    def ended(name: str, version: int) -> None:
        body = pod(name, "A", "a-1")
        body["metadata"]["resourceVersion"] = str(version)
        cache.apply("pod", "ADDED", body)
        gone = {"metadata": {**body["metadata"], "resourceVersion": str(version + 1)}}
        cache.apply("pod", "DELETED", gone)

    for i in range(100):
        ended(f"old{i}", 10 * i + 1)
    now[0] += TOMBSTONE_SECONDS / 2
    ended("recent", 5000)
    late = pod("recent", "A", "a-1")
    late["metadata"]["resourceVersion"] = "4999"
    assert not cache.apply("pod", "MODIFIED", late)
    now[0] += TOMBSTONE_SECONDS / 2
    ended("newest", 6000)
    assert len(cache._tombstones) == 2  # "recent" and "newest"
    assert not cache.apply("pod", "MODIFIED", late)
    assert "team/recent" not in cache.pods


def test_tasks_on_a_node_not_ready_still_count_against_their_roles_quota_limit() -> None:
    """Found by the 30-minute chaos soak: a role's tasks on a NotReady node dropped out of
    its consumption, the master offered the role up to its limit elsewhere, and once the node
    was Ready again the role held more than its limit (invariant 4)."""
    limit = {
        "metadata": {"name": "default-limit", "generation": 1},
        "spec": {"role": "default", "limit": {"cpu": "4"}},
    }
    cache = cache_with(
        nodes=[node("n1", ready=False), node("n2")],
        frameworks=[framework("A", [{"resources": {"cpu": "1", "memory": "1Gi"}, "count": 9}])],
        pods=[pod(f"a{i}", "A", None, cpu="1", memory="1Gi") for i in range(4)],
        quotas=[limit],
    )
    snapshot = cache.freeze(NOW).snapshot()
    result = allocate(snapshot, cache.settings.allocator_config())

    assert result.offers == ()
    assert sum(a.resources["cpu"] for a in snapshot.allocations) == 4000
