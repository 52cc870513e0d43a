"""CustomResourceDefinitions generated from the pydantic models, the single source of the API.

Pydantic emits JSON Schema (2020-12); the apiserver wants a structural OpenAPI v3 subset, so
references are inlined, optional unions collapsed, titles dropped, exclusive bounds rewritten
and ``const`` turned into a one-value ``enum``. CEL rules travel in ``json_schema_extra`` as
``x-kubernetes-validations``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kubedrf.api.framework import FRAMEWORK
from kubedrf.api.inverse_offer import INVERSE_OFFER
from kubedrf.api.kinds import API_VERSION, CATEGORY, GROUP, VERSION, Kind
from kubedrf.api.offer import OFFER
from kubedrf.api.quota import QUOTA
from kubedrf.api.reservation import RESERVATION
from kubedrf.api.role import ROLE

KINDS: tuple[Kind, ...] = (FRAMEWORK, OFFER, INVERSE_OFFER, ROLE, QUOTA, RESERVATION)

_DROPPED = {"title", "$defs"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            if rest.get("default", ...) is None:
                del rest["default"]
            return _structural({**branches[0], **rest}, defs)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "const":
            # One-value Literals; the apiserver has no const and would drop it silently.
            result["enum"] = [value]
            continue
        if key == "exclusiveMinimum" and not isinstance(value, bool):
            result["minimum"] = value
            result["exclusiveMinimum"] = True
            continue
        if key == "exclusiveMaximum" and not isinstance(value, bool):
            result["maximum"] = value
            result["exclusiveMaximum"] = True
            continue
        if key == "anyOf" and node.get("x-kubernetes-int-or-string"):
            result[key] = [{"type": b["type"]} for b in value]
            continue
        if key == "properties":
            result[key] = {name: _structural(sub, defs) for name, sub in value.items()}
            continue
        result[key] = _structural(value, defs)
    if "enum" in result and "type" not in result:
        result["type"] = "string"
    return result


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of one model, as the apiserver accepts it."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return dict(_structural(schema, schema.get("$defs", {})))


#: The annotation that keeps Helm from deleting an object with its release.
HELM_RESOURCE_POLICY = "helm.sh/resource-policy"


def crd_manifest(kind: Kind) -> dict[str, Any]:
    spec_schema = openapi_schema(kind.spec)
    root: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": openapi_schema(kind.status),
        },
    }
    if kind.spec_required:
        root["required"] = ["spec"]
    else:
        spec_schema["default"] = {}
    if kind.extra_rules:
        root["x-kubernetes-validations"] = list(kind.extra_rules)
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
        "subresources": {"status": {}},
    }
    if kind.columns:
        version["additionalPrinterColumns"] = [
            {
                "name": column.name,
                "type": column.type,
                "jsonPath": column.json_path,
                **({"description": column.description} if column.description else {}),
                **({"priority": column.priority} if column.priority else {}),
            }
            for column in kind.columns
        ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        # Deleting a CRD deletes every object of its kind: the chart installs the CRDs as
        # templates (so that upgrades update them), and this keeps an uninstall from doing so.
        "metadata": {"name": kind.crd_name, "annotations": {HELM_RESOURCE_POLICY: "keep"}},
        "spec": {
            "group": GROUP,
            "scope": kind.scope,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [version],
        },
    }


HEADER = (
    "# Generated by `kubedrf crds` from the pydantic models in operator/kubedrf/api. Do not edit.\n"
)


def render(kind: Kind) -> str:
    return HEADER + yaml.safe_dump(crd_manifest(kind), sort_keys=False, width=100)


def file_name(kind: Kind) -> str:
    return f"{GROUP}_{kind.plural}.yaml"


def write(directories: Iterable[Path]) -> list[Path]:
    """Write every CRD into each directory; return the files written."""
    written = []
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            path = directory / file_name(kind)
            path.write_text(render(kind), encoding="utf-8")
            written.append(path)
    return written


def drift(directories: Iterable[Path]) -> list[Path]:
    """Files that differ from what the models generate (missing ones included)."""
    stale = []
    for directory in directories:
        for kind in KINDS:
            path = directory / file_name(kind)
            if not path.exists() or path.read_text(encoding="utf-8") != render(kind):
                stale.append(path)
    return stale


# -- the API reference (docs/api.md) ----------------------------------------------------------

REFERENCE_PATH = Path("docs/api.md")
REFERENCE_HEADER = (
    "<!-- Generated by `kubedrf crds` from the pydantic models in operator/kubedrf/api."
    " Do not edit. -->\n"
)


def _type_name(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "quantity"
    kind = schema.get("type", "object")
    if kind == "array":
        return f"list of {_type_name(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map of {_type_name(schema['additionalProperties'])}"
    if kind == "string" and schema.get("format") == "date-time":
        return "time (RFC 3339)"
    return str(kind)


def _rules(schema: dict[str, Any]) -> list[str]:
    """The constraints a user must meet, in words, beside the field's own description."""
    notes = []
    if "enum" in schema:
        notes.append("one of " + ", ".join(f"`{value}`" for value in schema["enum"]))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        low_op = "<" if schema.get("exclusiveMinimum") else "≤"
        high_op = "<" if schema.get("exclusiveMaximum") else "≤"
        left = f"{_number(low)} {low_op} " if low is not None else ""
        right = f" {high_op} {_number(high)}" if high is not None else ""
        notes.append(f"{left}value{right}")
    for key, words in (("minItems", "at least {} items"), ("maxItems", "at most {} items")):
        if key in schema:
            notes.append(words.format(schema[key]))
    if "maxProperties" in schema:
        notes.append(f"at most {schema['maxProperties']} entries")
    for rule in schema.get("x-kubernetes-validations", []):
        notes.append("immutable" if rule["rule"] == "self == oldSelf" else rule["message"])
    return notes


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _rows(schema: dict[str, Any], path: str) -> Iterable[tuple[str, str, str, str]]:
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        field_path = f"{path}.{name}"
        description = sub.get("description", "")
        items = sub.get("items", {})
        notes = _rules(sub) + (_rules(items) if items.get("type") != "object" else [])
        if notes:
            description = f"{description} {_sentence('; '.join(notes))}.".strip()
        default = sub.get("default")
        shown = "" if default is None or default in ({}, []) else f"`{json.dumps(default)}`"
        yield (
            f"`{field_path}`" + (" (required)" if name in required else ""),
            _type_name(sub),
            shown,
            description.replace("|", "\\|").replace("\n", " "),
        )
        if sub.get("type") == "object" and "properties" in sub:
            yield from _rows(sub, field_path)
        if items.get("type") == "object" and "properties" in items:
            yield from _rows(items, f"{field_path}[]")


