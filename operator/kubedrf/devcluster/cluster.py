"""Start, stop and populate the local control plane: real binaries run by kwokctl, fake nodes.

``kwokctl``'s binary runtime starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the kwok controller as local processes from the paths ``provision`` gives
it, so it never downloads anything. Nodes are plain Node objects that kwok keeps Ready;
managed nodes carry the label ``kubedrf.io/managed=true`` and the taint
``kubedrf.io/managed:NoSchedule`` (docs/design.md). Pod lifecycles are described in ``stages``.
Cluster state lives under ``${XDG_CACHE_HOME:-~/.cache}/kubedrf/kwok/clusters/<name>/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from kubedrf.devcluster import provision, stages, versions

DEFAULT_NAME: Final = "kubedrf"
MANAGED_KEY: Final = "kubedrf.io/managed"
#: kwok's own marker for nodes it fakes; kept so the nodes read as fake to anyone looking.
KWOK_NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"


class ClusterError(RuntimeError):
    """The dev cluster could not be started, reached or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class NodeShape:
    """Capacity of a fake node, in Kubernetes quantities."""

    cpu: str = "8"
    memory: str = "32Gi"
    pods: str = "110"
    managed: bool = True


def kwok_workdir() -> Path:
    return provision.cache_dir() / "kwok"


def cluster_dir(name: str) -> Path:
    return kwok_workdir() / "clusters" / name


def kubeconfig_path(name: str) -> Path:
    """Where kwokctl writes the cluster's admin kubeconfig."""
    return cluster_dir(name) / "kubeconfig.yaml"


def env_lines(name: str, binaries: Mapping[str, Path]) -> list[str]:
    """Shell lines pointing clients at the cluster and putting the pinned kubectl/helm first."""
    tools = dict.fromkeys(str(binaries[tool].parent) for tool in ("kubectl", "helm"))
    return [
        f"export KUBECONFIG={shlex.quote(str(kubeconfig_path(name)))}",
        f'export PATH={shlex.quote(":".join(tools))}:"$PATH"',
    ]


