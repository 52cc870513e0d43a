"""Printing as kubectl prints: aligned tables with upper-case headers, or ``-o json|yaml``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import yaml

from kubedrf.resources import Resources

#: kubectl separates columns by three spaces.
GAP = "   "


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as wide as their widest cell, the last one unpadded (as kubectl's)."""
    if not rows:
        return "No resources found."
    cells = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        GAP.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def amounts(resources: Resources | None, empty: str = "-") -> str:
    """``cpu=3,memory=12Gi``: quantities as kubectl describes them."""
    if resources is None or resources.is_empty():
        return empty
    return ",".join(f"{k}={v}" for k, v in resources.to_quantities().items())


def plain(value: Any) -> Any:
    """Dataclasses, resource maps and tuples as JSON-ready values; quantities as strings."""
    if isinstance(value, Resources):
        return value.to_quantities()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_camel(f.name): plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def render(document: Any, output: str) -> str:
    data = plain(document)
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    return yaml.safe_dump(data, sort_keys=False).rstrip()
