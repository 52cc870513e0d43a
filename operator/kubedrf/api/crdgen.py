"""CustomResourceDefinitions generated from the pydantic models, the single source of the API.

Pydantic emits JSON Schema (2020-12); the apiserver wants a structural OpenAPI v3 subset, so
references are inlined, optional unions collapsed, titles dropped, exclusive bounds rewritten
and ``const`` turned into a one-value ``enum``. CEL rules travel in ``json_schema_extra`` as
``x-kubernetes-validations``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kubedrf.api.framework import FRAMEWORK
from kubedrf.api.inverse_offer import INVERSE_OFFER
from kubedrf.api.kinds import CATEGORY, GROUP, VERSION, Kind
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
        "metadata": {"name": kind.crd_name},
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
