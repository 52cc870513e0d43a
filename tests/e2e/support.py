"""What the e2e tests share: polling, node pools, a master process, framework processes, a
framework that answers offers with plain API calls, and the invariant checks.

Each test's master manages only the nodes labelled with the test's pool, so tests on the
one session cluster never see each other's capacity.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client

from kubedrf.api.conventions import ANNOTATION_SCHEDULER
from kubedrf.devcluster import cluster as devcluster
from kubedrf.master.records import pod_requests
from kubedrf.resources import Resources, total

GROUP, VERSION = "kubedrf.io", "v1alpha1"
POOL_LABEL = "e2e.kubedrf.io/pool"
TOLERATION = {"key": "kubedrf.io/managed", "operator": "Exists", "effect": "NoSchedule"}
#: The shape of a node a test adds without saying more.
BASE_SHAPE = devcluster.NodeShape(cpu="4", memory="16Gi")
T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], what: str, timeout: float = 60, interval: float = 0.25
) -> T:
    """Poll ``probe`` until it returns something other than ``None``/``False``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


ROOT = Path(__file__).resolve().parents[2]


class Helm:
    """The pinned helm binary, pointed at the session cluster."""

    def __init__(self, cluster: devcluster.Cluster) -> None:
        self.binary = str(cluster.binaries["helm"])
        self.kubeconfig = str(cluster.kubeconfig)

    def __call__(self, *args: str, timeout: float = 180) -> str:
        cmd = [self.binary, f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr.strip()}")
        return result.stdout


def install_crds(cluster: devcluster.Cluster, *sources: Path) -> None:
    """Apply CRDs (by default the generated ones in ``crds/``; files or directories) and wait
    until the apiserver serves them."""
    paths = [str(source) for source in sources or (ROOT / "crds",)]
    files = [arg for path in paths for arg in ("-f", path)]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", *files)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *files)


def service_account_kubeconfig(
    cluster: devcluster.Cluster, namespace: str, service_account: str, path: Path
) -> Path:
    """A kubeconfig that authenticates with a token of ``namespace/service_account``: what a
    Pod running as that ServiceAccount could do, and nothing more."""
    token = cluster.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration=1h"
    ).strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [server],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {"name": "sa", "context": {"cluster": server["name"], "user": service_account}}
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NodePool:
    """Fake nodes added during a test and removed after it, labelled with the pool's id so
    that a test's master can manage only them (``--managed-label``)."""

    _serial = itertools.count()

    def __init__(self, cluster: devcluster.Cluster) -> None:
        self.cluster = cluster
        self.id = uuid.uuid4().hex[:8]
        self.names: list[str] = []

    def add(
        self, count: int = 1, shape: devcluster.NodeShape = BASE_SHAPE, prefix: str = "e2e"
    ) -> list[str]:
        """Add ``count`` nodes and wait until they are Ready; returns their names."""
        names = [f"{prefix}-{os.getpid()}-{next(self._serial)}" for _ in range(count)]
        self.names += self.cluster.add_nodes(names, shape)
        self.cluster.kubectl("label", "node", "--overwrite", *names, f"{POOL_LABEL}={self.id}")
        self.cluster.wait_ready(names)
        return names

    def remove(self, *names: str) -> None:
        self.cluster.remove_nodes(names)
        self.names = [name for name in self.names if name not in names]

    def cleanup(self) -> None:
        self.remove(*self.names)


class Background:
    """A process a test starts against the cluster, logging to a file it can show."""

    def __init__(self, log: Path, kubeconfig: Path) -> None:
        self.log = log
        self.kubeconfig = kubeconfig
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, args: list[str]) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env)

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class MasterProcess(Background):
    """``kubedrf master`` as users run it, managing one pool.

    ``kubeconfig`` defaults to the cluster's admin one; the chart's tests pass one that
    authenticates as the chart's ServiceAccount.
    """

    def __init__(
        self,
        cluster: devcluster.Cluster,
        pool: NodePool,
        log: Path,
        kubeconfig: Path | None = None,
        **flags: str,
    ) -> None:
        super().__init__(log, kubeconfig or cluster.kubeconfig)
        self.cluster = cluster
        self.pool = pool
        self.port = free_port()
        self.flags = {"allocation-interval": "1s", **flags}

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "kubedrf.cli.main",
            "master",
            f"--managed-label={POOL_LABEL}={self.pool.id}",
            f"--metrics-port={self.port}",
            *(f"--{name}={value}" for name, value in self.flags.items()),
        ]
        self.spawn(args)
        wait_for(self._serving, "the master's metrics endpoint", timeout=30)

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"master exited with {self.process.returncode}:\n{self.tail()}")
        try:
            return "kubedrf_allocator" in self.metrics()
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
            text: str = answer.read().decode()
            return text

    def metric(self, name: str, **labels: str) -> float | None:
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            head, _, value = line.rpartition(" ")
            if head == (f"{name}{{{wanted}}}" if labels else name):
                return float(value)
        return None


