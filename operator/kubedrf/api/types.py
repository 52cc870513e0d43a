"""Field types of the API models and scenario files: quantities, resource lists, conditions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from kubedrf.resources import QuantityError, Resources, parse_amount, parse_quantity

#: Kubernetes' quantity grammar without a sign: negative amounts are never meaningful here.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE]\+?[0-9]+))?$"
)
#: Bounds the cost of CEL rules that iterate over a resource list.
MAX_RESOURCES = 32


def _check_quantity(value: object) -> str:
    try:
        parse_amount("quantity", value)
    except QuantityError as error:
        raise PydanticCustomError("quantity", error.message) from None
    return str(value)


def _check_positive(value: str) -> str:
    if parse_quantity(value) == 0:
        raise PydanticCustomError(
            "quantity", "must be greater than zero, got {value!r}", {"value": value}
        )
    return value


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


def validations(*rules: JsonDict) -> JsonDict:
    return {"x-kubernetes-validations": list(rules)}


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
    if rules:
        schema.update(validations(*rules))
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

ResourceList = Annotated[
    dict[str, Quantity],
    Field(max_length=MAX_RESOURCES),
]
#: Resource lists of things that exist (a task's shape, a reservation): no zero amounts.
PositiveResourceList = Annotated[
    dict[str, PositiveQuantity],
    Field(max_length=MAX_RESOURCES),
]
#: Object names the API refers to (roles, frameworks, nodes); bounded so CEL rules stay cheap.
Name = Annotated[str, Field(min_length=1, max_length=253)]


def to_resources(resource_list: dict[str, str] | None, field: str = "resources") -> Resources:
    return Resources.parse(resource_list or {}, field)


class KubeModel(BaseModel):
    """API objects: camelCase on the wire, unknown fields ignored (the apiserver prunes)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class Condition(KubeModel):
    """metav1.Condition, as every Kubernetes status carries it."""

    type: str
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = Field(default=None, ge=0)
    last_transition_time: datetime
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]


IMMUTABLE = cel("self == oldSelf", "is immutable")
