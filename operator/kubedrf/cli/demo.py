"""``kubedrf demo`` (``make demo``): the seed's DRF example on a real local control plane.

It starts the control plane with one 9 CPU / 18 GiB managed node, installs the chart, runs
the master and two batch frameworks (A: tasks of {1 CPU, 4 GiB}, B: {3 CPU, 1 GiB}), waits
for the allocation, prints it, and leaves everything running to look around;
``kubedrf dev down`` stops it all.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

from kubedrf.devcluster import cluster, processes, provision
from kubedrf.resources import Resources

ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "seed"
RELEASE_NAMESPACE = "kubedrf-system"
DEMO_NODE = "kwok-node-0"
FRAMEWORKS = (("a", "1", "4Gi"), ("b", "3", "1Gi"))
METRICS_PORT = 9090


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the seed's DRF example on a local control plane and print the allocation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", default=cluster.DEFAULT_NAME, help="cluster name")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for tasks")
    parser.set_defaults(func=run)


def say(line: str) -> None:
    print(f"==> {line}", flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        return _demo(args)
    except (provision.ProvisionError, cluster.ClusterError, TimeoutError) as error:
        print(f"kubedrf demo: error: {error}", file=sys.stderr)
        return 1


def _demo(args: argparse.Namespace) -> int:
    name = args.name
    say("starting the local control plane with one 9 CPU / 18 GiB managed node")
    dev = cluster.up(name, nodes=1, shape=cluster.NodeShape(cpu="9", memory="18Gi"))
    stray = [node for node in dev.node_names() if node != DEMO_NODE]
    dev.remove_nodes(stray)

    say("installing the chart (CRDs and RBAC; the master runs locally for the demo)")
    helm = str(dev.binaries["helm"])
    subprocess.run(
        [
            helm,
            "upgrade",
            "--install",
            "kubedrf",
            str(ROOT / "charts" / "kubedrf"),
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
            "--wait",
            # CRDs applied by hand, or by the 0.1.0 chart's crds/, become the release's.
            "--take-ownership",
            "--set",
            "replicas=0",
            f"--kubeconfig={dev.kubeconfig}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    dev.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))

    api = config.new_client_from_config(config_file=str(dev.kubeconfig))  # type: ignore[no-untyped-call]
    _fresh_namespace(client.CoreV1Api(api))

    say("starting two batch frameworks: A wants tasks of {1 CPU, 4 GiB}, B of {3 CPU, 1 GiB}")
    for framework, cpu, memory in FRAMEWORKS:
        processes.start(
            name,
            f"framework-{framework}",
            [
                sys.executable,
                str(ROOT / "examples" / "frameworks" / "batch.py"),
                "--namespace",
                NAMESPACE,
                "--name",
                framework,
                "--tasks",
                "100",
                "--cpu",
                cpu,
                "--memory",
                memory,
            ],
        )
    custom = client.CustomObjectsApi(api)
    _wait(lambda: all(_framework(custom, f) for f, _, _ in FRAMEWORKS), "frameworks", 60)

    say("starting the master (hierarchical DRF, demand mode)")
    processes.start(
        name,
        "master",
        [sys.executable, "-m", "kubedrf.cli.main", "master", f"--metrics-port={METRICS_PORT}"],
    )
    expected = {"a": 3, "b": 2}
    _wait(
        lambda: all((_status(custom, f).get("tasks") or 0) >= n for f, n in expected.items()),
        "the tasks to run",
        args.timeout,
    )
    time.sleep(2)  # a couple more cycles: nothing else should be offered
    _print_result(custom)
    _print_next_steps(name)
    return 0


def _fresh_namespace(core: client.CoreV1Api) -> None:
    try:
        core.delete_namespace(NAMESPACE)
        _wait(
            lambda: not _namespace_exists(core), f"namespace {NAMESPACE} from a previous run", 120
        )
    except client.exceptions.ApiException as error:
        if error.status != 404:
            raise
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))


def _namespace_exists(core: client.CoreV1Api) -> bool:
    try:
        core.read_namespace(NAMESPACE)
    except client.exceptions.ApiException:
        return False
    return True


def _framework(custom: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    try:
        body = custom.get_namespaced_custom_object(
            "kubedrf.io", "v1alpha1", NAMESPACE, "frameworks", name
        )
    except client.exceptions.ApiException:
        return None
    return body if isinstance(body, dict) else None


def _status(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    body = _framework(custom, name) or {}
    status: dict[str, Any] = body.get("status") or {}
    return status


def _wait(probe: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def _print_result(custom: client.CustomObjectsApi) -> None:
    print()
    print("Final allocation (one node: 9 CPU, 18 GiB):")
    print(f"  {'framework':<10} {'tasks':>5} {'dominant share':>15}  allocated")
    for framework, _, _ in FRAMEWORKS:
        status = _status(custom, framework)
        allocated = Resources()
        for role_resources in (status.get("allocated") or {}).values():
            allocated += Resources.parse(role_resources)
        shown = ", ".join(
            f"{k}={v}" for k, v in allocated.without(["pods"]).to_quantities().items()
        )
        share = status.get("dominantShare") or 0.0
        print(f"  {framework.upper():<10} {status.get('tasks', 0):>5} {share:>15.3f}  {shown}")
    print()


def _print_next_steps(name: str) -> None:
    logs = processes.processes_dir(name)
    kubedrf = Path(sys.executable).parent / "kubedrf"
    down = f"{kubedrf} dev down" + ("" if name == cluster.DEFAULT_NAME else f" --name {name}")
    print(
        f"""Both dominant shares are 2/3, as DRF promises. Look around:
  eval "$({kubedrf} dev env --name {name})"
  kubectl get kubedrf -A                 # frameworks, offers, roles, quotas, reservations
  kubectl get pods -n {NAMESPACE} -o wide
  kubectl describe framework a -n {NAMESPACE}   # conditions and Events: why no more offers
  curl -s localhost:{METRICS_PORT}/metrics | grep kubedrf_allocator
  logs: {logs}/*.log
Your own Jobs and Deployments can run under DRF too: README "Run your existing workloads under DRF".
Tear it all down (cluster, master and frameworks) with:
  {down}"""
    )
