"""Fixtures of ``make test-kind``: real containers on a real node of the local control plane.

The session builds the images offline (``kubedrf.devcluster.images``), starts a control plane
named ``kubedrf-kind-<pid>`` with a real node beside it (``kubedrf.devcluster.node``) and
installs the chart with the kubedrf image, so the master runs in its Pods. Everything it
started is stopped at the end, the images excepted (they are the cache).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from kubedrf.devcluster import cluster as devcluster
from kubedrf.devcluster import images as devimages
from kubedrf.devcluster import node as devnode
from kubedrf.framework.model import PAUSE_IMAGE
from tests.e2e.conftest import api, core, namespace
from tests.e2e.support import ROOT, TOLERATION, Frameworks, Helm

__all__ = ["api", "core", "namespace"]

KIND_PREFIX = "kubedrf-kind-"
NODE = "kubedrf-real-0"
RELEASE = "kubedrf"
RELEASE_NAMESPACE = "kubedrf-system"
#: The namespaces of the manifests in ``examples/frameworks/deploy/``.
BATCH_NAMESPACE = "batch"
SEED_NAMESPACE = "seed"
GANG_NAMESPACE = "gang"
PRIMARY_BACKUP_NAMESPACE = "primary-backup"
EXAMPLE_NAMESPACES = [BATCH_NAMESPACE, SEED_NAMESPACE, GANG_NAMESPACE, PRIMARY_BACKUP_NAMESPACE]


@dataclass(frozen=True, slots=True)
class RealCluster:
    dev: devcluster.Cluster
    node: devnode.RealNode
    images: devimages.Images
    helm: Helm
    #: The chart values the release was installed with.
    values: Path


@pytest.fixture(scope="session")
def real() -> Iterator[RealCluster]:
    """Images, control plane, real node and chart, once per session."""
    built = devimages.ensure_all(ROOT)
    kube_node = devnode.binaries()
    name = f"{KIND_PREFIX}{os.getpid()}"
    dev = devcluster.up(
        name,
        nodes=0,
        component_patches=devnode.control_plane_patches(),
        extra_options=devnode.CONTROL_PLANE_OPTIONS,
    )
    node = devnode.RealNode(
        cluster=dev,
        name=NODE,
        kubelet=kube_node["kubelet"],
        kube_proxy=kube_node["kube-proxy"],
        pause_image=built.pause,
    )
    try:
        # A task that names no image runs Kubernetes' pause image, which nothing can pull
        # here: the built pause image stands in for it under that name.
        subprocess.run(["docker", "tag", built.pause, PAUSE_IMAGE], check=True, timeout=60)
        archive = devimages.save([*built.all, PAUSE_IMAGE], node.dir / "images.tar")
        node.start(archive)
        helm = Helm(dev)
        repository, _, tag = built.kubedrf.rpartition(":")
        values = node.dir / "values.yaml"
        values.write_text(
            yaml.safe_dump(
                {
                    "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
                    # The one node is a managed one, so the master must tolerate its taint.
                    "tolerations": [TOLERATION],
                    "allocationInterval": "500ms",
                    # The example frameworks' controllers run on that node too, so their
                    # namespaces may tolerate the taint (kind has unmanaged nodes for them).
                    "admissionPolicy": {"exemptNamespaces": ["kube-system", *EXAMPLE_NAMESPACES]},
                    # The masters share the one node with the tasks: without requests they
                    # leave its allocatable to the tasks, as the seed example's arithmetic
                    # (shares of the node's allocatable) needs.
                    "resources": {"requests": None, "limits": None},
                }
            )
        )
        helm(
            "install",
            RELEASE,
            str(ROOT / "charts" / "kubedrf"),
            "-n",
            RELEASE_NAMESPACE,
            "--create-namespace",
            "-f",
            str(values),
            "--wait",
            "--timeout=5m",
            timeout=330,
        )
        yield RealCluster(dev=dev, node=node, images=built, helm=helm, values=values)
    finally:
        if os.environ.get("KUBEDRF_E2E_KEEP") != "1":
            node.stop()
            devcluster.down(name, dev.binaries)


@pytest.fixture(scope="session")
def cluster(real: RealCluster) -> devcluster.Cluster:
    """The e2e fixtures (api, core, namespace) then work on this cluster too."""
    return real.dev


@pytest.fixture
def frameworks(api: client.ApiClient, namespace: str) -> Frameworks:
    """Hand-driven frameworks whose tasks name the scheduler each Offer asks for, as the SDK
    does: the chart installed here refuses claims that skip the master's binder."""
    return Frameworks(api, namespace, follow_offers=True)
