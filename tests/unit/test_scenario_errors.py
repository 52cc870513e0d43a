"""Bad scenario files: an error naming the file, the field and the rule; exit 2; no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubedrf.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

NODE = "nodes:\n  - {name: n1, allocatable: {cpu: '4', memory: 8Gi}}\n"

CASES = {
    "unknown-key": (
        NODE + "frameworks:\n  - {name: A, taks: {count: 1, resources: {cpu: '1'}}}\n",
        "frameworks[0].taks: unknown field",
    ),
    "negative-quantity": (
        "nodes:\n  - {name: n1, allocatable: {cpu: '-4'}}\n",
        "nodes[0].allocatable.cpu: must not be negative",
    ),
    "malformed-quantity": (
        NODE + "frameworks:\n  - {name: A, tasks: {count: 1, resources: {memory: 4GB}}}\n",
        "frameworks[0].tasks.resources.memory: '4GB' is not a Kubernetes quantity",
    ),
    "limit-below-guarantee": (
        NODE + "quotas:\n  - {role: eng, guarantee: {cpu: '4'}, limit: {cpu: '2'}}\n",
        "quotas[0].limit.cpu: must be at least the guarantee (4), got 2",
    ),
    "reservation-on-missing-node": (
        NODE + "reservations:\n  - {role: eng, nodeName: n9, resources: {cpu: '1'}}\n",
        "reservations[0].nodeName: node 'n9' is not among the scenario's nodes",
    ),
    "undeclared-role": (
        NODE + "roles:\n  - {name: eng}\nframeworks:\n  - {name: A, roles: [ops]}\n",
        "frameworks[0].roles[0]: role 'ops' is not declared under roles",
    ),
    "zero-weight": (NODE + "roles:\n  - {name: eng, weight: 0}\n", "roles[0].weight:"),
    "vanishing-weight": (
        NODE + "roles:\n  - {name: eng, weight: 5.0e-324}\n",
        "roles[0].weight: Input should be greater than or equal to 0.001",
    ),
    "misspelt-resource": (
        NODE + "quotas:\n  - {role: eng, limit: {cpu: '2', memroy: 1Gi}}\n",
        "quotas[0].limit.memroy: resource name 'memroy' is not valid: use cpu, memory",
    ),
    "bad-role-name": (
        NODE + "frameworks:\n  - {name: A, roles: [Bad Role!]}\n",
        "frameworks[0].roles[0]: role name 'Bad Role!' is not valid: lowercase letters",
    ),
    "refuse-seconds-past-a-year": (
        NODE + "frameworks:\n  - {name: A, refuseSeconds: 1000000000}\n",
        "frameworks[0].refuseSeconds: Input should be less than or equal to 31536000",
    ),
    "bad-mode": (NODE + "mode: greedy\n", "mode:"),
    "bad-duration": (
        NODE + "frameworks:\n  - {name: A, refuseSeconds: soon}\n",
        "frameworks[0].refuseSeconds: 'soon' is not a duration",
    ),
    "no-nodes": ("nodes: []\n", "nodes:"),
    "event-before-arrival": (
        NODE
        + "frameworks:\n  - {name: C, arrivesAt: 10s, tasks: {count: 1, resources: {cpu: '1'}}}\n"
        + "events:\n  - {at: 5s, setTasks: {framework: C, count: 2}}\n",
        "events[0].setTasks.framework: framework 'C' has not arrived yet (arrivesAt 10s)",
    ),
    "event-after-departure": (
        NODE
        + "frameworks:\n  - {name: A, leavesAt: 3s}\n"
        + "events:\n  - {at: 3s, suppress: {framework: A}}\n",
        "events[0].suppress.framework: framework 'A' has already left (leavesAt 3s)",
    ),
    "event-on-unknown-role": (
        NODE
        + "frameworks:\n  - {name: A}\nevents:\n  - {at: 1s, revive: {framework: A, role: x}}\n",
        "events[0].revive.role: framework 'A' has no role 'x'",
    ),
    "remove-missing-node": (
        NODE + "events:\n  - {at: 1s, removeNodes: [n1]}\n  - {at: 2s, removeNodes: [n1]}\n",
        "events[1].removeNodes[0]: node 'n1' does not exist at that time",
    ),
    "add-existing-node": (
        NODE + "events:\n  - {at: 1s, addNodes: [{name: n1, allocatable: {cpu: '1'}}]}\n",
        "events[0].addNodes[0].name: node 'n1' already exists at that time",
    ),
    "remove-absent-quota": (
        NODE + "events:\n  - {at: 1s, removeQuota: eng}\n",
        "events[0].removeQuota: role 'eng' has no quota at that time",
    ),
    "two-actions": (
        NODE + "events:\n  - {at: 1s, removeQuota: eng, setWeight: {role: eng, weight: 2}}\n",
        "events[0]: each event holds exactly one action",
    ),
    "unknown-action": (
        NODE + "events:\n  - {at: 1s, grow: [n1]}\n",
        "events[0].grow: unknown action (actions: addNodes, removeNodes,",
    ),
    "zero-limit-below-guarantee": (
        NODE
        + "events:\n  - at: 1s\n    setQuota: {role: eng, guarantee: {cpu: '1'},"
        + " limit: {cpu: '0'}}\n",
        "events[0].setQuota.limit.cpu: must be at least the guarantee (1), got 0",
    ),
    "leaves-before-arriving": (
        NODE + "frameworks:\n  - {name: A, arrivesAt: 5s, leavesAt: 2s}\n",
        "frameworks[0].leavesAt: must come at least one cycle after arrivesAt",
    ),
    "not-yaml": ("nodes: [\n", "not valid YAML"),
    "not-a-mapping": ("- just\n- a list\n", "a scenario must be a YAML mapping"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_scenario_is_rejected_with_file_field_and_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    text, expected = CASES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    assert main(["simulate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert f"error: {path}: " in err
    assert expected in err
    assert out == ""


def test_the_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(CASES["limit-below-guarantee"][0])
    run = subprocess.run(
        [sys.executable, "-m", "kubedrf.cli.main", "simulate", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith(f"error: {path}: quotas[0].limit.cpu:")


def test_every_field_error_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "nodes:\n  - {name: n1, allocatable: {cpu: '4', memroy: 8Gi}}\n"
        "roles:\n  - {name: Eng, weight: 0}\n"
        "frameworks:\n  - {name: A, roles: [ops..x], tasks: {count: 1, resources: {cpu: lots}}}\n"
    )
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    for field in [
        "nodes[0].allocatable.memroy",
        "roles[0].name",
        "roles[0].weight",
        "frameworks[0].roles[0]",
        "frameworks[0].tasks.resources.cpu",
    ]:
        assert f"error: {path}: {field}: " in err


def test_cross_field_errors_come_with_the_field_errors_in_one_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "both.yaml"
    path.write_text(
        NODE + "roles:\n  - {name: eng}\n"
        "quotas:\n  - {role: eng, guarantee: {cpu: '4'}, limit: {cpu: '2', memroy: 1Gi}}\n"
        "frameworks:\n  - {name: A, roles: [eng, ghost], refuseSeconds: soon}\n"
        "events:\n  - {at: 1s, setTasks: {framework: Z, count: 2}}\n"
        "  - {at: 2s, revive: {framework: A, role: x}}\n"
    )
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    for problem in [
        "quotas[0].limit.memroy: resource name 'memroy' is not valid",  # field errors
        "frameworks[0].refuseSeconds: 'soon' is not a duration",
        "quotas[0].limit.cpu: must be at least the guarantee (4), got 2",  # cross-field ones
        "frameworks[0].roles[1]: role 'ghost' is not declared under roles",
        "events[0].setTasks.framework: framework 'Z' is not among the scenario's frameworks",
        "events[1].revive.role: framework 'A' has no role 'x'",
    ]:
        assert f"error: {path}: {problem}" in err


def test_an_invalid_item_left_out_is_not_reported_missing_where_it_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "left-out.yaml"
    path.write_text(
        NODE + "frameworks:\n  - {name: A, tasks: {count: 1}}\n  - {name: B}\n"
        "  - {name: C, roles: [eng], tasks: {count: 1, resources: {cpu: '1'}}}\n"
        "roles:\n  - {name: ops}\n"
        "events:\n  - {at: 1s, suppress: {framework: A}}\n  - {at: 1s, suppress: {framework: Y}}\n"
    )
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: frameworks[0].tasks.resources: Field required" in err
    # A was invalid, not absent; Y is absent; C's index is its own, though A was left out.
    assert "framework 'A' is not among" not in err
    assert f"error: {path}: events[1].suppress.framework: framework 'Y' is not among" in err
    assert f"error: {path}: frameworks[2].roles[0]: role 'eng' is not declared under roles" in err


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
