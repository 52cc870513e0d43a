"""Offer: resources on one node offered to one framework under one role, until it expires.

The master writes the spec and the status; the framework writes only ``spec.response``, the
client's intent, once (accept with the task Pods it launched, or decline).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field

from kubedrf.api.framework import TaskDemand
from kubedrf.api.kinds import AGE, Kind, PrinterColumn
from kubedrf.api.types import (
    IMMUTABLE,
    Conditions,
    KubeModel,
    Name,
    RefuseSeconds,
    ReportedResources,
    ResourceList,
    RoleName,
    cel,
    validations,
)


class OfferPhase(StrEnum):
    OFFERED = "Offered"
    ACCEPTED = "Accepted"
    DECLINED = "Declined"
    EXPIRED = "Expired"
    RESCINDED = "Rescinded"


class OfferResponse(KubeModel):
    action: Literal["Accept", "Decline"]
    refuse_seconds: RefuseSeconds | None = Field(
        default=None, description="On decline: overrides the framework's refuseSeconds."
    )
    tasks: list[str] = Field(
        default_factory=list,
        max_length=1024,
        description="On accept: names of the task Pods launched against this offer.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class OfferSpec(KubeModel):
    framework: Name = Field(json_schema_extra=validations(IMMUTABLE))
    role: RoleName = Field(json_schema_extra=validations(IMMUTABLE))
    node_name: Name = Field(json_schema_extra=validations(IMMUTABLE))
    resources: ResourceList = Field(min_length=1, json_schema_extra=validations(IMMUTABLE))
    expires_at: datetime = Field(json_schema_extra=validations(IMMUTABLE))
    sized_for: list[TaskDemand] = Field(
        default_factory=list,
        max_length=16,
        description="In demand mode: the demanded tasks this offer was sized for.",
        json_schema_extra=validations(IMMUTABLE),
    )
    response: OfferResponse | None = None

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(oldSelf.response)"
                " || (has(self.response) && self.response == oldSelf.response)",
                "spec.response cannot change once given",
                ".response",
            )
        )
    )


class OfferStatus(KubeModel):
    observed_generation: int | None = None
    phase: OfferPhase = OfferPhase.OFFERED
    reason: str | None = None
    message: str | None = None
    tasks: list[str] = Field(
        default_factory=list,
        max_length=1024,
        description="Task Pods the master accepted against this offer.",
    )
    filter_expires_at: datetime | None = Field(
        default=None,
        description="After a decline: until when the node stays filtered for the framework.",
    )
    refused: ReportedResources = Field(
        default_factory=dict,
        description="After a decline: what the node could offer then; more lifts the filter.",
    )
    finished_at: datetime | None = None
    conditions: Conditions = Field(default_factory=list)


OFFER = Kind(
    kind="Offer",
    plural="offers",
    scope="Namespaced",
    spec=OfferSpec,
    status=OfferStatus,
    short_names=("ofr",),
    description="Resources on one node offered to one framework under one role.",
    columns=(
        PrinterColumn("Framework", ".spec.framework"),
        PrinterColumn("Role", ".spec.role"),
        PrinterColumn("Node", ".spec.nodeName"),
        PrinterColumn("CPU", ".spec.resources.cpu"),
        PrinterColumn("Memory", ".spec.resources.memory"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Expires", ".spec.expiresAt", priority=1),
        AGE,
    ),
)
