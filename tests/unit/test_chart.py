"""The Helm chart, the image and the kind configuration, checked without a cluster.

``helm lint`` and ``helm template`` need the pinned helm binary (``make binaries``); without
it those tests are skipped. The schema check of the rendered manifests needs the apiserver's
OpenAPI, so it lives with the e2e tests (``tests/e2e/test_chart.py``); the conversion that
feeds it is tested here.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubedrf.api.conventions import (
    LABEL_FRAMEWORK,
    LABEL_OFFER,
    LABEL_ROLE,
    SCHEDULER_NAME,
    heartbeat_lease,
)
from kubedrf.devcluster import provision, schemas
from kubedrf.master.settings import MasterSettings
from kubedrf.workloads.tasks import FRAMEWORK_NAME

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubedrf"
TOLERATION = {"key": "kubedrf.io/managed", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def helm() -> str:
    recipe = next(r for r in provision.RECIPES if r.name == "helm")
    found = provision.locate(recipe)
    if found is None:
        pytest.skip("helm is not built yet: run `make binaries`")
    return str(found["helm"])


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=60, check=False)


def render(helm: str, *args: str, namespace: str = "kubedrf-system") -> list[dict[str, Any]]:
    result = run_helm(helm, "template", "rel", str(CHART), "-n", namespace, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def master_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = find(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def flags(container: dict[str, Any]) -> dict[str, str]:
    assert container["args"][0] == "master"
    return dict(arg.removeprefix("--").partition("=")[::2] for arg in container["args"][1:])


# -- helm --------------------------------------------------------------------------------------


def test_helm_lint_is_clean(helm: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_values_become_the_masters_flags(helm: str) -> None:
    docs = render(helm, "--set", "allocationInterval=2s,offerTimeout=1m,mode=classic")
    container = master_container(docs)
    assert flags(container) == {
        "allocation-interval": "2s",
        "offer-timeout": "1m",
        "offer-retention": "60s",
        "batch-window": "50ms",
        "fairness-excluded": "pods",
        "mode": "classic",
        "managed-label": "kubedrf.io/managed=true",
        "managed-taint": "kubedrf.io/managed",
        "metrics-port": "9090",
        "health-port": "8080",
        "log-format": "text",
        "leader-election-namespace": "kubedrf-system",
        "leader-election-name": "kubedrf-master",
        "revocation": "on",
        "grace-period": "30s",
        "min-runtime": "0s",
        "max-revocations-per-cycle": "100",
        "lend-guarantees": "off",
        "binder": "kubedrf",
        "workloads": "on",
    }
    assert container["image"] == "ghcr.io/kubedrf/kubedrf:0.1.0"  # the appVersion
    assert container["ports"] == [
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        {"name": "health", "containerPort": 8080, "protocol": "TCP"},
    ]


def test_every_master_flag_is_a_value_or_goes_through_extra_args(helm: str) -> None:
    docs = render(
        helm,
        "--set",
        "fairnessExcluded={pods,nvidia.com/gpu},logFormat=json,offerRetention=0s",
        "--set",
        "extraArgs={--verbose}",
        "--set",
        "webhook.enabled=true",
    )
    container = master_container(docs)
    given = flags(container)
    assert given["fairness-excluded"] == "pods,nvidia.com/gpu"
    assert given["log-format"] == "json" and given["offer-retention"] == "0s"
    assert container["args"][-1] == "--verbose"
    settable = {a.removeprefix("--").partition("=")[0] for a in container["args"][1:]}
    from kubedrf.cli.main import build_parser  # noqa: PLC0415

    parser = build_parser()
    (commands,) = [a for a in parser._actions if hasattr(a, "choices") and a.dest == "command"]
    master_flags = {
        option.removeprefix("--")
        for action in commands.choices["master"]._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert master_flags <= settable


def test_the_probes_ask_whether_the_allocation_loop_is_alive(helm: str) -> None:
    container = master_container(render(helm, "--set", "healthPort=8181"))
    assert flags(container)["health-port"] == "8181"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert {"name": "health", "containerPort": 8181, "protocol": "TCP"} in container["ports"]


def test_framework_tenants_get_a_role_to_bind_and_view_edit_aggregation(helm: str) -> None:
    roles = {doc["metadata"]["name"]: doc for doc in find(render(helm), "ClusterRole")}
    framework = roles["rel-kubedrf-framework"]
    granted = {
        (resource, verb)
        for rule in framework["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert {("frameworks", "create"), ("offers", "patch"), ("pods", "create")} <= granted
    assert ("offers", "create") not in granted  # only the master makes offers
    assert not any("status" in r and v in ("update", "patch") for r, v in granted)
    view, edit = roles["rel-kubedrf-view"], roles["rel-kubedrf-edit"]
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in edit["metadata"]["labels"]
    names = {
        d["metadata"]["name"]
        for d in find(render(helm, "--set", "tenantRBAC.enabled=false"), "ClusterRole")
    }
    assert names == {"rel-kubedrf-master"}


def test_the_notes_work_from_the_installed_chart(helm: str, tmp_path: Path) -> None:
    """NOTES.txt is rendered only by install; render it as a template of a copy instead."""
    import shutil  # noqa: PLC0415

    chart = tmp_path / "kubedrf"
    shutil.copytree(CHART, chart)
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    indented = "".join(f"  {line}" for line in notes.splitlines(keepends=True))
    (chart / "templates" / "notes.yaml").write_text("notes: |\n" + indented)
    result = run_helm(helm, "template", "rel", str(chart), "--show-only", "templates/notes.yaml")
    assert result.returncode == 0, result.stderr
    text = yaml.safe_load(result.stdout)["notes"]
    assert "examples/" not in text and ".py" not in text
    assert "--clusterrole=rel-kubedrf-framework" in text
    assert "kind: Framework" in text


def test_chart_defaults_match_the_masters_defaults(helm: str) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    defaults = MasterSettings()
    assert MasterSettings(allocation_interval=values["allocationInterval"]) == defaults
    assert MasterSettings(offer_timeout=values["offerTimeout"]) == defaults
    assert values["mode"] == defaults.mode
    assert values["managedLabel"] == defaults.managed_label
    assert values["managedTaint"] == defaults.managed_taint
    assert values["metrics"]["port"] == defaults.metrics_port
    assert values["leaderElection"]["name"] == defaults.leader_election_name
    assert MasterSettings(offer_retention=values["offerRetention"]) == defaults
    assert MasterSettings(batch_window=values["batchWindow"]) == defaults
    assert tuple(values["fairnessExcluded"]) == defaults.fairness_excluded
    assert values["binder"] == defaults.binder
    assert MasterSettings(workloads=values["workloads"]["enabled"]) == defaults
    assert values["webhook"]["enabled"] is False and defaults.webhook_port == 0
    revocation = values["revocation"]
    assert (
        MasterSettings(
            revocation=revocation["enabled"],
            grace_period=revocation["gracePeriod"],
            min_runtime=revocation["minRuntime"],
            max_revocations_per_cycle=revocation["maxPerCycle"],
            lend_guarantees=revocation["lendGuarantees"],
        )
        == defaults
    )


def test_the_master_runs_under_the_restricted_pod_security_standard(helm: str) -> None:
    docs = render(helm)
    (deployment,) = find(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = master_container(docs)["securityContext"]
    assert context == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert master_container(docs)["resources"]["requests"]
    assert pod["serviceAccountName"] == "rel-kubedrf-master"


def _master_grants(docs: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """(group, resource, verb, resource name or "*") granted by the master's ClusterRole."""
    (role,) = [
        r for r in find(docs, "ClusterRole") if r["metadata"]["name"] == "rel-kubedrf-master"
    ]
    return {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames", ["*"])
    }


