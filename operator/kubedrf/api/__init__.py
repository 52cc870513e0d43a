"""The kubedrf API (``kubedrf.io/v1alpha1``): pydantic models, the single source of the CRDs."""

from kubedrf.api.framework import FRAMEWORK, FrameworkSpec, FrameworkStatus, TaskDemand
from kubedrf.api.inverse_offer import (
    INVERSE_OFFER,
    InverseOfferPhase,
    InverseOfferResponse,
    InverseOfferSpec,
    InverseOfferStatus,
)
from kubedrf.api.kinds import API_VERSION, GROUP, VERSION, Kind
from kubedrf.api.offer import OFFER, OfferPhase, OfferResponse, OfferSpec, OfferStatus
from kubedrf.api.quota import QUOTA, QuotaSpec, QuotaStatus
from kubedrf.api.reservation import RESERVATION, ReservationSpec, ReservationStatus
from kubedrf.api.role import ROLE, RoleSpec, RoleStatus
from kubedrf.api.types import MAX_REFUSE_SECONDS

__all__ = [
    "API_VERSION",
    "FRAMEWORK",
    "GROUP",
    "INVERSE_OFFER",
    "MAX_REFUSE_SECONDS",
    "OFFER",
    "QUOTA",
    "RESERVATION",
    "ROLE",
    "VERSION",
    "FrameworkSpec",
    "FrameworkStatus",
    "InverseOfferPhase",
    "InverseOfferResponse",
    "InverseOfferSpec",
    "InverseOfferStatus",
    "Kind",
    "OfferPhase",
    "OfferResponse",
    "OfferSpec",
    "OfferStatus",
    "QuotaSpec",
    "QuotaStatus",
    "ReservationSpec",
    "ReservationStatus",
    "RoleSpec",
    "RoleStatus",
    "TaskDemand",
]