def _kind_section(kind: Kind) -> str:
    manifest = crd_manifest(kind)
    (version,) = manifest["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    names = ", ".join(f"`{name}`" for name in (kind.plural, *kind.short_names))
    scope = "namespaced" if kind.scope == "Namespaced" else "cluster-scoped"
    lines = [
        f"## {kind.kind}",
        "",
        root.get("description", ""),
        "",
        f"`{API_VERSION}`, {scope}; kubectl names: {names}.",
        "",
    ]
    for rule in root.get("x-kubernetes-validations", []):
        lines += [f"- {rule['message']}"]
    if root.get("x-kubernetes-validations"):
        lines.append("")
    if kind.columns:
        lines += ["Columns of `kubectl get`:", "", "| column | shows |", "|---|---|"]
        lines += [f"| {c.name} | {c.description or f'`{c.json_path}`'} |" for c in kind.columns]
        lines.append("")
    for part in ("spec", "status"):
        schema = root["properties"][part]
        lines += [f"`{part}`: {schema.get('description', '')}", ""]
        lines += [f"- {_sentence(rule)}." for rule in _rules(schema)]
        lines += ["", "| field | type | default | description |", "|---|---|---|---|"]
        rows = _rows(schema, part)
        lines += [f"| {' | '.join(row)} |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def api_reference() -> str:
    """Every field of every kind, with its type, default, description and rules."""
    intro = (
        "# API reference\n\n"
        f"Group `{GROUP}`, version `{VERSION}`. Every kind is in the `{CATEGORY}` category:"
        f" `kubectl get {CATEGORY} -A` lists them all, and `kubectl explain` shows the same"
        " descriptions (`kubectl explain framework.spec.offerFilters`). See"
        " [design.md](design.md) for how the kinds work together.\n\n"
        "Resource maps take Kubernetes resource names (`cpu`, `memory`, `ephemeral-storage`,"
        " `pods`, `hugepages-<size>`, or an extended resource such as `nvidia.com/gpu`) and"
        " quantities (`500m`, `4Gi`).\n"
    )
    sections = [_kind_section(kind) for kind in KINDS]
    return REFERENCE_HEADER + "\n" + intro + "\n" + "\n".join(sections)


def write_reference(path: Path = REFERENCE_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(api_reference(), encoding="utf-8")
    return path


def reference_drift(path: Path = REFERENCE_PATH) -> bool:
    """Whether the committed API reference differs from what the models generate."""
    return not path.exists() or path.read_text(encoding="utf-8") != api_reference()