def node_manifest(node: str, shape: NodeShape) -> dict[str, Any]:
    """A fake Node with the given capacity; managed nodes get the kubedrf label and taint."""
    labels = {
        "kubernetes.io/hostname": node,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    spec: dict[str, Any] = {}
    if shape.managed:
        labels[MANAGED_KEY] = "true"
        spec["taints"] = [{"key": MANAGED_KEY, "effect": "NoSchedule"}]
    capacity = {"cpu": shape.cpu, "memory": shape.memory, "pods": shape.pods}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node,
            "labels": labels,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": spec,
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def kwokctl_config(
    binaries: Mapping[str, Path],
    component_patches: Sequence[Mapping[str, Any]] = (),
    extra_options: Mapping[str, Any] | None = None,
) -> str:
    """kwokctl's configuration: binary runtime, local binaries only, our Stages; and what a
    real node needs besides: ``componentsPatches`` (extra flags per component) and options."""
    options = {
        "runtime": "binary",
        "kubeVersion": versions.KUBERNETES,
        "etcdBinary": str(binaries["etcd"]),
        "kubeApiserverBinary": str(binaries["kube-apiserver"]),
        "kubeControllerManagerBinary": str(binaries["kube-controller-manager"]),
        "kubeSchedulerBinary": str(binaries["kube-scheduler"]),
        "kubectlBinary": str(binaries["kubectl"]),
        "kwokControllerBinary": str(binaries["kwok"]),
        # RBAC and admission on, as in a real cluster: the operator's chart must carry its RBAC.
        "kubeAuthorization": True,
        "kubeAdmission": True,
        "quietPull": True,
        # Nothing listens beyond this machine: etcd and the apiserver run without network policy.
        "bindAddress": "127.0.0.1",
        **(extra_options or {}),
    }
    config: dict[str, Any] = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": options,
    }
    if component_patches:
        config["componentsPatches"] = [dict(patch) for patch in component_patches]
    return "---\n".join([json.dumps(config, indent=2) + "\n", *stages.STAGES])


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running dev cluster and the binaries that drive it."""

    name: str
    binaries: Mapping[str, Path]

    @property
    def kubeconfig(self) -> Path:
        return kubeconfig_path(self.name)

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """Run kubectl against this cluster; its stdout, or ``ClusterError`` with stderr."""
        cmd = [str(self.binaries["kubectl"]), f"--kubeconfig={self.kubeconfig}", *args]
        try:
            result = subprocess.run(
                cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"kubectl {' '.join(args)} timed out after {timeout}s") from exc
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def is_healthy(self) -> bool:
        try:
            return self.kubectl("get", "--raw=/readyz", timeout=10).strip() == "ok"
        except ClusterError:
            return False

    def add_nodes(self, names: Iterable[str], shape: NodeShape = NodeShape()) -> list[str]:
        """Create (or update) fake nodes; returns their names. They turn Ready shortly after."""
        nodes = list(names)
        items = [node_manifest(node, shape) for node in nodes]
        manifest = {"apiVersion": "v1", "kind": "List", "items": items}
        if nodes:
            self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        return nodes

    def remove_nodes(self, names: Iterable[str]) -> None:
        nodes = list(names)
        if nodes:
            self.kubectl("delete", "node", "--ignore-not-found", "--wait=false", *nodes)

    def node_names(self) -> list[str]:
        out = self.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
        return out.split()

    def wait_ready(self, names: Sequence[str], timeout: float = 120) -> None:
        """Block until every named node reports Ready."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            items = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
            pending -= {
                item["metadata"]["name"]
                for item in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in item.get("status", {}).get("conditions", [])
                )
            }
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"nodes not Ready after {timeout:.0f}s: {sorted(pending)}")
            time.sleep(0.5)

    def stop_component(self, component: str, kill: bool = True) -> None:
        """Stop one control-plane process (``etcd``, ``kube-apiserver``, ...), as a crash would
        with ``kill``; chaos runs use it, and ``start_component`` brings it back."""
        pid_file = cluster_dir(self.name) / "pids" / f"{component}.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
            deadline = time.monotonic() + 10
            while process_running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def start_component(self, component: str) -> int:
        """Start a stopped control-plane process again with kwokctl's own command line (read
        from the cluster's ``kwok.yaml``) and log; returns its pid. kwokctl itself can only
        stop and start the whole cluster."""
        spec = component_spec(self.name, component)
        log = cluster_dir(self.name) / "logs" / f"{component}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [spec["binary"], *spec.get("args", [])],
                cwd=spec.get("workDir") or cluster_dir(self.name),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (cluster_dir(self.name) / "pids" / f"{component}.pid").write_text(str(process.pid))
        return process.pid

    def restart(self, component: str, down_for: float = 0.0) -> int:
        """SIGKILL a control-plane process, wait ``down_for`` seconds, start it again."""
        component_spec(self.name, component)  # an unknown component stops nothing
        self.stop_component(component)
        time.sleep(down_for)
        return self.start_component(component)

    def wait_default_service_account(self, timeout: float = 120) -> None:
        """Admission refuses Pods until the controller manager has made ``default``'s account."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.kubectl("get", "serviceaccount", "default", "-n", "default", timeout=10)
                return
            except ClusterError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def component_spec(name: str, component: str) -> dict[str, Any]:
    """kwokctl's record of how it started ``component`` (binary, args, workDir)."""
    # kwok.yaml holds kwokctl's configuration followed by the Stages: several documents.
    for document in yaml.safe_load_all((cluster_dir(name) / "kwok.yaml").read_text()):
        for spec in (document or {}).get("components") or []:
            if spec.get("name") == component:
                return dict(spec)
    raise ClusterError(f"cluster {name!r} has no component {component!r}")


