"""Quota: a role's guarantee (served before fair sharing) and limit (never exceeded)."""

from __future__ import annotations

from typing import Self

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from kubedrf.api.kinds import AGE, Kind, PrinterColumn
from kubedrf.api.types import (
    Conditions,
    KubeModel,
    ReportedResources,
    ResourceList,
    RoleName,
    cel,
    to_resources,
    validations,
)
from kubedrf.resources import Resources


def _limit_below_guarantee(k: str) -> str:
    """CEL: resource ``k`` is in both maps, well formed, and its limit is below its guarantee."""
    limit, guarantee = f"string(self.limit[{k}])", f"string(self.guarantee[{k}])"
    return (
        f"{k} in self.limit && isQuantity({limit}) && isQuantity({guarantee})"
        f" && quantity({limit}).isLessThan(quantity({guarantee}))"
    )


LIMIT_AT_LEAST_GUARANTEE = cel(
    "!has(self.limit) || !has(self.guarantee)"
    f" || !self.guarantee.exists(k, {_limit_below_guarantee('k')})",
    "spec.limit must be at least spec.guarantee for every resource in both",
    ".limit",
    f"self.guarantee.filter(k, {_limit_below_guarantee('k')}).map(k, 'spec.limit.' + k"
    " + ' (' + string(self.limit[k]) + ') must be at least spec.guarantee.' + k"
    " + ' (' + string(self.guarantee[k]) + ')')[0]",
)


class QuotaSpec(KubeModel):
    """A role's guarantee and limit; a role has at most one Quota."""

    role: RoleName = Field(description="The role this quota applies to.")
    guarantee: ResourceList = Field(
        default_factory=dict,
        description="Resources the role is served before fair sharing, while it has demand.",
    )
    limit: ResourceList | None = Field(
        default=None,
        description="Resources the role's offers and allocations never exceed.",
    )

    model_config = ConfigDict(json_schema_extra=validations(LIMIT_AT_LEAST_GUARANTEE))

    @model_validator(mode="after")
    def _limit_at_least_guarantee(self) -> Self:
        if self.limit is None:
            return self
        guarantee, limit = self.guarantee_resources(), self.limit_resources()
        assert limit is not None
        for name, amount in guarantee.items():
            if name in limit and limit[name] < amount:
                raise PydanticCustomError(
                    "limit_below_guarantee",
                    "spec.limit.{name} ({limit}) must be at least spec.guarantee.{name}"
                    " ({guarantee})",
                    {"name": name, "limit": self.limit[name], "guarantee": self.guarantee[name]},
                )
        return self

    def guarantee_resources(self) -> Resources:
        return to_resources(self.guarantee, "spec.guarantee")

    def limit_resources(self) -> Resources | None:
        return None if self.limit is None else to_resources(self.limit, "spec.limit")


class QuotaStatus(KubeModel):
    """What the role consumes against the quota, written by the master after each cycle."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status was computed from."
    )
    consumed: ReportedResources = Field(
        default_factory=dict,
        description="Allocated and offered outside reservations, plus everything reserved.",
    )
    conditions: Conditions = Field(default_factory=list)


QUOTA = Kind(
    kind="Quota",
    plural="quotas",
    scope="Cluster",
    spec=QuotaSpec,
    status=QuotaStatus,
    # Not "quota": that short form belongs to ResourceQuota.
    short_names=("drfquota",),
    description="Guarantee and limit of one kubedrf role.",
    columns=(
        PrinterColumn("Role", ".spec.role", description="The role it applies to."),
        # Whole maps, so every resource the quota names shows, not only CPU.
        PrinterColumn("Guarantee", ".spec.guarantee", description="Every resource guaranteed."),
        PrinterColumn("Limit", ".spec.limit", description="Every resource limited."),
        PrinterColumn(
            "Consumed", ".status.consumed", description="What the role consumes against it."
        ),
        AGE,
    ),
)
