"""Lending guarantees (issue 13, item 4): headroom of an unmet guarantee goes to others while
its role wants nothing, and revocation returns it when the role wants it again."""

from __future__ import annotations

from dataclasses import replace

import pytest
from benchmarks.convergence import step, with_tasks
from hypothesis import given, settings

from kubedrf.allocator import (
    AllocatorConfig,
    RevocationPolicy,
    Snapshot,
    Task,
    allocate,
    revocations,
)
from kubedrf.allocator.explain import explain
from kubedrf.allocator.roles import in_subtree
from kubedrf.cli.main import main
from kubedrf.master.settings import MasterSettings
from kubedrf.resources import Resources, total
from kubedrf.simulator import ScenarioError, parse_scenario, simulate
from tests.builders import SnapshotBuilder, make_framework, make_snapshot, offered_to, res
from tests.strategies import configs, snapshots
from tests.unit.test_revocation_properties import (
    POLICIES,
    clusters,
    no_victim_below_target_or_guarantee,
)
from tests.unit.test_simulator_revocation import load, long_run, revoking_cycles, run, tasks

LENDING = AllocatorConfig(lend_guarantees=True)
ONE_CPU = res(cpu="1")


def guaranteed_and_borrower(guaranteed_wants: int) -> SnapshotBuilder:
    """One 10-CPU node, role g guaranteed 6 CPUs, and B in another role wanting it all."""
    return (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .quota("g", guarantee=res(cpu="6"))
        .framework(
            make_framework("G").role("g").demand(guaranteed_wants, cpu="1"),
            make_framework("B").role("b").demand(100, cpu="1"),
        )
    )


def cpus(snapshot: Snapshot, framework: str) -> int:
    return sum(1 for t in snapshot.tasks if t.framework == framework)


def test_an_idle_guarantee_is_held_back_without_lending() -> None:
    result = allocate(guaranteed_and_borrower(0).obj())
    assert offered_to(result, "B") == res(cpu="4")


def test_an_idle_guarantee_is_offered_to_others_with_lending() -> None:
    result = allocate(guaranteed_and_borrower(0).obj(), LENDING)
    assert offered_to(result, "B") == res(cpu="10")


def test_a_guarantee_with_no_framework_at_all_is_lent() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .quota("later", guarantee=res(cpu="6"))
        .framework(make_framework("B").role("b").demand(100, cpu="1"))
        .obj()
    )
    assert offered_to(allocate(snapshot), "B") == res(cpu="4")
    assert offered_to(allocate(snapshot, LENDING), "B") == res(cpu="10")


def test_a_suppressed_role_lends_its_guarantee_in_classic_mode() -> None:
    builder = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .quota("g", guarantee=res(cpu="6"))
        .framework(make_framework("B").role("b").no_demand())
    )
    classic = AllocatorConfig(mode="classic", lend_guarantees=True)
    suppressed = builder.framework(make_framework("G").role("g").no_demand().suppress()).obj()
    assert offered_to(allocate(suppressed, classic), "B") == res(cpu="10", memory="10Gi")
    # In classic mode a subscription is the wish: G2 gets its guarantee first, B the rest.
    subscribed = builder.framework(make_framework("G2").role("g").no_demand()).obj()
    result = allocate(subscribed, classic)
    assert offered_to(result, "G2")["cpu"] == res(cpu="6")["cpu"]
    assert offered_to(result, "B") == res(cpu="4")


def test_a_descendant_wanting_a_task_it_cannot_place_yet_keeps_the_guarantee_held() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .quota("eng", guarantee=res(cpu="6"))
        .framework(
            make_framework("F").role("eng.web").demand(1, cpu="1"),
            make_framework("B").role("b").demand(100, cpu="1"),
        )
        # F declined n1 a moment ago: it still wants a task, which the headroom waits for.
        .filter("F", "n1", expires_at=5, refused=res(cpu="10", memory="10Gi"), role="eng.web")
        .obj()
    )
    result = allocate(snapshot, LENDING)
    assert offered_to(result, "F") == res()
    assert offered_to(result, "B") == res(cpu="4")


@pytest.mark.parametrize("guaranteed_wants", [6, 100])
def test_lending_changes_nothing_while_the_guaranteed_role_wants_its_guarantee(
    guaranteed_wants: int,
) -> None:
    snapshot = guaranteed_and_borrower(guaranteed_wants).obj()
    assert allocate(snapshot, LENDING) == allocate(snapshot)


