"""Field types of the API models and scenario files: quantities, resource lists, conditions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from kubedrf.allocator.roles import (
    MAX_ROLE_NAME,
    ROLE_NAME_PATTERN,
    ROLE_NAME_RULE,
    role_name_error,
)
from kubedrf.resources import (
    MAX_RESOURCE_NAME,
    QUOTA_PREFIX,
    RESERVED_RESOURCE_DOMAIN_PATTERN,
    RESOURCE_NAME_PATTERN,
    RESOURCE_NAME_RULE,
    QuantityError,
    Resources,
    parse_amount,
    parse_quantity,
    resource_name_error,
)

#: Kubernetes' quantity grammar without a sign: negative amounts are never meaningful here.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE]\+?[0-9]+))?$"
)
#: Bounds the cost of CEL rules that iterate over a resource list.
MAX_RESOURCES = 32
#: Longest filter a decline installs (a year). The master clamps to it as well: a filter's
#: expiry must stay a representable time, and Offers written before this bound existed may
#: carry more.
MAX_REFUSE_SECONDS = 365 * 24 * 3600
#: Role weights: a million-fold ratio between siblings is plenty, and a share divided by the
#: smallest weight stays finite (5e-324 made it infinite, which no status can carry).
MIN_WEIGHT = 0.001
MAX_WEIGHT = 1000.0


def _check_quantity(value: object) -> str:
    try:
        parse_amount("quantity", value)
    except QuantityError as error:
        raise PydanticCustomError("quantity", error.message) from None
    return str(value)


def _check_positive(value: str) -> str:
    if parse_quantity(value) == 0:
        raise PydanticCustomError(
            "quantity", "must be greater than zero, got {value}", {"value": repr(value)}
        )
    return value


def _rule_checker(code: str, error_of: Callable[[str], str | None]) -> Callable[[str], str]:
    """A pydantic validator that refuses what ``error_of`` has a reason against."""

    def check(value: str) -> str:
        error = error_of(value)
        if error is not None:
            # Passed as context: a template would read braces in the value as placeholders.
            raise PydanticCustomError(code, "{error}", {"error": error})
        return value

    return check


def _cel_string(text: str) -> str:
    """``text`` as a CEL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cel(
    rule: str, message: str, field_path: str | None = None, message_expression: str | None = None
) -> JsonDict:
    """One ``x-kubernetes-validations`` entry.

    ``message_expression`` builds the message from the object, naming the offending key; the
    apiserver falls back to ``message`` if it fails. Its cost counts against the CRD's budget:
    name the first offender (``filter(...)[0]``), since ``join()`` on a filtered list has no
    bound the estimator can see and the CRD is then refused.
    """
    entry: JsonDict = {"rule": rule, "message": message}
    if message_expression:
        entry["messageExpression"] = message_expression
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: JsonDict) -> Callable[[JsonDict], None]:
    """A ``json_schema_extra`` that adds CEL rules to those already there.

    A field's own rules (``immutable``) then join those of its type (a resource list's names)
    instead of replacing them.
    """

    def add(schema: JsonDict) -> None:
        if not rules:
            return
        existing = schema.setdefault("x-kubernetes-validations", [])
        assert isinstance(existing, list)
        existing.extend(rules)

    return add


# Compared by identity: typing hashes annotation metadata, and the rules are dicts.
@dataclass(frozen=True, eq=False)
class CelRules:
    """Annotation metadata: CEL rules that travel with a type wherever it is used."""

    rules: tuple[JsonDict, ...]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        validations(*self.rules)(schema)
        return schema


def _quantity_schema(*rules: JsonDict) -> JsonDict:
    schema: JsonDict = {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
        # Integers are held to the minimum, strings to the pattern (which has no sign), so a
        # negative amount is refused on the map key itself: spec.guarantee.cpu.
        "minimum": 0,
        "pattern": QUANTITY_PATTERN,
        "maxLength": 64,
    }
    validations(*rules)(schema)
    return schema


Quantity = Annotated[str, BeforeValidator(_check_quantity), WithJsonSchema(_quantity_schema())]

#: A quantity above zero. The rule refuses only zero: malformed and negative amounts are the
#: pattern's and the minimum's to refuse, so each mistake gets one message.
PositiveQuantity = Annotated[
    str,
    BeforeValidator(_check_quantity),
    AfterValidator(_check_positive),
    WithJsonSchema(
        _quantity_schema(
            cel(
                "!isQuantity(string(self)) || quantity(string(self)).compareTo(quantity('0')) != 0",
                "must be greater than zero",
            )
        )
    ),
]

#: A resource name a client writes (``kubedrf.resources.resource_name_error``); each bad key
#: is refused on its own, beside any bad amount in the same map.
ResourceName = Annotated[str, AfterValidator(_rule_checker("resource_name", resource_name_error))]