def test_the_cluster_role_is_least_privilege(helm: str) -> None:
    docs = render(helm, "--set", "workloads.enabled=false")
    granted = {(group, resource, verb) for group, resource, verb, _ in _master_grants(docs)}
    read = ("get", "list", "watch")
    kinds = ("frameworks", "roles", "quotas", "reservations")
    expected = {
        *(("", "nodes", verb) for verb in read),
        *(("", "pods", verb) for verb in (*read, "delete")),
        ("", "pods/eviction", "create"),  # revocation past a deadline, PDBs honoured
        ("", "pods/binding", "create"),  # the master binds the task Pods it judged valid
        *(
            ("kubedrf.io", offers, verb)
            for offers in ("offers", "inverseoffers")
            for verb in (*read, "create", "patch", "delete")
        ),
        *(("kubedrf.io", kind, verb) for kind in kinds for verb in read),
        *(
            ("kubedrf.io", f"{kind}/status", "patch")
            for kind in ("offers", "inverseoffers", *kinds)
        ),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),  # a repeated reason counts in its series
        ("", "events", "create"),
        ("coordination.k8s.io", "leases", "list"),  # frameworks' heartbeats
        ("coordination.k8s.io", "leases", "watch"),
    }
    assert granted == expected
    assert all(name == "*" for *_, name in _master_grants(docs))
    (binding,) = find(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-kubedrf-master", "namespace": "kubedrf-system"}
    ]


