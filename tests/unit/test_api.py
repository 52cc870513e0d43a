"""The API models: the CRDs generated from them, and the rules they enforce themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubedrf.api import (
    MAX_REFUSE_SECONDS,
    FrameworkSpec,
    OfferResponse,
    OfferSpec,
    QuotaSpec,
    ReservationSpec,
    RoleSpec,
)
from kubedrf.api.crdgen import KINDS, api_reference, crd_manifest, drift, reference_drift
from kubedrf.api.tenancy import refusal
from kubedrf.api.types import RESOURCE_NAMES
from kubedrf.cli.crds import DEFAULT_DIRECTORIES
from kubedrf.resources import resource_name_error

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crds_match_the_models() -> None:
    # The chart's copies too: its templates install them (one source, drift-checked).
    stale = drift([ROOT / directory for directory in DEFAULT_DIRECTORIES])
    assert stale == [], "run `kubedrf crds` and commit the result"


def test_the_committed_api_reference_matches_the_models() -> None:
    assert not reference_drift(ROOT / "docs" / "api.md"), (
        "run `kubedrf crds` and commit docs/api.md"
    )


def _fields(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    """Every field below ``schema`` with its path, list items included."""
    found = []
    for name, sub in schema.get("properties", {}).items():
        found.append((f"{path}.{name}", sub))
        found += _fields(sub, f"{path}.{name}")
        found += _fields(sub.get("items", {}), f"{path}.{name}[]")
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_crd_field_explains_itself(kind: Any) -> None:
    root = crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    fields = [("spec", root["properties"]["spec"]), ("status", root["properties"]["status"])]
    fields += _fields(root["properties"]["spec"], "spec")
    fields += _fields(root["properties"]["status"], "status")
    undescribed = [path for path, schema in fields if not schema.get("description")]
    assert undescribed == [], f"kubectl explain {kind.singular} would explain nothing for these"


def test_every_printer_column_is_described() -> None:
    for kind in KINDS:
        undescribed = [c.name for c in kind.columns if c.name != "Age" and not c.description]
        assert undescribed == [], kind.kind


def test_the_api_reference_lists_every_field_with_its_rules() -> None:
    reference = api_reference()
    assert "| `spec.offerFilters.refuseSeconds` | number | `5.0` |" in reference
    assert "0 ≤ value ≤ 31,536,000" in reference
    assert "`spec.framework` (required)" in reference and "Immutable" in reference
    for kind in KINDS:
        assert f"## {kind.kind}\n" in reference


def test_quota_columns_show_every_resource_it_names() -> None:
    paths = {c["name"]: c["jsonPath"] for c in _columns("Quota")}
    assert paths["Guarantee"] == ".spec.guarantee"
    assert paths["Limit"] == ".spec.limit"
    assert paths["Consumed"] == ".status.consumed"


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
    framework = [c["name"] for c in _columns("Framework") if not c.get("priority")]
    assert framework == ["Roles", "Share", "Tasks", "Offers", "Ready", "Connected", "Age"]
    wide = [c["name"] for c in _columns("Framework") if c.get("priority")]
    assert wide == ["Revoking"]  # kubectl get -o wide
    inverse = [c["name"] for c in _columns("InverseOffer")]
    assert inverse[:3] == ["Framework", "Node", "For"] and "Phase" in inverse


def test_no_printer_column_prints_a_list_as_json() -> None:
    for kind in KINDS:
        crd = crd_manifest(kind)
        version = crd["spec"]["versions"][0]
        for column in version["additionalPrinterColumns"]:
            path = column["jsonPath"]
            if "[" in path or path.startswith(".metadata"):
                continue  # a filter picks one item; metadata is not in the schema
            schema = version["schema"]["openAPIV3Schema"]
            for part in path.strip(".").split("."):
                # A key of a map (.spec.resources.cpu) has the map's value schema.
                schema = schema.get("properties", {}).get(part) or schema["additionalProperties"]
            assert schema.get("type") != "array", f"{kind.kind} column {column['name']}: {path}"


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


OFFER = {
    "framework": "a",
    "role": "default",
    "nodeName": "n1",
    "resources": {"cpu": "3", "memory": "12Gi"},
    "expiresAt": "2026-01-01T00:00:00Z",
}


def _refusals(model: Any, document: Any) -> dict[str, str]:
    """Each error's location (dotted, as pydantic gives it) and message."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(document)
    return {".".join(str(p) for p in error["loc"]): error["msg"] for error in caught.value.errors()}


