"""``kubectl drf`` on views built from API objects (no cluster): status, why, top, simulate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubedrf.kubectl import explain, live, main, output
from kubedrf.kubectl import scenario as scenario_dump
from kubedrf.master.cache import ClusterCache
from kubedrf.master.metrics import Metrics
from kubedrf.simulator import load_scenario, simulate
from tests.unit.test_master_lifecycle import NOW, cache_with, framework, node, offer, pod
from tests.unit.test_master_revoking import inverse_offer, seed_held

A_TASKS = [{"resources": {"cpu": "2", "memory": "4Gi"}, "count": 10}]
B_TASKS = [{"resources": {"cpu": "3", "memory": "1Gi"}, "count": 10}]


def a_holds_everything() -> ClusterCache:
    """A holds 8 of n1's 9 CPUs, far above its fair share; B waits with nothing."""
    return cache_with(
        nodes=[node("n1")],
        frameworks=[framework("A", A_TASKS), framework("B", B_TASKS)],
        pods=[pod(f"a{i}", "A", None, cpu="2") for i in range(4)],
    )


def quota(role: str, guarantee: dict[str, str], limit: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{role}-quota", "generation": 1},
        "spec": {"role": role, "guarantee": guarantee, "limit": limit},
    }


def role(name: str, weight: float) -> dict[str, Any]:
    return {"metadata": {"name": name, "generation": 1}, "spec": {"weight": weight}}


def test_status_lists_the_role_tree_with_shares_against_fair_shares() -> None:
    cache = cache_with(
        nodes=[node("n1")],
        roles=[role("eng", 2), role("eng.web", 1)],
        frameworks=[framework("A", A_TASKS, roles=["eng.web"]), framework("B", B_TASKS)],
    )
    rows = explain.status(explain.analyse(cache.freeze(NOW)))
    assert [(r.name, r.depth, r.weight) for r in rows] == [
        ("default", 0, 1.0),
        ("eng", 0, 2.0),
        ("eng.web", 1, 1.0),
    ]
    eng = rows[1]
    assert eng.frameworks == ()  # A sits under eng.web, not directly under eng
    (a,) = rows[2].frameworks
    assert (a.name, a.tasks, a.share, a.reason) == ("team/A", 0, 0.0, None)  # offered next
    assert a.fair_share > 0 and eng.fair_share == pytest.approx(rows[2].fair_share / 2)


def test_status_shows_guarantee_limit_and_the_reason_a_framework_waits() -> None:
    cache = a_holds_everything()
    cache.apply("quota", "ADDED", quota("default", {"cpu": "1"}, {"cpu": "20"}))
    (default,) = explain.status(explain.analyse(cache.freeze(NOW)))
    assert default.guarantee.to_quantities() == {"cpu": "1"}
    assert default.limit is not None and default.limit.to_quantities() == {"cpu": "20"}
    assert default.allocated.to_quantities()["cpu"] == "8"
    by_name = {f.name: f for f in default.frameworks}
    assert by_name["team/A"].share == pytest.approx(16 / 18)
    assert by_name["team/A"].fair_share < by_name["team/A"].share
    assert by_name["team/B"].reason == "InsufficientCapacity"
    assert by_name["team/B"].fair_share > 0


def test_status_narrowed_to_a_namespace_keeps_every_role() -> None:
    rows = explain.status(explain.analyse(a_holds_everything().freeze(NOW)), "elsewhere")
    assert [r.name for r in rows] == ["default"] and rows[0].frameworks == ()
    assert rows[0].share == pytest.approx(16 / 18)


def test_why_names_who_holds_above_their_fair_share() -> None:
    (chain,) = explain.why(explain.analyse(a_holds_everything().freeze(NOW)), "team/B")
    kinds = [step.kind for step in chain.steps]
    assert chain.outcome == "InsufficientCapacity"
    assert kinds[:4] == ["InsufficientCapacity", "Shortfall", "Share", "AboveFairShare"]
    assert chain.steps[1].message == (
        "a task needs 3 CPU on one node; the most free on any node is 1 CPU"
    )
    assert "team/A under role default holds 0.889" in chain.steps[3].message
    assert chain.waiting is not None and chain.waiting.holders[0].framework == "team/A"
    assert chain.share == 0.0 and chain.fair_share > 0


def declined_by_b_until(expires: str) -> dict[str, Any]:
    return offer(
        "b-1",
        "B",
        phase="Declined",
        filterExpiresAt=expires,
        finishedAt="2000-01-01T00:00:00Z",
        refused={"cpu": "1"},
    )