def test_the_built_in_framework_adds_only_what_it_needs_and_updates_only_its_own_objects(
    helm: str,
) -> None:
    added = _master_grants(render(helm)) - _master_grants(
        render(helm, "--set", "workloads.enabled=false")
    )
    assert added == {
        *(("", "namespaces", verb, "*") for verb in ("get", "list", "watch")),
        ("", "pods", "patch", "*"),  # releases a gated Pod onto the offered node
        ("kubedrf.io", "frameworks", "create", "*"),
        ("kubedrf.io", "frameworks", "patch", FRAMEWORK_NAME),
        ("coordination.k8s.io", "leases", "create", "*"),
        ("coordination.k8s.io", "leases", "patch", heartbeat_lease(FRAMEWORK_NAME)),
    }


def test_leases_are_granted_in_the_release_namespace_only(helm: str) -> None:
    docs = render(helm, "--set", "leaderElection.name=elect", namespace="sched")
    (role,) = find(docs, "Role")
    assert role["metadata"]["namespace"] == "sched"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["elect"],
            "verbs": ["get", "update"],
        },
    ]
    assert flags(master_container(docs))["leader-election-name"] == "elect"
    (binding,) = find(docs, "RoleBinding")
    assert binding["metadata"]["namespace"] == "sched"


@pytest.mark.parametrize(("replicas", "budget"), [(2, True), (1, False), (0, False)])
def test_a_disruption_budget_keeps_one_master_when_there_are_several(
    helm: str, replicas: int, budget: bool
) -> None:
    docs = render(helm, "--set", f"replicas={replicas}")
    assert find(docs, "Deployment")[0]["spec"]["replicas"] == replicas
    pdbs = find(docs, "PodDisruptionBudget")
    assert [pdb["spec"]["minAvailable"] for pdb in pdbs] == ([1] if budget else [])


