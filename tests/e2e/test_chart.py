"""The Helm chart on the local control plane: valid manifests, sufficient and least RBAC.

kubeconform checks the rendered manifests against schemas generated from this apiserver's
OpenAPI and our CRDs (``kubedrf.devcluster.schemas``). The chart is installed into a
namespace that enforces the restricted Pod Security Standard, its master Pods pinned to a
node of their own (kwok runs nothing in them, so they never allocate); a local ``kubedrf
master`` that authenticates with a token of the chart's ServiceAccount then runs the seed
example, so the chart's RBAC is shown to be enough, and requests beyond it are refused.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubedrf.devcluster import cluster as devcluster
from kubedrf.devcluster import schemas
from kubedrf.devcluster.cluster import NodeShape
from tests.e2e.support import (
    ROOT,
    TOLERATION,
    Frameworks,
    Helm,
    MasterProcess,
    NodePool,
    assert_no_overcommit,
    service_account_kubeconfig,
    wait_for,
)

pytestmark = pytest.mark.e2e

CHART = ROOT / "charts" / "kubedrf"
LEASE = "kubedrf-master"


@dataclass
class Release:
    name: str
    namespace: str
    #: The node the chart's master Pods are pinned to.
    node: str

    @property
    def service_account(self) -> str:
        return f"{self.name}-kubedrf-master"

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@pytest.fixture(scope="module")
def helm(cluster: devcluster.Cluster) -> Helm:
    return Helm(cluster)


@pytest.fixture(scope="module")
def release(
    cluster: devcluster.Cluster, helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """The chart installed with its defaults (2 replicas), its Pods on a node of their own."""
    suffix = uuid.uuid4().hex[:6]
    ours = Release(name=f"chart-{suffix}", namespace=f"chart-{suffix}", node=f"chart-{suffix}")
    cluster.add_nodes([ours.node], devcluster.NodeShape(cpu="2", memory="4Gi"))
    cluster.wait_ready([ours.node])
    cluster.kubectl("create", "namespace", ours.namespace)
    cluster.kubectl(
        "label", "namespace", ours.namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "nodeSelector": {"kubernetes.io/hostname": ours.node},
                "tolerations": [TOLERATION],
            }
        )
    )
    # Other tests of the session may have applied crds/ with kubectl already: the release takes
    # them over, as a user's first install or an upgrade from 0.1.0 does.
    helm(
        "install",
        ours.name,
        str(CHART),
        "-n",
        ours.namespace,
        "-f",
        str(values),
        "--take-ownership",
        "--wait",
    )
    try:
        yield ours
    finally:
        if ours.name in helm("list", "-q", "-n", ours.namespace):
            helm("uninstall", ours.name, "-n", ours.namespace, "--wait")
        cluster.kubectl("delete", "namespace", ours.namespace, "--wait=false")
        cluster.remove_nodes([ours.node])


@pytest.fixture
def as_master(cluster: devcluster.Cluster, release: Release, tmp_path: Path) -> Path:
    return service_account_kubeconfig(
        cluster, release.namespace, release.service_account, tmp_path / "master.kubeconfig"
    )


# -- the rendered manifests --------------------------------------------------------------------


def test_rendered_manifests_conform_to_the_apiserver_schemas(
    cluster: devcluster.Cluster, helm: Helm, tmp_path: Path
) -> None:
    openapi = json.loads(cluster.kubectl("get", "--raw", "/openapi/v2", timeout=120))
    generated = schemas.from_openapi(openapi)
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        generated.update(schemas.from_crd(yaml.safe_load(crd.read_text()), openapi))
    location = schemas.write(tmp_path / "schemas", generated)

    everything = {
        "replicas": 3,
        "verbose": True,
        "webhook": {"enabled": True, "failurePolicy": "Ignore", "exemptNamespaces": ["ops"]},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "serviceAccount": {"annotations": {"example.com/role": "kubedrf"}},
        "imagePullSecrets": [{"name": "registry"}],
        "podAnnotations": {"example.com/scrape": "true"},
        "podLabels": {"team": "scheduling"},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [TOLERATION],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubedrf.io/managed", "operator": "DoesNotExist"}
                            ]
                        }
                    ]
                }
            }
        },
    }
    (tmp_path / "everything.yaml").write_text(yaml.safe_dump(everything))
    rendered = []
    for name, args in (
        ("defaults", []),
        ("everything", ["-f", str(tmp_path / "everything.yaml")]),
        ("no-replicas", ["--set", "replicas=0"]),
    ):
        out = helm("template", "r", str(CHART), "-n", "kubedrf-system", "--include-crds", *args)
        (tmp_path / f"{name}.yaml").write_text(out)
        rendered.append(tmp_path / f"{name}.yaml")
    # A control: a manifest with a misspelt field must be refused, or the check proves nothing.
    control = tmp_path / "control.yaml"
    control.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {prots: [{port: 80}]}\n"
    )

    results = kubeconform(
        cluster, location, *rendered, control, *sorted((ROOT / "examples" / "manifests").iterdir())
    )
    statuses = {(r["filename"], r["kind"], r["name"]): r["status"] for r in results}
    assert statuses.pop((str(control), "Service", "x")) == "statusInvalid"
    # Its CRD is not installed here, so no schema exists for the ServiceMonitor: skipped.
    assert statuses.pop((str(rendered[1]), "ServiceMonitor", "r-kubedrf-master")) == "statusSkipped"
    assert set(statuses.values()) == {"statusValid"}, [
        r for r in results if r["status"] != "statusValid"
    ]
    kinds = {kind for _, kind, _ in statuses}
    assert kinds >= {
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "PodDisruptionBudget",
        "Pod",
        "Framework",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Secret",
    }


def kubeconform(cluster: devcluster.Cluster, location: str, *files: Path) -> list[dict[str, Any]]:
    cmd = [
        str(cluster.binaries["kubeconform"]),
        "-strict",
        "-output=json",
        "-verbose",
        f"-schema-location={location}",
        "-skip=monitoring.coreos.com/v1/ServiceMonitor",
        *map(str, files),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if not result.stdout.strip():
        raise AssertionError(f"kubeconform failed:\n{result.stderr}")
    resources: list[dict[str, Any]] = json.loads(result.stdout)["resources"]
    return resources


# -- installed ---------------------------------------------------------------------------------


def test_install_serves_the_crds_and_creates_the_rbac(
    cluster: devcluster.Cluster, release: Release
) -> None:
    crds = [
        path.stem.removeprefix("kubedrf.io_") + ".kubedrf.io" for path in CHART.glob("files/crds/*")
    ]
    assert len(crds) == 6
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", *crds)
    account = release.service_account
    cluster.kubectl("get", "serviceaccount", account, "-n", release.namespace)
    cluster.kubectl("get", "clusterrole,clusterrolebinding", account)
    cluster.kubectl("get", "role,rolebinding", account, "-n", release.namespace)
    binding = json.loads(cluster.kubectl("get", "clusterrolebinding", account, "-o", "json"))
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": release.namespace}
    ]


def test_master_pods_pass_the_restricted_policy_and_helm_test_passes(
    cluster: devcluster.Cluster, helm: Helm, release: Release
) -> None:
    # `helm install --wait` returned, so both replicas were admitted under the namespace's
    # `enforce=restricted` policy and became Ready (kwok fakes Running).
    deployment = json.loads(
        cluster.kubectl(
            "get", "deployment", release.service_account, "-n", release.namespace, "-o", "json"
        )
    )
    assert deployment["status"]["readyReplicas"] == 2
    pods = json.loads(
        cluster.kubectl(
            "get",
            "pods",
            "-n",
            release.namespace,
            "-o",
            "json",
            "-l",
            f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component=master",
        )
    )["items"]
    assert {pod["spec"]["nodeName"] for pod in pods} == {release.node}
    pdb = json.loads(
        cluster.kubectl(
            "get", "pdb", release.service_account, "-n", release.namespace, "-o", "json"
        )
    )
    assert pdb["spec"]["minAvailable"] == 1
    out = helm("test", release.name, "-n", release.namespace, "--timeout=90s")
    assert "Phase:          Succeeded" in out, out


@pytest.fixture
def master(
    cluster: devcluster.Cluster, pool: NodePool, release: Release, as_master: Path, tmp_path: Path
) -> Iterator[MasterProcess]:
    """A local master (not started) managing ``pool``, as the chart's ServiceAccount."""
    flags = {"offer-retention": "1s", **leader_election_flags(release)}
    process = MasterProcess(cluster, pool, tmp_path / "master.log", kubeconfig=as_master, **flags)
    try:
        yield process
    finally:
        process.stop()
        if process.log.exists():  # pytest shows this only when the test failed
            print(f"--- master log ---\n{process.tail(80)}")


