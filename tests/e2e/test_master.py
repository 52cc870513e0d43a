"""The master on the local control plane: the offer protocol end to end (docs/design.md).

Every test runs its own ``kubedrf master`` over its own node pool, answers offers with plain
API calls, and ends with the no-overcommit check (invariant 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client
from kubernetes.leaderelection import leaderelection

from kubedrf.api.conventions import format_micro_time, format_time
from kubedrf.devcluster.cluster import NodeShape
from kubedrf.master.leader import LeaderElector
from tests.e2e.conftest import MasterFactory
from tests.e2e.support import (
    GROUP,
    VERSION,
    Frameworks,
    NodePool,
    settle,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


@pytest.fixture
def cluster_objects(api: client.ApiClient) -> Iterator[Callable[[str, str, dict[str, Any]], None]]:
    """Create cluster-scoped kubedrf objects (Role, Quota, Reservation), deleted afterwards."""
    custom = client.CustomObjectsApi(api)
    created: list[tuple[str, str]] = []

    def create(plural: str, name: str, spec: dict[str, Any]) -> None:
        kind = {"roles": "Role", "quotas": "Quota", "reservations": "Reservation"}[plural]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
        custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        created.append((plural, name))

    yield create
    for plural, name in created:
        custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)


def offered_tasks(offers: list[dict[str, Any]]) -> int:
    return sum(s["count"] for o in offers for s in o["spec"].get("sizedFor") or [])


def test_seed_example_end_to_end(
    pool: NodePool, start_master: MasterFactory, frameworks: Frameworks
) -> None:
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    frameworks.create("a", {"cpu": "1", "memory": "4Gi"})
    frameworks.create("b", {"cpu": "3", "memory": "1Gi"})
    master = start_master()  # both demands are known before the first cycle

    a_offers, b_offers = frameworks.wait_offers("a"), frameworks.wait_offers("b")
    assert offered_tasks(a_offers) == 3
    assert offered_tasks(b_offers) == 2
    frameworks.accept_all("a")
    frameworks.accept_all("b")

    wait_for(lambda: len(frameworks.running("a")) == 3, "3 tasks of A running")
    wait_for(lambda: len(frameworks.running("b")) == 2, "2 tasks of B running")
    for name, tasks in (("a", 3), ("b", 2)):
        status = frameworks.wait_status(name, tasks)
        assert status["dominantShare"] == pytest.approx(2 / 3, abs=1e-3)
        share = master.metric(
            "kubedrf_allocator_framework_dominant_share",
            namespace=frameworks.namespace,
            framework=name,
        )
        assert share == pytest.approx(2 / 3, abs=1e-3)
    settle()
    assert frameworks.offers() == []  # nothing left to offer: both shares are 2/3


def test_weighted_roles(
    pool: NodePool,
    start_master: MasterFactory,
    frameworks: Frameworks,
    cluster_objects: Callable[[str, str, dict[str, Any]], None],
) -> None:
    gold, silver = f"gold-{pool.id}", f"silver-{pool.id}"
    cluster_objects("roles", gold, {"weight": 2})
    cluster_objects("roles", silver, {"weight": 1})
    pool.add(1, NodeShape(cpu="12", memory="48Gi"))
    frameworks.create("g", {"cpu": "1", "memory": "1Gi"}, roles=[gold])
    frameworks.create("s", {"cpu": "1", "memory": "1Gi"}, roles=[silver])
    start_master()  # both demands are known before the first cycle
    wait_for(
        lambda: offered_tasks(frameworks.offers("g")) + offered_tasks(frameworks.offers("s")) == 12,
        "the whole node offered",
    )
    assert offered_tasks(frameworks.offers("g")) == 8
    assert offered_tasks(frameworks.offers("s")) == 4


def test_quota_limit_is_never_exceeded(
    pool: NodePool,
    start_master: MasterFactory,
    frameworks: Frameworks,
    cluster_objects: Callable[[str, str, dict[str, Any]], None],
) -> None:
    role = f"capped-{pool.id}"
    cluster_objects("quotas", f"limit-{pool.id}", {"role": role, "limit": {"cpu": "2"}})
    pool.add(1, NodeShape(cpu="8", memory="32Gi"))
    start_master()
    frameworks.create("c", {"cpu": "1", "memory": "1Gi"}, roles=[role])
    assert offered_tasks(frameworks.wait_offers("c")) == 2
    frameworks.accept_all("c")
    wait_for(lambda: len(frameworks.running("c")) == 2, "2 tasks running")
    condition = wait_for(
        lambda: (c := frameworks.condition("c", "Offered")) and c["status"] == "False" and c,
        "the Offered condition to explain the limit",
    )
    assert condition["reason"] == "QuotaLimitReached"
    assert frameworks.offers("c") == []


def test_reserved_resources_reach_only_their_role(
    pool: NodePool,
    start_master: MasterFactory,
    frameworks: Frameworks,
    cluster_objects: Callable[[str, str, dict[str, Any]], None],
) -> None:
    (node,) = pool.add(1, NodeShape(cpu="8", memory="32Gi"))
    db = f"db-{pool.id}"
    cluster_objects(
        "reservations", f"db-{pool.id}", {"role": db, "nodeName": node, "resources": {"cpu": "4"}}
    )
    start_master()
    frameworks.create("web", {"cpu": "1", "memory": "1Gi"}, roles=[f"web-{pool.id}"])
    wait_for(
        lambda: offered_tasks(frameworks.offers("web")) == 4, "web offered the unreserved half"
    )
    frameworks.create("postgres", {"cpu": "1", "memory": "1Gi"}, count=4, roles=[db])
    wait_for(
        lambda: offered_tasks(frameworks.offers("postgres")) == 4, "db offered its reservation"
    )
    settle()
    assert offered_tasks(frameworks.offers("web")) == 4


def test_a_declined_offer_filters_the_node_until_revive(
    pool: NodePool, start_master: MasterFactory, frameworks: Frameworks
) -> None:
    pool.add(1, NodeShape(cpu="4", memory="16Gi"))
    start_master()
    frameworks.create("a", {"cpu": "1", "memory": "1Gi"}, count=4)
    (offer,) = frameworks.wait_offers("a")
    frameworks.respond(offer, {"action": "Decline", "refuseSeconds": 300})
    declined = wait_for(
        lambda: next((o for o in frameworks.offers("a", phase="Declined")), None),
        "the decline to be settled",
    )
    assert declined["status"]["filterExpiresAt"]
    settle()
    assert frameworks.offers("a") == []  # filtered: no new offer on that node
    reason = frameworks.condition("a", "Offered")
    assert reason is not None and reason["reason"] == "Filtered"

    frameworks.patch(
        "a", {"metadata": {"annotations": {"kubedrf.io/revived-at": format_time(time.time() + 1)}}}
    )
    assert offered_tasks(frameworks.wait_offers("a", timeout=10)) == 4


def test_an_unanswered_offer_expires_and_is_made_again(
    pool: NodePool, start_master: MasterFactory, frameworks: Frameworks
) -> None:
    pool.add(1)
    start_master(**{"offer-timeout": "3s"})
    frameworks.create("a", {"cpu": "1", "memory": "1Gi"}, count=1)
    (first,) = frameworks.wait_offers("a")
    expired = wait_for(
        lambda: next((o for o in frameworks.offers("a", phase="Expired")), None), "expiry", 15
    )
    assert expired["metadata"]["name"] == first["metadata"]["name"]
    (second,) = frameworks.wait_offers("a")
    assert second["metadata"]["name"] != first["metadata"]["name"]


def test_removing_a_node_rescinds_its_offers(
    pool: NodePool, start_master: MasterFactory, frameworks: Frameworks
) -> None:
    first, second = pool.add(2, NodeShape(cpu="2", memory="8Gi"))
    start_master()
    frameworks.create("a", {"cpu": "1", "memory": "1Gi"}, count=4)
    wait_for(lambda: len(frameworks.offers("a")) == 2, "offers on both nodes")
    pool.remove(second)
    rescinded = wait_for(
        lambda: next((o for o in frameworks.offers("a", phase="Rescinded")), None), "a rescind"
    )
    assert rescinded["spec"]["nodeName"] == second
    assert rescinded["status"]["reason"] == "NodeGone"
    assert [o["spec"]["nodeName"] for o in frameworks.offers("a")] == [first]


def test_a_master_restart_loses_and_doubles_nothing(
    pool: NodePool, start_master: MasterFactory, frameworks: Frameworks
) -> None:
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    frameworks.create("a", {"cpu": "1", "memory": "4Gi"})
    frameworks.create("b", {"cpu": "3", "memory": "1Gi"})
    master = start_master()
    frameworks.wait_offers("a")
    frameworks.wait_offers("b")
    frameworks.accept_all("a")  # A answers; the master may die before it settles that
    master.stop(kill=True)
    before = {o["metadata"]["name"] for o in frameworks.offers(phase=None)}
    (b_offer,) = frameworks.offers("b")

    master.start()
    wait_for(lambda: not frameworks.offers("a"), "A's accept to be settled after the restart")
    settle(3)
    # Nothing was offered twice, and B's outstanding offer survived the restart.
    assert {o["metadata"]["name"] for o in frameworks.offers(phase=None)} == before
    assert [o["metadata"]["name"] for o in frameworks.offers("b")] == [b_offer["metadata"]["name"]]
    frameworks.accept_all("b")
    wait_for(lambda: len(frameworks.running("a")) == 3, "3 tasks of A running")
    wait_for(lambda: len(frameworks.running("b")) == 2, "2 tasks of B running")
    settle()
    assert frameworks.offers() == []


def test_tasks_claiming_what_was_not_offered_to_them_are_refused(
    pool: NodePool, start_master: MasterFactory, frameworks: Frameworks, api: client.ApiClient
) -> None:
    pool.add(1)
    start_master()
    frameworks.create("a", {"cpu": "1", "memory": "1Gi"}, count=1)
    frameworks.create("b", None)  # declares no demand: gets no offers
    (offer,) = frameworks.wait_offers("a")
    thief = dict(offer, spec=dict(offer["spec"], framework="b"))
    frameworks.launch(thief, "thief", {"cpu": "1"})

    core = client.CoreV1Api(api)

    def refused() -> bool:
        names = [p.metadata.name for p in core.list_namespaced_pod(frameworks.namespace).items]
        return "thief" not in names

    wait_for(refused, "the thief task to be refused")
    events = core.list_namespaced_event(
        frameworks.namespace, field_selector="involvedObject.name=thief"
    ).items
    assert any(e.reason == "OfferOfAnotherFramework" for e in events)
    assert [o["metadata"]["name"] for o in frameworks.offers("a")] == [offer["metadata"]["name"]]


def test_two_replicas_elect_one_allocating_leader(
    pool: NodePool,
    start_master: MasterFactory,
    frameworks: Frameworks,
    api: client.ApiClient,
) -> None:
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    election = {
        "leader-election-namespace": frameworks.namespace,
        "leader-election-name": f"lease-{pool.id}",
    }
    frameworks.create("a", {"cpu": "1", "memory": "4Gi"})
    frameworks.create("b", {"cpu": "3", "memory": "1Gi"})
    replicas = [start_master(**election), start_master(**election)]
    frameworks.wait_offers("a")
    frameworks.wait_offers("b")
    settle(3)
    # One allocator: each framework holds exactly the seed's offer, never two copies.
    assert [offered_tasks(frameworks.offers(n)) for n in "ab"] == [3, 2]
    assert len(frameworks.offers()) == 2
    frameworks.accept_all("a")
    frameworks.accept_all("b")

    leases = client.CoordinationV1Api(api)
    holder = leases.read_namespaced_lease(f"lease-{pool.id}", frameworks.namespace).spec
    leader = next(r for r in replicas if str(r.process.pid) in holder.holder_identity)  # type: ignore[union-attr]
    leader.stop(kill=True)  # no clean release: the standby must wait the lease out

    pool.add(1, NodeShape(cpu="2", memory="8Gi"))
    frameworks.create("c", {"cpu": "1", "memory": "1Gi"}, count=2)
    assert offered_tasks(frameworks.wait_offers("c", timeout=40)) == 2


def test_a_role_closed_to_the_namespace_is_refused_with_a_reason(
    pool: NodePool,
    start_master: MasterFactory,
    frameworks: Frameworks,
    cluster_objects: Callable[[str, str, dict[str, Any]], None],
    core: client.CoreV1Api,
) -> None:
    private, shared = f"private-{pool.id}", f"shared-{pool.id}"
    cluster_objects("roles", private, {"namespaces": ["somebody-else"]})
    pool.add(1)
    start_master()
    frameworks.create("a", {"cpu": "1", "memory": "1Gi"}, count=1, roles=[private, shared])
    condition = wait_for(
        lambda: (c := frameworks.condition("a", "RolesAllowed")) and c["status"] == "False" and c,
        "the refusal in status",
    )
    assert condition["reason"] == "RoleRefused"
    assert f"role '{private}'" in condition["message"]
    assert f"namespace '{frameworks.namespace}'" in condition["message"]
    # The other role still works, and nothing is offered under the refused one.
    assert [o["spec"]["role"] for o in frameworks.wait_offers("a")] == [shared]
    events = core.list_namespaced_event(
        frameworks.namespace, field_selector="involvedObject.name=a"
    ).items
    assert any(e.reason == "RoleRefused" and private in (e.message or "") for e in events)


def test_a_task_larger_than_every_node_is_a_warning_naming_the_shape_and_the_node(
    pool: NodePool,
    start_master: MasterFactory,
    frameworks: Frameworks,
    core: client.CoreV1Api,
) -> None:
    (node,) = pool.add(1, NodeShape(cpu="2", memory="8Gi"))
    start_master()
    frameworks.create("a", {"cpu": "16", "memory": "1Gi"}, count=1)
    condition = wait_for(
        lambda: (c := frameworks.condition("a", "TasksFit")) and c["status"] == "False" and c,
        "the oversized task in status",
    )
    assert condition["reason"] == "TaskLargerThanAnyNode"
    assert "cpu=16, memory=1Gi" in condition["message"]
    assert f"{node}, has cpu=2" in condition["message"]
    assert frameworks.get("a")["status"]["roleList"] == "default"
    events = core.list_namespaced_event(
        frameworks.namespace, field_selector="involvedObject.name=a"
    ).items
    assert any(e.reason == "TaskLargerThanAnyNode" and e.type == "Warning" for e in events)


def test_tasks_an_accept_lists_before_their_pods_exist_are_kept(
    pool: NodePool,
    start_master: MasterFactory,
    frameworks: Frameworks,
) -> None:
    """The watches of Offers and Pods are not ordered: the master may hear of an Accept
    before the Pods it lists (after a reconnect, on a new leader, or under load)."""
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    frameworks.create("a", {"cpu": "1", "memory": "4Gi"}, count=3)
    start_master()
    (offer,) = frameworks.wait_offers("a")
    names = [f"{offer['metadata']['name']}-{i}" for i in range(3)]
    frameworks.respond(offer, {"action": "Accept", "tasks": names})
    settle(3)  # several cycles see the Accept and none of its tasks
    for name in names:
        frameworks.launch(offer, name, {"cpu": "1", "memory": "4Gi"})
    status = wait_for(
        lambda: frameworks.offers("a", phase="Accepted") or None, "the offer accepted"
    )[0]["status"]
    assert sorted(status["tasks"]) == names
    settle(3)
    assert sorted(frameworks.running("a")) == names


def test_a_replica_whose_clock_runs_ahead_does_not_take_a_held_lease(
    api: client.ApiClient, frameworks: Frameworks, pool: NodePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def elector(identity: str) -> LeaderElector:
        return LeaderElector(
            api,
            frameworks.namespace,
            f"skew-{pool.id}",
            identity=identity,
            lease_seconds=4,
            renew_deadline=3,
            retry_seconds=1,
        )

    steady, ahead = elector("steady"), elector("ahead")
    thirty_seconds_ahead = SimpleNamespace(time=lambda: time.time() + 30, sleep=time.sleep)

    def ahead_step() -> bool:
        with monkeypatch.context() as patched:
            patched.setattr(leaderelection, "time", thirty_seconds_ahead)
            return ahead.step()

    assert steady.step()
    for _ in range(6):  # longer than the lease, by either clock
        assert not ahead_step()
        assert steady.step()
        time.sleep(1)
    assert steady.is_leader and not ahead.is_leader

    # The leader falls silent: it stops acting on its own before the other may take over.
    silent_since = time.monotonic()
    wait_for(lambda: not steady.is_leader or None, "the silent leader to stand down", 5)
    wait_for(lambda: ahead_step() or None, "the lease taken over", 15)
    assert time.monotonic() - silent_since >= 3  # not before the lease ran out


def connected(frameworks: Frameworks, name: str) -> str | None:
    return (frameworks.condition(name, "Connected") or {}).get("status")


def test_a_framework_not_heard_from_is_disconnected_and_what_it_held_goes_to_others(
    pool: NodePool, start_master: MasterFactory, frameworks: Frameworks, api: client.ApiClient
) -> None:
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    frameworks.create("b", {"cpu": "3", "memory": "1Gi"})
    # The ghost: a Framework whose controller never runs (no heartbeat, no answers).
    frameworks.create("ghost", {"cpu": "3", "memory": "1Gi"}, failoverTimeout=5)
    start_master()
    (held,) = frameworks.wait_offers("ghost")

    def b_answers_and_runs_three() -> bool:
        for offer in frameworks.offers("b"):
            if not offer["spec"].get("response"):
                frameworks.accept(offer)
        return len(frameworks.running("b")) == 3

    # Beside a live ghost B would stay at 2 tasks; once the ghost is Disconnected its offer
    # is rescinded and B gets the whole node.
    wait_for(b_answers_and_runs_three, "B running 3 tasks", timeout=40)
    (rescinded,) = frameworks.offers("ghost", phase="Rescinded")
    assert rescinded["metadata"]["name"] == held["metadata"]["name"]
    assert rescinded["status"]["reason"] == "FrameworkDisconnected"
    condition = frameworks.condition("ghost", "Connected")
    assert condition is not None and condition["reason"] == "Disconnected"
    assert "spec.failoverTimeout (5s)" in condition["message"]
    assert frameworks.offers("ghost") == []

    # A heartbeat (what the SDK's driver renews) brings it back.
    client.CoordinationV1Api(api).create_namespaced_lease(
        frameworks.namespace,
        {
            "metadata": {
                "name": "kubedrf-framework-ghost",
                "labels": {"kubedrf.io/framework": "ghost"},
            },
            "spec": {"holderIdentity": "e2e", "renewTime": format_micro_time(time.time())},
        },
    )
    wait_for(lambda: connected(frameworks, "ghost") == "True", "the ghost reconnected", 15)


def test_a_silent_frameworks_tasks_end_only_after_its_task_teardown_timeout(
    pool: NodePool, start_master: MasterFactory, frameworks: Frameworks
) -> None:
    pool.add(1)
    start_master()
    frameworks.create(
        "a", {"cpu": "1", "memory": "1Gi"}, count=1, failoverTimeout=3, taskTeardownTimeout=8
    )
    (offer,) = frameworks.wait_offers("a")
    (task,) = frameworks.accept(offer)
    wait_for(lambda: frameworks.running("a") == [task], "its task running")
    wait_for(lambda: connected(frameworks, "a") == "False", "a Disconnected", 15)
    assert frameworks.task_count("a") == 1  # Disconnected, its task runs on
    wait_for(lambda: frameworks.task_count("a") == 0, "its task ended", 20)