@pytest.mark.parametrize(
    "name",
    [
        "cpu",
        "memory",
        "ephemeral-storage",
        "pods",
        "hugepages-2Mi",
        "hugepages-1Gi",
        "nvidia.com/gpu",
        "example.com/fpga_v2",
        "a.b.c/X-1.y",
    ],
)
def test_standard_and_domain_qualified_resource_names_are_valid(name: str) -> None:
    assert resource_name_error(name) is None
    assert QuotaSpec.model_validate({"role": "eng", "guarantee": {name: "1"}}).guarantee == {
        name: "1"
    }


@pytest.mark.parametrize(
    "name",
    [
        "",
        "memroy",
        "cpus",
        "CPU",
        "storage",
        "hugepages-",
        "hugepages-big",
        "gpu",
        "requests.cpu",
        "requests.nvidia.com/gpu",
        "kubernetes.io/gpu",
        "node.kubernetes.io/x",
        "Nvidia.com/gpu",
        "nvidia.com/",
        "/gpu",
        "nvidia..com/gpu",
        "nvidia.com/gpu/0",
        "example.com/" + "x" * 64,
        "cpu\n",
        "example.com/gpu ",
    ],
)
def test_other_resource_names_are_refused_with_the_rule(name: str) -> None:
    error = resource_name_error(name)
    assert error is not None
    assert f"resource name {name!r} is not valid" in error and "nvidia.com/gpu" in error


def _demand(resources: dict[str, str]) -> dict[str, Any]:
    return {"demand": [{"count": 1, "resources": resources}]}


@pytest.mark.parametrize(
    ("model", "document", "location"),
    [
        (QuotaSpec, {"role": "eng", "guarantee": {"memroy": "1Gi"}}, "guarantee.memroy.[key]"),
        (QuotaSpec, {"role": "eng", "limit": {"cpus": "2", "memory": "1Gi"}}, "limit.cpus.[key]"),
        (
            ReservationSpec,
            {"role": "eng", "nodeName": "n1", "resources": {"": "1"}},
            "resources..[key]",
        ),
        (FrameworkSpec, _demand({"": "1"}), "demand.0.resources..[key]"),
        (
            FrameworkSpec,
            {"offerFilters": {"minAllocatable": {"requests.cpu": "1"}}},
            "offerFilters.minAllocatable.requests.cpu.[key]",
        ),
        (
            OfferSpec,
            {**OFFER, "resources": {"kubernetes.io/x": "1"}},
            "resources.kubernetes.io/x.[key]",
        ),
        (
            OfferSpec,
            {**OFFER, "sizedFor": [{"count": 1, "resources": {"GPU": "1"}}]},
            "sizedFor.0.resources.GPU.[key]",
        ),
    ],
)
def test_every_resource_map_refuses_a_bad_resource_name(
    model: Any, document: Any, location: str
) -> None:
    refusals = _refusals(model, document)
    assert location in refusals, refusals
    assert "is not valid: use cpu, memory" in refusals[location]


def test_a_bad_name_and_a_bad_amount_in_one_map_are_both_refused() -> None:
    refusals = _refusals(QuotaSpec, {"role": "eng", "limit": {"memroy": "1Gi", "cpu": "lots"}})
    assert {"limit.memroy.[key]", "limit.cpu"} <= refusals.keys()


