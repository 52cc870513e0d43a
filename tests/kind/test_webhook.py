"""The admission webhook as a user gets it: the chart upgraded with ``webhook.enabled=true``,
its certificate made by Helm, served by the master's Pods behind the chart's Service.

The apiserver reaches the webhook at the Service's ClusterIP, which kube-proxy on this machine
routes to a master Pod, and checks its certificate against the chart's CA. It runs last (the
files run in name order): the other tests' Pods are created without the webhook in the way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from kubedrf.api import GROUP, ROLE, VERSION
from kubedrf.workloads.tasks import GATE
from tests.e2e.support import ROOT, wait_for
from tests.kind.conftest import NODE, RELEASE, RELEASE_NAMESPACE, RealCluster

pytestmark = pytest.mark.kind

CHART = str(ROOT / "charts" / "kubedrf")


@pytest.fixture
def webhook(real: RealCluster) -> Iterator[None]:
    """The release with the webhook on; turned off again after, without waiting for it."""
    # The install's values file again, not --reuse-values: Helm drops its nulls (the masters'
    # requests) before checking the schema only when they come from a file.
    common = (RELEASE, CHART, "-n", RELEASE_NAMESPACE, "-f", str(real.values))
    real.helm(
        "upgrade", *common, "--set", "webhook.enabled=true", "--wait", "--timeout=5m", timeout=330
    )
    yield
    real.helm("upgrade", *common, "--set", "webhook.enabled=false")


@pytest.fixture
def team(core: client.CoreV1Api, api: client.ApiClient) -> Iterator[str]:
    """A namespace labelled with a Role of its own that allows it."""
    custom = client.CustomObjectsApi(api)
    suffix = uuid.uuid4().hex[:6]
    namespace, role = f"team-{suffix}", f"team-{suffix}"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Role",
        "metadata": {"name": role},
        "spec": {"namespaces": [namespace]},
    }
    custom.create_cluster_custom_object(GROUP, VERSION, ROLE.plural, body)
    labels = {"kubedrf.io/role": role}
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels))
    )
    yield namespace
    core.delete_namespace(namespace)
    custom.delete_cluster_custom_object(GROUP, VERSION, ROLE.plural, role)


def _plain_pod(real: RealCluster, name: str) -> dict[str, Any]:
    """A Pod as users write it: no gate, no toleration, no node."""
    container = {
        "name": "work",
        "image": real.images.base,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", "echo placed by an offer"],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
    }
    return {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }


def _gates(pod: Any) -> list[str]:
    return [gate.name for gate in pod.spec.scheduling_gates or []]


@pytest.mark.usefixtures("webhook")
def test_a_pod_created_without_the_gate_is_gated_by_the_masters_webhook_and_then_placed(
    real: RealCluster, core: client.CoreV1Api, team: str
) -> None:
    def answering() -> bool:
        try:
            probe = core.create_namespaced_pod(team, _plain_pod(real, "probe"), dry_run="All")
        except client.exceptions.ApiException:
            return False  # failurePolicy Fail: refused until a master Pod serves
        return _gates(probe) == [GATE]

    wait_for(answering, "the webhook to answer through its Service", timeout=90)
    created = core.create_namespaced_pod(team, _plain_pod(real, "work"))
    assert _gates(created) == [GATE]

    def finished() -> Any:
        pod = core.read_namespaced_pod("work", team)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    pod = wait_for(finished, "the gated Pod to be placed and finish", timeout=120)
    assert pod.status.phase == "Succeeded"
    assert pod.spec.node_name == NODE
    assert (pod.metadata.labels or {}).get("kubedrf.io/framework") == "workloads"
    assert core.read_namespaced_pod_log("work", team) == "placed by an offer\n"
