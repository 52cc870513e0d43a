"""The inverse-offer protocol's decisions, from API bodies (no cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, cast

from kubedrf.allocator import Snapshot, allocate
from kubedrf.api import InverseOfferPhase
from kubedrf.api.conventions import format_time
from kubedrf.master.cache import ClusterCache
from kubedrf.master.core import Master
from kubedrf.master.metrics import Metrics
from kubedrf.master.revoking import RevocationPlan, plan_revocations, refusal_memory
from kubedrf.master.settings import MasterSettings
from tests.unit.test_master_lifecycle import NOW, cache_with, framework, node, pod

A_TASK = {"cpu": "1", "memory": "4Gi"}
B_TASK = {"cpu": "3", "memory": "1Gi"}
C_TASK = {"cpu": "1", "memory": "1Gi"}


def task(name: str, fw: str, shape: dict[str, str], created: float) -> dict[str, Any]:
    return pod(name, fw, "o", cpu=shape["cpu"], memory=shape["memory"], created=created)


def seed_held(
    settings: MasterSettings | None = None, **extra: list[dict[str, Any]]
) -> ClusterCache:
    """The seed node held by A (3 tasks) and B (2 tasks); C arrives wanting {1 CPU, 1 GiB}."""
    return cache_with(
        settings,
        nodes=[node("n1")],
        frameworks=[
            framework("A", [{"resources": A_TASK, "count": 0}]),
            framework("B", [{"resources": B_TASK, "count": 0}]),
            framework("C", [{"resources": C_TASK, "count": 9}]),
        ],
        pods=[
            *(task(f"a{i}", "A", A_TASK, NOW - 100 + i) for i in range(3)),
            *(task(f"b{i}", "B", B_TASK, NOW - 100 + i) for i in range(2)),
            *extra.pop("pods", []),
        ],
        **extra,
    )


def inverse_offer(
    name: str,
    fw: str,
    tasks: list[str],
    *,
    phase: str = "Outstanding",
    deadline: float = NOW + 30,
    beneficiary: str = "C",
    response: list[str] | None = None,
    **status: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "framework": fw,
        "role": "default",
        "nodeName": "n1",
        "resources": B_TASK,
        "tasks": tasks,
        "beneficiary": {"namespace": "team", "framework": beneficiary, "role": "default"},
        "deadline": format_time(deadline),
    }
    if response is not None:
        spec["response"] = {"tasks": response}
    return {
        "metadata": {"name": name, "namespace": "team", "generation": 1},
        "spec": spec,
        "status": {"phase": phase, **status},
    }


def plan(cache: ClusterCache, now: float = NOW) -> tuple[RevocationPlan, Snapshot]:
    view = cache.freeze(now)
    snapshot = view.snapshot()
    config, policy = view.settings.allocator_config(), view.settings.revocation_policy()
    return plan_revocations(view, snapshot, config, policy), snapshot


def test_a_late_framework_gets_the_newest_task_of_each_above_its_share() -> None:
    result, _ = plan(seed_held())
    asked = [(r.framework, r.node, r.tasks) for r in result.revocations]
    assert asked == [("team/B", "n1", ("team/b1",)), ("team/A", "n1", ("team/a2",))]
    assert {(r.beneficiary, r.beneficiary_role) for r in result.revocations} == {
        ("team/C", "default")
    }


def test_no_revocation_when_revocation_is_off() -> None:
    result, _ = plan(seed_held(MasterSettings(revocation=False)))
    assert result.revocations == ()


def test_a_pending_inverse_offer_is_not_asked_for_again() -> None:
    cache = seed_held(inverseoffers=[inverse_offer("b-revoke-1", "B", ["b1"])])
    result, _ = plan(cache)
    assert all("team/b1" not in r.tasks for r in result.revocations)
    assert result.transitions == [] and result.evictions == []


def test_past_the_deadline_what_still_runs_is_evicted_newest_first() -> None:
    cache = seed_held(
        inverseoffers=[inverse_offer("b-revoke-1", "B", ["b0", "b1"], deadline=NOW - 1)]
    )
    result, _ = plan(cache)
    assert [e.pod.name for e in result.evictions] == ["b1", "b0"]
    (transition,) = result.transitions
    assert transition.phase is InverseOfferPhase.EVICTING
    # Still pending while evicting: its tasks are not asked for again in the same cycle.
    assert all(not {"team/b0", "team/b1"} & set(r.tasks) for r in result.revocations)
    before, _ = plan(cache, NOW - 2)
    assert before.evictions == []


def test_the_frameworks_own_choice_is_what_gets_evicted() -> None:
    cache = seed_held(
        inverseoffers=[inverse_offer("b-revoke-1", "B", ["b1"], deadline=NOW - 1, response=["b0"])]
    )
    result, _ = plan(cache)
    assert [e.pod.name for e in result.evictions] == ["b0"]


def test_once_the_tasks_end_the_node_is_held_for_the_beneficiary() -> None:
    cache = seed_held(inverseoffers=[inverse_offer("b-revoke-1", "B", ["b1"])])
    cache.apply("pod", "DELETED", task("b1", "B", B_TASK, NOW))
    result, snapshot = plan(cache)
    (transition,) = result.transitions
    assert transition.phase is InverseOfferPhase.COMPLETED
    held_off = {(f.framework, f.node) for f in result.holds}
    assert ("team/C", "n1") not in held_off
    assert {("team/A", "n1"), ("team/B", "n1")} <= held_off
    # With the holds, what B freed is offered to C alone.
    offers = allocate(replace(snapshot, filters=snapshot.filters + result.holds)).offers
    assert {o.framework for o in offers} == {"team/C"}


def test_an_inverse_offer_whose_beneficiary_left_is_cancelled() -> None:
    cache = seed_held(inverseoffers=[inverse_offer("b-revoke-1", "B", ["b1"], beneficiary="X")])
    (transition,) = plan(cache)[0].transitions
    assert (transition.phase, transition.reason) == (InverseOfferPhase.CANCELLED, "BeneficiaryGone")


def test_a_task_being_evicted_is_not_asked_for_again_in_the_same_cycle() -> None:
    cache = seed_held(inverseoffers=[inverse_offer("b-revoke-1", "B", ["b1"], deadline=NOW - 1)])
    result, _ = plan(cache)
    assert [e.pod.name for e in result.evictions] == ["b1"]
    assert all("team/b1" not in r.tasks for r in result.revocations)


# -- PodDisruptionBudgets --------------------------------------------------------------------


def protected(cache: ClusterCache, *names: str, at: float = NOW - 1) -> ClusterCache:
    """``cache`` with the eviction of each named task of namespace team refused at ``at``."""
    cache.refused_evictions.update({f"team/{name}": at for name in names})
    return cache


def test_a_task_a_budget_protects_gives_way_to_the_newest_other_task_on_its_node() -> None:
    io = inverse_offer("a-revoke-1", "A", ["a2"], phase="Evicting", deadline=NOW - 5)
    cache = protected(seed_held(inverseoffers=[io]), "a2")
    result, _ = plan(cache)
    assert [e.pod.name for e in result.evictions] == ["a1"]
    (transition,) = result.transitions
    assert (transition.phase, transition.reason) == (InverseOfferPhase.EVICTING, "Substituted")
    assert transition.status(NOW).tasks == ["a1"]
    # Neither is asked for again: a1 is being evicted, a2 is protected.
    assert all(not {"team/a1", "team/a2"} & set(r.tasks) for r in result.revocations)


def test_once_replaced_the_revocation_waits_on_its_substitute_not_on_the_protected_task() -> None:
    io = inverse_offer("a-revoke-1", "A", ["a2"], phase="Evicting", deadline=NOW - 5)
    io["status"]["tasks"] = ["a1"]
    cache = protected(seed_held(inverseoffers=[io]), "a2")
    cache.apply("pod", "DELETED", task("a1", "A", A_TASK, NOW - 99))
    (transition,) = plan(cache)[0].transitions
    assert transition.phase is InverseOfferPhase.COMPLETED


def test_when_the_budget_protects_every_task_on_the_node_the_revocation_stays_blocked() -> None:
    io = inverse_offer("a-revoke-1", "A", ["a2"], phase="Evicting", deadline=NOW - 5)
    # a2 and a1 were refused long ago, as substitutes in turn; a0, the last, just now.
    long_ago = NOW - 1 - refusal_memory(MasterSettings())
    io["status"]["tasks"] = ["a0"]
    cache = protected(seed_held(inverseoffers=[io]), "a0")
    cache.refused_evictions.update({"team/a1": long_ago, "team/a2": long_ago})
    result, _ = plan(cache)
    assert [e.pod.name for e in result.evictions] == ["a0"]  # tried again, in case
    assert result.transitions == []
    # While it waits, none of the tasks refused here is chosen again, however long ago.
    assert {"team/a0", "team/a1", "team/a2"} <= result.blocked
    # C still lacks what a2 would free: the other victim gives down to its target, no more.
    asked = [(r.framework, r.tasks) for r in result.revocations]
    assert asked == [("team/B", ("team/b1",))]


def test_a_task_whose_eviction_was_refused_lately_is_not_chosen_again() -> None:
    result, _ = plan(protected(seed_held(), "b1"))
    asked = [(r.framework, r.tasks) for r in result.revocations]
    assert asked == [("team/B", ("team/b0",)), ("team/A", ("team/a2",))]
    long_ago = NOW - 1 - refusal_memory(MasterSettings())
    result, _ = plan(protected(seed_held(), "b1", at=long_ago))
    assert result.revocations[0].tasks == ("team/b1",)


class GuardedWriter:
    """An ApiWriter whose evictions a budget refuses for ``protected`` Pods; records the
    evictions and Events it gets and writes nothing else."""

    def __init__(self, *protected: str) -> None:
        self.protected = set(protected)
        self.evicted: list[str] = []
        self.events: list[str] = []

    async def evict_pod(self, namespace: str, name: str) -> bool:
        self.evicted.append(name)
        return name not in self.protected

    async def event(self, regarding: Any, reason: str, *args: Any) -> None:
        self.events.append(reason)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[None]]:
        async def call(*args: Any, **_: Any) -> None:
            return None

        return call


def test_the_master_evicts_another_task_the_cycle_after_a_budget_refused_one() -> None:
    io = inverse_offer("a-revoke-1", "A", ["a2"], phase="Evicting", deadline=NOW - 5)
    cache = seed_held(inverseoffers=[io])
    writer = GuardedWriter("a2")
    metrics = Metrics()
    master = Master(cache, cast(Any, writer), metrics, clock=lambda: NOW)
    asyncio.run(master.cycle())
    assert writer.evicted == ["a2"] and "team/a2" in cache.refused_evictions
    asyncio.run(master.cycle())
    assert writer.evicted == ["a2", "a1"]
    # The refusal is counted and told once, not at every retry.
    blocked = metrics.registry.get_sample_value(
        "kubedrf_allocator_revocations_total", {"outcome": "blocked"}
    )
    assert blocked == 1.0
    assert writer.events.count("EvictionBlocked") == 2  # on the Pod and on its Framework


class SlowEvictions:
    """An ApiWriter whose evictions each take a while and end only once an offer has been
    written; records how many ran at once."""

    def __init__(self) -> None:
        self.offered = asyncio.Event()
        self.running = 0
        self.most_at_once = 0
        self.evicted: list[str] = []

    async def evict_pod(self, namespace: str, name: str) -> bool:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.05)
        await self.offered.wait()
        self.running -= 1
        self.evicted.append(name)
        return True

    async def create_offer(self, *args: Any) -> None:
        self.offered.set()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[None]]:
        async def call(*args: Any, **_: Any) -> None:
            return None

        return call


def test_evictions_past_a_deadline_run_together_and_no_offer_waits_for_them() -> None:
    io = inverse_offer("b-revoke-1", "B", ["b0", "b1"], deadline=NOW - 1)
    cache = seed_held(inverseoffers=[io])
    cache.apply("node", "ADDED", node("n2"))  # where C is offered something this cycle
    writer = SlowEvictions()
    master = Master(cache, cast(Any, writer), Metrics(), clock=lambda: NOW)

    asyncio.run(asyncio.wait_for(master.cycle(), timeout=5))

    assert sorted(writer.evicted) == ["b0", "b1"] and writer.most_at_once == 2
