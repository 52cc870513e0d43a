"""The chaos run: a local control plane, two master replicas under leader election, ten
frameworks in three namespaces, and faults injected at random, one at a time, while
``checker.Checker`` watches the invariants.

Faults, bounded in count (each kind at most ``ceil(minutes)`` times, one at a time, a pause
between them) and in time (each heals within ``MAX_FAULT_S``): SIGKILL of the leader and of the
standby (restarted two seconds later, as a Deployment would), a kube-apiserver restart, an
etcd restart, a node removed and returned, a node NotReady for a while, SIGKILL and restart
of a framework, an Offer deleted by hand, a response accepting tasks that do not fit, a Pod
claiming another framework's offer from another namespace (the last two from a hostile
framework, ``mallory``, that the harness answers for by hand), and a tenant's Framework whose
demand names a resource ``""`` (the object that once made every cycle fail), and the standby
restarted with its clock ``SKEW_S`` ahead (through libfaketime; not injected without it).

Recovery after a fault is the time from its healing (the replica killed, the apiserver
ready again, the node Ready again) to the first offer written after it: on the returned
node for a node fault, anywhere otherwise. The workload keeps demand above capacity, so a
working master always has something to offer somewhere; but a returned node may come back
full of long tasks, and then nothing is owed there until one ends: for a node fault the clock
starts once the node is Ready *and* has room for a demanded task (``Checker.room``). A hostile
object or a skewed clock is no outage: the master owes offers all the while it lasts, so the
checker stays awake through it, and its "recovery" is the longest time without a new offer
from its start to the first offer after its end.

``master_checkout`` runs the masters from another checkout (its ``operator`` directory on
``PYTHONPATH``, its CRDs applied, the current ones only for kinds it lacks) while the
workload, the faults and the checker stay current: the run against an old commit shows the
harness can fail.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from kubedrf.devcluster import cluster as devcluster
from kubedrf.framework.driver import renew_heartbeat
from tests.chaos.checker import GROUP, VERSION, Checker, outstanding

ROOT = Path(__file__).resolve().parents[2]
NAMESPACES = ("chaos-a", "chaos-b", "chaos-c")
ELECTION_NAMESPACE = "kube-system"
LEASE_S = 15.0
MAX_FAULT_S = 12.0
RECOVERY_WAIT_S = 60.0
SHAPE = devcluster.NodeShape(cpu="8", memory="32Gi")
FAULTS = (
    "leader_kill",
    "standby_kill",
    "apiserver_restart",
    "etcd_restart",
    "node_removal",
    "node_notready",
    "framework_kill",
    "offer_delete",
    "bad_accept",
    "cross_claim",
    "hostile_object",
    "clock_skew",
)
#: Faults the master must absorb while they last, not recover from: the checker stays awake.
ABSORBED = ("hostile_object", "clock_skew")
SKEW_S = 30
#: How long the skewed standby runs: a restarted replica needs its initial list before it
#: contends for the Lease, which takes several seconds on a loaded machine.
SKEW_HOLD_S = 30.0
#: How a fault that could not be set up starts its note.
NOT_INJECTED = "not injected"

#: Seconds between heartbeats of the hand-driven framework (its failoverTimeout is 60 s).
HEARTBEAT_S = 5.0

#: Seconds past the end a run may go on to inject a kind that has not fired yet.
RETRY_S = 120.0


def _per_minute(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The first sample of each minute of a replica's life."""
    seen: set[int] = set()
    picked = []
    for age, mb in samples:
        if int(age // 60) not in seen:
            seen.add(int(age // 60))
            picked.append((age, mb))
    return picked


class FaultUnavailableError(RuntimeError):
    """This machine cannot inject the fault at all (a missing library): not tried again."""


#: libfaketime, which shifts a process's clock (Debian's ``faketime`` package).
FAKETIME_LIBRARIES = (
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"),
    Path("/usr/local/lib/faketime/libfaketimeMT.so.1"),
)

#: (name, namespace, role, tasks, cpu, memory, complete-after or None for long tasks)
WORKLOAD = (
    ("web-1", "chaos-a", "eng.web", 40, "1", "2Gi", None),
    ("web-2", "chaos-a", "eng.web", 100000, "500m", "1Gi", "6s"),
    ("etl-1", "chaos-b", "eng.batch", 100000, "2", "2Gi", "8s"),
    ("etl-2", "chaos-b", "eng.batch", 30, "1", "4Gi", None),
    ("ops-1", "chaos-c", "ops", 100000, "1", "1Gi", "5s"),
    ("ops-2", "chaos-c", "ops", 20, "2", "2Gi", None),
    ("res-1", "chaos-b", "research", 100000, "1", "2Gi", "4s"),
    ("res-2", "chaos-c", "research", 25, "1", "1Gi", None),
    ("late-1", "chaos-a", "eng.web", 100000, "1", "1Gi", "5s"),
    ("late-2", "chaos-b", "research", 60, "500m", "512Mi", None),
)
#: Frameworks that arrive during the run (so revocation fires) and may depart again.
LATE = ("late-1", "late-2")


def objects(reserved_node: str) -> list[tuple[str, dict[str, Any]]]:
    """Roles, a quota with a guarantee, one with a limit, and a reservation."""
    roles = {
        "eng": {"weight": 2, "namespaces": ["chaos-a", "chaos-b"]},
        "eng.web": {"weight": 1, "namespaces": ["chaos-a"]},
        "eng.batch": {"weight": 1, "namespaces": ["chaos-b"]},
        "ops": {"weight": 1, "namespaces": ["chaos-c"]},
        "research": {"weight": 1, "namespaces": ["chaos-b", "chaos-c"]},
    }
    out: list[tuple[str, dict[str, Any]]] = [
        ("roles", {"metadata": {"name": name}, "spec": spec}) for name, spec in roles.items()
    ]
    out += [
        (
            "quotas",
            {
                "metadata": {"name": "ops"},
                "spec": {"role": "ops", "guarantee": {"cpu": "24", "memory": "24Gi"}},
            },
        ),
        (
            "quotas",
            {
                "metadata": {"name": "research"},
                "spec": {"role": "research", "limit": {"cpu": "60"}},
            },
        ),
        (
            "reservations",
            {
                "metadata": {"name": "ops-reserved"},
                "spec": {
                    "role": "ops",
                    "nodeName": reserved_node,
                    "resources": {"cpu": "4", "memory": "8Gi"},
                },
            },
        ),
    ]
    kinds = {"roles": "Role", "quotas": "Quota", "reservations": "Reservation"}
    return [
        (plural, {"apiVersion": f"{GROUP}/{VERSION}", "kind": kinds[plural], **body})
        for plural, body in out
    ]


@dataclass
class Proc:
    """A process of the run, restarted with the same command after a kill."""

    args: list[str]
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                self.args, stdout=sink, stderr=subprocess.STDOUT, env=self.env
            )
        self.started = time.time()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def rss_mb(self) -> float | None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except (OSError, TypeError):
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None


@dataclass
class Outcome:
    kind: str
    started: float
    healed: float
    recovered: float | None = None
    #: From when an offer was owed: ``healed``, or for a node fault once it had room.
    owed: float = 0.0
    note: str = ""
    #: Whether an offer was owed at all: a node back full of long tasks is owed none.
    owed_offer: bool = True

    @property
    def skipped(self) -> bool:
        """Whether the fault could not be set up (reported, never counted as survived)."""
        return self.note.startswith(NOT_INJECTED)


@dataclass
class Run:
    minutes: float
    seed: int
    nodes: int = 50
    #: Another checkout's root: run the master from it (the baseline run).
    master_checkout: Path | None = None
    #: Fault kinds never injected: sparing the masters' kills lets one replica live the
    #: whole soak, so its memory over the soak can be read.
    spare: frozenset[str] = frozenset()
    workdir: Path = field(default_factory=lambda: Path(f"/tmp/kubedrf-chaos-{os.getpid()}"))
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    outcomes: list[Outcome] = field(default_factory=list)
    rss: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    masters: list[Proc] = field(default_factory=list)
    frameworks: dict[str, Proc] = field(default_factory=dict)
    #: Set when the run ends: background threads stop.
    stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.name = f"kubedrf-chaos-{os.getpid()}"
        self.workdir.mkdir(parents=True, exist_ok=True)

    # -- set-up --------------------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        started = time.time()
        try:
            cluster = devcluster.up(self.name, nodes=self.nodes, shape=SHAPE, progress=self.log)
            return self._run(cluster, started)
        finally:
            self.stopped.set()
            for proc in [*self.masters, *self.frameworks.values()]:
                proc.kill(signal.SIGTERM)
            devcluster.down(self.name)  # also when it never came up

    def _env(self, cluster: devcluster.Cluster, checkout: Path | None) -> dict[str, str]:
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        if checkout is not None:
            env["PYTHONPATH"] = str(checkout / "operator")
        return env

    def _crds(self) -> list[Path]:
        """The CRDs of the checkout the masters run from; the current ones of kinds it lacks
        (the frameworks, which stay current, watch them)."""
        if self.master_checkout is None:
            return [ROOT / "crds"]
        old = sorted((self.master_checkout / "crds").glob("*.yaml"))
        kept = {path.name for path in old}
        return old + [
            path for path in sorted((ROOT / "crds").glob("*.yaml")) if path.name not in kept
        ]

    def _run(self, cluster: devcluster.Cluster, started: float) -> dict[str, Any]:
        from tests.e2e.support import install_crds  # noqa: PLC0415

        install_crds(cluster, *self._crds())
        self.cluster = cluster
        self.api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        nodes = devcluster.node_names(self.nodes)
        for namespace in NAMESPACES:
            self.cluster.kubectl("create", "namespace", namespace)
        if self.master_checkout is None:  # an older master may not write what they require
            self._admission_policies()
        for plural, body in objects(nodes[0]):
            self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        self.checker = Checker(self.api, ("kubedrf.io/managed", "true")).start()
        self._start_masters()
        for name, *_ in WORKLOAD:
            if name not in LATE:
                self._start_framework(name)
        self._hostile_framework()
        deadline = time.time() + self.minutes * 60
        arrivals = {
            name: time.time() + self.rng.uniform(20, max(30, self.minutes * 60 / 2))
            for name in LATE
        }
        counts = dict.fromkeys(FAULTS, 0)  # injected
        attempts = dict.fromkeys(FAULTS, 0)
        unavailable: set[str] = set(self.spare)
        bound = max(1, math.ceil(self.minutes))
        self._wait_started()

        def missing() -> bool:
            return any(counts[k] == 0 for k in FAULTS if k not in unavailable)

        # Every kind fires at least once, even in a short run; then at random until the end.
        # A fault whose moment has not come (no offer to accept yet) is tried again later.
        while time.time() < deadline - 20 or (missing() and time.time() < deadline + RETRY_S):
            self._sample_rss()
            for name, at in list(arrivals.items()):
                if time.time() >= at:
                    self._arrive_or_depart(name)
                    arrivals[name] = time.time() + self.rng.uniform(40, 90)
            choices = [kind for kind in FAULTS if counts[kind] < bound and kind not in unavailable]
            if not choices:
                time.sleep(1)
                continue
            # Each kind once first (fixed order, the least tried first), then at random.
            untried = sorted((k for k in choices if counts[k] == 0), key=attempts.__getitem__)
            kind = untried[0] if untried else self.rng.choice(choices)
            attempts[kind] += 1
            injected = self._inject(kind)
            if injected is None:
                unavailable.add(kind)
            elif injected:
                counts[kind] += 1
            time.sleep(self.rng.uniform(1, 4))
        time.sleep(max(0.0, min(20.0, deadline - time.time())))
        findings = self.checker.stop()
        return self._report(counts, findings, time.time() - started)

    def _wait_started(self, timeout: float = 180) -> None:
        """Until a replica leads and offers flow: faults start on a working system."""
        deadline = time.time() + timeout
        while self._leader() is None or self.checker.first_offer_after(0) is None:
            if time.time() > deadline:
                raise RuntimeError(
                    f"no leader or no offer after {timeout:.0f}s; see {self.workdir}"
                )
            time.sleep(1)

    def _start_masters(self) -> None:
        for index in range(2):
            port = 19090 + (os.getpid() % 500) * 2 + index
            args = [
                sys.executable,
                "-m",
                "kubedrf.cli.main",
                "master",
                f"--leader-election-namespace={ELECTION_NAMESPACE}",
                f"--metrics-port={port}",
                "--offer-timeout=10s",
            ]
            if self.master_checkout is None:
                args += ["--grace-period=5s"]
            proc = Proc(
                args,
                self.workdir / f"master-{index}.log",
                self._env(self.cluster, self.master_checkout),
            )
            proc.start()
            self.masters.append(proc)

    def _start_framework(self, name: str) -> None:
        spec = next(w for w in WORKLOAD if w[0] == name)
        _, namespace, role, tasks, cpu, memory, after = spec
        args = [
            sys.executable,
            str(ROOT / "examples" / "frameworks" / "batch.py"),
            f"--namespace={namespace}",
            f"--name={name}",
            f"--role={role}",
            f"--tasks={tasks}",
            f"--cpu={cpu}",
            f"--memory={memory}",
            "--refuse-seconds=2",
        ]
        if after:
            args.append(f"--complete-after={after}")
        proc = Proc(args, self.workdir / f"fw-{name}.log", self._env(self.cluster, None))
        proc.start()
        self.frameworks[name] = proc

    def _arrive_or_depart(self, name: str) -> None:
        namespace = next(w[1] for w in WORKLOAD if w[0] == name)
        if name in self.frameworks:
            self.log(f"departs: {name}")
            self.checker.excuse_framework(namespace, name)
            self.frameworks.pop(name).kill(signal.SIGTERM)
            self._delete_framework(namespace, name)
        else:
            self.log(f"arrives: {name}")
            self._start_framework(name)

    def _delete_framework(self, namespace: str, name: str) -> None:
        with contextlib.suppress(client.exceptions.ApiException):
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "frameworks", name
            )

    def _hostile_framework(self) -> None:
        """Mallory: a Framework driven by hand (it answers offers only when a fault makes it),
        kept alive by a heartbeat Lease as an SDK driver would, so it is never Disconnected
        and owed offers for as long as the run goes."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Framework",
            "metadata": {"name": "mallory"},
            "spec": {
                "roles": ["research"],
                "demand": [{"name": "t", "resources": {"cpu": "1", "memory": "1Gi"}, "count": 5}],
            },
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, "chaos-c", "frameworks", body)
        threading.Thread(target=self._heartbeat, args=("chaos-c", "mallory"), daemon=True).start()

    def _heartbeat(self, namespace: str, framework: str) -> None:
        coordination = client.CoordinationV1Api(self.api)
        while not self.stopped.is_set():
            try:
                renew_heartbeat(coordination, namespace, framework, holder="chaos-harness")
            except Exception as error:  # the apiserver restarting, for one: renew next time
                self.log(f"heartbeat of {framework}: {error}")
            self.stopped.wait(HEARTBEAT_S)

    # -- faults --------------------------------------------------------------------------------

    def _leader(self) -> Proc | None:
        try:
            lease = client.CoordinationV1Api(self.api).read_namespaced_lease(
                "kubedrf-master", ELECTION_NAMESPACE
            )
        except client.exceptions.ApiException:
            return None
        holder = lease.spec.holder_identity or ""
        for proc in self.masters:
            if proc.pid is not None and holder.endswith(f"-{proc.pid}"):
                return proc
        return None

    def _inject(self, kind: str) -> bool | None:
        """Inject one fault and wait for recovery: whether it was injected (``None``: this
        machine cannot inject it at all)."""
        start = time.time()
        absorbed = kind in ABSORBED
        if not absorbed:
            self.checker.blind(float("inf"))
        note = ""
        node: str | None = None
        injected: bool | None = True
        try:
            note, node = getattr(self, f"_fault_{kind}")()
        except Exception as error:  # a fault that could not be set up is reported, not fatal
            note = f"{NOT_INJECTED}: {error}"
            injected = None if isinstance(error, FaultUnavailableError) else False
        healed = time.time()
        recovered, owed, owed_offer = self._await_recovery(healed, node)
        if absorbed:
            # Reported as the longest stand-still from its start to the first offer after its
            # end (recovered - owed is that gap): an offer a cycle already under way wrote
            # proves nothing.
            end = recovered or time.time()
            healed = owed = start
            recovered = start + self.checker.longest_gap(start, end)
        else:
            self.checker.blind((recovered or time.time()) + 1.0)
        if recovered is None and owed_offer and node is not None:
            try:
                note += f"; no offer on it: {self._why_not_offered(node)}"
            except Exception as error:  # a diagnosis, never a reason to end the run
                note += f"; no offer on it (could not read why: {error})"
        outcome = Outcome(kind, start, healed, recovered, note=note, owed=owed)
        outcome.owed_offer = owed_offer
        self.outcomes.append(outcome)
        took = "none" if recovered is None else f"{recovered - owed:.1f}s"
        if not owed_offer:
            took += " (the node never had room for a demanded task: no offer owed)"
        if owed - healed > 0.5:
            took += f" (the node had room {owed - healed:.1f}s after it was back)"
        self.log(f"fault {kind}: {note}; recovery {took}")
        return injected

    def _await_recovery(self, healed: float, node: str | None) -> tuple[float | None, float, bool]:
        """When the first offer after ``healed`` was seen (on ``node``), from when it was
        owed (at once, or for a node once the checker saw room on it for a demanded task),
        and whether one was owed at all (a node back full of long tasks is owed none)."""
        deadline = healed + RECOVERY_WAIT_S
        owed = healed if node is None else None
        while time.time() < deadline:
            now = time.time()
            seen = self.checker.first_offer_after(healed, node)
            if seen is not None:
                return seen, min(seen, owed if owed is not None else seen), True
            if owed is None and node is not None and self.checker.room(node):
                owed = now
            time.sleep(0.2)
        return None, owed if owed is not None else healed, owed is not None

    def _why_not_offered(self, node: str) -> str:
        """What the API shows of a node that was owed an offer and got none: the offers and
        Pods there, and what the master says each waiting framework waits for."""
        parts = []
        offers = self.custom.list_cluster_custom_object(GROUP, VERSION, "offers")["items"]
        on_node = [
            f"{o['metadata']['name']} ({(o.get('status') or {}).get('phase')})"
            for o in offers
            if (o.get("spec") or {}).get("nodeName") == node
        ]
        parts.append(f"offers there: {', '.join(on_node) or 'none'}")
        pods = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
        running = sum(p.status.phase == "Running" for p in pods)
        parts.append(f"{len(pods)} Pods bound there ({running} Running)")
        frameworks = self.custom.list_cluster_custom_object(GROUP, VERSION, "frameworks")["items"]
        for body in frameworks:
            for waiting in (body.get("status") or {}).get("waiting") or []:
                name = body["metadata"]["name"]
                parts.append(f"{name} ({waiting.get('role')}): {waiting.get('message')}")
        return "; ".join(parts)

    def _kill_master(self, proc: Proc) -> None:
        proc.kill()
        time.sleep(2)
        proc.start()

    def _fault_clock_skew(self) -> tuple[str, None]:
        """The standby restarted with a clock ahead, kept ``MAX_FAULT_S``, then restarted true:
        it must not take the Lease from a leader that renews it, nor act on expiries early."""
        library = next((path for path in FAKETIME_LIBRARIES if path.exists()), None)
        if library is None:
            raise FaultUnavailableError("libfaketime is not installed (apt-get install faketime)")
        leader = self._leader()
        standby = next(p for p in self.masters if p is not leader)
        standby.kill()
        true_env = standby.env
        standby.env = {**true_env, "LD_PRELOAD": str(library), "FAKETIME": f"+{SKEW_S}s"}
        took = False
        try:
            standby.start()
            until = time.time() + SKEW_HOLD_S
            while time.time() < until:
                took = took or self._leader() is standby
                time.sleep(0.5)
            standby.kill()
        finally:
            standby.env = true_env
        standby.start()
        return f"standby {SKEW_S}s ahead for {SKEW_HOLD_S:.0f}s; took the Lease: {took}", None

    def _fault_leader_kill(self) -> tuple[str, None]:
        leader = self._leader()
        if leader is None:
            raise RuntimeError("no leader holds the lease")
        self._kill_master(leader)
        return f"killed leader pid {leader.pid}", None

    def _fault_standby_kill(self) -> tuple[str, None]:
        leader = self._leader()
        standby = next(p for p in self.masters if p is not leader)
        self._kill_master(standby)
        return "killed the standby", None

    def _wait_api(self) -> None:
        deadline = time.time() + 120
        while not self.cluster.is_healthy():
            if time.time() > deadline:
                raise RuntimeError("the apiserver did not come back")
            time.sleep(0.2)

    def _fault_apiserver_restart(self) -> tuple[str, None]:
        self.cluster.restart("kube-apiserver", down_for=self.rng.uniform(1, 3))
        self._wait_api()
        return "kube-apiserver restarted", None

    def _fault_etcd_restart(self) -> tuple[str, None]:
        self.cluster.restart("etcd", down_for=self.rng.uniform(1, 3))
        self._wait_api()
        return "etcd restarted", None

    def _random_node(self) -> str:
        # Never the reserved node: invariant 3 is judged there throughout.
        return self.rng.choice(devcluster.node_names(self.nodes)[1:])

    def _fault_node_removal(self) -> tuple[str, str]:
        node = self._random_node()
        self.checker.excuse_node(node)
        self.cluster.remove_nodes([node])
        time.sleep(self.rng.uniform(3, MAX_FAULT_S / 2))
        self.cluster.add_nodes([node], SHAPE)
        self.cluster.wait_ready([node])
        return f"{node} removed and returned", node

    def _fault_node_notready(self) -> tuple[str, str]:
        node = self._random_node()
        # kwok keeps a node Ready while it manages it; kwokctl's controller runs with
        # --manage-all-nodes, so without the annotation the NotReady may be brief.
        annotation = devcluster.KWOK_NODE_ANNOTATION
        self.cluster.kubectl("annotate", "node", node, f"{annotation}-")
        condition = {"type": "Ready", "status": "False", "reason": "ChaosNotReady"}
        patch = json.dumps({"status": {"conditions": [condition]}})
        self.cluster.kubectl("patch", "node", node, "--subresource=status", "-p", patch)
        time.sleep(self.rng.uniform(3, MAX_FAULT_S / 2))
        self.cluster.kubectl("annotate", "node", node, "--overwrite", f"{annotation}=fake")
        self.cluster.wait_ready([node])
        return f"{node} NotReady for a while", node

    def _fault_framework_kill(self) -> tuple[str, None]:
        name = self.rng.choice(sorted(self.frameworks))
        proc = self.frameworks[name]
        proc.kill()
        time.sleep(3)
        proc.start()
        return f"framework {name} killed and restarted", None

    def _offers(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            items = self.custom.list_cluster_custom_object(GROUP, VERSION, "offers")["items"]
        else:
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "offers")[
                "items"
            ]
        return [o for o in items if outstanding(o) and not o["spec"].get("response")]

    def _fault_offer_delete(self) -> tuple[str, None]:
        offers = self._offers()
        if not offers:
            raise RuntimeError("no outstanding offer")
        offer = self.rng.choice(offers)
        namespace, name = offer["metadata"]["namespace"], offer["metadata"]["name"]
        self.checker.excuse_offer(namespace, name)
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "offers", name)
        return f"deleted offer {namespace}/{name}", None

    def _admission_policies(self) -> None:
        """The chart's admission policies, as an install of the chart has them: nothing but
        tasks on managed nodes, and no claim on an offer that skips the master's binder. The
        masters run outside the cluster as this kubeconfig's user, which may release gated
        Pods; so may mallory, who never tries."""
        from tests.e2e.support import wait_for  # noqa: PLC0415

        review = client.AuthenticationV1Api(self.api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        user = review.status.user_info.username
        rendered = subprocess.run(
            [
                str(self.cluster.binaries["helm"]),
                "template",
                "chaos",
                str(ROOT / "charts" / "kubedrf"),
                "--namespace=kubedrf-system",
                "--show-only=templates/admissionpolicy.yaml",
                "--show-only=templates/claimpolicy.yaml",
                f"--set=admissionPolicy.masterUsers={{{user}}}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        self.cluster.kubectl("apply", "-f", "-", stdin=rendered)
        # The apiserver compiles a new policy in the background: wait until it refuses.
        probe = {
            "metadata": {"name": "probe", "labels": {"kubedrf.io/offer": "none"}},
            "spec": {"containers": [{"name": "c", "image": "c"}]},
        }

        def refused() -> bool:
            try:
                self.core.create_namespaced_pod("chaos-c", probe, dry_run="All")
            except client.exceptions.ApiException as error:
                if error.status == 403:
                    return True
                raise
            return False

        wait_for(refused, "the claims policy to refuse a claim", timeout=60, interval=0.5)

    def _task_pod(
        self,
        offer: dict[str, Any],
        name: str,
        requests: dict[str, str],
        scheduler: str | None = None,
    ) -> Any:
        """mallory's task on ``offer``, naming the scheduler the offer asks for unless told."""
        from tests.e2e.support import Frameworks  # noqa: PLC0415

        hand = Frameworks(self.api, "chaos-c", follow_offers=True)
        spec = {**offer["spec"], "framework": "mallory"}
        hand.launch({**offer, "spec": spec}, name, requests, scheduler=scheduler)
        self.checker.plant("chaos-c", name)
        return hand

    def _fault_bad_accept(self) -> tuple[str, None]:
        deadline = time.time() + 15
        while not (offers := self._offers("chaos-c")) or not any(
            o["spec"]["framework"] == "mallory" for o in offers
        ):
            if time.time() > deadline:
                raise RuntimeError("no offer to mallory")
            time.sleep(0.5)
        offer = next(o for o in offers if o["spec"]["framework"] == "mallory")
        name = f"mallory-{uuid.uuid4().hex[:6]}"
        hand = self._task_pod(offer, name, {"cpu": "64", "memory": "1Gi"})
        hand.respond(offer, {"action": "Accept", "tasks": [name]})
        return f"mallory accepted {offer['metadata']['name']} with a task that does not fit", None

    def _fault_cross_claim(self) -> tuple[str, None]:
        offers = [o for o in self._offers() if o["metadata"]["namespace"] != "chaos-c"]
        if not offers:
            raise RuntimeError("no outstanding offer outside chaos-c")
        offer = self.rng.choice(offers)
        where = f"{offer['metadata']['namespace']}/{offer['metadata']['name']}"
        name = f"mallory-{uuid.uuid4().hex[:6]}"
        requests = {"cpu": "100m", "memory": "64Mi"}
        # First past the master's binder, straight to kube-scheduler: the policy refuses it
        # (without the policy, an older master's run, it is planted and must be refused).
        try:
            self._task_pod(offer, name, requests, scheduler="default-scheduler")
        except client.exceptions.ApiException as error:
            if error.status != 403:
                raise
        else:
            return f"mallory claimed {where} through kube-scheduler", None
        # Then through the binder, which must never bind it.
        self._task_pod(offer, name, requests)
        return f"mallory claimed {where}; refused at admission through kube-scheduler", None

    def _fault_hostile_object(self) -> tuple[str, None]:
        """A tenant's Framework demanding a resource named ``""``: refused by the API, or left
        in place for ``MAX_FAULT_S`` while the master must keep offering to everyone else."""
        name = f"mallory-{uuid.uuid4().hex[:6]}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Framework",
            "metadata": {"name": name},
            "spec": {"roles": ["research"], "demand": [{"resources": {"": "1"}, "count": 1}]},
        }
        try:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, "chaos-c", "frameworks", body
            )
        except client.exceptions.ApiException as error:
            reason = json.loads(error.body or "{}").get("message", error.reason)
            return f"Framework {name} demanding resource '' refused: {reason}", None
        time.sleep(MAX_FAULT_S)
        self._delete_framework("chaos-c", name)
        return f"Framework {name} demanding resource '' accepted, kept {MAX_FAULT_S:.0f}s", None

    # -- report --------------------------------------------------------------------------------

    def _sample_rss(self) -> None:
        for proc in self.masters:
            rss = proc.rss_mb()
            if rss is not None and proc.pid is not None:
                self.rss.setdefault(proc.pid, []).append((time.time() - proc.started, rss))

    def _report(self, counts: dict[str, int], findings: Any, elapsed: float) -> dict[str, Any]:
        recovery: dict[str, dict[str, float | int | None]] = {}
        for kind in FAULTS:
            injected = [o for o in self.outcomes if o.kind == kind and not o.skipped]
            times = [o.recovered - o.owed for o in injected if o.recovered is not None]
            missing = sum(1 for o in injected if o.recovered is None and o.owed_offer)
            roomless = sum(1 for o in injected if o.recovered is None and not o.owed_offer)
            recovery[kind] = {
                "median": round(statistics.median(times), 2) if times else None,
                "max": round(max(times), 2) if times else None,
                "unrecovered": missing,
                "no_offer_owed": roomless,
            }
        longest = max(self.rss.values(), key=len, default=[])
        after_warmup = [mb for age, mb in longest if age >= 60] or [mb for _, mb in longest]
        return {
            "minutes": self.minutes,
            "seed": self.seed,
            "nodes": self.nodes,
            "elapsed_s": round(elapsed, 1),
            "baseline": str(self.master_checkout) if self.master_checkout else None,
            "faults": counts,
            "spared": sorted(self.spare),
            "not_injected": {
                kind: n
                for kind in FAULTS
                if (n := sum(1 for o in self.outcomes if o.kind == kind and o.skipped))
            },
            "breaches": {"count": len(findings.breaches), "first": findings.breaches[:5]},
            "lost": {"count": len(findings.lost), "first": findings.lost[:5]},
            "stuck_offers": {"count": len(findings.stuck), "first": findings.stuck[:5]},
            "recovery_s": recovery,
            "master_rss_mb": {
                "first": round(after_warmup[0], 1) if after_warmup else None,
                "last": round(after_warmup[-1], 1) if after_warmup else None,
                "max": round(max(after_warmup), 1) if after_warmup else None,
                # The longest-lived replica minute by minute (its age in minutes: MB), and
                # every replica that lived five minutes or more: (minutes lived, first MB
                # after its first minute, last MB), to tell a leak from a cache that follows
                # the load.
                "series": {f"{age / 60:.0f}": round(mb, 1) for age, mb in _per_minute(longest)},
                "replicas": [
                    (round(samples[-1][0] / 60, 1), round(warm[0], 1), round(warm[-1], 1))
                    for samples in self.rss.values()
                    if samples[-1][0] >= 300 and (warm := [mb for age, mb in samples if age >= 60])
                ],
            },
            "fault_log": [
                {
                    "kind": o.kind,
                    "at_s": round(o.started - self.outcomes[0].started, 1),
                    "note": o.note,
                    "recovery_s": None if o.recovered is None else round(o.recovered - o.owed, 2),
                    "room_after_s": round(o.owed - o.healed, 2),
                }
                for o in self.outcomes
            ],
            "logs": str(self.workdir),
        }