@pytest.fixture
def frameworks(api: client.ApiClient, namespace: str) -> Iterator[Frameworks]:
    """Frameworks in a fresh namespace, deleted before it is: a namespace takes a while to
    go, and the next test's master would otherwise see their demand meanwhile."""
    ours = Frameworks(api, namespace, follow_offers=True)  # as the claims policy requires
    try:
        yield ours
    finally:
        ours.custom.delete_collection_namespaced_custom_object(
            "kubedrf.io", "v1alpha1", namespace, "frameworks"
        )

        def gone() -> bool:
            listed = ours.custom.list_namespaced_custom_object(
                "kubedrf.io", "v1alpha1", namespace, "frameworks"
            )
            return not listed["items"]

        wait_for(gone, f"the frameworks of {namespace} to be deleted")


def test_the_service_account_is_enough_for_the_master(
    master: MasterProcess, pool: NodePool, api: client.ApiClient, frameworks: Frameworks
) -> None:
    """The seed example, a refused task and offer clean-up, run by a master as the chart's SA."""
    namespace = frameworks.namespace
    pool.add(1, NodeShape(cpu="9", memory="18Gi"))
    frameworks.create("a", {"cpu": "1", "memory": "4Gi"})
    frameworks.create("b", {"cpu": "3", "memory": "1Gi"})
    frameworks.create("c", None)  # declares no demand: gets no offers
    master.start()  # every demand is known before the first cycle
    a_offers, b_offers = frameworks.wait_offers("a"), frameworks.wait_offers("b")
    assert sum(s["count"] for o in a_offers for s in o["spec"]["sizedFor"]) == 3
    assert sum(s["count"] for o in b_offers for s in o["spec"]["sizedFor"]) == 2

    # A task of c's claiming a's offer: the master deletes it and records why.
    thief = dict(a_offers[0], spec=dict(a_offers[0]["spec"], framework="c"))
    frameworks.launch(thief, "thief", {"cpu": "1"})
    core = client.CoreV1Api(api)

    def refused() -> bool:
        pods = core.list_namespaced_pod(namespace).items
        return all(pod.metadata.name != "thief" for pod in pods)

    wait_for(refused, "the thief task to be refused")
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=thief").items
    assert any(event.reason == "OfferOfAnotherFramework" for event in events)

    frameworks.accept_all("a")
    frameworks.accept_all("b")
    for name, tasks in (("a", 3), ("b", 2)):
        status = frameworks.wait_status(name, tasks)
        assert status["dominantShare"] == pytest.approx(2 / 3, abs=1e-3)
    # Answered offers are deleted after the retention.
    wait_for(lambda: frameworks.offers(phase=None) == [], "answered offers to be deleted")
    assert_no_overcommit(api, pool.names)
    assert_no_rbac_denials(master.log)


