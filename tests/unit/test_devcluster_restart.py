"""Restarting one control-plane process of a dev cluster, as chaos runs do, without a cluster:
a fake cluster directory whose one component is ``sleep``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kubedrf.devcluster import cluster as devcluster


@pytest.fixture
def fake_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> devcluster.Cluster:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = devcluster.cluster_dir("fake")
    (directory / "pids").mkdir(parents=True)
    (directory / "logs").mkdir()
    sleep = shutil.which("sleep")
    assert sleep is not None
    components = [{"name": "etcd", "binary": sleep, "args": ["300"], "workDir": str(directory)}]
    # As kwokctl writes it: its configuration, then the Stages, in one multi-document file.
    documents = [{"components": components}, {"kind": "Stage", "metadata": {"name": "x"}}]
    (directory / "kwok.yaml").write_text(yaml.safe_dump_all(documents))
    return devcluster.Cluster(name="fake", binaries={})


def test_restart_kills_the_component_and_starts_it_again_with_its_recorded_command(
    fake_cluster: devcluster.Cluster,
) -> None:
    first = fake_cluster.start_component("etcd")
    second = fake_cluster.restart("etcd")
    try:
        assert second != first
        assert not devcluster.process_running(first)
        assert devcluster.process_running(second)
        pid_file = devcluster.cluster_dir("fake") / "pids" / "etcd.pid"
        assert int(pid_file.read_text()) == second
    finally:
        fake_cluster.stop_component("etcd")
    assert not devcluster.process_running(second)
    os.waitpid(second, os.WNOHANG)


def test_an_unknown_component_is_named_in_the_error(fake_cluster: devcluster.Cluster) -> None:
    with pytest.raises(devcluster.ClusterError, match="no component 'etcd2'"):
        fake_cluster.start_component("etcd2")


def test_a_component_whose_command_cannot_be_read_is_not_stopped(
    fake_cluster: devcluster.Cluster,
) -> None:
    """Stopping first and failing to start would leave the cluster without its apiserver."""
    running = subprocess.Popen(["sleep", "300"])
    pid_file = devcluster.cluster_dir("fake") / "pids" / "kube-apiserver.pid"
    pid_file.write_text(str(running.pid))
    try:
        with pytest.raises(devcluster.ClusterError):
            fake_cluster.restart("kube-apiserver")
        assert running.poll() is None
    finally:
        running.kill()
        running.wait()