def test_a_role_served_all_it_wants_lends_the_rest_of_its_guarantee() -> None:
    snapshot = guaranteed_and_borrower(1).obj()
    assert offered_to(allocate(snapshot), "B") == res(cpu="4")
    result = allocate(snapshot, LENDING)
    assert (offered_to(result, "G"), offered_to(result, "B")) == (ONE_CPU, res(cpu="9"))


def test_held_for_guarantees_names_only_the_guarantees_not_lent() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="10", memory="10Gi")
        .quota("idle", guarantee=res(cpu="3"))
        .quota("served", guarantee=res(cpu="3"))
        .quota("g", guarantee=res(cpu="10"))
        .framework(
            make_framework("S").role("served").demand(1, cpu="1"),
            make_framework("G").role("g").demand(1, cpu="1"),
            make_framework("B").role("b").demand(100, cpu="1"),
        )
        .filter("G", "n1", expires_at=5, refused=res(cpu="10", memory="10Gi"), role="g")
        .obj()
    )
    # G still wants a task (it declined n1 a moment ago), so g holds all that is free: B
    # waits either way, and only g is named with lending: "idle" wants nothing, and "served"
    # got all it wants in the guarantee stage.
    for config, names in ((AllocatorConfig(), "g, idle, served"), (LENDING, "g")):
        result = allocate(snapshot, config)
        waiting = {(w.framework, w.role): w for w in explain(snapshot, result, config)}
        assert waiting[("B", "b")].next[0].text.endswith(f": {names}")


def wants_its_guarantee(snapshot: Snapshot, role: str, guarantee: Resources) -> bool:
    """Whether frameworks of ``role``'s subtree alone (each in one role) want, in all, at least
    ``guarantee`` of every resource it names."""
    wanted = total(
        shape.resources * shape.count
        for fw in snapshot.frameworks
        if len(fw.roles) == 1 and in_subtree(fw.roles[0], role) and not fw.suppressed_roles
        for shape in fw.demand or ()
    )
    return all(wanted[name] >= amount for name, amount in guarantee.items())


@given(snapshot=snapshots(), config=configs(mode="demand"))
def test_lending_changes_no_offer_while_every_guaranteed_role_wants_its_guarantee(
    snapshot: Snapshot, config: AllocatorConfig
) -> None:
    if all(wants_its_guarantee(snapshot, q.role, q.guarantee) for q in snapshot.quotas):
        lending = allocate(snapshot, replace(config, lend_guarantees=True))
        assert lending == allocate(snapshot, replace(config, lend_guarantees=False))


@given(clusters(), POLICIES)
@settings(max_examples=200, deadline=None)
def test_with_lending_no_victim_goes_below_its_target_or_its_guarantee(
    snapshot: Snapshot, policy: RevocationPolicy
) -> None:
    chosen = revocations(snapshot, LENDING, policy)
    no_victim_below_target_or_guarantee(snapshot, chosen, LENDING)


@given(clusters())
@settings(max_examples=40, deadline=None)
def test_with_lending_nothing_is_revoked_once_converged_while_demand_is_steady(
    snapshot: Snapshot,
) -> None:
    quiet = 0
    for _ in range(25):
        snapshot, revoked = step(snapshot, config=LENDING)
        quiet = quiet + 1 if revoked == 0 else 0
        if quiet == 3:
            break
    assert quiet == 3, "did not converge in 25 cycles"


def borrowed(guaranteed_wants: int) -> Snapshot:
    """B runs on all 10 CPUs it borrowed while G wanted nothing; now G wants tasks."""
    tasks = [Task(f"b{i}", "B", "b", "n1", ONE_CPU, started_at=i) for i in range(10)]
    return with_tasks(guaranteed_and_borrower(guaranteed_wants).at(20).obj(), tasks)


def converge(snapshot: Snapshot, config: AllocatorConfig, cycles: int = 6) -> tuple[Snapshot, int]:
    revoked = 0
    for _ in range(cycles):
        snapshot, n = step(snapshot, config=config)
        revoked += n
    return snapshot, revoked


