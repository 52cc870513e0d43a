"""The chart's Grafana dashboard against a real Prometheus scraping a running master.

Every query of every panel is evaluated through Prometheus' HTTP API and must return data,
so a renamed metric or a broken expression fails here, not in someone's Grafana.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kubedrf.devcluster import provision
from kubedrf.devcluster.cluster import NodeShape
from tests.e2e.support import (
    GROUP,
    ROOT,
    VERSION,
    Background,
    Frameworks,
    MasterProcess,
    NodePool,
    free_port,
    wait_for,
)

CHART = ROOT / "charts" / "kubedrf"
DASHBOARD = CHART / "dashboards" / "kubedrf.json"
#: What Grafana substitutes for ``$__rate_interval`` at a 1 s scrape interval, with margin.
RATE_INTERVAL = "1m"


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", RATE_INTERVAL))
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


class Prometheus(Background):
    """A Prometheus server scraping one target every second, with its data in ``workdir``."""

    def __init__(self, binary: Path, workdir: Path, target: str, kubeconfig: Path) -> None:
        super().__init__(workdir / "prometheus.log", kubeconfig)
        self.binary = binary
        self.workdir = workdir
        self.target = target
        self.port = free_port()

    def start(self) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "kubedrf", "static_configs": [{"targets": [self.target]}]}
            ],
        }
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.spawn(
            [
                str(self.binary),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ]
        )
        wait_for(self._ready, "Prometheus to be ready", timeout=60)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"prometheus exited with {self.process.returncode}:\n{self.tail()}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@pytest.fixture(scope="module")
def prometheus_binary() -> Path:
    """The pinned Prometheus, built once from the Go module proxy and cached."""
    return provision.ensure(provision.PROMETHEUS)["prometheus"]


@pytest.fixture
def role(api: client.ApiClient) -> Iterator[str]:
    """A role of this test alone, with a quota whose guarantee the dashboard compares."""
    name = f"dash-{uuid.uuid4().hex[:6]}"
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Quota",
        "metadata": {"name": name},
        "spec": {"role": name, "guarantee": {"cpu": "1"}, "limit": {"cpu": "8"}},
    }
    custom.create_cluster_custom_object(GROUP, VERSION, "quotas", body)
    try:
        yield name
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "quotas", name)


@pytest.mark.e2e
@pytest.mark.usefixtures("crds")
def test_every_panel_query_returns_data_from_a_prometheus_scraping_the_master(
    pool: NodePool,
    frameworks: Frameworks,
    role: str,
    prometheus_binary: Path,
    tmp_path: Path,
) -> None:
    cluster = pool.cluster
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    master = MasterProcess(cluster, pool, tmp_path / "master.log")
    master.start()
    prometheus = Prometheus(
        prometheus_binary, tmp_path, f"127.0.0.1:{master.port}", cluster.kubeconfig
    )
    prometheus.start()
    try:
        # The seed frameworks arrive after the first scrapes, so their wait is measured.
        frameworks.create("a", {"cpu": "1", "memory": "4Gi"}, roles=[role])
        frameworks.create("b", {"cpu": "3", "memory": "1Gi"}, roles=[role])
        frameworks.wait_offers("a"), frameworks.wait_offers("b")
        frameworks.accept_all("a")
        wait_for(lambda: len(frameworks.running("a")) >= 1, "a task of A running")
        missing: list[str] = []

        def every_query_answers() -> bool:
            missing[:] = [
                f"{title}: {expr}" for title, expr in panel_queries() if not prometheus.query(expr)
            ]
            return not missing

        try:
            wait_for(every_query_answers, "every panel's query to return data", timeout=60)
        except AssertionError:
            raise AssertionError("queries without data:\n" + "\n".join(missing)) from None
        guarantee = prometheus.query(f'kubedrf_allocator_quota{{role="{role}",type="guarantee"}}')
        assert [float(s["value"][1]) for s in guarantee] == [1.0]
    finally:
        prometheus.stop()
        master.stop()
        print(
            f"--- master log ---\n{master.tail(40)}\n--- prometheus log ---\n{prometheus.tail(20)}"
        )


def test_the_chart_ships_the_dashboard_only_when_asked() -> None:
    found = provision.locate(next(r for r in provision.RECIPES if r.name == "helm"))
    if found is None:
        pytest.skip("helm is not built yet (kubedrf dev provision)")
    helm = str(found["helm"])

    def render(*flags: str) -> list[dict[str, Any]]:
        out = subprocess.run(
            [helm, "template", "x", str(CHART), *flags], capture_output=True, text=True, check=True
        ).stdout
        return [d for d in yaml.safe_load_all(out) if d and d["kind"] == "ConfigMap"]

    assert render() == []
    (configmap,) = render("--set", "dashboard.enabled=true", "--set", "dashboard.namespace=mon")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "mon"
    assert json.loads(configmap["data"]["kubedrf.json"]) == json.loads(DASHBOARD.read_text())