def leader_election_flags(release: Release) -> dict[str, str]:
    """The chart's leader-election flags, once ``kubedrf master`` has them."""
    out = subprocess.run(
        [sys.executable, "-m", "kubedrf.cli.main", "master", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "--leader-election-namespace" not in out:
        return {}
    return {"leader-election-namespace": release.namespace, "leader-election-name": LEASE}


#: How the apiserver words an RBAC denial: verb, resource, API group.
RBAC_DENIAL = re.compile(r'cannot (\w+) resource \\?"([\w/.-]+)\\?" in API group \\?"([\w.-]*)\\?"')
#: kopf watches CRDs to notice new ones at runtime; the chart does not grant it, so kopf
#: falls back to the resources it found at start-up (the chart installs the CRDs first).
TOLERATED_DENIALS = {
    ("list", "customresourcedefinitions", "apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions", "apiextensions.k8s.io"),
}


def assert_no_rbac_denials(log: Path) -> None:
    denials = set(RBAC_DENIAL.findall(log.read_text(errors="replace"))) - TOLERATED_DENIALS
    assert not denials, f"the master was refused (verb, resource, group): {sorted(denials)}"


def test_requests_beyond_the_rbac_are_refused(release: Release, as_master: Path) -> None:
    api = config.new_client_from_config(config_file=str(as_master))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    custom, leases = client.CustomObjectsApi(api), client.CoordinationV1Api(api)
    refused = {
        "list secrets": core.list_secret_for_all_namespaces,
        "create a Deployment": lambda: apps.create_namespaced_deployment(
            release.namespace,
            {
                "metadata": {"name": "not-mine"},
                "spec": {
                    "selector": {"matchLabels": {"a": "b"}},
                    "template": {
                        "metadata": {"labels": {"a": "b"}},
                        "spec": {"containers": [{"name": "c", "image": "c"}]},
                    },
                },
            },
        ),
        "create a Pod": lambda: core.create_namespaced_pod(
            release.namespace,
            {
                "metadata": {"name": "not-mine"},
                "spec": {"containers": [{"name": "c", "image": "c"}]},
            },
        ),
        # The built-in framework creates its own Framework and heartbeat Lease in tenant
        # namespaces, and may update those, by name, and nobody else's.
        "patch another Framework": lambda: custom.patch_namespaced_custom_object(
            "kubedrf.io",
            "v1alpha1",
            release.namespace,
            "frameworks",
            "someone-else",
            {"spec": {"roles": ["x"]}},
        ),
        "read another Lease": lambda: leases.read_namespaced_lease(
            "someone-else", release.namespace
        ),
        "patch another Lease": lambda: leases.patch_namespaced_lease(
            "someone-else", release.namespace, {"spec": {"holderIdentity": "x"}}
        ),
        "patch a node": lambda: core.patch_node(release.node, {"metadata": {"labels": {"a": "b"}}}),
    }
    for what, request in refused.items():
        with pytest.raises(ApiException) as error:
            request()
        assert error.value.status == 403, f"{what}: {error.value.status} {error.value.reason}"

    # What leader election needs: create, read and renew its own Lease (which a master with
    # leader election may have created already).
    body = {"metadata": {"name": LEASE}, "spec": {"holderIdentity": "test"}}
    try:
        leases.create_namespaced_lease(release.namespace, body)
    except ApiException as error:
        assert error.status == 409, error.reason
    lease = leases.read_namespaced_lease(LEASE, release.namespace)
    lease.spec.holder_identity = "test-renewed"
    leases.replace_namespaced_lease(LEASE, release.namespace, lease)


# -- the admission policy ----------------------------------------------------------------------

TASK_LABELS = {
    "kubedrf.io/framework": "a",
    "kubedrf.io/role": "batch",
    "kubedrf.io/offer": "a-offer-1",
}


def tolerating_pod(
    name: str, labels: dict[str, str] | None = None, toleration: dict[str, str] = TOLERATION
) -> dict[str, Any]:
    """A Pod that tolerates the managed taint; one that claims an offer names kubedrf as its
    scheduler, as the claims policy requires (its own tests below break that on purpose)."""
    labels = labels or {}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [{"name": "task", "image": "task"}],
            "tolerations": [toleration],
            **({"schedulerName": "kubedrf"} if "kubedrf.io/offer" in labels else {}),
        },
    }