def test_why_reports_a_reached_quota_limit_with_what_it_leaves() -> None:
    cache = a_holds_everything()
    cache.apply("quota", "ADDED", quota("default", {}, {"cpu": "8"}))
    cache.apply("offer", "ADDED", declined_by_b_until("2030-01-01T00:00:00Z"))
    (b_chain,) = explain.why(explain.analyse(cache.freeze(NOW)), "team/B")
    steps = {step.kind: step.message for step in b_chain.steps}
    assert b_chain.outcome == "QuotaLimitReached"
    assert steps["Shortfall"] == "a task needs 3 CPU; the quota limit leaves 0 CPU"
    assert steps["QuotaLimit"].startswith("quota of role default: 8 CPU in use of its limit 8 CPU")


def test_why_says_when_the_filter_of_a_declined_offer_expires() -> None:
    cache = a_holds_everything()
    cache.apply("offer", "ADDED", declined_by_b_until("2030-01-01T00:00:00Z"))
    (b_chain,) = explain.why(explain.analyse(cache.freeze(NOW)), "team/B")
    steps = {step.kind: step.message for step in b_chain.steps}
    assert b_chain.outcome == "InsufficientCapacity"  # n1 is too full to tell a filter apart
    assert steps["FilterExpires"].endswith("the first filter expires at 2030-01-01T00:00:00Z")


def test_why_a_late_framework_names_the_cpu_shortfall_holders_and_the_revocation_under_way() -> (
    None
):
    asked = inverse_offer("b-revoke-1", "B", ["b1"], deadline=NOW + 30)
    view = seed_held(inverseoffers=[asked]).freeze(NOW)
    (c,) = explain.why(explain.analyse(view), "team/C")
    steps = {step.kind: step.message for step in c.steps}
    assert c.outcome == "InsufficientCapacity"
    assert (
        steps["Shortfall"] == "a task needs 1 CPU on one node; the most free on any node is 0 CPU"
    )
    assert c.waiting is not None
    assert [h.framework for h in c.waiting.holders] == ["team/B", "team/A"]
    assert steps["Revocation"] == (
        "team/B gives back 1 task(s) on n1 for it by the deadline at 1970-01-12T13:47:10Z"
    )


def test_why_an_unknown_framework_names_the_ones_that_exist() -> None:
    with pytest.raises(explain.UnknownFrameworkError, match=r"team/A, team/B"):
        explain.why(explain.analyse(a_holds_everything().freeze(NOW)), "team/nope")


def test_why_a_role_closed_to_the_namespace_says_so() -> None:
    closed = {"metadata": {"name": "ops"}, "spec": {"weight": 1, "namespaces": ["ops"]}}
    cache = cache_with(
        nodes=[node("n1")], roles=[closed], frameworks=[framework("A", A_TASKS, roles=["ops"])]
    )
    (chain,) = explain.why(explain.analyse(cache.freeze(NOW)), "team/A")
    assert chain.outcome == "RoleRefused" and "team" in chain.steps[0].message


def test_top_shows_usage_by_role_free_capacity_and_outstanding_offers() -> None:
    cache = cache_with(
        nodes=[node("n1"), node("n2")],
        frameworks=[framework("A", A_TASKS)],
        pods=[pod("a0", "A", None, cpu="2")],
        offers=[offer("a-1", "A", node_name="n2")],
    )
    nodes, offers = explain.top(explain.analyse(cache.freeze(NOW)))
    n1, n2 = nodes
    assert n1.roles["default"].to_quantities() == {"cpu": "2", "memory": "4Gi", "pods": "1"}
    assert n1.free.to_quantities()["cpu"] == "7"
    assert n2.offered.to_quantities() == {"cpu": "3", "memory": "12Gi", "pods": "3"}
    (only,) = offers
    assert (only.name, only.node, only.expires_in) == ("team/a-1", "n2", pytest.approx(30))
    assert explain.top(explain.analyse(cache.freeze(NOW)), "other")[1] == ()


