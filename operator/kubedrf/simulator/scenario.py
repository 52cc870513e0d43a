"""Scenario files for ``kubedrf simulate`` (format in the README): schema, checks, loading.

Every error names the file, the field and the rule, so a bad scenario is fixed in one go.
"""

from __future__ import annotations

import copy
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
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
    #: One map, or a list of alternatives; empty means any non-empty offer.
    min_allocatable: ResourceMap | list[ResourceMap] | None = Field(
        default=None, alias="minAllocatable"
    )
    arrives_at: Seconds = Field(default=0.0, alias="arrivesAt")
    leaves_at: Seconds | None = Field(default=None, alias="leavesAt")
    decline_all: bool = Field(default=False, alias="declineAll")
    #: True: never answers an inverse offer, so its tasks are evicted at the deadline.
    ignores_revocation: bool = Field(default=False, alias="ignoresRevocation")


class ScenarioRevocation(_Strict):
    """Revocation as the master runs it; present means enabled unless ``enabled: false``."""

    enabled: bool = True
    #: How long a framework has to answer an inverse offer before its tasks are evicted.
    grace_period: Seconds = Field(default=30.0, alias="gracePeriod", ge=0, le=MAX_REFUSE_SECONDS)
    #: A task younger than this is never revoked.
    min_runtime: Seconds = Field(default=0.0, alias="minRuntime", ge=0, le=MAX_REFUSE_SECONDS)
    #: Other roles may use the headroom of an unmet guarantee while its role wants nothing.
    lend_guarantees: bool = Field(default=False, alias="lendGuarantees")

    @model_validator(mode="after")
    def _lending_needs_revocation(self) -> Self:
        if self.lend_guarantees and not self.enabled:
            raise PydanticCustomError(
                "lend_needs_revocation",
                "lendGuarantees needs enabled: true (a lent guarantee comes back only"
                " through revocation)",
            )
        return self


class TaskCount(_Strict):
    framework: str = Field(min_length=1)
    count: int = Field(ge=0)


class FrameworkRole(_Strict):
    """A framework, and optionally one of its roles (else all of them)."""

    framework: str = Field(min_length=1)
    role: RoleName | None = None


class RoleWeight(_Strict):
    role: RoleName
    weight: float = Field(gt=0)


#: Event actions by their field name, in the spelling of scenario files.
ACTIONS = {
    "add_nodes": "addNodes",
    "remove_nodes": "removeNodes",
    "set_quota": "setQuota",
    "remove_quota": "removeQuota",
    "set_weight": "setWeight",
    "set_tasks": "setTasks",
    "suppress": "suppress",
    "revive": "revive",
}


class ScenarioEvent(_Strict):
    """One change at ``at``, applied at the start of the first cycle at or after it."""

    at: Seconds
    add_nodes: list[ScenarioNode] | None = Field(default=None, alias="addNodes", min_length=1)
    remove_nodes: list[str] | None = Field(default=None, alias="removeNodes", min_length=1)
    set_quota: ScenarioQuota | None = Field(default=None, alias="setQuota")
    remove_quota: RoleName | None = Field(default=None, alias="removeQuota")
    set_weight: RoleWeight | None = Field(default=None, alias="setWeight")
    set_tasks: TaskCount | None = Field(default=None, alias="setTasks")
    suppress: FrameworkRole | None = None
    revive: FrameworkRole | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        named = [ACTIONS[name] for name in ACTIONS if getattr(self, name) is not None]
        if len(named) != 1:
            got = " and ".join(named) if named else "none"
            raise PydanticCustomError(
                "one_action",
                "each event holds exactly one action ({actions}); got {got}",
                {"actions": ", ".join(ACTIONS.values()), "got": got},
            )
        return self

    @property
    def action(self) -> str:
        """The action's name as the scenario file spells it."""
        return next(ACTIONS[name] for name in ACTIONS if getattr(self, name) is not None)


