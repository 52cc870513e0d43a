"""The API models: the CRDs generated from them, and the rules they enforce themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubedrf.api import FrameworkSpec, OfferSpec, QuotaSpec, ReservationSpec, RoleSpec
from kubedrf.api.crdgen import KINDS, crd_manifest, drift
from kubedrf.api.tenancy import refusal

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crds_match_the_models() -> None:
    stale = drift([ROOT / "crds", ROOT / "charts" / "kubedrf" / "crds"])
    assert stale == [], "run `kubedrf crds` and commit the result"


def _walk(schema: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(schema, dict):
        found.append(schema)
        for value in schema.values():
            found += _walk(value)
    elif isinstance(schema, list):
        for value in schema:
            found += _walk(value)
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_schemas_are_structural(kind: Any) -> None:
    manifest = crd_manifest(kind)
    schema = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for node in _walk(schema):
        assert "$ref" not in node and "title" not in node and "$defs" not in node
        assert "const" not in node, "the apiserver drops const: the value would go unchecked"
        assert node.get("additionalProperties") is not False
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True
        if "properties" in node or "additionalProperties" in node:
            assert node.get("type") == "object"
    assert manifest["spec"]["names"]["categories"] == ["kubedrf"]
    assert manifest["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_role_short_name_does_not_steal_rbac_roles() -> None:
    names = {k.kind: crd_manifest(k)["spec"]["names"] for k in KINDS}
    assert "role" not in names["Role"]["shortNames"]
    assert "quota" not in names["Quota"]["shortNames"]
    all_short = [s for n in names.values() for s in n["shortNames"]]
    assert len(all_short) == len(set(all_short))


def test_offer_columns_answer_at_a_glance() -> None:
    columns = [c["name"] for c in _columns("Offer")]
    assert columns[:6] == ["Framework", "Role", "Node", "CPU", "Memory", "Phase"]
    assert columns[-1] == "Age"
    framework = [c["name"] for c in _columns("Framework")]
    assert framework == ["Roles", "Share", "Tasks", "Offers", "Ready", "Age"]


def _columns(kind: str) -> list[dict[str, Any]]:
    crd = next(crd_manifest(k) for k in KINDS if k.kind == kind)
    columns: list[dict[str, Any]] = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    return columns


def test_quota_limit_below_guarantee_names_the_resource() -> None:
    with pytest.raises(ValidationError) as caught:
        QuotaSpec.model_validate({"role": "eng", "guarantee": {"cpu": "4"}, "limit": {"cpu": 2}})
    assert "spec.limit.cpu (2) must be at least spec.guarantee.cpu (4)" in str(caught.value)
    ok = QuotaSpec.model_validate({"role": "eng", "guarantee": {"cpu": "4"}, "limit": {"cpu": 4}})
    assert ok.limit_resources() == ok.guarantee_resources()


@pytest.mark.parametrize(
    ("model", "document", "field"),
    [
        (RoleSpec, {"weight": 0}, "weight"),
        (FrameworkSpec, {"offerFilters": {"refuseSeconds": -1}}, "offerFilters.refuseSeconds"),
        (
            FrameworkSpec,
            {"demand": [{"resources": {"cpu": "-1"}, "count": 1}]},
            "demand.0.resources.cpu",
        ),
        (FrameworkSpec, {"capabilities": ["ROOT"]}, "capabilities.0"),
        (
            ReservationSpec,
            {"role": "db", "nodeName": "n1", "resources": {"memory": "lots"}},
            "resources.memory",
        ),
        (
            ReservationSpec,
            {"role": "db", "nodeName": "n1", "resources": {"cpu": 0}},
            "resources.cpu",
        ),
        (
            FrameworkSpec,
            {"demand": [{"resources": {"cpu": "1", "memory": "0Gi"}, "count": 1}]},
            "demand.0.resources.memory",
        ),
        (FrameworkSpec, {"roles": [""]}, "roles.0"),
    ],
)
def test_models_reject_what_the_crds_reject(model: Any, document: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(document)
    locations = [".".join(str(p) for p in error["loc"]) for error in caught.value.errors()]
    assert field in locations


def test_framework_defaults_and_active_roles() -> None:
    spec = FrameworkSpec.model_validate({"roles": ["a", "b"], "suppressedRoles": ["b"]})
    assert spec.offer_filters.refuse_seconds == 5.0
    assert spec.active_roles() == ["a"]
    assert FrameworkSpec.model_validate({"suppressed": True}).active_roles() == []
    assert FrameworkSpec.model_validate({}).roles == ["default"]


def test_offer_spec_round_trips_in_camel_case() -> None:
    document = {
        "framework": "a",
        "role": "default",
        "nodeName": "n1",
        "resources": {"cpu": "3", "memory": "12Gi"},
        "expiresAt": "2026-01-01T00:00:00Z",
    }
    spec = OfferSpec.model_validate(document)
    dumped = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped["nodeName"] == "n1" and dumped["resources"] == {"cpu": "3", "memory": "12Gi"}


def test_tenancy_refuses_with_the_role_and_the_namespace() -> None:
    roles = {"eng": RoleSpec(namespaces=["team-a"]), "ops": RoleSpec()}
    assert refusal("eng", "team-a", roles) is None
    assert refusal("ops", "team-b", roles) is None
    assert refusal("undeclared", "team-b", roles) is None
    reason = refusal("eng.web", "team-b", roles)
    assert reason is not None
    assert "'eng.web'" in reason and "'team-b'" in reason and "ancestor 'eng'" in reason


def test_crd_files_parse_as_yaml() -> None:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        assert yaml.safe_load(path.read_text())["kind"] == "CustomResourceDefinition"