def refusal(request: Callable[[], object]) -> str | None:
    """The message of the apiserver's refusal of ``request``, or ``None`` if it was admitted."""
    try:
        request()
    except ApiException as error:
        assert error.status == 403, f"{error.status} {error.reason}: {error.body}"
        return str(json.loads(error.body)["message"])
    return None


def creation_refusal(core: client.CoreV1Api, namespace: str, pod: dict[str, Any]) -> str | None:
    """Why creating ``pod`` (as a dry run: nothing is left behind) is refused, if it is."""
    return refusal(lambda: core.create_namespaced_pod(namespace, pod, dry_run="All"))


def test_a_pod_tolerating_the_managed_taint_needs_the_task_labels(
    cluster: devcluster.Cluster, release: Release, core: client.CoreV1Api, namespace: str
) -> None:
    """Refused without the labels, with the rule and the fix; admitted with them (the master
    then judges it against its Offer, as the thief task above shows)."""
    policy = f"{release.name}-kubedrf-managed-nodes"
    # The apiserver compiles a new policy in the background: the first refusal may take a moment.
    message = wait_for(
        lambda: creation_refusal(core, namespace, tolerating_pod("outsider")), f"{policy} to refuse"
    )
    assert f"ValidatingAdmissionPolicy '{policy}'" in message
    # The apiserver type-checked every expression against the Pod schema and found no fault.
    out = cluster.kubectl("get", "validatingadmissionpolicy", policy, "-o", "json")
    status = json.loads(out)["status"]
    assert status["observedGeneration"] == 1
    assert not status.get("typeChecking", {}).get("expressionWarnings"), status
    assert (
        "this Pod tolerates the taint kubedrf.io/managed of the nodes kubedrf manages but lacks"
        " kubedrf.io/framework, kubedrf.io/role, kubedrf.io/offer." in message
    )
    assert f"exempt from this rule ({release.namespace}, kube-system)" in message
    # A keyless Exists toleration tolerates the managed taint too.
    everything = {"operator": "Exists"}
    assert creation_refusal(core, namespace, tolerating_pod("anything", toleration=everything))
    partial = creation_refusal(
        core, namespace, tolerating_pod("half", {"kubedrf.io/framework": "a"})
    )
    assert partial is not None and "lacks kubedrf.io/role, kubedrf.io/offer." in partial
    empty = creation_refusal(
        core, namespace, tolerating_pod("empty", {**TASK_LABELS, "kubedrf.io/offer": ""})
    )
    assert empty is not None and "lacks kubedrf.io/offer." in empty

    assert creation_refusal(core, namespace, tolerating_pod("task", TASK_LABELS)) is None
    intolerant = tolerating_pod("elsewhere")
    del intolerant["spec"]["tolerations"]
    assert creation_refusal(core, namespace, intolerant) is None


