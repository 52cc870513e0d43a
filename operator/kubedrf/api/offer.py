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
    """The framework's answer, given once."""

    action: Literal["Accept", "Decline"] = Field(
        description="Accept: tasks were launched against the offer; Decline: none will be."
    )
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
    """What is offered, written by the master; the framework writes only the response."""

    framework: Name = Field(
        description="The Framework, in this namespace, the offer is made to.",
        json_schema_extra=validations(IMMUTABLE),
    )
    role: RoleName = Field(
        description="The role the resources are offered under; task Pods carry it.",
        json_schema_extra=validations(IMMUTABLE),
    )
    node_name: Name = Field(
        description="The node the resources are on; task Pods must be pinned to it.",
        json_schema_extra=validations(IMMUTABLE),
    )
    resources: ResourceList = Field(
        min_length=1,
        description="What is offered; the task Pods' requests together stay within it.",
        json_schema_extra=validations(IMMUTABLE),
    )
    expires_at: datetime = Field(
        description="When an unanswered offer expires and its resources return to the pool.",
        json_schema_extra=validations(IMMUTABLE),
    )
    sized_for: list[TaskDemand] = Field(
        default_factory=list,
        max_length=16,
        description="In demand mode: the demanded tasks this offer was sized for.",
        json_schema_extra=validations(IMMUTABLE),
    )
    response: OfferResponse | None = Field(
        default=None, description="The framework's answer: accept or decline, given once."
    )

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
    """Where the offer is in its lifecycle, written by the master."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status was computed from."
    )
    phase: OfferPhase = Field(
        default=OfferPhase.OFFERED,
        description="Offered until answered; then Accepted, Declined, Expired or Rescinded.",
    )
    reason: str | None = Field(default=None, description="Why it reached its phase, in one word.")
    message: str | None = Field(default=None, description="Why it reached its phase, for people.")
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
    finished_at: datetime | None = Field(
        default=None, description="When it left Offered; it is deleted after a retention."
    )
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
        PrinterColumn("Framework", ".spec.framework", description="Who the offer is for."),
        PrinterColumn("Role", ".spec.role", description="The role it is offered under."),
        PrinterColumn("Node", ".spec.nodeName", description="Where the resources are."),
        PrinterColumn("CPU", ".spec.resources.cpu", description="CPU offered."),
        PrinterColumn("Memory", ".spec.resources.memory", description="Memory offered."),
        PrinterColumn("Phase", ".status.phase", description="Offered, or how it ended."),
        PrinterColumn(
            "Expires", ".spec.expiresAt", description="When it expires unanswered.", priority=1
        ),
        AGE,
    ),
)
