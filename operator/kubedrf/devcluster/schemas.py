"""JSON schemas for kubeconform, made offline from the apiserver's OpenAPI and our CRDs.

kubeconform fetches its schemas from a registry on the internet; here they are generated
instead, in the layout of its ``-schema-location`` template ``{{ .ResourceKind }}{{ .KindSuffix
}}.json`` (``deployment-apps-v1.json``, ``service-v1.json``, ``framework-kubedrf-v1alpha1.json``):
built-in kinds from the running apiserver's ``/openapi/v2``, our kinds from the generated CRDs.
Each file is standalone (the definitions it reaches are copied in) and strict, as ``kubectl``
validates: an object with declared properties allows no others. The conversion follows
kubeconform's ``openapi2jsonschema.py``: int-or-string becomes a string or an integer, and
quantities may also be numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

DRAFT_04 = "http://json-schema.org/draft-04/schema#"
REF_PREFIX = "#/definitions/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING: Schema = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
NUMBER_OR_STRING: Schema = {"oneOf": [{"type": "string"}, {"type": "number"}]}
#: Keywords whose value is one schema, or a list of schemas.
_SUBSCHEMA = ("items", "additionalProperties", "not")
_SUBSCHEMAS = ("allOf", "anyOf", "oneOf")


def file_name(group: str, version: str, kind: str) -> str:
    """kubeconform's name for a kind's schema: kind, first label of the group, version."""
    suffix = f"-{group.partition('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def location(directory: Path) -> str:
    """The ``-schema-location`` that makes kubeconform read the schemas in ``directory``."""
    return f"{directory}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI schema as a strict JSON schema (recursing into subschemas only)."""
    if not isinstance(schema, Mapping):
        return schema
    if schema.get("format") == "int-or-string" or schema.get("x-kubernetes-int-or-string"):
        return {**INT_OR_STRING, **_annotations(schema)}
    out: Schema = dict(schema)
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in out["properties"].items()}
    if "patternProperties" in out:
        out["patternProperties"] = {p: strict(sub) for p, sub in out["patternProperties"].items()}
    for keyword in _SUBSCHEMA:
        if isinstance(out.get(keyword), Mapping):
            out[keyword] = strict(out[keyword])
    for keyword in _SUBSCHEMAS:
        if isinstance(out.get(keyword), list):
            out[keyword] = [strict(sub) for sub in out[keyword]]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserves = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserves:
        out["additionalProperties"] = False
    return out


def _annotations(schema: Mapping[str, Any]) -> Schema:
    return {key: schema[key] for key in ("description",) if key in schema}


def _refs(schema: Any) -> Iterable[str]:
    if isinstance(schema, Mapping):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref.removeprefix(REF_PREFIX)
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def _definitions(openapi: Mapping[str, Any]) -> dict[str, Schema]:
    """The OpenAPI definitions made strict, quantities accepting numbers as the API does."""
    definitions = {name: strict(body) for name, body in openapi["definitions"].items()}
    if QUANTITY in definitions:
        definitions[QUANTITY] = {**NUMBER_OR_STRING, **_annotations(definitions[QUANTITY])}
    return definitions


def standalone(root: Schema, definitions: Mapping[str, Schema]) -> Schema:
    """``root`` with every definition it reaches (transitively) copied beside it."""
    reached: dict[str, Schema] = {}
    pending = list(_refs(root))
    while pending:
        name = pending.pop()
        if name not in reached:
            reached[name] = definitions[name]
            pending.extend(_refs(reached[name]))
    return {"$schema": DRAFT_04, **root, "definitions": dict(sorted(reached.items()))}


def from_openapi(openapi: Mapping[str, Any]) -> dict[str, Schema]:
    """Schemas of every kind the apiserver's OpenAPI v2 document declares, by file name."""
    definitions = _definitions(openapi)
    schemas: dict[str, Schema] = {}
    for name in sorted(definitions):
        for gvk in openapi["definitions"][name].get("x-kubernetes-group-version-kind", []):
            file = file_name(gvk["group"], gvk["version"], gvk["kind"])
            # Shared kinds (DeleteOptions, WatchEvent) list every group: the first one wins.
            schemas.setdefault(file, standalone(definitions[name], definitions))
    return schemas


def from_crd(crd: Mapping[str, Any], openapi: Mapping[str, Any]) -> dict[str, Schema]:
    """Schemas of a CRD's served versions; ``metadata`` is validated as ObjectMeta."""
    definitions = _definitions(openapi)
    spec = crd["spec"]
    schemas: dict[str, Schema] = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        root = strict(version["schema"]["openAPIV3Schema"])
        root["properties"] = {**root["properties"], "metadata": {"$ref": REF_PREFIX + OBJECT_META}}
        file = file_name(spec["group"], version["name"], spec["names"]["kind"])
        schemas[file] = standalone(root, definitions)
    return schemas


def write(directory: Path, schemas: Mapping[str, Schema]) -> str:
    """Write ``schemas`` into ``directory``; returns the matching ``-schema-location``."""
    directory.mkdir(parents=True, exist_ok=True)
    for file, schema in schemas.items():
        (directory / file).write_text(json.dumps(schema, indent=1, sort_keys=True))
    return location(directory)
