"""The real node's configuration, read without starting anything (``make test-kind`` runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubedrf.devcluster import cluster as devcluster
from kubedrf.devcluster import images, node, versions


@pytest.fixture
def real_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> node.RealNode:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    dev = devcluster.Cluster(name="kind-unit", binaries={})
    return node.RealNode(
        cluster=dev,
        name="real-0",
        kubelet=Path("/bin/kubelet"),
        kube_proxy=Path("/bin/kube-proxy"),
        pause_image="kubedrf.local/pause:abc",
    )


BINARIES = {
    name: Path("/bin") / name
    for name in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "kwok",
    )
}


def _args(component: str) -> dict[str, dict[str, object]]:
    (patch,) = [p for p in node.control_plane_patches() if p["name"] == component]
    return {arg["key"]: arg for arg in patch["extraArgs"]}


def test_kwok_is_told_to_fake_only_the_nodes_annotated_as_fake() -> None:
    args = _args("kwok-controller")
    assert args["manage-all-nodes"]["value"] == "false"
    assert args["manage-all-nodes"]["override"] is True
    selector = args["manage-nodes-with-annotation-selector"]
    assert selector["value"] == f"{devcluster.KWOK_NODE_ANNOTATION}=fake"
    # kwokctl drops an overriding flag it does not set itself.
    assert selector["override"] is False


def test_the_apiserver_advertises_the_pod_gateway_and_reaches_kubelets_by_ip() -> None:
    args = _args("kube-apiserver")
    assert args["bind-address"]["override"] is True
    assert args["advertise-address"]["value"] == node.GATEWAY
    assert args["kubelet-preferred-address-types"]["value"] == "InternalIP"


def test_kwokctl_config_carries_the_patches_and_the_certificate_names() -> None:
    config = json.loads(
        devcluster.kwokctl_config(
            BINARIES,
            node.control_plane_patches(),
            node.CONTROL_PLANE_OPTIONS,
        ).split("---\n")[0]
    )
    assert config["componentsPatches"] == node.control_plane_patches()
    sans = config["options"]["kubeApiserverCertSANs"]
    assert {node.KUBERNETES_SERVICE_IP, node.GATEWAY, "kubernetes.default.svc"} <= set(sans)
    # What every other cluster keeps.
    assert config["options"]["bindAddress"] == "127.0.0.1"


def test_kwokctl_config_without_a_real_node_has_no_patches() -> None:
    config = json.loads(devcluster.kwokctl_config(BINARIES).split("---\n")[0])
    assert "componentsPatches" not in config
    assert "kubeApiserverCertSANs" not in config["options"]


def test_containerd_is_a_private_instance_that_never_lowers_oom_scores(
    real_node: node.RealNode,
) -> None:
    toml = real_node.containerd_config()
    assert f'address = "{real_node.socket}"' in toml
    assert f'root = "{real_node.dir / "containerd-root"}"' in toml
    assert 'sandbox_image = "kubedrf.local/pause:abc"' in toml
    assert "restrict_oom_score_adj = true" in toml
    assert real_node.dir.is_relative_to(devcluster.cluster_dir("kind-unit"))


def test_pods_join_the_bridge_without_masquerading(real_node: node.RealNode) -> None:
    (bridge,) = real_node.cni_config()["plugins"]
    assert bridge["bridge"] == node.BRIDGE
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": node.POD_SUBNET, "gateway": node.GATEWAY}]]


def test_the_kubelet_registers_tainted_and_accepts_cgroup_v1(real_node: node.RealNode) -> None:
    config = real_node.kubelet_config()
    assert config["failCgroupV1"] is False
    assert config["registerWithTaints"] == [{"key": devcluster.MANAGED_KEY, "effect": "NoSchedule"}]
    assert config["containerRuntimeEndpoint"] == f"unix://{real_node.socket}"
    assert config["podLogsDir"].startswith(str(real_node.dir))


def test_the_base_image_key_changes_with_the_package_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = images.base_key()
    monkeypatch.setattr(versions, "DEBIAN_BASE_PACKAGES", (*versions.DEBIAN_BASE_PACKAGES, "jq"))
    assert images.base_key() != before
    assert len(before) == 12
