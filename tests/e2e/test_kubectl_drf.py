"""``kubectl drf`` against the local control plane, beside a running master (the seed example)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubedrf.devcluster import cluster as devcluster
from kubedrf.devcluster.cluster import NodeShape
from tests.e2e.conftest import MasterFactory
from tests.e2e.support import POOL_LABEL, Frameworks, MasterProcess, NodePool, wait_for
from tests.e2e.test_revocation import C_TASK, hold_the_seed_node, inverse_offers

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


@pytest.fixture
def seed_example(
    cluster: devcluster.Cluster, pool: NodePool, frameworks: Frameworks, tmp_path: Path
) -> Iterator[NodePool]:
    """The seed example settled by a master: A runs 3 tasks, B 2, on one 9 CPU / 18 GiB node."""
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    frameworks.create("a", {"cpu": "1", "memory": "4Gi"})
    frameworks.create("b", {"cpu": "3", "memory": "1Gi"})
    master = MasterProcess(cluster, pool, tmp_path / "master.log")
    master.start()
    try:
        frameworks.wait_offers("a"), frameworks.wait_offers("b")
        frameworks.accept_all("a"), frameworks.accept_all("b")
        wait_for(lambda: len(frameworks.running("a")) == 3, "3 tasks of A running")
        wait_for(lambda: len(frameworks.running("b")) == 2, "2 tasks of B running")
        wait_for(lambda: not frameworks.offers(), "the accepted offers to be settled")
        yield pool
    finally:
        master.stop()


def kubectl_drf(cluster: devcluster.Cluster, pool: NodePool, *args: str) -> str:
    """The plugin as kubectl runs it: its own process, kubectl's flags."""
    command = [
        sys.executable,
        "-m",
        "kubedrf.kubectl.main",
        f"--kubeconfig={cluster.kubeconfig}",
        f"--managed-label={POOL_LABEL}={pool.id}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_status_why_top_and_simulate_read_the_live_cluster(
    cluster: devcluster.Cluster, seed_example: NodePool, frameworks: Frameworks, tmp_path: Path
) -> None:
    ns = frameworks.namespace
    status = json.loads(kubectl_drf(cluster, seed_example, "status", "-n", ns, "-o", "json"))
    (default,) = [r for r in status["roles"] if r["name"] == "default"]
    rows = {f["name"]: f for f in default["frameworks"]}
    assert set(rows) == {f"{ns}/a", f"{ns}/b"}
    for name, tasks in (("a", 3), ("b", 2)):
        row = rows[f"{ns}/{name}"]
        assert row["tasks"] == tasks
        assert row["share"] == pytest.approx(2 / 3, abs=1e-3)
        assert row["fairShare"] == pytest.approx(2 / 3, abs=1e-3)
        assert row["reason"] == "InsufficientCapacity"  # both still want more; the node is full

    why: dict[str, Any] = yaml.safe_load(
        kubectl_drf(cluster, seed_example, "why", "a", "-n", ns, "-o", "yaml")
    )
    (chain,) = why["roles"]
    assert chain["outcome"] == "InsufficientCapacity"
    assert [s["kind"] for s in chain["steps"]][:3] == ["InsufficientCapacity", "Shortfall", "Share"]
    table = kubectl_drf(cluster, seed_example, "why", f"{ns}/a")
    assert f"Framework: {ns}/a" in table and "dominant share 0.667, fair share 0.667" in table

    top = json.loads(kubectl_drf(cluster, seed_example, "top", "-n", ns, "-o", "json"))
    (node,) = top["nodes"]
    assert node["roles"]["default"]["cpu"] == "9" and node["offered"] == {}

    scenario = tmp_path / "live.yaml"
    scenario.write_text(kubectl_drf(cluster, seed_example, "simulate", "--cycles=10"))
    simulated = subprocess.run(
        [sys.executable, "-m", "kubedrf.cli.main", "simulate", str(scenario), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    final = json.loads(simulated.stdout)["frameworks"]
    assert final[f"{ns}/a"]["tasks"] == 3 and final[f"{ns}/b"]["tasks"] == 2


def test_why_a_late_framework_waits_names_the_shortfall_the_holders_and_the_revocation(
    cluster: devcluster.Cluster, pool: NodePool, frameworks: Frameworks, start_master: MasterFactory
) -> None:
    # A long grace period: the revocation is still under way when the questions are asked.
    hold_the_seed_node(pool, frameworks, start_master, **{"grace-period": "300s"})
    frameworks.create("c", C_TASK)
    wait_for(lambda: len(inverse_offers(frameworks, "Outstanding")) == 2, "two inverse offers")
    ns = frameworks.namespace

    why: dict[str, Any] = yaml.safe_load(
        kubectl_drf(cluster, pool, "why", "c", "-n", ns, "-o", "yaml")
    )
    (chain,) = why["roles"]
    waiting = chain["waiting"]
    assert chain["outcome"] == "InsufficientCapacity"
    assert (waiting["resource"], waiting["needed"], waiting["available"]) == ("cpu", 1000, 0)
    assert {h["framework"] for h in waiting["holders"]} == {f"{ns}/a", f"{ns}/b"}
    assert sorted(n["kind"] for n in waiting["next"]) == ["Revocation", "Revocation"]
    table = kubectl_drf(cluster, pool, "why", f"{ns}/c")
    assert "a task needs 1 CPU on one node; the most free on any node is 0 CPU" in table
    assert f"{ns}/a under role default holds 0.667, above its fair share 0.444" in table
    assert f"{ns}/b gives back 1 task(s) on" in table

    status = kubectl_drf(cluster, pool, "status", "-n", ns)
    rows = {line.split()[0]: line.split() for line in status.splitlines() if line.startswith(ns)}
    shares = {name: (float(row[5]), float(row[6])) for name, row in rows.items()}
    assert shares == {
        f"{ns}/a": (0.667, 0.444),
        f"{ns}/b": (0.667, 0.333),
        f"{ns}/c": (0.0, 0.444),
    }

    def explained() -> dict[str, Any] | None:
        waits = (frameworks.get("c").get("status") or {}).get("waiting") or []
        return waits[0] if waits and len(waits[0].get("next") or []) == 2 else None

    reported = wait_for(explained, "the Framework status to say why c waits")
    assert (reported["resource"], reported["needed"], reported["available"]) == ("cpu", "1", "0")
    offered = frameworks.condition("c", "Offered")
    assert offered is not None and "the most free on any node is 0 CPU" in offered["message"]