def test_simulate_dumps_a_scenario_the_simulator_loads_and_runs(tmp_path: Path) -> None:
    cache = a_holds_everything()
    cache.apply("role", "ADDED", role("default", 1))
    cache.apply("quota", "ADDED", quota("default", {"cpu": "1"}, {"cpu": "9"}))
    analysis = explain.analyse(cache.freeze(NOW))
    document, warnings = scenario_dump.dump(analysis, cycles=10)
    assert warnings == []
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(document))
    scenario = load_scenario(path)
    a, b = scenario.frameworks
    assert (a.name, a.tasks and a.tasks.count) == ("team/A", 14)  # 4 running + 10 wanted
    assert (b.name, b.tasks and b.tasks.count) == ("team/B", 10)
    final = simulate(scenario).final.frameworks
    # Offline, the same demand reaches the fair shares `kubectl drf` reports on the live state.
    assert (final["team/A"].tasks, final["team/B"].tasks) == (3, 1)
    for name in ("team/A", "team/B"):
        fair = analysis.fair[name, "default"].target_share
        assert final[name].dominant_share == pytest.approx(fair)


def test_simulate_warns_about_what_a_scenario_cannot_hold() -> None:
    two_shapes = [*A_TASKS, {"resources": {"cpu": "1"}, "count": 1}]
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", two_shapes, suppressed=True)])
    document, warnings = scenario_dump.dump(explain.analyse(cache.freeze(NOW)))
    assert warnings == [
        "framework team/A: a scenario framework has one task shape; kept the first of its 2"
        " (spec.demand[0])"
    ]
    assert document["events"] == [
        {"at": "0s", "suppress": {"framework": "team/A", "role": "default"}}
    ]


def test_tables_align_columns_as_kubectl_does() -> None:
    text = output.table(["NAME", "SHARE"], [["team/a", "0.5"], ["b", "0.25"]])
    assert text.splitlines() == ["NAME     SHARE", "team/a   0.5", "b        0.25"]
    assert output.table(["NAME"], []) == "No resources found."


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads ``a_holds_everything`` instead of a cluster."""
    monkeypatch.setattr(live, "api_client", lambda kubeconfig, context: None)
    monkeypatch.setattr(live, "current_namespace", lambda kubeconfig, context: "team")
    monkeypatch.setattr(live, "read_view", lambda api, settings: a_holds_everything().freeze(NOW))


@pytest.mark.usefixtures("offline")
def test_the_command_takes_kubectls_flags_before_or_after_the_subcommand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main.main(["-o", "json", "why", "B"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main.main(["why", "team/B", "--output=json", "--context", "x"]) == 0
    assert json.loads(capsys.readouterr().out) == before
    assert before["framework"] == "team/B"
    assert before["roles"][0]["outcome"] == "InsufficientCapacity"


@pytest.mark.usefixtures("offline")
def test_the_command_prints_tables_and_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "ROLE",
        "WEIGHT",
        "GUARANTEE",
        "LIMIT",
        "ALLOCATED",
        "SHARE",
        "FAIR-SHARE",
        "DEMAND",
    ]
    assert "team/B" in out and "InsufficientCapacity" in out
    assert main.main(["top"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["n1", "default", "8"]
    assert main.main(["why", "nope"]) == 1
    assert "framework 'team/nope' not found" in capsys.readouterr().err


def test_new_metrics_report_fair_shares_waiting_frameworks_and_first_offer_wait() -> None:
    metrics = Metrics()
    created = {"creationTimestamp": "1970-01-12T13:46:30Z"}  # NOW - 10s
    b = framework("B", B_TASKS)
    b["metadata"].update(created)
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", A_TASKS), b])
    view = cache.freeze(NOW)
    snapshot = view.snapshot()
    analysis = explain.analyse(view)
    metrics.record_decisions(view, snapshot, analysis.result, analysis.config)
    sample = metrics.registry.get_sample_value
    assert sample("kubedrf_allocator_role_fair_share", {"role": "default"}) == pytest.approx(1.0)
    fair_b = sample(
        "kubedrf_allocator_framework_fair_share", {"namespace": "team", "framework": "B"}
    )
    assert fair_b == pytest.approx(analysis.fair["team/B", "default"].target_share)
    assert sample("kubedrf_allocator_first_offer_wait_seconds_count") == 2
    assert sample("kubedrf_allocator_first_offer_wait_seconds_bucket", {"le": "10.0"}) == 2
    assert sample("kubedrf_allocator_first_offer_wait_seconds_bucket", {"le": "5.0"}) == 1
    assert sample("kubedrf_allocator_revocations_total", {"outcome": "evicted"}) == 0

    waiting = a_holds_everything().freeze(NOW)
    analysis = explain.analyse(waiting)
    metrics.record_decisions(waiting, waiting.snapshot(), analysis.result, analysis.config)
    assert sample("kubedrf_allocator_frameworks_waiting", {"reason": "InsufficientCapacity"}) == 2
