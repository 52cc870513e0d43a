"""The mutating admission webhook's decisions, pure: which Pods get the gate at creation, and
the MutatingWebhookConfiguration that sends them to the master (the chart renders the same)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from kubedrf.api.conventions import LABEL_OFFER, LABEL_ROLE
from kubedrf.workloads.tasks import GATE, Body

#: The handler's id, which is also the path the master serves it on (``/offer-gate``).
WEBHOOK_ID = "offer-gate"
#: The name of the one webhook in the MutatingWebhookConfiguration.
WEBHOOK_NAME = "offer-gate.kubedrf.io"
#: Namespaces never sent to the webhook, whatever their labels: the cluster's own Pods must
#: be creatable while the master is down (kubedrf's own namespace is added to these).
ALWAYS_EXEMPT = ("kube-system",)
FailurePolicy = Literal["Fail", "Ignore"]


def gates_with_offer_gate(pod: Body) -> list[dict[str, Any]] | None:
    """The ``schedulingGates`` the Pod is created with, or None to leave it as it came.

    Left alone: a Pod already gated; a Pod already bound (``nodeName``: Kubernetes refuses
    gates on it); a Pod that is already a task (an SDK framework's, launched on an offer);
    a DaemonSet's Pod, which belongs on its node, not on an offer."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    gates: list[dict[str, Any]] = list(spec.get("schedulingGates") or [])
    owners = meta.get("ownerReferences") or []
    if (
        any(gate.get("name") == GATE for gate in gates)
        or spec.get("nodeName")
        or LABEL_OFFER in (meta.get("labels") or {})
        or any(o.get("controller") and o.get("kind") == "DaemonSet" for o in owners)
    ):
        return None
    return [*gates, {"name": GATE}]


def namespace_selector(exempt: Sequence[str]) -> dict[str, Any]:
    """Namespaces labelled with a role, except the exempt ones (by their immutable name label,
    which Kubernetes sets on every namespace)."""
    return {
        "matchExpressions": [
            {"key": LABEL_ROLE, "operator": "Exists"},
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": sorted({*ALWAYS_EXEMPT, *exempt}),
            },
        ]
    }


def configuration(
    name: str,
    client_config: Mapping[str, Any],
    exempt: Sequence[str] = (),
    failure_policy: FailurePolicy = "Fail",
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration: Pod creations in role-labelled namespaces go to
    ``client_config`` (a ``url`` or a ``service``, with its ``caBundle``)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kubedrf"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": failure_policy,
                "timeoutSeconds": 10,
                "reinvocationPolicy": "Never",
                "namespaceSelector": namespace_selector(exempt),
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "clientConfig": dict(client_config),
            }
        ],
    }