def test_a_toleration_added_by_update_needs_the_task_labels_too(
    release: Release, core: client.CoreV1Api, namespace: str, as_master: Path
) -> None:
    """The gated-Pod path: a Pod waits behind a scheduling gate, and gets its toleration when
    it is let through; only a labelled one may (the master labels it, as only it may)."""
    gated = tolerating_pod("gated")
    gated["spec"].pop("tolerations")
    gated["spec"]["schedulingGates"] = [{"name": "kubedrf.io/offer"}]
    core.create_namespaced_pod(namespace, gated)
    tolerate = {"spec": {"tolerations": [TOLERATION]}}
    message = wait_for(
        lambda: refusal(
            lambda: core.patch_namespaced_pod("gated", namespace, tolerate, dry_run="All")
        ),
        "the toleration added by update to be refused",
    )
    assert "lacks kubedrf.io/framework, kubedrf.io/role, kubedrf.io/offer." in message
    master = client.CoreV1Api(config.new_client_from_config(config_file=str(as_master)))
    master.patch_namespaced_pod("gated", namespace, {"metadata": {"labels": TASK_LABELS}})
    pod = core.patch_namespaced_pod("gated", namespace, tolerate)
    assert [t.key for t in pod.spec.tolerations or []].count("kubedrf.io/managed") == 1


