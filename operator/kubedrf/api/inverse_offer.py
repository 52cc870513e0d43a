"""InverseOffer: the master asks a framework to give resources on one node back.

Mesos' inverse offers served maintenance only; here they carry revocation: when a client is
below its DRF share of the current demand, the master asks a client above its own to free
what the first can use on one node, by a deadline. The framework chooses which of its
tasks end (``spec.response``, its intent); after the deadline the master evicts the tasks
it named, newest first, through the Eviction API, so PodDisruptionBudgets are honoured.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from kubedrf.api.kinds import AGE, Kind, PrinterColumn
from kubedrf.api.types import (
    IMMUTABLE,
    Conditions,
    KubeModel,
    Name,
    ResourceList,
    RoleName,
    validations,
)


class InverseOfferPhase(StrEnum):
    #: Waiting for the framework to end tasks, or for the deadline.
    OUTSTANDING = "Outstanding"
    #: The deadline passed with too little freed: the master evicts the named tasks.
    EVICTING = "Evicting"
    #: Enough was freed; the node is held for the beneficiary for one offer round.
    COMPLETED = "Completed"
    #: No longer needed (the beneficiary went away or wants nothing more).
    CANCELLED = "Cancelled"


class Beneficiary(KubeModel):
    namespace: Name = Field(description="The beneficiary framework's namespace.")
    framework: Name = Field(description="The framework that runs what is freed.")
    role: RoleName = Field(description="The role it runs it under.")


class InverseOfferResponse(KubeModel):
    tasks: list[Name] = Field(
        default_factory=list,
        max_length=1024,
        description="Task Pods on spec.nodeName the framework ends (or has ended) in answer.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class InverseOfferSpec(KubeModel):
    framework: Name = Field(json_schema_extra=validations(IMMUTABLE))
    role: RoleName = Field(json_schema_extra=validations(IMMUTABLE))
    node_name: Name = Field(json_schema_extra=validations(IMMUTABLE))
    resources: ResourceList = Field(
        min_length=1,
        description="What to free on the node: the requests of spec.tasks.",
        json_schema_extra=validations(IMMUTABLE),
    )
    tasks: list[Name] = Field(
        min_length=1,
        max_length=1024,
        description="The tasks the master ends at the deadline unless others free as much.",
        json_schema_extra=validations(IMMUTABLE),
    )
    beneficiary: Beneficiary = Field(json_schema_extra=validations(IMMUTABLE))
    deadline: datetime = Field(
        description="When the master starts evicting.", json_schema_extra=validations(IMMUTABLE)
    )
    response: InverseOfferResponse | None = None


class InverseOfferStatus(KubeModel):
    observed_generation: int | None = None
    phase: InverseOfferPhase = InverseOfferPhase.OUTSTANDING
    reason: str | None = None
    message: str | None = None
    evicted: list[str] = Field(
        default_factory=list, max_length=1024, description="Tasks the master evicted."
    )
    finished_at: datetime | None = None
    conditions: Conditions = Field(default_factory=list)


INVERSE_OFFER = Kind(
    kind="InverseOffer",
    plural="inverseoffers",
    scope="Namespaced",
    spec=InverseOfferSpec,
    status=InverseOfferStatus,
    short_names=("iofr",),
    description="Resources on one node the master asks a framework to give back.",
    columns=(
        PrinterColumn("Framework", ".spec.framework"),
        PrinterColumn("Node", ".spec.nodeName"),
        PrinterColumn("For", ".spec.beneficiary.role"),
        PrinterColumn("CPU", ".spec.resources.cpu"),
        PrinterColumn("Memory", ".spec.resources.memory"),
        PrinterColumn("Deadline", ".spec.deadline", "date"),
        PrinterColumn("Phase", ".status.phase"),
        AGE,
    ),
)
