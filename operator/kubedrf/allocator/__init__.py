"""The pure hierarchical DRF allocator: snapshot in, offer decisions out. No Kubernetes here."""

from kubedrf.allocator.cycle import allocate
from kubedrf.allocator.model import (
    DEFAULT_ROLE,
    GPU_RESOURCES,
    Allocation,
    AllocationResult,
    AllocatorConfig,
    Filter,
    Framework,
    Mode,
    Node,
    OfferDecision,
    Quota,
    Reason,
    Reservation,
    Role,
    Snapshot,
    Stage,
    TaskShape,
)

__all__ = [
    "DEFAULT_ROLE",
    "GPU_RESOURCES",
    "Allocation",
    "AllocationResult",
    "AllocatorConfig",
    "Filter",
    "Framework",
    "Mode",
    "Node",
    "OfferDecision",
    "Quota",
    "Reason",
    "Reservation",
    "Role",
    "Snapshot",
    "Stage",
    "TaskShape",
    "allocate",
]
