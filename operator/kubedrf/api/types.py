"""Field types of the API models and scenario files: quantities, resource lists, conditions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from kubedrf.resources import QuantityError, Resources, parse_amount

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


Quantity = Annotated[
    str,
    BeforeValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "maxLength": 64,
        }
    ),
]

ResourceList = Annotated[
    dict[str, Quantity],
    Field(max_length=MAX_RESOURCES),
]


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


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One ``x-kubernetes-validations`` entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: JsonDict) -> JsonDict:
    return {"x-kubernetes-validations": list(rules)}


#: A rule for resource lists whose every amount must be above zero.
POSITIVE_QUANTITIES = cel(
    "self.all(k, quantity(string(self[k])).isGreaterThan(quantity('0')))",
    "every quantity must be greater than zero",
)
#: A rule that rejects negative integers (strings are held to QUANTITY_PATTERN).
NON_NEGATIVE_QUANTITIES = cel(
    "self.all(k, !quantity(string(self[k])).isLessThan(quantity('0')))",
    "quantities must not be negative",
)
IMMUTABLE = cel("self == oldSelf", "is immutable")