def test_a_claim_on_an_offer_goes_through_the_masters_binder(
    cluster: devcluster.Cluster,
    release: Release,
    core: client.CoreV1Api,
    namespace: str,
    as_master: Path,
) -> None:
    """With the master binding (the default), a Pod labelled kubedrf.io/offer that names
    another scheduler or sets spec.nodeName would run before the master checked its claim:
    refused at admission, each with the fix. The label cannot be added or changed afterwards
    by anyone but the master."""
    policy = f"{release.name}-kubedrf-offer-claims"
    claim = tolerating_pod("claim", TASK_LABELS)
    del claim["spec"]["schedulerName"]
    message = wait_for(lambda: creation_refusal(core, namespace, claim), f"{policy} to refuse")
    assert f"ValidatingAdmissionPolicy '{policy}'" in message
    assert (
        "this Pod claims offer a-offer-1 (label kubedrf.io/offer) but names scheduler"
        " default-scheduler: set spec.schedulerName: kubedrf" in message
    )
    status = json.loads(cluster.kubectl("get", "validatingadmissionpolicy", policy, "-o", "json"))
    assert status["status"]["observedGeneration"] == 1
    assert not status["status"].get("typeChecking", {}).get("expressionWarnings"), status

    placed = tolerating_pod("placed", TASK_LABELS)
    placed["spec"]["nodeName"] = release.node
    message = creation_refusal(core, namespace, placed)
    assert message is not None and "sets spec.nodeName, which skips the check" in message
    assert creation_refusal(core, namespace, tolerating_pod("claim", TASK_LABELS)) is None

    # A Pod that is no claim cannot become one, or claim another offer, except by the master.
    plain = {"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "c"}]}}
    core.create_namespaced_pod(namespace, plain)
    labelled = {"metadata": {"labels": TASK_LABELS}}
    message = refusal(lambda: core.patch_namespaced_pod("plain", namespace, labelled))
    assert message is not None and "only the kubedrf master may add or change it" in message
    master = client.CoreV1Api(config.new_client_from_config(config_file=str(as_master)))
    master.patch_namespaced_pod("plain", namespace, labelled)
    other = {"metadata": {"labels": {"kubedrf.io/offer": "b-offer-1"}}}
    message = refusal(lambda: core.patch_namespaced_pod("plain", namespace, other))
    assert message is not None and "(here: a-offer-1)" in message
    # Other updates of a claim pass.
    pod = core.patch_namespaced_pod("plain", namespace, {"metadata": {"annotations": {"x": "y"}}})
    assert pod.metadata.labels["kubedrf.io/offer"] == "a-offer-1"


def test_daemon_set_pods_and_exempt_namespaces_may_tolerate_the_managed_taint(
    release: Release, api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    wait_for(
        lambda: creation_refusal(core, namespace, tolerating_pod("outsider")),
        "the policy to refuse",
    )
    assert creation_refusal(core, "kube-system", tolerating_pod("agent")) is None

    # A node agent in a namespace that is not exempt, on the release's node alone.
    selector = {"app": "agent"}
    template = tolerating_pod("agent", selector)
    del template["metadata"]["name"]
    template["spec"]["nodeSelector"] = {"kubernetes.io/hostname": release.node}
    client.AppsV1Api(api).create_namespaced_daemon_set(
        namespace,
        {
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": selector}, "template": template},
        },
    )

    def agent() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=agent").items
        return pods[0] if pods else None

    try:
        pod = wait_for(agent, "the DaemonSet's Pod to be admitted")
    except AssertionError:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=agent")
        raise AssertionError([e.message for e in events.items[-1:]]) from None
    assert pod.metadata.owner_references[0].kind == "DaemonSet"
    assert not set(TASK_LABELS) & set(pod.metadata.labels)


def test_upgrade_changes_the_allocation_interval(
    cluster: devcluster.Cluster, helm: Helm, release: Release
) -> None:
    helm(
        "upgrade",
        release.name,
        str(CHART),
        "-n",
        release.namespace,
        "--reuse-values",
        "--set",
        "allocationInterval=3s",
        "--wait",
    )
    deployment = json.loads(
        cluster.kubectl(
            "get", "deployment", release.service_account, "-n", release.namespace, "-o", "json"
        )
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--allocation-interval=3s" in args
    assert f"--leader-election-namespace={release.namespace}" in args
    status = json.loads(helm("status", release.name, "-n", release.namespace, "-o", "json"))
    assert (status["version"], status["info"]["status"]) == (2, "deployed")


def test_upgrade_brings_the_crds_up_to_date(
    cluster: devcluster.Cluster, helm: Helm, release: Release, tmp_path: Path
) -> None:
    """An older chart whose Framework CRD lacks status.roleList and prints spec.roles, then
    an upgrade to this one: the field and the column arrive with the upgrade alone."""
    older = tmp_path / "kubedrf"
    shutil.copytree(CHART, older)
    path = older / "files" / "crds" / "kubedrf.io_frameworks.yaml"
    crd = yaml.safe_load(path.read_text())
    version = crd["spec"]["versions"][0]
    del version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["roleList"]
    version["additionalPrinterColumns"][0]["jsonPath"] = ".spec.roles"
    path.write_text(yaml.safe_dump(crd, sort_keys=False))

    def served() -> tuple[bool, str]:
        live = json.loads(cluster.kubectl("get", "crd", "frameworks.kubedrf.io", "-o", "json"))
        version = live["spec"]["versions"][0]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        return "roleList" in status, version["additionalPrinterColumns"][0]["jsonPath"]

    upgrade = ("upgrade", release.name, "-n", release.namespace, "--reuse-values", "--wait")
    helm(*upgrade[:2], str(older), *upgrade[2:])
    assert served() == (False, ".spec.roles")
    helm(*upgrade[:2], str(CHART), *upgrade[2:])
    assert served() == (True, ".status.roleList")


def test_uninstall_leaves_only_the_crds(
    cluster: devcluster.Cluster, helm: Helm, release: Release
) -> None:
    helm("uninstall", release.name, "-n", release.namespace, "--wait")
    kinds = ",".join(cluster.kubectl("api-resources", "--verbs=list", "-o", "name").split())
    selector = f"app.kubernetes.io/instance={release.name}"

    def leftovers() -> list[str] | None:
        out = cluster.kubectl("get", kinds, "-A", "-l", selector, "-o", "name", timeout=120)
        return out.split() or None

    wait_for(lambda: leftovers() is None, f"objects labelled {selector} to go", timeout=60)
    # Cluster-scoped objects carry the label too, but check the RBAC by name as well.
    for kind in ("clusterrole", "clusterrolebinding"):
        assert not cluster.kubectl(
            "get", kind, release.service_account, "--ignore-not-found", "-o", "name"
        ).strip()
    assert cluster.kubectl("get", "crd", "frameworks.kubedrf.io", "-o", "name").strip()
