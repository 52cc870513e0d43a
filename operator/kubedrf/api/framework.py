"""Framework: a second-level scheduler, its roles, demand, filters and suppression."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from kubedrf.api.conventions import LABEL_FRAMEWORK, MAX_LABEL_VALUE
from kubedrf.api.kinds import AGE, Kind, PrinterColumn
from kubedrf.api.types import (
    MAX_REFUSE_SECONDS,
    Conditions,
    ConditionType,
    KubeModel,
    PositiveResourceList,
    RefuseSeconds,
    ReportedResources,
    ResourceList,
    RoleName,
    cel,
    validations,
)

Capability = Literal["GPU_RESOURCES"]


class TaskDemand(KubeModel):
    name: str | None = Field(default=None, max_length=63, description="A label for people.")
    resources: PositiveResourceList = Field(min_length=1, description="What one task requests.")
    count: int = Field(ge=0, le=1_000_000, description="How many more such tasks it wants.")


class OfferFilters(KubeModel):
    """How offers the framework does not want are kept from coming back (Mesos' filters)."""

    refuse_seconds: RefuseSeconds = Field(
        default=5.0,
        description="How long a declined offer's node stays filtered for the framework.",
    )
    min_allocatable: ResourceList | None = Field(
        default=None,
        description="Offers smaller than this are not made to the framework.",
    )


#: The least failoverTimeout: the SDK renews its heartbeat a few times within it.
MIN_FAILOVER_TIMEOUT = 3.0
#: A year, as for refuseSeconds: what the master adds to a time must stay a representable time.
Timeout = Annotated[float, Field(ge=MIN_FAILOVER_TIMEOUT, le=MAX_REFUSE_SECONDS)]


class FrameworkSpec(KubeModel):
    """What the framework asks of the master: its roles, filters, capabilities and demand."""

    roles: list[RoleName] = Field(
        default_factory=lambda: ["default"],
        min_length=1,
        max_length=16,
        description="Roles the framework is offered resources under.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    suppressed: bool = Field(default=False, description="Stop offers under every role.")
    suppressed_roles: list[RoleName] = Field(
        default_factory=list,
        max_length=16,
        description="Stop offers under these roles only.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    offer_filters: OfferFilters = Field(
        default_factory=OfferFilters,
        description="How declined offers are filtered, and the smallest offer worth making.",
    )
    capabilities: list[Capability] = Field(
        default_factory=list,
        max_length=8,
        description="GPU_RESOURCES: see nodes that have GPUs.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    demand: list[TaskDemand] | None = Field(
        default=None,
        max_length=16,
        description="Task shapes and counts still wanted; demand mode offers only against it.",
    )
    failover_timeout: Timeout = Field(
        default=60.0,
        description="Seconds the master waits without hearing from the framework (its"
        " heartbeat Lease, its spec, its offer answers) before it is Disconnected: no offers,"
        " outstanding ones rescinded.",
    )
    task_teardown_timeout: Timeout | None = Field(
        default=None,
        description="Seconds without hearing from the framework after which the master ends its"
        " tasks (deletes their Pods); none by default: a disconnected framework's tasks run on.",
    )

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.taskTeardownTimeout) || !has(self.failoverTimeout)"
                " || self.taskTeardownTimeout >= self.failoverTimeout",
                "spec.taskTeardownTimeout must be at least spec.failoverTimeout",
                ".taskTeardownTimeout",
            ),
            cel(
                "!has(self.suppressedRoles) || self.suppressedRoles.all(r, r in self.roles)",
                "spec.suppressedRoles must name roles listed in spec.roles",
                ".suppressedRoles",
                "'spec.suppressedRoles must name roles listed in spec.roles, not '"
                " + self.suppressedRoles.filter(r, !(r in self.roles))[0]",
            ),
        )
    )

    @model_validator(mode="after")
    def _teardown_after_failover(self) -> Self:
        teardown = self.task_teardown_timeout
        if teardown is not None and teardown < self.failover_timeout:
            raise PydanticCustomError(
                "teardown_before_failover",
                "spec.taskTeardownTimeout ({teardown}s) must be at least"
                " spec.failoverTimeout ({failover}s)",
                {"teardown": f"{teardown:g}", "failover": f"{self.failover_timeout:g}"},
            )
        return self

    def active_roles(self) -> list[str]:
        if self.suppressed:
            return []
        return [role for role in self.roles if role not in self.suppressed_roles]


#: Holders, steps and roles listed in ``status.waiting``: the API bounds every list.
MAX_WAITING_ITEMS = 16


