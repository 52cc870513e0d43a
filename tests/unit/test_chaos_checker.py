"""The chaos checker counts what the master did, not what its own watches saw in passing:
a claim pinned to a node but never bound holds nothing there, a claim refused before it ran
is no lost task, and nothing is owed before a master has made its first offer."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from tests.chaos.checker import GROUP, VERSION, Checker

Body = dict[str, Any]
NODE = "kwok-node-1"


def stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name: str = NODE, cpu: str = "8") -> Body:
    return {
        "metadata": {"name": name, "labels": {"kubedrf.io/managed": "true"}},
        "status": {"allocatable": {"cpu": cpu, "memory": "32Gi"}},
    }


def offer(name: str, cpu: str, phase: str = "Offered", namespace: str = "a") -> Body:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": stamp(0)},
        "spec": {
            "framework": "fw",
            "role": "eng",
            "nodeName": NODE,
            "resources": {"cpu": cpu},
            "expiresAt": stamp(time.time() + 60),
        },
        "status": {"phase": phase},
    }


def task(
    name: str, on_offer: str, cpu: str, *, bound: bool, age: float = 0.0, namespace: str = "a"
) -> Body:
    spec: Body = {
        "containers": [{"name": "t", "resources": {"requests": {"cpu": cpu}}}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": [NODE]}
                            ]
                        }
                    ]
                }
            }
        },
    }
    if bound:
        spec["nodeName"] = NODE
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": stamp(time.time() - age),
            "labels": {
                "kubedrf.io/framework": "fw",
                "kubedrf.io/role": "eng",
                "kubedrf.io/offer": on_offer,
            },
        },
        "spec": spec,
        "status": {"phase": "Running" if bound else "Pending"},
    }


def refusal_of(pod: Body) -> Body:
    meta = pod["metadata"]
    return {
        "metadata": {"name": f"{meta['name']}.1", "namespace": meta["namespace"]},
        "action": "Refuse",
        "involvedObject": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"]},
    }


def checker(*events: tuple[str, Body]) -> Checker:
    seen = Checker(client.ApiClient(), ("kubedrf.io/managed", "true"), lost_grace=0)
    for kind, body in events:
        seen._on_event(kind, "ADDED", body)
    return seen


def breaches(seen: Checker) -> dict[str, str]:
    return dict(seen._current_breaches(time.time()))


def test_a_claim_on_an_expired_offer_never_bound_is_no_overcommit_of_its_node() -> None:
    late = task("etl-1", "old", "2", bound=False)
    seen = checker(("node", node()), ("offer", offer("old", "2", "Expired")))
    seen._on_event("offer", "ADDED", offer("new", "8"))
    seen._on_event("pod", "ADDED", late)
    assert "1:" + NODE not in breaches(seen)


def test_a_bound_pod_beside_an_offer_of_the_whole_node_is_an_overcommit() -> None:
    seen = checker(("node", node()), ("offer", offer("old", "2", "Accepted")))
    seen._on_event("offer", "ADDED", offer("new", "8"))
    seen._on_event("pod", "ADDED", task("etl-1", "old", "2", bound=True))
    assert "invariant 1" in breaches(seen)["1:" + NODE]


def test_a_task_refused_before_it_was_bound_is_not_lost() -> None:
    claim = task("etl-1", "old", "2", bound=False)
    seen = checker(("node", node()), ("pod", claim), ("event", refusal_of(claim)))
    seen._on_event("pod", "DELETED", claim)
    seen._judge_lost(final=True)
    assert seen.findings.lost == []


def test_a_running_task_refused_is_lost() -> None:
    running = task("etl-1", "old", "2", bound=True)
    seen = checker(("node", node()), ("pod", running), ("event", refusal_of(running)))
    seen._on_event("pod", "DELETED", running)
    seen._judge_lost(final=True)
    assert len(seen.findings.lost) == 1
    assert seen.findings.lost[0].endswith("task a/etl-1 on kwok-node-1: refused")


def test_a_refused_task_of_a_framework_the_harness_removed_is_not_lost() -> None:
    running = task("late-2-0", "gone", "1", bound=True, namespace="b")
    seen = checker(("node", node()), ("pod", running), ("event", refusal_of(running)))
    seen.excuse_framework("b", "fw")
    seen._on_event("pod", "DELETED", running)
    seen._judge_lost(final=True)
    assert seen.findings.lost == []


def test_an_unbound_claim_on_no_offer_of_its_own_is_a_breach_only_after_the_masters_grace() -> None:
    young = task("mallory-1", "web-2-x", "1", bound=False, age=1, namespace="c")
    old = task("mallory-2", "web-2-x", "1", bound=False, age=30, namespace="c")
    seen = checker(("node", node()), ("pod", young), ("pod", old))
    found = breaches(seen)
    assert "7:c/mallory-1" not in found
    assert "claims no offer of its own" in found["7:c/mallory-2"]


def test_a_bound_claim_on_no_offer_of_its_own_is_a_breach_at_once() -> None:
    seen = checker(("node", node()), ("pod", task("mallory-1", "web-2-x", "1", bound=True)))
    assert "7:a/mallory-1" in breaches(seen)


def test_no_guarantee_is_owed_before_a_master_has_made_an_offer() -> None:
    quota = {"metadata": {"name": "ops"}, "spec": {"role": "ops", "guarantee": {"cpu": "4"}}}
    framework = {
        "metadata": {"name": "ops-1", "namespace": "c"},
        "spec": {"roles": ["ops"], "demand": [{"resources": {"cpu": "1"}, "count": 3}]},
    }
    seen = checker(("node", node()), ("quota", quota), ("framework", framework))
    assert not any(name.startswith("5:") for name in breaches(seen))
    seen._on_event("offer", "ADDED", offer("elsewhere", "1"))
    assert "5:ops:c/ops-1" in breaches(seen)


def test_a_returned_node_is_owed_an_offer_only_once_it_is_ready_with_room_for_a_demanded_task() -> (
    None
):
    ready = {
        **node(),
        "status": {**node()["status"], "conditions": [{"type": "Ready", "status": "True"}]},
    }
    framework = {
        "metadata": {"name": "fw", "namespace": "a"},
        "spec": {"roles": ["eng"], "demand": [{"resources": {"cpu": "2"}, "count": 3}]},
    }
    seen = checker(("node", node()), ("framework", framework))
    assert not seen.room(NODE)  # not Ready
    seen._on_event("node", "MODIFIED", ready)
    seen._on_event("pod", "ADDED", task("long", "old", "7", bound=True))
    assert not seen.room(NODE)  # 1 CPU left, tasks need 2
    seen._on_event("pod", "DELETED", task("long", "old", "7", bound=True))
    assert seen.room(NODE)


def test_an_unbound_bad_claim_is_not_judged_while_a_fault_keeps_the_master_from_acting() -> None:
    old = task("mallory-2", "web-2-x", "1", bound=False, age=30, namespace="c")
    seen = checker(("node", node()), ("pod", old))
    seen.blind(time.time() + 60)
    assert "7:c/mallory-2" not in breaches(seen)
    seen._on_event("pod", "MODIFIED", {**old, "spec": {**old["spec"], "nodeName": NODE}})
    assert "7:c/mallory-2" in breaches(seen)  # bound: it uses what was not offered, fault or not


def test_the_longest_gap_without_a_new_offer_spans_the_fault_from_its_start_to_its_end() -> None:
    seen = checker()
    seen.offers_created = [(at, offer(f"o{at:g}", "1")) for at in (9.0, 11.0, 12.0, 25.0, 40.0)]
    # From 10 to 30: offers at 11, 12 and 25; the longest stand-still is 12 -> 25.
    assert seen.longest_gap(10.0, 30.0) == 13.0
    # No offer at all between start and end: the whole span.
    assert seen.longest_gap(26.0, 30.0) == 4.0