class Scenario(_Strict):
    allocation_interval: Seconds = Field(default=1.0, alias="allocationInterval")
    cycles: int = Field(default=20, ge=1)
    mode: Mode = "demand"
    seed: int | None = None
    fairness_excluded_resources: list[str] = Field(
        default_factory=list, alias="fairnessExcludedResources"
    )
    #: The master's alternatives (Mesos' --min_allocatable_resources); [] allows any offer.
    min_allocatable: list[ResourceMap] | None = Field(default=None, alias="minAllocatable")
    nodes: list[ScenarioNode] = Field(min_length=1)
    roles: list[ScenarioRole] = Field(default_factory=list)
    quotas: list[ScenarioQuota] = Field(default_factory=list)
    reservations: list[ScenarioReservation] = Field(default_factory=list)
    frameworks: list[ScenarioFramework] = Field(default_factory=list)
    events: list[ScenarioEvent] = Field(default_factory=list)
    #: Absent: no revocation, so a scenario written before it keeps its results.
    revocation: ScenarioRevocation | None = None

    @property
    def revokes(self) -> bool:
        return self.revocation is not None and self.revocation.enabled

    def cycle_of(self, seconds: float) -> int:
        """The first cycle at or after ``seconds``, where a timed change takes effect."""
        # Tolerate float noise: 0.3s at a 0.1s interval is cycle 3, not 4.
        return max(0, math.ceil(seconds / self.allocation_interval - 1e-9))

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
    **ACTIONS,
    "arrives_at": "arrivesAt",
    "leaves_at": "leavesAt",
    "decline_all": "declineAll",
    "ignores_revocation": "ignoresRevocation",
    "grace_period": "gracePeriod",
    "min_runtime": "minRuntime",
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
        if item["type"] == "extra_forbidden" and len(location) == 3 and location[0] == "events":
            message = f"unknown action (actions: {', '.join(ACTIONS.values())})"
        elif item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; docs/scenarios.md has every key)"
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
        yield from _quota_problems(quota, f"quotas[{i}]", undeclared)
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
        leaves = framework.leaves_at
        if leaves is not None and scenario.cycle_of(leaves) <= scenario.cycle_of(
            framework.arrives_at
        ):
            yield f"frameworks[{i}].leavesAt", "must come at least one cycle after arrivesAt"
    yield from _timeline_problems(scenario, undeclared)


def _quota_problems(
    quota: ScenarioQuota, where: str, undeclared: Callable[[str], bool]
) -> Iterator[tuple[str, str]]:
    if undeclared(quota.role):
        yield f"{where}.role", f"role {quota.role!r} is not declared under roles"
    if quota.limit is None:
        return
    limit = Resources.parse(quota.limit)
    for name, amount in Resources.parse(quota.guarantee).items():
        # A limit of zero is a limit (none of it), though ``Resources`` drops the zero.
        if name in quota.limit and limit[name] < amount:
            yield (
                f"{where}.limit.{name}",
                f"must be at least the guarantee ({quota.guarantee[name]}),"
                f" got {quota.limit[name]}",
            )


def _timeline_problems(
    scenario: Scenario, undeclared: Callable[[str], bool]
) -> Iterator[tuple[str, str]]:
    """Events in the order they apply: each must name what exists at that moment."""
    frameworks = {fw.name: fw for fw in scenario.frameworks}
    nodes = {node.name for node in scenario.nodes}
    quotas = {quota.role for quota in scenario.quotas}

    def absent(name: str, cycle: int) -> str | None:
        fw = frameworks.get(name)
        if fw is None:
            return f"framework {name!r} is not among the scenario's frameworks"
        if cycle < scenario.cycle_of(fw.arrives_at):
            return f"framework {name!r} has not arrived yet (arrivesAt {fw.arrives_at:g}s)"
        if fw.leaves_at is not None and cycle >= scenario.cycle_of(fw.leaves_at):
            return f"framework {name!r} has already left (leavesAt {fw.leaves_at:g}s)"
        return None

    events = sorted(enumerate(scenario.events), key=lambda e: scenario.cycle_of(e[1].at))
    for i, event in events:
        cycle = scenario.cycle_of(event.at)
        where = f"events[{i}].{event.action}"
        for j, node in enumerate(event.add_nodes or ()):
            if node.name in nodes:
                yield f"{where}[{j}].name", f"node {node.name!r} already exists at that time"
            nodes.add(node.name)
        for j, name in enumerate(event.remove_nodes or ()):
            if name not in nodes:
                yield f"{where}[{j}]", f"node {name!r} does not exist at that time"
            nodes.discard(name)
        if event.set_quota is not None:
            yield from _quota_problems(event.set_quota, where, undeclared)
            quotas.add(event.set_quota.role)
        if event.remove_quota is not None:
            if event.remove_quota not in quotas:
                yield where, f"role {event.remove_quota!r} has no quota at that time"
            quotas.discard(event.remove_quota)
        if event.set_weight is not None and undeclared(event.set_weight.role):
            yield f"{where}.role", f"role {event.set_weight.role!r} is not declared under roles"
        target = event.set_tasks or event.suppress or event.revive
        if target is None:
            continue
        problem = absent(target.framework, cycle)
        if problem is not None:
            yield f"{where}.framework", problem
            continue
        fw = frameworks[target.framework]
        if event.set_tasks is not None and fw.tasks is None:
            yield f"{where}.framework", f"framework {fw.name!r} declares no tasks to count"
        role = getattr(target, "role", None)
        if role is not None and role not in fw.roles:
            yield f"{where}.role", f"framework {fw.name!r} has no role {role!r}"


#: Cross-field rules that look a name up in a whole list (and the key of its items that holds
#: the name): when an invalid item was left out, a rule that may have looked for it is not
#: judged, since it would fail for no fault of the user's.
_LOOKUPS = {
    "nodes": ("name", ("is not among the scenario's nodes", "does not exist at that time")),
    "roles": ("name", ("is not declared under roles",)),
    "frameworks": ("name", ("is not among the scenario's frameworks",)),
    "quotas": ("role", ("has no quota at that time",)),
}
_SECTION_INDEX = re.compile(r"^(\w+)\[(\d+)\]")


