"""A real node on this machine, joined to a local control plane: containerd, kubelet, kube-proxy.

This is what ``make test-kind`` runs Pods on when a kind node image cannot be had (README,
"Real containers"). The control plane is the usual kwokctl one with two changes (see
``control_plane_patches``): the kwok controller only fakes the nodes annotated as fake, and the
apiserver also listens beyond loopback and advertises the gateway address of the node's Pod
bridge, so Pods reach it through the ``kubernetes`` Service that kube-proxy implements.

containerd is a private instance (its own configuration, root, state and socket under the
node's directory), never the one a Docker engine runs; it gets its images from ``docker save``
(nothing is pulled). Pods are attached by Debian's CNI plugins to the bridge ``kubedrf0``,
which carries no masquerading: they reach this machine and each other, nothing beyond. One
real node at a time per machine (the bridge, the kubelet's cgroups and kube-proxy's iptables
chains are the machine's), so callers hold ``/tmp/kubedrf-e2e.lock`` around it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from kubedrf.devcluster import provision
from kubedrf.devcluster.cluster import (
    MANAGED_KEY,
    Cluster,
    ClusterError,
    cluster_dir,
    process_running,
)

BRIDGE: Final = "kubedrf0"
POD_SUBNET: Final = "10.213.0.0/24"
#: The bridge's own address: the Pods' gateway, the node's InternalIP, the apiserver's
#: advertised address.
GATEWAY: Final = "10.213.0.1"
CNI_BIN_DIR: Final = Path("/usr/lib/cni")
#: Where Debian's ``containernetworking-plugins`` put the CNI plugins.
KUBELET_PORT: Final = 10350
#: The annotation by which kwok recognises the nodes it fakes (``cluster.node_manifest``).
FAKE_NODE_SELECTOR: Final = "kwok.x-k8s.io/node=fake"


class NodeError(ClusterError):
    """The real node could not be started or stopped; the message names the component."""


#: The ``kubernetes`` Service's ClusterIP: the first of the apiserver's default range.
KUBERNETES_SERVICE_IP: Final = "10.0.0.1"

#: kwokctl options of a control plane with a real node: Pods verify the apiserver's
#: certificate at the Service's address (the CA is the cluster's own, mounted in every Pod).
CONTROL_PLANE_OPTIONS: Final = {
    "kubeApiserverCertSANs": [
        KUBERNETES_SERVICE_IP,
        GATEWAY,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
}


#: The flags of ours that kwokctl v0.8.0 already passes (to the kwok controller and the
#: apiserver); the others are added.
KWOKCTL_FLAGS: Final = frozenset({"manage-all-nodes", "bind-address"})


def control_plane_patches() -> list[dict[str, Any]]:
    """kwokctl ``componentsPatches`` that let a real kubelet share the control plane."""

    def arg(key: str, value: str) -> dict[str, Any]:
        # kwokctl replaces a flag it sets itself only with ``override``, and with ``override``
        # drops a flag it does not set: so ``override`` exactly for kwokctl's own flags.
        return {"key": key, "value": value, "override": key in KWOKCTL_FLAGS}

    return [
        {
            "name": "kwok-controller",
            "extraArgs": [
                arg("manage-all-nodes", "false"),
                arg("manage-nodes-with-annotation-selector", FAKE_NODE_SELECTOR),
            ],
        },
        {
            "name": "kube-apiserver",
            "extraArgs": [
                arg("bind-address", "0.0.0.0"),
                arg("advertise-address", GATEWAY),
                # The node's hostname resolves nowhere: reach its kubelet (logs, exec) by IP.
                arg("kubelet-preferred-address-types", "InternalIP"),
            ],
        },
    ]


@dataclass(frozen=True, slots=True)
class RealNode:
    """One real node of the named cluster; its files live under the cluster's directory."""

    cluster: Cluster
    name: str
    kubelet: Path
    kube_proxy: Path
    pause_image: str

    @property
    def dir(self) -> Path:
        return cluster_dir(self.cluster.name) / "real-node"

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    def _ctr(self, *args: str, timeout: float = 300) -> str:
        return _check(["ctr", f"--address={self.socket}", "--namespace=k8s.io", *args], timeout)

    def containerd_config(self) -> str:
        # TOML written by hand: a handful of keys, no TOML writer among our dependencies.
        return "\n".join(
            [
                "version = 2",
                f'root = "{self.dir / "containerd-root"}"',
                f'state = "{self.dir / "containerd-state"}"',
                "[grpc]",
                f'  address = "{self.socket}"',
                '[plugins."io.containerd.grpc.v1.cri"]',
                f'  sandbox_image = "{self.pause_image}"',
                # Root without CAP_SYS_RESOURCE (as in this project's sandboxed machines) cannot
                # lower a process's OOM score, which the kubelet asks for (-998 for sandboxes):
                # keep every score at or above containerd's own instead of failing the Pod.
                "  restrict_oom_score_adj = true",
                '[plugins."io.containerd.grpc.v1.cri".cni]',
                f'  bin_dir = "{CNI_BIN_DIR}"',
                f'  conf_dir = "{self.dir / "cni"}"',
                '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
                '  runtime_type = "io.containerd.runc.v2"',
                '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
                "  SystemdCgroup = false",
                f'  Root = "{self.dir / "runc"}"',
                "",
            ]
        )

    def cni_config(self) -> dict[str, Any]:
        ipam = {
            "type": "host-local",
            "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(self.dir / "cni-ipam"),
        }
        bridge = {
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": ipam,
        }
        return {"cniVersion": "1.0.0", "name": "kubedrf", "plugins": [bridge]}

    def kubelet_config(self) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # Served on the bridge only: the apiserver reaches it there for logs and exec.
            "address": GATEWAY,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            # This machine has cgroup v1, which Kubernetes 1.35+ refuses unless told otherwise.
            "failCgroupV1": False,
            "failSwapOn": False,
            "registerWithTaints": [{"key": MANAGED_KEY, "effect": "NoSchedule"}],
            # A shared machine with a big disk: never evict test Pods for its fill level, and
            # leave the images alone.
            "evictionHard": {"memory.available": "100Mi"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "maxPods": 30,
            "resolvConf": "/etc/resolv.conf",
            "podLogsDir": str(self.dir / "pod-logs"),
        }

    def kube_proxy_config(self) -> dict[str, Any]:
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.cluster.kubeconfig)},
            "hostnameOverride": self.name,
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "bindAddress": GATEWAY,
            "healthzBindAddress": "",
            "metricsBindAddress": "",
            "nodePortAddresses": [f"{GATEWAY}/32"],
            # Leave the machine's conntrack sysctls as they are.
            "conntrack": {"maxPerCore": 0},
        }

    def _write_configs(self) -> None:
        for sub in ("cni", "cni-ipam", "kubelet", "logs", "pids"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "containerd.toml").write_text(self.containerd_config())
        (self.dir / "cni" / "10-kubedrf.conflist").write_text(json.dumps(self.cni_config()))
        (self.dir / "kubelet.yaml").write_text(yaml.safe_dump(self.kubelet_config()))
        (self.dir / "kube-proxy.yaml").write_text(yaml.safe_dump(self.kube_proxy_config()))

    def _spawn(self, component: str, cmd: Sequence[str]) -> int:
        log = self.dir / "logs" / f"{component}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                list(cmd),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (self.dir / "pids" / f"{component}.pid").write_text(str(process.pid))
        return process.pid

    def _ensure_bridge(self) -> None:
        """The bridge with the gateway address, before the kubelet binds to that address."""
        if not _attempt(["ip", "link", "show", BRIDGE]):
            _check(["ip", "link", "add", BRIDGE, "type", "bridge"])
        addresses = _check(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE])
        if f" {GATEWAY}/" not in addresses:
            _check(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE])
        _check(["ip", "link", "set", BRIDGE, "up"])

    def start(self, images_archive: Path, timeout: float = 180) -> None:
        """containerd with the images imported, then kube-proxy and the kubelet; returns once
        the node is Ready."""
        self._write_configs()
        self._ensure_bridge()
        self._spawn("containerd", ["containerd", f"--config={self.dir / 'containerd.toml'}"])
        _wait(self.socket.exists, "containerd's socket", 30)
        _wait(self._cri_ready, "containerd's CRI plugin", 30)
        self._ctr("images", "import", "--all-platforms", str(images_archive))
        self._spawn(
            "kube-proxy",
            [str(self.kube_proxy), f"--config={self.dir / 'kube-proxy.yaml'}"],
        )
        self._spawn(
            "kubelet",
            [
                str(self.kubelet),
                f"--config={self.dir / 'kubelet.yaml'}",
                f"--kubeconfig={self.cluster.kubeconfig}",
                f"--root-dir={self.dir / 'kubelet'}",
                f"--cert-dir={self.dir / 'kubelet' / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={GATEWAY}",
                f"--node-labels={MANAGED_KEY}=true",
            ],
        )
        self.cluster.wait_ready([self.name], timeout)

    def _cri_ready(self) -> bool:
        try:
            out = _check(["ctr", f"--address={self.socket}", "plugins", "ls"], 10)
        except NodeError:
            return False
        return any("io.containerd.grpc.v1" in line and " cri " in line for line in out.splitlines())

    def _pid(self, component: str) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.dir / "pids" / f"{component}.pid").read_text())
        return None

    def _stop(self, component: str, timeout: float = 20) -> None:
        pid = self._pid(component)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while process_running(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if process_running(pid):
                os.kill(pid, signal.SIGKILL)
        (self.dir / "pids" / f"{component}.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        """Every container killed and removed, the processes stopped, the mounts, the bridge
        and kube-proxy's iptables chains gone: the machine as it was, but for the images."""
        self._stop("kubelet")
        self._stop("kube-proxy")
        if self._pid("containerd") is not None and self.socket.exists():
            with contextlib.suppress(NodeError):
                for task in self._ctr("tasks", "ls", "-q").split():
                    with contextlib.suppress(NodeError):
                        self._ctr("tasks", "kill", "--signal=SIGKILL", task)
                time.sleep(1)
                for task in self._ctr("tasks", "ls", "-q").split():
                    with contextlib.suppress(NodeError):
                        self._ctr("tasks", "delete", "--force", task)
                for container in self._ctr("containers", "ls", "-q").split():
                    with contextlib.suppress(NodeError):
                        self._ctr("containers", "delete", container)
        self._stop("containerd")
        with contextlib.suppress(NodeError):
            _check([str(self.kube_proxy), "--cleanup"], 60)
        remove_kubelet_chains()
        for netns in Path("/var/run/netns").glob("cni-*"):
            _attempt(["ip", "netns", "delete", netns.name])
        unmount_under(self.dir)
        _attempt(["ip", "link", "delete", BRIDGE])


#: The iptables chains a kubelet makes (table, chain, the built-in chains that jump to it).
KUBELET_CHAINS: Final = (
    ("filter", "KUBE-FIREWALL", ("INPUT", "OUTPUT")),
    ("filter", "KUBE-KUBELET-CANARY", ()),
    ("nat", "KUBE-KUBELET-CANARY", ()),
    ("mangle", "KUBE-KUBELET-CANARY", ()),
    ("mangle", "KUBE-IPTABLES-HINT", ()),
)


def remove_kubelet_chains() -> None:
    """Undo the kubelet's own iptables chains (kube-proxy's go with ``--cleanup``)."""
    for tool in ("iptables", "ip6tables"):
        for table, chain, jumps in KUBELET_CHAINS:
            for parent in jumps:
                while _attempt([tool, "-t", table, "-D", parent, "-j", chain]):
                    pass
            _attempt([tool, "-t", table, "-F", chain])
            _attempt([tool, "-t", table, "-X", chain])


def unmount_under(path: Path) -> None:
    """Unmount everything mounted below ``path``, deepest first, so it can be deleted."""
    prefix = str(path.resolve()) + "/"
    mounts = [
        line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines() if line
    ]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        _attempt(["umount", "--lazy", mount])


def _attempt(cmd: Sequence[str]) -> bool:
    """Run a best-effort command (cleanup, probes); whether it succeeded."""
    return subprocess.run(list(cmd), capture_output=True, check=False).returncode == 0


def _check(cmd: Sequence[str], timeout: float = 60) -> str:
    try:
        result = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeError(f"{' '.join(cmd)}: {exc}") from exc
    if result.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed (exit {result.returncode}): {result.stderr}")
    return result.stdout


def _wait(ready: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise NodeError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(0.3)


def binaries(progress: provision.Progress = provision.log) -> Mapping[str, Path]:
    """The kubelet and kube-proxy of the pinned Kubernetes build (compiled when missing)."""
    return provision.ensure(provision.KUBE_NODE, progress)