class HolderAboveFairShare(KubeModel):
    """A framework holding more than its fair share: where a revocation would take from."""

    framework: str = Field(description="The framework, as namespace/name.")
    role: str = Field(description="The role it holds under.")
    dominant_share: float = Field(description="Its dominant share now (0..1).")
    fair_share: float = Field(description="Its DRF fair share under current demand (0..1).")


class WaitingNext(KubeModel):
    """What ends the wait, if anything does by itself."""

    kind: str = Field(
        description="Revocation, FilterExpires, QuotaLimit, HeldForGuarantees,"
        " ReservedElsewhere, Suppressed, NoDemand or Capacity."
    )
    message: str = Field(description="What happens, for people.")
    at: datetime | None = Field(
        default=None, description="When: a revocation's deadline, a filter's expiry."
    )


class RoleWaiting(KubeModel):
    """Why the last cycle offered the framework nothing under one role, with the numbers."""

    role: str = Field(description="The role left without an offer.")
    reason: str = Field(description="The allocator's reason, as in the Offered condition.")
    message: str = Field(description="All of it in one sentence.")
    resource: str | None = Field(
        default=None, description="The resource that blocks one more task, if an amount does."
    )
    needed: str | None = Field(default=None, description="What one task needs of it.")
    available: str | None = Field(
        default=None,
        description="The most any usable node has free of it, or what the quota limit leaves.",
    )
    dominant_share: float = Field(description="Its dominant share under the role (0..1).")
    fair_share: float = Field(description="Its DRF fair share under current demand (0..1).")
    holders_above_fair_share: list[HolderAboveFairShare] = Field(
        default_factory=list,
        max_length=MAX_WAITING_ITEMS,
        description="Who holds more than their fair share while it has less than its own,"
        " furthest above theirs first.",
    )
    next: list[WaitingNext] = Field(
        default_factory=list, max_length=MAX_WAITING_ITEMS, description="What happens next."
    )


class FrameworkStatus(KubeModel):
    """What the master last saw of the framework, written after each cycle."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status was computed from."
    )
    role_list: str | None = Field(
        default=None,
        description="spec.roles joined by commas, for the Roles column of kubectl get.",
    )
    allocated: dict[str, ReportedResources] = Field(
        default_factory=dict, description="Allocated and offered resources per role."
    )
    dominant_share: float | None = Field(
        default=None,
        description="Its dominant share: the largest fraction of any resource it holds (0..1).",
    )
    tasks: int | None = Field(default=None, description="Task Pods it runs.")
    outstanding_offers: int | None = Field(
        default=None, description="Offers made to it and not yet answered."
    )
    revoking: int | None = Field(
        default=None, description="Tasks the master has asked back (pending InverseOffers)."
    )
    waiting: list[RoleWaiting] = Field(
        default_factory=list,
        max_length=MAX_WAITING_ITEMS,
        description="Per role the last cycle offered nothing: why, and by how much.",
    )
    conditions: Conditions = Field(default_factory=list)


FRAMEWORK = Kind(
    kind="Framework",
    plural="frameworks",
    scope="Namespaced",
    spec=FrameworkSpec,
    status=FrameworkStatus,
    short_names=("fw",),
    spec_required=False,
    extra_rules=(
        cel(
            f"self.metadata.name.size() <= {MAX_LABEL_VALUE}",
            f"metadata.name: must be at most {MAX_LABEL_VALUE} characters: task Pods carry it"
            f" in the label {LABEL_FRAMEWORK}",
        ),
    ),
    description="A kubedrf framework: a second-level scheduler that receives Offers.",
    columns=(
        PrinterColumn("Roles", ".status.roleList", description="The roles it is offered under."),
        PrinterColumn(
            "Share", ".status.dominantShare", "number", "Its dominant share of the cluster (0..1)."
        ),
        PrinterColumn("Tasks", ".status.tasks", "integer", "Task Pods it runs."),
        PrinterColumn(
            "Offers", ".status.outstandingOffers", "integer", "Offers it has not answered yet."
        ),
        PrinterColumn(
            "Revoking",
            ".status.revoking",
            "integer",
            "Tasks the master has asked back (kubectl get -o wide).",
            priority=1,
        ),
        PrinterColumn(
            "Ready",
            f'.status.conditions[?(@.type=="{ConditionType.READY}")].status',
            description="Whether it receives offers under at least one role.",
        ),
        PrinterColumn(
            "Connected",
            f'.status.conditions[?(@.type=="{ConditionType.CONNECTED}")].status',
            description="Whether its controller was heard from within spec.failoverTimeout.",
        ),
        AGE,
    ),
)