_VALID_RESOURCE_NAME = (
    f"(k.size() <= {MAX_RESOURCE_NAME} && k.matches(r'{RESOURCE_NAME_PATTERN}')"
    f" && !k.startsWith('{QUOTA_PREFIX}') && !k.matches(r'{RESERVED_RESOURCE_DOMAIN_PATTERN}'))"
)
#: The same rule for the apiserver; map keys have no schema of their own, so it sits on the map.
RESOURCE_NAMES = cel(
    f"self.all(k, {_VALID_RESOURCE_NAME})",
    f"resource names must be valid: {RESOURCE_NAME_RULE}",
    message_expression=f'"resource name \'" + self.filter(k, !{_VALID_RESOURCE_NAME})[0]'
    f' + "\' is not valid: " + {_cel_string(RESOURCE_NAME_RULE)}',
)

ResourceList = Annotated[
    dict[ResourceName, Quantity],
    Field(max_length=MAX_RESOURCES),
    CelRules((RESOURCE_NAMES,)),
]
#: Resource lists of things that exist (a task's shape, a reservation): no zero amounts.
PositiveResourceList = Annotated[
    dict[ResourceName, PositiveQuantity],
    Field(max_length=MAX_RESOURCES),
    CelRules((RESOURCE_NAMES,)),
]
#: What the master reports in a status: names as its nodes report them, not re-checked, so a
#: node resource outside the client rule never blocks a status update.
ReportedResources = Annotated[dict[str, Quantity], Field(max_length=MAX_RESOURCES)]
#: Object names the API refers to (frameworks, nodes); bounded so CEL rules stay cheap.
Name = Annotated[str, Field(min_length=1, max_length=253)]


def role_name_rule(subject: str = "self", prefix: str = "") -> JsonDict:
    """CEL: the CEL string ``subject`` is a role name (``role_name_error``'s rule)."""
    return cel(
        f"{subject}.size() <= {MAX_ROLE_NAME} && {subject}.matches(r'{ROLE_NAME_PATTERN}')",
        f"{prefix}must be a role name: {ROLE_NAME_RULE}",
        message_expression=f'"{prefix}role name \'" + {subject} + "\' is not valid: "'
        f" + {_cel_string(ROLE_NAME_RULE)}",
    )


#: A role's dotted name, in spec and CRD alike.
RoleName = Annotated[
    str,
    Field(max_length=MAX_ROLE_NAME),
    AfterValidator(_rule_checker("role_name", role_name_error)),
    CelRules((role_name_rule(),)),
]
#: Role weights, bounded (``MIN_WEIGHT``) so that shares stay finite. The CRD states the
#: bounds in CEL: the apiserver compares an integer (``weight: 0``) with a schema ``minimum``
#: truncated to an integer, so ``minimum: 0.001`` would let 0 through.
Weight = Annotated[
    float,
    Field(ge=MIN_WEIGHT, le=MAX_WEIGHT),
    WithJsonSchema(
        {
            "type": "number",
            "x-kubernetes-validations": [
                cel(
                    f"self >= {MIN_WEIGHT} && self <= {MAX_WEIGHT}",
                    f"must be between {MIN_WEIGHT} and {MAX_WEIGHT:g}",
                )
            ],
        }
    ),
]
#: How long a declined node stays filtered; bounded so its expiry stays a representable time.
RefuseSeconds = Annotated[float, Field(ge=0, le=MAX_REFUSE_SECONDS)]


def to_resources(resource_list: dict[str, str] | None, field: str = "resources") -> Resources:
    return Resources.parse(resource_list or {}, field)


class KubeModel(BaseModel):
    """API objects: camelCase on the wire, unknown fields ignored (the apiserver prunes)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


def to_api(model: BaseModel, *, only_set: bool = False) -> dict[str, Any]:
    """A model as the API takes it: camelCase keys, RFC 3339 times, ``None`` left out.

    ``only_set`` leaves out fields never given as well: a status merge patch then touches
    only what the master computed this time, as a hand-built dict would.
    """
    dumped: dict[str, Any] = model.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude_unset=only_set
    )
    return dumped


class ConditionType(StrEnum):
    """The conditions the master writes, by name: status, Events, printer columns and the SDK
    all name them from here."""

    READY = "Ready"
    CONNECTED = "Connected"
    ROLES_ALLOWED = "RolesAllowed"
    OFFERED = "Offered"
    REVOKING = "Revoking"
    TASKS_FIT = "TasksFit"
    VALID = "Valid"
    GUARANTEE_FITS = "GuaranteeFits"


class Condition(KubeModel):
    """One aspect of the object's state, as every Kubernetes status reports it."""

    type: str = Field(description="What the condition is about, such as Ready or Offered.")
    status: Literal["True", "False", "Unknown"] = Field(description="Whether it holds.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the condition was set from."
    )
    last_transition_time: datetime = Field(description="When status last changed.")
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
        description="Why, in one CamelCase word a program can match on.",
    )
    message: str = Field(default="", max_length=32768, description="Why, for people.")


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        description="The object's conditions, one per type.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]


IMMUTABLE = cel("self == oldSelf", "is immutable")