def test_metrics_service_and_optional_service_monitor(helm: str) -> None:
    docs = render(helm, "--set", "metrics.port=9100")
    (service,) = find(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    (deployment,) = find(docs, "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert flags(master_container(docs))["metrics-port"] == "9100"
    assert find(docs, "ServiceMonitor") == []

    docs = render(helm, "--set", "metrics.serviceMonitor.enabled=true")
    (monitor,) = find(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_the_helm_test_pod_finishes_on_kwok_nodes(helm: str) -> None:
    docs = render(helm)
    (pod,) = find(docs, "Pod")
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert annotations["kubedrf.io/complete-after"] == "2s"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    assert TOLERATION in pod["spec"]["tolerations"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (service,) = find(docs, "Service")
    assert "rel-kubedrf-metrics.kubedrf-system.svc:9090" in pod["spec"]["containers"][0]["args"][0]
    # Not selected by the metrics Service.
    labels = pod["metadata"]["labels"]
    assert not set(service["spec"]["selector"].items()) <= set(labels.items())


def admission_policy(
    docs: list[dict[str, Any]], suffix: str = "-managed-nodes"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The policy whose name ends with ``suffix``, and its binding."""

    def named(kind: str) -> dict[str, Any]:
        (doc,) = [d for d in find(docs, kind) if d["metadata"]["name"].endswith(suffix)]
        return doc

    return named("ValidatingAdmissionPolicy"), named("ValidatingAdmissionPolicyBinding")


def test_the_admission_policy_denies_pods_on_create_and_update_outside_exempt_namespaces(
    helm: str,
) -> None:
    policy, binding = admission_policy(render(helm))
    assert policy["metadata"]["name"] == "rel-kubedrf-managed-nodes"
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["pods"],
        }
    ]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kubedrf-system", "kube-system"],
            }
        ]
    }


def test_the_admission_policy_requires_the_task_labels_of_the_conventions(helm: str) -> None:
    policy, _ = admission_policy(render(helm))
    (missing,) = policy["spec"]["variables"]
    labels = (LABEL_FRAMEWORK, LABEL_ROLE, LABEL_OFFER)
    assert missing["expression"].startswith(f"[{', '.join(repr(label) for label in labels)}]")
    (validation,) = policy["spec"]["validations"]
    assert validation["expression"] == "size(variables.missing) == 0"
    assert "variables.missing.join(', ')" in validation["messageExpression"]
    for message in (validation["message"], validation["messageExpression"]):
        assert "tolerates the taint kubedrf.io/managed" in message
        assert all(label in message for label in labels)
        assert "exempt from this rule (kubedrf-system, kube-system)" in message


def test_the_admission_policy_follows_the_managed_taint_and_exempt_namespaces(helm: str) -> None:
    docs = render(
        helm,
        "--set",
        "managedTaint=example.com/batch,admissionPolicy.exemptNamespaces={agents,sched}",
        namespace="sched",
    )
    policy, binding = admission_policy(docs)
    conditions = {c["name"]: c["expression"] for c in policy["spec"]["matchConditions"]}
    assert set(conditions) == {
        "tolerates-the-managed-taint",
        "not-controlled-by-a-daemonset",
        "did-not-break-the-rule-before-this-update",
    }
    assert "== 'example.com/batch'" in conditions["tolerates-the-managed-taint"]
    # A keyless Exists toleration tolerates every taint, the managed one included.
    assert "t.?operator.orValue('') == 'Exists'" in conditions["tolerates-the-managed-taint"]
    assert "oldObject" in conditions["did-not-break-the-rule-before-this-update"]
    assert "kubedrf.io/managed" not in json.dumps(policy["spec"])
    (selector,) = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector["values"] == ["sched", "agents"]  # the release namespace once


def test_the_crds_are_templates_so_that_helm_upgrade_updates_them(helm: str) -> None:
    # Helm installs a chart's crds/ directory once and never upgrades it.
    assert not (CHART / "crds").exists()
    rendered = {
        doc["metadata"]["name"]: doc for doc in find(render(helm), "CustomResourceDefinition")
    }
    generated = [
        yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("*.yaml"))
    ]
    assert len(generated) == 6
    # One source: what the chart installs is what `kubedrf crds` generates.
    assert rendered == {crd["metadata"]["name"]: crd for crd in generated}
    for crd in rendered.values():
        # An uninstall must not delete the CRDs, and every kubedrf object with them.
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert "labels" not in crd["metadata"]  # nor do they count among the release's objects
    assert find(render(helm, "--set", "crds.install=false"), "CustomResourceDefinition") == []


def test_the_claims_policy_sends_every_claim_through_the_masters_binder(helm: str) -> None:
    policy, binding = admission_policy(render(helm), "-offer-claims")
    assert policy["metadata"]["name"] == "rel-kubedrf-offer-claims"
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    (condition,) = spec["matchConditions"]
    assert condition["expression"] == f"'{LABEL_OFFER}' in object.metadata.?labels.orValue({{}})"
    scheduler, node_name, relabel = spec["validations"]
    assert f"== '{SCHEDULER_NAME}'" in scheduler["expression"]
    assert "request.operation != 'CREATE'" in scheduler["expression"]
    assert "set spec.schedulerName: kubedrf" in scheduler["messageExpression"]
    assert "object.spec.?nodeName.orValue('') == ''" in node_name["expression"]
    # Only the master (its ServiceAccount) may add or change the label after creation.
    assert "variables.claimedBefore == variables.offer" in relabel["expression"]
    assert (
        "request.userInfo.username in ['system:serviceaccount:kubedrf-system:rel-kubedrf-master']"
        in relabel["expression"]
    )
    assert binding["spec"]["policyName"] == "rel-kubedrf-offer-claims"
    (selector,) = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector["values"] == ["kubedrf-system", "kube-system"]


def test_the_claims_policy_trusts_the_master_users_and_only_when_the_master_binds(
    helm: str,
) -> None:
    docs = render(helm, "--set", "admissionPolicy.masterUsers={alice,kubernetes-admin}")
    policy, _ = admission_policy(docs, "-offer-claims")
    relabel = policy["spec"]["validations"][2]["expression"]
    assert (
        "['system:serviceaccount:kubedrf-system:rel-kubedrf-master', 'alice', 'kubernetes-admin']"
        in relabel
    )
    # With kube-scheduler binding, claims are bound before the master judges them: by design.
    other = render(helm, "--set", "binder=kube-scheduler")
    assert [p["metadata"]["name"] for p in find(other, "ValidatingAdmissionPolicy")] == [
        "rel-kubedrf-managed-nodes"
    ]
    # A quote would end the CEL string: refused by the values schema.
    with pytest.raises(AssertionError, match="masterUsers"):
        render(helm, "--set", "admissionPolicy.masterUsers={it's}")


def test_the_admission_policy_can_be_left_out(helm: str) -> None:
    docs = render(helm, "--set", "admissionPolicy.enabled=false")
    assert find(docs, "ValidatingAdmissionPolicy") == []
    assert find(docs, "ValidatingAdmissionPolicyBinding") == []


# -- the admission webhook ---------------------------------------------------------------------


def test_the_webhook_is_absent_by_default_and_one_value_turns_it_on(helm: str) -> None:
    kinds = ("MutatingWebhookConfiguration", "Secret")
    off = render(helm)
    assert [d for d in off if d["kind"] in kinds] == []
    assert not any(a.startswith("--webhook") for a in master_container(off)["args"])
    on = render(helm, "--set", "webhook.enabled=true")
    assert {d["kind"] for d in on} >= set(kinds)
    container = master_container(on)
    assert flags(container)["webhook-port"] == "9443"
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in container["ports"]


def test_the_charts_webhook_is_the_one_the_master_defines(helm: str) -> None:
    from kubedrf.workloads.webhook import WEBHOOK_ID, configuration  # noqa: PLC0415

    docs = render(helm, "--set", "webhook.enabled=true,webhook.failurePolicy=Ignore")
    (registered,) = find(docs, "MutatingWebhookConfiguration")
    (hook,) = registered["webhooks"]
    client_config = hook.pop("clientConfig")
    (expected,) = configuration("x", {}, ["kubedrf-system"], "Ignore")["webhooks"]
    del expected["clientConfig"]
    assert hook == expected
    assert client_config["service"] == {
        "name": "rel-kubedrf-webhook",
        "namespace": "kubedrf-system",
        "path": f"/{WEBHOOK_ID}",
        "port": 443,
    }


def test_the_webhooks_certificate_is_signed_by_its_ca_bundle_for_its_service(
    helm: str,
) -> None:
    import base64  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415

    docs = render(helm, "--set", "webhook.enabled=true", namespace="sched")
    (secret,) = find(docs, "Secret")
    (registered,) = find(docs, "MutatingWebhookConfiguration")
    ca = x509.load_pem_x509_certificate(
        base64.b64decode(registered["webhooks"][0]["clientConfig"]["caBundle"])
    )
    serving = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "rel-kubedrf-webhook.sched.svc" in names.get_values_for_type(x509.DNSName)
    (deployment,) = find(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "webhook-cert"]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "webhook-cert"]
    given = flags(pod["containers"][0])
    assert given["webhook-cert-file"] == f"{mount['mountPath']}/tls.crt"
    assert given["webhook-key-file"] == f"{mount['mountPath']}/tls.key"


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("unknown=1", "additional properties 'unknown' not allowed"),
        ("mode=fair", "/mode"),
        ("allocationInterval=soon", "/allocationInterval"),
        ("replicas=-1", "/replicas"),
        ("metrics.port=70000", "/metrics/port"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("managedLabel=a=b=c", "/managedLabel"),
        ("leaderElection.name=Not_A_Name", "/leaderElection/name"),
        ("metrics.serviceMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("admissionPolicy.exemptNamespaces={Kube_System}", "/admissionPolicy/exemptNamespaces/0"),
        ("webhook.failurePolicy=Maybe", "/webhook/failurePolicy"),
    ],
)
def test_the_values_schema_refuses_bad_values(helm: str, value: str, complaint: str) -> None:
    result = run_helm(helm, "template", "rel", str(CHART), "--set", value)
    assert result.returncode != 0
    assert complaint in result.stderr


# -- values.schema.json ------------------------------------------------------------------------


def leaves(values: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from leaves(value, (*path, key))
    else:
        yield path


def test_the_values_schema_declares_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in leaves(values):
        node = schema
        for key in path:
            while "$ref" in node:
                node = schema["definitions"][node["$ref"].rpartition("/")[2]]
            if key in node.get("properties", {}):
                node = node["properties"][key]
            elif isinstance(node.get("additionalProperties"), dict):  # a map: any key, typed
                node = node["additionalProperties"]
            else:
                raise AssertionError(f"values.schema.json does not declare {'.'.join(path)}")


# -- kubeconform's schemas ---------------------------------------------------------------------

OPENAPI: dict[str, Any] = {
    "definitions": {
        "io.k8s.api.core.v1.Service": {
            "type": "object",
            "properties": {
                "metadata": {
                    "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
                },
                "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.ServiceSpec"},
            },
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Service", "version": "v1"}],
        },
        "io.k8s.api.core.v1.ServiceSpec": {
            "type": "object",
            "properties": {
                "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
        },
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
            "type": "string",
            "format": "int-or-string",
        },
        "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
        "io.k8s.api.apps.v1.Unrelated": {"type": "object"},
    }
}


def test_openapi_kinds_become_standalone_strict_schemas() -> None:
    generated = schemas.from_openapi(OPENAPI)
    assert set(generated) == {"service-v1.json"}
    service = generated["service-v1.json"]
    assert service["additionalProperties"] is False
    assert set(service["definitions"]) == {
        "io.k8s.api.core.v1.ServiceSpec",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    }
    spec = service["definitions"]["io.k8s.api.core.v1.ServiceSpec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    int_or_string = service["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string["oneOf"] == [{"type": "string"}, {"type": "integer"}]


def test_crd_schemas_validate_metadata_as_object_meta() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "kubedrf.io_frameworks.yaml").read_text())
    (file, schema), *_ = schemas.from_crd(crd, OPENAPI).items()
    assert file == "framework-kubedrf-v1alpha1.json"
    assert schema["properties"]["metadata"] == {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }
    assert schema["additionalProperties"] is False
    assert schema["properties"]["spec"]["additionalProperties"] is False


def test_strict_keeps_open_objects_open() -> None:
    preserved = {"type": "object", "properties": {}, "x-kubernetes-preserve-unknown-fields": True}
    assert "additionalProperties" not in schemas.strict(preserved)
    assert schemas.strict({"type": "string", "nullable": True})["type"] == ["string", "null"]
    assert schemas.strict({"x-kubernetes-int-or-string": True})["oneOf"][1] == {"type": "integer"}
    # A property *named* "properties" is a property, not a keyword.
    nested = schemas.strict({"properties": {"properties": {"type": "object"}}})
    assert nested["properties"]["properties"] == {"type": "object"}


@pytest.mark.parametrize(
    ("group", "version", "kind", "file"),
    [
        ("", "v1", "Service", "service-v1.json"),
        ("apps", "v1", "Deployment", "deployment-apps-v1.json"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterrole-rbac-v1.json"),
        ("kubedrf.io", "v1alpha1", "Offer", "offer-kubedrf-v1alpha1.json"),
    ],
)
def test_schema_files_are_named_as_kubeconform_looks_them_up(
    group: str, version: str, kind: str, file: str
) -> None:
    assert schemas.file_name(group, version, kind) == file


# -- the image and kind ------------------------------------------------------------------------


def test_the_image_user_is_the_charts_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert user is not None
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert f"runAsUser: {user[1]}" in helpers
    assert f"runAsGroup: {user[2]}" in helpers
    assert re.search(r'^ENTRYPOINT \["kubedrf"\]$', dockerfile, re.MULTILINE)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == "ghcr.io/kubedrf/kubedrf"


def test_kind_config_has_three_managed_workers_of_different_capacity() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    reserved = set()
    for node in config["nodes"][1:]:
        (patch,) = [yaml.safe_load(p) for p in node["kubeadmConfigPatches"]]
        assert patch["kind"] == "JoinConfiguration"
        registration = patch["nodeRegistration"]
        assert registration["kubeletExtraArgs"]["node-labels"] == "kubedrf.io/managed=true"
        assert registration["taints"] == [
            {"key": "kubedrf.io/managed", "value": "true", "effect": "NoSchedule"}
        ]
        reserved.add(registration["kubeletExtraArgs"]["system-reserved"])
    assert len(reserved) == 3