def _valid_part(
    document: Mapping[str, Any], error: ValidationError
) -> tuple[Scenario, dict[str, list[int]], list[str]] | None:
    """The scenario without what ``error`` found invalid, to judge cross-field rules on in the
    same pass: invalid leaves (a misspelt key, a bad amount) are left out, and a whole list
    item when that is not enough. Returns the scenario, the original index of each item kept
    per top-level list, and the lists whose items moved; ``None`` when nothing valid
    remains to judge (no nodes, say)."""
    doc: dict[str, Any] = copy.deepcopy(dict(document))
    dropped: dict[str, set[int]] = defaultdict(set)
    kept: dict[str, list[int]] = {}
    changed: list[str] = []
    pruned: set[tuple[str, int]] = set()  # items already missing a leaf
    errors = error.errors()
    for _ in range(4):
        retried = set(pruned)
        for item in errors:
            location = _original(tuple(p for p in item["loc"] if p != "[key]"), kept)
            section = location[0] if location else None
            index = location[1] if len(location) >= 2 else None
            in_list = isinstance(section, str) and isinstance(doc.get(section), list)
            if in_list and isinstance(index, int):
                assert isinstance(section, str)
                whole = len(location) == 2 or item["type"] == "missing"
                if whole or (section, index) in retried or not _remove(doc, location):
                    dropped[section].add(index)
                    continue
                pruned.add((section, index))
            elif section in dropped or not _remove(doc, location):
                return None  # the list refused without the items left out (too short, say)
            if isinstance(location[-1], int):  # the list's later items moved up one
                changed.append(_field_path(location[:-1]))
        _sweep(doc)
        kept = {
            section: [i for i in range(len(doc[section])) if i not in indices]
            for section, indices in dropped.items()
        }
        candidate = {**doc, **{s: [doc[s][i] for i in kept[s]] for s in kept}}
        try:
            return Scenario.model_validate(candidate), kept, changed
        except ValidationError as again:
            errors = again.errors()  # what leaving out leaves broke: leave out more
    return None


def _original(location: tuple[int | str, ...], kept: dict[str, list[int]]) -> tuple[int | str, ...]:
    """``location`` in a scenario without some items, as a location in the file."""
    if len(location) >= 2 and isinstance(location[0], str) and location[0] in kept:
        index = location[1]
        if isinstance(index, int):
            return (location[0], kept[location[0]][index], *location[2:])
    return location


def _remove(doc: Any, location: tuple[int | str, ...]) -> bool:
    """Remove what ``location`` names from ``doc``; False when there is nothing to remove."""
    *path, last = location or ("",)
    parent = doc
    for part in path:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(parent, dict) and last in parent:
        del parent[last]
        return True
    if isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        parent[last] = _GONE  # swept later: deleting now would shift the next error's index
        return True
    return False


_GONE = object()


def _sweep(value: Any) -> None:
    """Drop the list items ``_remove`` marked, everywhere in ``value``."""
    if isinstance(value, dict):
        for item in value.values():
            _sweep(item)
    elif isinstance(value, list):
        value[:] = [item for item in value if item is not _GONE]
        for item in value:
            _sweep(item)


def _cross_field_problems(
    document: Mapping[str, Any], error: ValidationError
) -> list[tuple[str, str]]:
    """The cross-field rules broken by the part of a scenario that is valid, with paths into
    the file as written, leaving out what the field errors already explain."""
    part = _valid_part(document, error)
    if part is None:
        return []
    scenario, kept, changed = part
    problems = []
    for found, rule in _semantic_problems(scenario):
        field = found
        if (match := _SECTION_INDEX.match(found)) and match[1] in kept:
            section, index = match[1], int(match[2])
            field = f"{section}[{kept[section][index]}]{found[match.end() :]}"
        inside_changed = any(field == c or field.startswith((f"{c}.", f"{c}[")) for c in changed)
        if inside_changed or _looked_for_a_left_out_item(rule, document, kept):
            continue
        problems.append((field, rule))
    return problems


def _looked_for_a_left_out_item(
    rule: str, document: Mapping[str, Any], kept: dict[str, list[int]]
) -> bool:
    for section, (key, texts) in _LOOKUPS.items():
        if section not in kept or not any(text in rule for text in texts):
            continue
        items = document[section]
        left_out = [items[i] for i in range(len(items)) if i not in kept[section]]
        names = [item.get(key) if isinstance(item, Mapping) else None for item in left_out]
        # An item without a readable name might have been any: judge none of its kind.
        if any(not isinstance(n, str) or repr(n) in rule for n in names):
            return True
    return False


def parse_scenario(document: Mapping[str, Any] | Any, source: str) -> Scenario:
    if not isinstance(document, Mapping):
        raise ScenarioError(
            source, [("", "a scenario must be a YAML mapping (see docs/scenarios.md)")]
        )
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as error:
        # Cross-field problems too, so that one pass shows everything to fix.
        problems = _pydantic_problems(error) + _cross_field_problems(document, error)
        raise ScenarioError(source, problems) from None
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
