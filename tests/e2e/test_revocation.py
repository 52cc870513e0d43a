"""Revocation on the local control plane: a framework that arrives while others hold the
seed's node reaches its DRF share, through InverseOffers the frameworks answer or the master
enforces by eviction (PodDisruptionBudgets honoured), across a master restart.

On the seed node (9 CPU, 18 GiB) with A ({1 CPU, 4 GiB} tasks) and B ({3 CPU, 1 GiB}) holding
3 and 2 tasks, C ({1 CPU, 1 GiB}) arriving has a DRF target of 4 tasks, A of 2 and B of 1:
two revocations, one task of A and one of B.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from kubedrf.devcluster.cluster import NodeShape
from tests.e2e.conftest import MasterFactory
from tests.e2e.support import GROUP, VERSION, Frameworks, MasterProcess, NodePool, settle, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

A_TASK = {"cpu": "1", "memory": "4Gi"}
B_TASK = {"cpu": "3", "memory": "1Gi"}
C_TASK = {"cpu": "1", "memory": "1Gi"}


def inverse_offers(frameworks: Frameworks, phase: str | None = None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = frameworks.custom.list_namespaced_custom_object(
        GROUP, VERSION, frameworks.namespace, "inverseoffers"
    )["items"]
    return [i for i in items if phase is None or (i.get("status") or {}).get("phase") == phase]


def hold_the_seed_node(
    pool: NodePool, frameworks: Frameworks, start_master: MasterFactory, **flags: str
) -> MasterProcess:
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    frameworks.create("a", A_TASK)
    frameworks.create("b", B_TASK)
    master = start_master(**flags)
    frameworks.wait_offers("a")
    frameworks.wait_offers("b")
    frameworks.accept_all("a")
    frameworks.accept_all("b")
    wait_for(lambda: len(frameworks.running("a")) == 3, "3 tasks of A running")
    wait_for(lambda: len(frameworks.running("b")) == 2, "2 tasks of B running")
    return master


def accept_until(frameworks: Frameworks, name: str, tasks: int, timeout: float = 90) -> None:
    """Launch on every offer ``name`` gets until it runs ``tasks`` tasks."""

    def running() -> bool:
        frameworks.accept_all(name)
        return len(frameworks.running(name)) >= tasks

    wait_for(running, f"{tasks} tasks of {name} running", timeout)


def test_a_late_framework_reaches_its_share_when_holders_do_not_answer(
    pool: NodePool, frameworks: Frameworks, start_master: MasterFactory
) -> None:
    master = hold_the_seed_node(pool, frameworks, start_master, **{"grace-period": "2s"})
    frameworks.create("c", C_TASK)
    accept_until(frameworks, "c", 4)
    # One task of A and one of B were needed, no more: every share is now its target.
    asked = inverse_offers(frameworks)
    assert sorted(i["spec"]["framework"] for i in asked) == ["a", "b"]
    assert all(i["status"]["evicted"] for i in asked)  # nobody answered: the master evicted
    assert all(i["spec"]["beneficiary"]["framework"] == "c" for i in asked)
    settle(5)  # demand steady: nothing more is revoked
    assert len(inverse_offers(frameworks)) == 2
    assert master.metric("kubedrf_allocator_revocations_total", outcome="evicted") == 2.0
    for name, tasks, target in (("a", 2, 8 / 18), ("b", 1, 3 / 9), ("c", 4, 4 / 9)):
        status = frameworks.wait_status(name, tasks)
        assert status["dominantShare"] == pytest.approx(target, abs=1e-3)


def test_a_framework_that_answers_chooses_which_task_ends(
    pool: NodePool, frameworks: Frameworks, start_master: MasterFactory, core: client.CoreV1Api
) -> None:
    hold_the_seed_node(pool, frameworks, start_master, **{"grace-period": "60s"})
    frameworks.create("c", C_TASK, count=1)
    (asked,) = wait_for(
        lambda: inverse_offers(frameworks, "Outstanding") or None, "an inverse offer"
    )
    named = asked["spec"]["tasks"]
    owner = asked["spec"]["framework"]
    mine = sorted(frameworks.running(owner))
    chosen = [next(t for t in mine if t not in named)]  # not the one the master named
    frameworks.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        frameworks.namespace,
        "inverseoffers",
        asked["metadata"]["name"],
        {"spec": {"response": {"tasks": chosen}}},
    )
    core.delete_namespaced_pod(chosen[0], frameworks.namespace, grace_period_seconds=0)
    done = wait_for(
        lambda: inverse_offers(frameworks, "Completed") or None, "the inverse offer done"
    )
    assert done[0]["status"].get("evicted", []) == []
    assert set(named) <= set(frameworks.running(owner))  # the named task lives on
    accept_until(frameworks, "c", 1)


def test_a_pod_disruption_budget_on_one_victim_turns_the_master_to_the_other(
    pool: NodePool, frameworks: Frameworks, start_master: MasterFactory, api: client.ApiClient
) -> None:
    master = hold_the_seed_node(pool, frameworks, start_master, **{"grace-period": "1s"})
    policy = client.PolicyV1Api(api)
    budget = {
        "metadata": {"name": "hold-a"},
        "spec": {
            "maxUnavailable": 0,
            "selector": {"matchLabels": {"kubedrf.io/framework": "a"}},
        },
    }
    policy.create_namespaced_pod_disruption_budget(frameworks.namespace, budget)
    frameworks.create("c", C_TASK)
    # B gives its task above target; every task of A is protected, each refused once (the
    # one named, then the others tried in its place). Without A, the DRF target lets C
    # reach B's share, 3 tasks, not 4; and no more is asked while A stays protected.
    accept_until(frameworks, "c", 3)
    wait_for(
        lambda: master.metric("kubedrf_allocator_revocations_total", outcome="blocked") == 3.0,
        "every task of A refused once",
    )
    settle(5)
    assert [len(frameworks.running(n)) for n in ("a", "b", "c")] == [3, 1, 3]
    phases = {i["spec"]["framework"]: i["status"]["phase"] for i in inverse_offers(frameworks)}
    assert phases == {"a": "Evicting", "b": "Completed"}
    assert master.metric("kubedrf_allocator_revocations_total", outcome="blocked") == 3.0
    events = frameworks.core.list_namespaced_event(frameworks.namespace).items
    assert {"EvictionBlocked", "Substituted"} <= {e.reason for e in events}
    # Once the budget goes, the revocation that waited completes and C reaches its target.
    policy.delete_namespaced_pod_disruption_budget("hold-a", frameworks.namespace)
    accept_until(frameworks, "c", 4)
    assert [len(frameworks.running(n)) for n in ("a", "b")] == [2, 1]


def test_a_master_restart_mid_revocation_neither_loses_nor_repeats_it(
    pool: NodePool, frameworks: Frameworks, start_master: MasterFactory
) -> None:
    master = hold_the_seed_node(pool, frameworks, start_master, **{"grace-period": "15s"})
    frameworks.create("c", C_TASK, count=1)
    (asked,) = wait_for(
        lambda: inverse_offers(frameworks, "Outstanding") or None, "an inverse offer"
    )
    master.stop(kill=True)
    master.start()
    settle(4)
    again = inverse_offers(frameworks)
    assert [i["metadata"]["name"] for i in again] == [asked["metadata"]["name"]]
    wait_for(lambda: inverse_offers(frameworks, "Completed") or None, "the revocation finished", 40)
    frameworks.wait_offers("c")
    # Holding the offer for the one task it wanted, C says it wants no more, then launches:
    # the other order leaves a cycle in which C's demand still asks for one more task.
    frameworks.patch("c", {"spec": {"demand": [{"resources": C_TASK, "count": 0}]}})
    accept_until(frameworks, "c", 1)
    settle(3)
    assert len(inverse_offers(frameworks)) == 1