class Frameworks:
    """A framework controller made of plain API calls (the SDK's job, done by hand)."""

    def __init__(
        self, api: client.ApiClient, namespace: str, *, follow_offers: bool = False
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        #: Name the scheduler each Offer asks for (its kubedrf.io/scheduler-name annotation),
        #: as the SDK does and as the chart's claims policy requires; by default task Pods
        #: keep the default scheduler, so tests see what the master does about bad claims
        #: that kube-scheduler has bound.
        self.follow_offers = follow_offers

    def create(
        self, name: str, tasks: dict[str, str] | None = None, count: int = 100, **spec: Any
    ) -> None:
        if tasks is not None:
            spec["demand"] = [{"name": "task", "resources": tasks, "count": count}]
        # No heartbeat Lease here: a test that wants liveness judged sets a short timeout.
        spec.setdefault("failoverTimeout", 3600)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Framework",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "frameworks", body
        )

    def get(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "frameworks", name
        )
        return body

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "frameworks", name, patch
        )

    def offers(
        self, framework: str | None = None, phase: str | None = "Offered"
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "offers"
        )["items"]
        return [
            o
            for o in items
            if (framework is None or o["spec"]["framework"] == framework)
            and (phase is None or (o.get("status") or {}).get("phase") == phase)
        ]

    def wait_offers(self, framework: str, timeout: float = 20) -> list[dict[str, Any]]:
        return wait_for(lambda: self.offers(framework) or None, f"an offer to {framework}", timeout)

    def launch(
        self,
        offer: dict[str, Any],
        name: str,
        requests: dict[str, str],
        *,
        node: str | None = None,
        scheduler: str | None = None,
        image: str = "task",
        command: list[str] | None = None,
        restart_policy: str = "Always",
    ) -> str:
        spec = offer["spec"]
        if scheduler is None and self.follow_offers:
            annotations = offer["metadata"].get("annotations") or {}
            scheduler = annotations.get(ANNOTATION_SCHEDULER)
        labels = {
            "kubedrf.io/framework": spec["framework"],
            "kubedrf.io/role": spec["role"],
            "kubedrf.io/offer": offer["metadata"]["name"],
        }
        term = {
            "matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node or spec["nodeName"]]}
            ]
        }
        self.core.create_namespaced_pod(
            self.namespace,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "task",
                            "image": image,
                            "resources": {"requests": requests},
                            **({"command": command} if command else {}),
                        }
                    ],
                    "tolerations": [TOLERATION],
                    "restartPolicy": restart_policy,
                    **({"schedulerName": scheduler} if scheduler else {}),
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [term]
                            }
                        }
                    },
                },
            },
        )
        return name

    def accept(self, offer: dict[str, Any]) -> list[str]:
        """Launch every task the offer was sized for, then accept it listing them."""
        names = []
        offer_name = offer["metadata"]["name"]
        for shape in offer["spec"].get("sizedFor") or []:
            for _ in range(shape["count"]):
                names.append(self.launch(offer, f"{offer_name}-{len(names)}", shape["resources"]))
        self.respond(offer, {"action": "Accept", "tasks": names})
        return names

    def respond(self, offer: dict[str, Any], response: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            "offers",
            offer["metadata"]["name"],
            {"spec": {"response": response}},
        )

    def accept_all(self, framework: str) -> list[str]:
        return [name for offer in self.offers(framework) for name in self.accept(offer)]

    def running(self, framework: str) -> list[str]:
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"kubedrf.io/framework={framework}"
        ).items
        return [p.metadata.name for p in pods if p.status.phase == "Running"]

    def task_count(self, framework: str) -> int:
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"kubedrf.io/framework={framework}"
        ).items
        return sum(1 for p in pods if p.status.phase not in ("Succeeded", "Failed"))

    def wait_status(self, framework: str, tasks: int) -> dict[str, Any]:
        """The framework's status once the master reports ``tasks`` tasks in it."""

        def reported() -> dict[str, Any] | None:
            status: dict[str, Any] = self.get(framework).get("status") or {}
            return status if status.get("tasks") == tasks else None

        return wait_for(reported, f"the status of {framework} to count {tasks} tasks")

    def condition(self, framework: str, type_: str) -> dict[str, Any] | None:
        for item in (self.get(framework).get("status") or {}).get("conditions") or []:
            if item["type"] == type_:
                return dict(item)
        return None


def assert_no_overcommit(api: client.ApiClient, nodes: list[str]) -> None:
    """Invariant 1: on every node, pod requests + outstanding offers ≤ allocatable.

    Tasks launched against a still-outstanding offer are covered by it, as the master counts.
    """
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    offers = [
        o
        for o in custom.list_cluster_custom_object(GROUP, VERSION, "offers")["items"]
        if (o.get("status") or {}).get("phase") in (None, "Offered")
    ]
    outstanding = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in offers}
    for node in nodes:
        allocatable = Resources.parse(core.read_node(node).status.allocatable)
        pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
        charged = [
            pod_requests(api.sanitize_for_serialization(p.spec))
            for p in pods
            if p.status.phase not in ("Succeeded", "Failed")
            and (p.metadata.namespace, (p.metadata.labels or {}).get("kubedrf.io/offer"))
            not in outstanding
        ]
        promised = [
            Resources.parse(o["spec"]["resources"]) for o in offers if o["spec"]["nodeName"] == node
        ]
        used = total([*charged, *promised])
        assert used <= allocatable, f"node {node} overcommitted: {used} > {allocatable}"


def settle(seconds: float = 2.5) -> None:
    """Give the master a couple of cycles."""
    time.sleep(seconds)


class FrameworkProcess(Background):
    """An example framework under ``examples/frameworks/``, run as a user runs it."""

    def __init__(
        self,
        cluster: devcluster.Cluster,
        script: str,
        log: Path,
        *args: str,
        kubeconfig: Path | None = None,
    ) -> None:
        super().__init__(log, kubeconfig or cluster.kubeconfig)
        self.args = [sys.executable, str(ROOT / "examples" / "frameworks" / script), *args]

    def start(self) -> FrameworkProcess:
        self.spawn(self.args)
        return self
