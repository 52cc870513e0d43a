"""The built-in framework's decisions without a cluster: roles, demand, which gated Pods an
offer releases (gangs all or none), the release patch, and what a waiting Pod is told."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonpatch  # type: ignore[import-untyped]
import pytest

from kubedrf.api.conventions import LABEL_FRAMEWORK, LABEL_OFFER, LABEL_ROLE
from kubedrf.framework.model import Offer
from kubedrf.framework.pods import MANAGED_TOLERATION
from kubedrf.framework.testing import FakeDriver
from kubedrf.master.records import PodRecord
from kubedrf.workloads.framework import NamespaceWorkloads
from kubedrf.workloads.tasks import (
    GATE,
    LABEL_GANG,
    LABEL_GANG_SIZE,
    GatedPod,
    RoleStanding,
    demand,
    parse_gated,
    plan,
    release_patch,
    role_of,
    waiting_note,
)
from tests.builders import res

A = res(cpu="1", memory="4Gi")
B = res(cpu="3", memory="1Gi")


def gated_body(
    name: str,
    cpu: str = "1",
    memory: str = "4Gi",
    labels: dict[str, str] | None = None,
    created: str = "2024-01-01T00:00:00Z",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "labels": labels or {},
            "creationTimestamp": created,
        },
        "spec": {
            "schedulingGates": [{"name": GATE}],
            "containers": [
                {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
            ],
            **spec,
        },
    }


def gated(name: str, shape: Any = A, role: str = "default", at: float = 0.0, **kw: Any) -> GatedPod:
    return GatedPod("team-a", name, role, shape, at, **kw)


def offer(name: str = "o1", role: str = "default", node: str = "n1", **q: str | int) -> Offer:
    return Offer(name, "workloads", role, node, res(**q), expires_at=0.0)


def test_a_pods_role_is_its_label_else_its_namespaces_else_default() -> None:
    assert role_of({LABEL_ROLE: "eng"}, {LABEL_ROLE: "ops"}) == "eng"
    assert role_of({}, {LABEL_ROLE: "ops"}) == "ops"
    assert role_of({}, {}) == "default"


def test_only_pods_behind_the_gate_are_tasks() -> None:
    body = gated_body("p")
    body["spec"]["schedulingGates"] = [{"name": "other.io/gate"}]
    assert parse_gated(body, {}) is None
    pod = parse_gated(gated_body("p"), {LABEL_ROLE: "ops"})
    assert pod is not None and pod.role == "ops" and pod.shape == A


def test_a_pod_without_requests_or_with_a_bad_gang_size_says_what_to_fix() -> None:
    empty = gated_body("p")
    empty["spec"]["containers"] = [{"name": "c"}]
    pod = parse_gated(empty, {})
    assert pod is not None and pod.problem is not None and "resources.requests" in pod.problem
    bad = parse_gated(gated_body("q", labels={LABEL_GANG: "g", LABEL_GANG_SIZE: "two"}), {})
    assert bad is not None and bad.problem is not None and LABEL_GANG_SIZE in bad.problem
    assert plan([offer(cpu=9, memory="18Gi")], [pod, bad]) == {}


def test_demand_groups_waiting_pods_by_shape_the_most_numerous_first() -> None:
    waiting = [gated(f"a{i}", A) for i in range(3)] + [gated(f"b{i}", B) for i in range(5)]
    assert demand(waiting) == [(B, 5), (A, 3)]


def test_an_offer_releases_the_oldest_pods_that_fit_it_and_no_more() -> None:
    waiting = [gated(f"p{i}", A, at=float(10 - i)) for i in range(5)]
    placed = plan([offer(cpu=9, memory="13Gi")], waiting)
    assert [p.name for p in placed["o1"]] == ["p4", "p3", "p2"]


def test_an_offer_releases_only_pods_of_its_role() -> None:
    waiting = [gated("eng", role="eng"), gated("ops", role="ops")]
    placed = plan([offer(role="ops", cpu=9, memory="18Gi")], waiting)
    assert [p.name for p in placed["o1"]] == ["ops"]


def test_a_gang_is_released_all_or_none() -> None:
    members = [gated(f"g{i}", gang="g", gang_size=3) for i in range(3)]
    assert plan([offer(cpu=2, memory="8Gi")], members) == {}
    spread = plan(
        [offer("o1", cpu=2, memory="8Gi"), offer("o2", node="n2", cpu=1, memory="4Gi")], members
    )
    assert sorted(p.name for pods in spread.values() for p in pods) == ["g0", "g1", "g2"]


def test_a_gang_short_of_its_size_waits_and_is_not_demanded() -> None:
    members = [gated(f"g{i}", gang="g", gang_size=4) for i in range(3)]
    assert demand(members) == []
    assert plan([offer(cpu=9, memory="18Gi")], members) == {}


def test_the_release_patch_makes_a_gated_pod_a_valid_task_of_the_offer() -> None:
    body = gated_body("p", labels={"app": "x"}, tolerations=[{"key": "k", "operator": "Exists"}])
    body["spec"]["schedulingGates"].append({"name": "other.io/gate"})
    released = jsonpatch.apply_patch(body, release_patch(body, offer(cpu=1, memory="4Gi")))
    record = PodRecord.parse(released)
    assert (record.framework, record.role, record.offer, record.node) == (
        "workloads",
        "default",
        "o1",
        "n1",
    )
    assert released["metadata"]["labels"]["app"] == "x"
    assert MANAGED_TOLERATION in released["spec"]["tolerations"]
    assert released["spec"]["schedulingGates"] == [{"name": "other.io/gate"}]


def test_the_release_patch_tests_the_gates_so_a_pod_changed_meanwhile_is_left_alone() -> None:
    body = gated_body("p")
    patch = release_patch(body, offer(cpu=1, memory="4Gi"))
    body["spec"]["schedulingGates"] = []
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(body, patch)


def test_a_waiting_pod_is_told_its_roles_share_and_fair_share() -> None:
    reason, note = waiting_note(gated("p", role="eng"), RoleStanding(0.67, 0.5))
    assert reason == "WaitingForOffer"
    assert "role eng" in note and "0.67" in note and "0.50" in note


def test_a_pod_whose_role_refuses_its_namespace_is_told_why() -> None:
    reason, note = waiting_note(gated("p"), None, refused="role 'eng' does not allow namespace")
    assert reason == "RoleRefused" and "does not allow" in note


def test_the_scheduler_releases_what_fits_and_declines_the_rest() -> None:
    scheduler = NamespaceWorkloads("team-a")
    for i in range(4):
        body = gated_body(f"p{i}")
        scheduler.observe(parse_gated(body, {}), f"p{i}", body)
    driver = FakeDriver(scheduler, name="workloads", namespace="team-a")
    offers = [
        offer("o1", cpu=3, memory="12Gi"),
        offer("o2", node="n2", role="eng", cpu=9, memory="18Gi"),
    ]
    asyncio.run(scheduler.resource_offers(driver, offers))
    assert [t.name for t in driver.answers.launched["o1"]] == ["p0", "p1", "p2"]
    assert "o2" in driver.answers.declined
    assert scheduler.roles == ["default"]


def test_released_pods_carry_the_labels_the_master_reads() -> None:
    assert {LABEL_FRAMEWORK, LABEL_OFFER, LABEL_ROLE} <= set(
        jsonpatch.apply_patch(
            gated_body("p"), release_patch(gated_body("p"), offer(cpu=1, memory="4Gi"))
        )["metadata"]["labels"]
    )
