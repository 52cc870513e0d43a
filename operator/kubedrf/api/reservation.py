"""Reservation: resources on one node that only a role (and its descendants) may be offered."""

from __future__ import annotations

from pydantic import Field

from kubedrf.api.kinds import AGE, Kind, PrinterColumn
from kubedrf.api.types import (
    IMMUTABLE,
    Conditions,
    KubeModel,
    Name,
    PositiveResourceList,
    ReportedResources,
    RoleName,
    to_resources,
    validations,
)
from kubedrf.resources import Resources


class ReservationSpec(KubeModel):
    role: RoleName
    node_name: Name = Field(
        description="The node holding the reserved resources; immutable, for accounting.",
        json_schema_extra=validations(IMMUTABLE),
    )
    resources: PositiveResourceList = Field(min_length=1)

    def reserved(self) -> Resources:
        return to_resources(self.resources, "spec.resources")


class ReservationStatus(KubeModel):
    observed_generation: int | None = None
    in_use: ReportedResources = Field(default_factory=dict)
    conditions: Conditions = Field(default_factory=list)


RESERVATION = Kind(
    kind="Reservation",
    plural="reservations",
    scope="Cluster",
    spec=ReservationSpec,
    status=ReservationStatus,
    short_names=("drfres",),
    description="Resources on one node reserved for one kubedrf role and its descendants.",
    columns=(
        PrinterColumn("Role", ".spec.role"),
        PrinterColumn("Node", ".spec.nodeName"),
        PrinterColumn("CPU", ".spec.resources.cpu"),
        PrinterColumn("Memory", ".spec.resources.memory"),
        AGE,
    ),
)
