"""Processes that run beside a dev cluster (the demo's master and frameworks).

They outlive the command that started them, leave a pid file and a log in the cluster's
directory, and ``kubedrf dev down`` stops them with the cluster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from kubedrf.devcluster.cluster import cluster_dir, kubeconfig_path


def processes_dir(name: str) -> Path:
    return cluster_dir(name) / "processes"


def start(name: str, label: str, args: list[str]) -> Path:
    """Start ``args`` against cluster ``name`` in its own session; returns its log file."""
    directory = processes_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    stop(name, label)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig_path(name))}
    log = directory / f"{label}.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    (directory / f"{label}.pid").write_text(str(process.pid))
    return log


def stop(name: str, label: str | None = None) -> None:
    """Stop the processes of cluster ``name`` (or only ``label``)."""
    directory = processes_dir(name)
    if not directory.is_dir():
        return
    for pid_file in directory.glob(f"{label}.pid" if label else "*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink(missing_ok=True)
