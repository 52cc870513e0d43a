"""Role: a node of the fair-sharing tree (dotted names nest), with its weight and tenancy."""

from __future__ import annotations

from pydantic import Field

from kubedrf.api.kinds import AGE, Kind, PrinterColumn
from kubedrf.api.types import Conditions, KubeModel, ReportedResources, Weight, role_name_rule


class RoleSpec(KubeModel):
    """How the role competes with its siblings, and who may use it."""

    weight: Weight = Field(default=1.0, description="Relative share against sibling roles.")
    namespaces: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Namespaces whose Frameworks may use this role; empty means all.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    def allows(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces


class RoleStatus(KubeModel):
    """What the role and its sub-roles hold, written by the master after each cycle."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status was computed from."
    )
    dominant_share: float | None = Field(default=None, description="Weighted dominant share.")
    allocated: ReportedResources = Field(
        default_factory=dict,
        description="Allocated and offered to the role and its sub-roles.",
    )
    frameworks: int | None = Field(
        default=None, description="Frameworks holding resources under it or its sub-roles."
    )
    conditions: Conditions = Field(default_factory=list)


ROLE = Kind(
    kind="Role",
    plural="roles",
    scope="Cluster",
    spec=RoleSpec,
    status=RoleStatus,
    # Not "role": that short form must keep meaning rbac.authorization.k8s.io Roles.
    short_names=("drfrole",),
    spec_required=False,
    # The object's name is the role's name: task Pods carry it in the kubedrf.io/role label.
    extra_rules=(role_name_rule("self.metadata.name", "metadata.name: "),),
    description=(
        "A role of the kubedrf fair-sharing tree. The object's name is the role's dotted name:"
        " eng.frontend is a child of eng. Use roles.kubedrf.io (or drfrole) with kubectl;"
        " plain 'roles' means RBAC Roles."
    ),
    columns=(
        PrinterColumn("Weight", ".spec.weight", "number", "Its weight against its siblings."),
        PrinterColumn(
            "Share", ".status.dominantShare", "number", "Its dominant share, divided by its weight."
        ),
        PrinterColumn(
            "Frameworks", ".status.frameworks", "integer", "Frameworks holding resources under it."
        ),
        AGE,
    ),
)