def process_running(pid: int) -> bool:
    """Alive and not a zombie (a killed child of ours stays a zombie until reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def node_names(count: int, prefix: str = "kwok-node") -> list[str]:
    return [f"{prefix}-{index}" for index in range(count)]


def _kwokctl(binaries: Mapping[str, Path], name: str, *args: str, timeout: float = 300) -> str:
    env = {**os.environ, "KWOK_WORKDIR": str(kwok_workdir())}
    cmd = [str(binaries["kwokctl"]), *args]
    try:
        result = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{' '.join(cmd)} timed out after {timeout:.0f}s") from exc
    if result.returncode != 0:
        raise ClusterError(
            f"kwokctl {' '.join(args)} failed (exit {result.returncode}); component logs are "
            f"in {cluster_dir(name) / 'logs'}\n{(result.stdout + result.stderr).strip()}"
        )
    return result.stdout


def exists(name: str) -> bool:
    return (cluster_dir(name) / "kwok.yaml").is_file()


def names() -> list[str]:
    """Every dev cluster with state on this machine, running or not."""
    clusters = kwok_workdir() / "clusters"
    return sorted(path.name for path in clusters.iterdir()) if clusters.is_dir() else []


def up(
    name: str = DEFAULT_NAME,
    *,
    nodes: int = 3,
    shape: NodeShape = NodeShape(),
    timeout: float = 300,
    progress: provision.Progress = provision.log,
    component_patches: Sequence[Mapping[str, Any]] = (),
    extra_options: Mapping[str, Any] | None = None,
) -> Cluster:
    """Start the cluster (or reuse a healthy one) with ``nodes`` Ready fake nodes."""
    started = time.monotonic()
    binaries = provision.ensure_all(progress)
    cluster = Cluster(name=name, binaries=binaries)
    if exists(name) and cluster.is_healthy():
        progress(f"cluster {name!r} is already running")
    else:
        if exists(name):
            progress(f"cluster {name!r} exists but is not healthy; recreating it")
            down(name, binaries)
        progress(f"starting cluster {name!r}: etcd, kube-apiserver, kube-scheduler, ...")
        config = kwokctl_config_path(name)
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(kwokctl_config(binaries, component_patches, extra_options))
        _kwokctl(
            binaries,
            name,
            "create",
            "cluster",
            f"--config={config}",
            "--runtime=binary",
            "--kubeconfig=",
            f"--timeout={int(timeout)}s",
            f"--wait={int(timeout)}s",
            f"--name={name}",
            timeout=timeout + 30,
        )
        cluster.wait_default_service_account(timeout)
    wanted = node_names(nodes)
    current = set(cluster.node_names())
    cluster.add_nodes([node for node in wanted if node not in current], shape)
    cluster.wait_ready(wanted, timeout)
    progress(f"cluster {name!r} up with {nodes} Ready node(s) in {time.monotonic() - started:.0f}s")
    return cluster


def down(name: str = DEFAULT_NAME, binaries: Mapping[str, Path] | None = None) -> bool:
    """Stop the cluster's processes and delete its state; ``False`` if there was none."""
    if not exists(name) and not cluster_dir(name).exists():
        return False
    if binaries is None:
        binaries = provision.ensure(_recipe("kwok"))
    # kwokctl removes the cluster's context from this kubeconfig: its own, never the user's.
    own = f"--kubeconfig={kubeconfig_path(name)}"
    _kwokctl(binaries, name, "delete", "cluster", own, f"--name={name}")
    kwokctl_config_path(name).unlink(missing_ok=True)
    return True


def kwokctl_config_path(name: str) -> Path:
    """The configuration ``up`` hands kwokctl (kwokctl keeps its own copy)."""
    return provision.cache_dir() / "clusters" / f"{name}.kwokctl.yaml"


def _recipe(name: str) -> provision.Recipe:
    return next(recipe for recipe in provision.RECIPES if recipe.name == name)
