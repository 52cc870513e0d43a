"""Scenario files for ``kubedrf simulate`` (DESIGN.md §5): schema, semantic checks, loading.

Every error names the file, the field and the rule, so a bad scenario is fixed in one go.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from kubedrf.allocator.model import DEFAULT_ROLE, Mode
from kubedrf.allocator.roles import lineage
from kubedrf.api.types import MAX_REFUSE_SECONDS, Quantity, ResourceName, RoleName, Weight
from kubedrf.durations import parse_duration
from kubedrf.resources import Resources


def _to_seconds(value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise PydanticCustomError("duration", str(error)) from None


ResourceMap = dict[ResourceName, Quantity]
Seconds = Annotated[float, BeforeValidator(_to_seconds)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ScenarioNode(_Strict):
    name: str = Field(min_length=1)
    allocatable: ResourceMap


class ScenarioRole(_Strict):
    name: RoleName
    weight: Weight = 1.0


class ScenarioQuota(_Strict):
    role: RoleName
    guarantee: ResourceMap = Field(default_factory=dict)
    limit: ResourceMap | None = None


class ScenarioReservation(_Strict):
    role: RoleName
    node_name: str = Field(alias="nodeName", min_length=1)
    resources: ResourceMap


class ScenarioTasks(_Strict):
    count: int = Field(ge=0)
    resources: ResourceMap
    duration: Seconds = 0.0


class ScenarioFramework(_Strict):
    name: str = Field(min_length=1)
    roles: list[RoleName] = Field(default_factory=lambda: [DEFAULT_ROLE], min_length=1)
    refuse_seconds: Seconds = Field(default=5.0, alias="refuseSeconds", ge=0, le=MAX_REFUSE_SECONDS)
    tasks: ScenarioTasks | None = None
    capabilities: list[str] = Field(default_factory=list)
    min_allocatable: ResourceMap | None = Field(default=None, alias="minAllocatable")


class Scenario(_Strict):
    allocation_interval: Seconds = Field(default=1.0, alias="allocationInterval")
    cycles: int = Field(default=20, ge=1)
    mode: Mode = "demand"
    seed: int | None = None
    fairness_excluded_resources: list[str] = Field(
        default_factory=list, alias="fairnessExcludedResources"
    )
    nodes: list[ScenarioNode] = Field(min_length=1)
    roles: list[ScenarioRole] = Field(default_factory=list)
    quotas: list[ScenarioQuota] = Field(default_factory=list)
    reservations: list[ScenarioReservation] = Field(default_factory=list)
    frameworks: list[ScenarioFramework] = Field(default_factory=list)

    @field_validator("allocation_interval")
    @classmethod
    def _positive_interval(cls, value: float) -> float:
        if value <= 0:
            raise PydanticCustomError("interval", "must be greater than zero")
        return value


class ScenarioError(Exception):
    """A scenario that cannot run; ``problems`` are (field path, rule) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [
            f"{source}: {field}: {rule}" if field else f"{source}: {rule}"
            for field, rule in problems
        ]
        super().__init__("\n".join(lines))


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if part == "[key]":
            continue  # pydantic's marker for a map key: the key itself names the field
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


_ALIASES = {
    "node_name": "nodeName",
    "refuse_seconds": "refuseSeconds",
    "min_allocatable": "minAllocatable",
    "allocation_interval": "allocationInterval",
    "fairness_excluded_resources": "fairnessExcludedResources",
}


def _pydantic_problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        location = tuple(_ALIASES.get(p, p) if isinstance(p, str) else p for p in item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see DESIGN.md §5 for the format)"
        problems.append((_field_path(location), message))
    return problems


def _semantic_problems(scenario: Scenario) -> Iterator[tuple[str, str]]:
    """Cross-field rules the schema alone cannot state."""
    node_names: dict[str, int] = {}
    for i, node in enumerate(scenario.nodes):
        if node.name in node_names:
            yield f"nodes[{i}].name", f"duplicate node name {node.name!r}"
        node_names[node.name] = i
    declared = {role.name for role in scenario.roles}
    seen_roles: set[str] = set()
    for i, role in enumerate(scenario.roles):
        if role.name in seen_roles:
            yield f"roles[{i}].name", f"duplicate role {role.name!r}"
        seen_roles.add(role.name)

    def undeclared(role: str) -> bool:
        # When roles are declared, every role used must be declared or be an ancestor of one.
        return (
            bool(declared)
            and role not in declared
            and not any(role in lineage(d) for d in declared)
        )

    quota_roles: set[str] = set()
    for i, quota in enumerate(scenario.quotas):
        if quota.role in quota_roles:
            yield f"quotas[{i}].role", f"role {quota.role!r} already has a quota"
        quota_roles.add(quota.role)
        if undeclared(quota.role):
            yield f"quotas[{i}].role", f"role {quota.role!r} is not declared under roles"
        if quota.limit is not None:
            guarantee = Resources.parse(quota.guarantee)
            limit = Resources.parse(quota.limit)
            for name, amount in guarantee.items():
                if name in limit and limit[name] < amount:
                    yield (
                        f"quotas[{i}].limit.{name}",
                        f"must be at least the guarantee ({quota.guarantee[name]}),"
                        f" got {quota.limit[name]}",
                    )
    reserved: dict[str, Resources] = {}
    for i, reservation in enumerate(scenario.reservations):
        if reservation.node_name not in node_names:
            yield (
                f"reservations[{i}].nodeName",
                f"node {reservation.node_name!r} is not among the scenario's nodes",
            )
            continue
        if undeclared(reservation.role):
            yield (
                f"reservations[{i}].role",
                f"role {reservation.role!r} is not declared under roles",
            )
        total = reserved.get(reservation.node_name, Resources()) + Resources.parse(
            reservation.resources
        )
        reserved[reservation.node_name] = total
        node = scenario.nodes[node_names[reservation.node_name]]
        if not total <= Resources.parse(node.allocatable):
            yield (
                f"reservations[{i}].resources",
                f"reservations on node {reservation.node_name!r} exceed its allocatable",
            )
    names: set[str] = set()
    for i, framework in enumerate(scenario.frameworks):
        if framework.name in names:
            yield f"frameworks[{i}].name", f"duplicate framework name {framework.name!r}"
        names.add(framework.name)
        for j, used in enumerate(framework.roles):
            if undeclared(used):
                yield (
                    f"frameworks[{i}].roles[{j}]",
                    f"role {used!r} is not declared under roles"
                    f" (declared: {', '.join(sorted(declared))})",
                )


def parse_scenario(document: Mapping[str, Any] | Any, source: str) -> Scenario:
    if not isinstance(document, Mapping):
        raise ScenarioError(source, [("", "a scenario must be a YAML mapping (see DESIGN.md §5)")])
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as error:
        raise ScenarioError(source, _pydantic_problems(error)) from None
    problems = list(_semantic_problems(scenario))
    if problems:
        raise ScenarioError(source, problems)
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(source, [("", f"cannot read the file: {error.strerror}")]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ScenarioError(source, [("", f"{where}not valid YAML: {problem}")]) from None
    return parse_scenario(document, source)