def test_revocation_returns_a_lent_guarantee_when_its_role_wants_it() -> None:
    # Fair shares alone would stop at 5 CPUs each; the guarantee takes precedence over B's
    # fair share, and B keeps its target (the 4 CPUs the guarantee leaves).
    after, revoked = converge(borrowed(8), LENDING)
    assert (cpus(after, "G"), cpus(after, "B")) == (6, 4)
    assert revoked == 6
    _, more = converge(after, LENDING)
    assert more == 0


def test_the_first_cycle_revokes_the_whole_guarantee_at_once() -> None:
    chosen = revocations(borrowed(6), LENDING)
    assert sum(len(r.tasks) for r in chosen) == 6
    assert {(r.framework, r.beneficiary) for r in chosen} == {("B", "G")}


def test_the_target_lends_what_the_cycle_lends_so_borrowers_share_it_fairly() -> None:
    # G runs 2 tasks of its 6-CPU guarantee and wants no more: the other 4 are lent, and B
    # borrowed them. C arrives: B and C share the 8 CPUs G does not use, 4 each, rather than
    # C stopping at a target that still held G's 4 back.
    tasks = [Task(f"g{i}", "G", "g", "n1", ONE_CPU, started_at=i) for i in range(2)]
    tasks += [Task(f"b{i}", "B", "b", "n1", ONE_CPU, started_at=i) for i in range(8)]
    snapshot = (
        guaranteed_and_borrower(0)
        .framework(make_framework("C").role("c").demand(100, cpu="1"))
        .at(20)
        .obj()
    )
    after, _ = converge(with_tasks(snapshot, tasks), LENDING)
    assert [cpus(after, name) for name in "GBC"] == [2, 4, 4]


def test_without_lending_revocation_stops_at_even_shares() -> None:
    # Mesos' behaviour: B could only have borrowed the guarantee before the quota existed;
    # revocation evens shares out and never trades a share for a guarantee.
    after, _ = converge(borrowed(8), AllocatorConfig())
    assert (cpus(after, "G"), cpus(after, "B")) == (5, 5)


# -- the simulator ----------------------------------------------------------------------------


def test_the_scenario_returns_the_guarantee_after_the_borrower_held_it() -> None:
    result = run(load("lend-guarantees.yaml"))
    assert tasks(result, "B")[:10] == [10] * 10  # borrowed while G was not there
    # Six inverse offers at 10 s; B ignores them, so eviction comes gracePeriod (5 s) later.
    assert revoking_cycles(result.cycles) == [10]
    g = tasks(result, "G")
    assert g.index(6) == 15
    assert (g[-1], tasks(result, "B")[-1]) == (6, 4)
    revoked = [(r.framework, len(r.tasks)) for c in result.cycles for r in c.revocations]
    assert sum(n for framework, n in revoked if framework == "B") == 6
    assert {framework for framework, _ in revoked} == {"B"}


def test_after_the_guarantee_is_back_nothing_more_is_revoked() -> None:
    assert revoking_cycles(long_run(load("lend-guarantees.yaml"), 120)) == [10]


def test_without_lending_the_scenario_holds_the_guarantee_idle() -> None:
    document = load("lend-guarantees.yaml", revocation={"enabled": True, "gracePeriod": "5s"})
    result = run(document)
    assert tasks(result, "B")[:10] == [4] * 10
    assert revoking_cycles(result.cycles) == []
    assert tasks(result, "G")[-1] == 6


def test_lending_without_revocation_is_refused_naming_the_field() -> None:
    document = load("lend-guarantees.yaml", revocation={"enabled": False, "lendGuarantees": True})
    with pytest.raises(ScenarioError, match=r"revocation: .*lendGuarantees needs enabled: true"):
        simulate(parse_scenario(document, "inline"))


# -- the master's setting -----------------------------------------------------------------


def test_the_master_lends_guarantees_only_when_told() -> None:
    assert MasterSettings().allocator_config().lend_guarantees is False
    lending = MasterSettings.from_env({"KUBEDRF_LEND_GUARANTEES": "true"})
    assert lending.allocator_config().lend_guarantees is True


def test_lending_with_revocation_off_stops_the_master_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["master", "--lend-guarantees=on", "--revocation=off"]) == 2
    assert "--lend-guarantees needs revocation on" in capsys.readouterr().err