@pytest.mark.parametrize("role", ["роль", "Eng..X_", "x" * 64, "Bad Role!", "eng.", ".eng", ""])
@pytest.mark.parametrize(
    ("model", "document", "location"),
    [
        (FrameworkSpec, lambda r: {"roles": [r]}, "roles.0"),
        (
            FrameworkSpec,
            lambda r: {"roles": ["eng", r], "suppressedRoles": [r]},
            "suppressedRoles.0",
        ),
        (QuotaSpec, lambda r: {"role": r}, "role"),
        (
            ReservationSpec,
            lambda r: {"role": r, "nodeName": "n1", "resources": {"cpu": "1"}},
            "role",
        ),
        (OfferSpec, lambda r: {**OFFER, "role": r}, "role"),
    ],
)
def test_every_role_field_refuses_a_name_the_role_tree_cannot_hold(
    model: Any, document: Any, location: str, role: str
) -> None:
    refusals = _refusals(model, document(role))
    assert location in refusals, refusals
    assert "role name" in refusals[location] or "at most 63 characters" in refusals[location]


def test_role_names_up_to_63_characters_in_dotted_parts_are_accepted() -> None:
    roles = ["eng", "eng.frontend", "a-1.b-2.c", "x" * 63]
    assert FrameworkSpec.model_validate({"roles": roles}).roles == roles


@pytest.mark.parametrize(
    ("model", "document", "location"),
    [
        (RoleSpec, {"weight": 5e-324}, "weight"),
        (RoleSpec, {"weight": 1001}, "weight"),
        (OfferResponse, {"action": "Decline", "refuseSeconds": 1e12}, "refuseSeconds"),
        (
            FrameworkSpec,
            {"offerFilters": {"refuseSeconds": MAX_REFUSE_SECONDS + 1}},
            "offerFilters.refuseSeconds",
        ),
    ],
)
def test_weights_and_refuse_seconds_are_bounded(model: Any, document: Any, location: str) -> None:
    assert location in _refusals(model, document)


def test_the_bounds_themselves_are_accepted() -> None:
    assert RoleSpec.model_validate({"weight": 0.001}).weight == 0.001
    assert RoleSpec.model_validate({"weight": 1000}).weight == 1000
    response = OfferResponse.model_validate(
        {"action": "Decline", "refuseSeconds": MAX_REFUSE_SECONDS}
    )
    assert response.refuse_seconds == MAX_REFUSE_SECONDS


def _resource_maps(schema: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    """Every map of quantities under ``schema``, with its path."""
    found = []
    if isinstance(schema, dict):
        if schema.get("additionalProperties", {}).get("x-kubernetes-int-or-string"):
            found.append((path, schema))
        for key, value in schema.items():
            found += _resource_maps(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for value in schema:
            found += _resource_maps(value, path)
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_resource_map_in_a_crd_spec_checks_its_names(kind: Any) -> None:
    root = crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    maps = _resource_maps(root["properties"]["spec"], "spec")
    assert maps or kind.kind == "Role"
    for path, schema in maps:
        assert RESOURCE_NAMES in schema.get("x-kubernetes-validations", []), path


def _rules(schema: Any) -> list[str]:
    return [
        rule["rule"] for node in _walk(schema) for rule in node.get("x-kubernetes-validations", [])
    ]


def test_the_crds_check_role_names_where_they_appear() -> None:
    crds = {
        k.kind: crd_manifest(k)["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for k in KINDS
    }
    assert any("self.metadata.name.matches(" in rule for rule in _rules(crds["Role"]))
    for kind, field in [("Quota", "role"), ("Reservation", "role"), ("Offer", "role")]:
        assert any(
            "self.matches(" in rule
            for rule in _rules(crds[kind]["properties"]["spec"]["properties"][field])
        ), kind
    spec = crds["Framework"]["properties"]["spec"]["properties"]
    for field in ("roles", "suppressedRoles"):
        assert any("self.matches(" in rule for rule in _rules(spec[field]["items"])), field


def test_framework_defaults_and_active_roles() -> None:
    spec = FrameworkSpec.model_validate({"roles": ["a", "b"], "suppressedRoles": ["b"]})
    assert spec.offer_filters.refuse_seconds == 5.0
    assert spec.active_roles() == ["a"]
    assert FrameworkSpec.model_validate({"suppressed": True}).active_roles() == []
    assert FrameworkSpec.model_validate({}).roles == ["default"]


def test_offer_spec_round_trips_in_camel_case() -> None:
    spec = OfferSpec.model_validate(OFFER)
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
