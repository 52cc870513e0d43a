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
    """Who the freed resources are for."""

    namespace: Name = Field(description="The beneficiary framework's namespace.")
    framework: Name = Field(description="The framework that runs what is freed.")
    role: RoleName = Field(description="The role it runs it under.")


class InverseOfferResponse(KubeModel):
    """The framework's answer: which of its tasks end."""

    tasks: list[Name] = Field(
        default_factory=list,
        max_length=1024,
        description="Task Pods on spec.nodeName the framework ends (or has ended) in answer.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class InverseOfferSpec(KubeModel):
    """What is asked back, written by the master; the framework writes only the response."""

    framework: Name = Field(
        description="The Framework, in this namespace, asked to give resources back.",
        json_schema_extra=validations(IMMUTABLE),
    )
    role: RoleName = Field(
        description="The role its tasks to end run under.",
        json_schema_extra=validations(IMMUTABLE),
    )
    node_name: Name = Field(
        description="The node to free resources on.", json_schema_extra=validations(IMMUTABLE)
    )
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
    beneficiary: Beneficiary = Field(
        description="The framework and role below its fair share that the resources are for.",
        json_schema_extra=validations(IMMUTABLE),
    )
    deadline: datetime = Field(
        description="When the master starts evicting.", json_schema_extra=validations(IMMUTABLE)
    )
    response: InverseOfferResponse | None = Field(
        default=None, description="The framework's answer: the tasks it ends, given once."
    )


class InverseOfferStatus(KubeModel):
    """Where the inverse offer is in its lifecycle, written by the master."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status was computed from."
    )
    phase: InverseOfferPhase = Field(
        default=InverseOfferPhase.OUTSTANDING,
        description="Outstanding until the tasks end; Evicting past the deadline; then"
        " Completed, or Cancelled when either side went away.",
    )
    reason: str | None = Field(default=None, description="Why it reached its phase, in one word.")
    message: str | None = Field(default=None, description="Why it reached its phase, for people.")
    evicted: list[str] = Field(
        default_factory=list, max_length=1024, description="Tasks the master evicted."
    )
    tasks: list[str] = Field(
        default_factory=list,
        max_length=1024,
        description="The tasks the master ends in place of those chosen, when a"
        " PodDisruptionBudget protects some of them and others of the framework on the node"
        " free as much; empty otherwise.",
    )
    finished_at: datetime | None = Field(
        default=None, description="When it completed or was cancelled; deleted after a retention."
    )
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
        PrinterColumn("Framework", ".spec.framework", description="Asked to give back."),
        PrinterColumn("Node", ".spec.nodeName", description="Where resources are freed."),
        PrinterColumn("For", ".spec.beneficiary.role", description="The role they are for."),
        PrinterColumn("CPU", ".spec.resources.cpu", description="CPU to free."),
        PrinterColumn("Memory", ".spec.resources.memory", description="Memory to free."),
        PrinterColumn("Deadline", ".spec.deadline", "date", "When eviction starts."),
        PrinterColumn("Phase", ".status.phase", description="Where it is in its lifecycle."),
        AGE,
    ),
)
