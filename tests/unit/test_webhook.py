"""The admission webhook that gates Pods of role-labelled namespaces: which Pods it changes,
how it is registered, and the local certificate the dev cluster's apiserver trusts."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
from pathlib import Path
from typing import Any

import jsonpatch  # type: ignore[import-untyped]
import kopf
import pytest
from cryptography import x509

from kubedrf.api.conventions import LABEL_OFFER, LABEL_ROLE
from kubedrf.cli.main import main
from kubedrf.devcluster import webhook as devwebhook
from kubedrf.master import admission
from kubedrf.workloads.tasks import GATE
from kubedrf.workloads.webhook import WEBHOOK_ID, configuration, gates_with_offer_gate


def pod(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "team-a", "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def test_a_pod_without_gates_gets_the_offer_gate_and_nothing_else() -> None:
    assert gates_with_offer_gate(pod()) == [{"name": GATE}]


def test_a_pods_own_gates_are_kept_beside_the_offer_gate() -> None:
    given = pod(schedulingGates=[{"name": "example.com/quota"}])
    assert gates_with_offer_gate(given) == [{"name": "example.com/quota"}, {"name": GATE}]


@pytest.mark.parametrize(
    ("why", "body"),
    [
        ("already gated", pod(schedulingGates=[{"name": GATE}])),
        ("already bound", pod(nodeName="n1")),
        ("already a task of an offer", pod(labels={LABEL_OFFER: "o1"})),
        (
            "a DaemonSet's",
            {
                "metadata": {
                    "ownerReferences": [{"kind": "DaemonSet", "controller": True, "name": "d"}]
                },
                "spec": {},
            },
        ),
    ],
)
def test_pods_that_cannot_or_need_not_wait_for_an_offer_are_left_alone(
    why: str, body: dict[str, Any]
) -> None:
    assert gates_with_offer_gate(body) is None, why


def test_the_handler_answers_with_a_json_patch_that_adds_the_gate() -> None:
    body = pod()
    patch = kopf.Patch(body=kopf.Body(body))
    asyncio.run(admission.gate(body=kopf.Body(body), patch=patch))
    ops = patch.as_json_patch()
    assert jsonpatch.apply_patch(body, ops)["spec"]["schedulingGates"] == [{"name": GATE}]
    assert all(op["path"].startswith("/spec/schedulingGates") for op in ops)


def test_the_registration_sends_only_pod_creations_in_role_labelled_namespaces() -> None:
    (hook,) = configuration("x", {"url": "https://h/p"}, exempt=["kubedrf"])["webhooks"]
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    role, names = hook["namespaceSelector"]["matchExpressions"]
    assert role == {"key": LABEL_ROLE, "operator": "Exists"}
    assert names["key"] == "kubernetes.io/metadata.name" and names["operator"] == "NotIn"
    assert names["values"] == ["kube-system", "kubedrf"]  # whatever labels they carry


def test_the_local_certificate_serves_127_0_0_1_and_localhost_and_is_its_own_ca(
    tmp_path: Path,
) -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    made = devwebhook.self_signed(tmp_path, now)
    cert = x509.load_pem_x509_certificate(made.pem())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert cert.issuer == cert.subject
    assert cert.not_valid_after_utc > now + datetime.timedelta(days=300)
    assert made.key_file.stat().st_mode & 0o077 == 0  # the key is the user's alone


def test_the_local_registration_points_the_apiserver_at_the_master_on_this_host() -> None:
    body = devwebhook.local_configuration(9443, b"PEM", "Ignore")
    (hook,) = body["webhooks"]  # type: ignore[index]
    assert hook["clientConfig"] == {
        "url": f"https://127.0.0.1:9443/{WEBHOOK_ID}",
        "caBundle": base64.b64encode(b"PEM").decode(),
    }
    assert hook["failurePolicy"] == "Ignore"


def test_the_webhook_port_without_a_certificate_is_refused_naming_the_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["master", "--webhook-port=9443"]) == 2
    err = capsys.readouterr().err
    assert "--webhook-cert-file is required when --webhook-port is set" in err
    missing = tmp_path / "nope.crt"
    key = tmp_path / "tls.key"
    key.write_text("k")
    flags = [f"--webhook-cert-file={missing}", f"--webhook-key-file={key}"]
    assert main(["master", "--webhook-port=9443", *flags]) == 2
    assert f"--webhook-cert-file: no such file '{missing}'" in capsys.readouterr().err
