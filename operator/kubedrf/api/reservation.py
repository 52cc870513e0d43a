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
    """Resources on one node set aside for one role."""

    role: RoleName = Field(
        description="Only this role and its sub-roles are offered the reserved resources."
    )
    node_name: Name = Field(
        description="The node holding the reserved resources; immutable, for accounting.",
        json_schema_extra=validations(IMMUTABLE),
    )
    resources: PositiveResourceList = Field(
        min_length=1, description="What is reserved; counts toward the role's quota."
    )

    def reserved(self) -> Resources:
        return to_resources(self.resources, "spec.resources")


class ReservationStatus(KubeModel):
    """How much of the reservation is used, written by the master after each cycle."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status was computed from."
    )
    in_use: ReportedResources = Field(
        default_factory=dict, description="Reserved resources allocated or offered now."
    )
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
        PrinterColumn("Role", ".spec.role", description="The role it is reserved for."),
        PrinterColumn("Node", ".spec.nodeName", description="Where the resources are."),
        PrinterColumn("Resources", ".spec.resources", description="Every resource reserved."),
        AGE,
    ),
)
