"""The framework SDK: write a second-level scheduler against kubedrf's offers."""

from kubedrf.framework.driver import KubedrfSchedulerDriver
from kubedrf.framework.hooks import PodMutationHook, inject_offer_env, load_hooks
from kubedrf.framework.model import (
    InverseOffer,
    Offer,
    OfferMismatchError,
    TaskInfo,
    TaskState,
    TaskStatus,
    TaskTemplateError,
    fit,
)
from kubedrf.framework.protocol import Demand, SchedulerDriver
from kubedrf.framework.scheduler import Scheduler

__all__ = [
    "Demand",
    "InverseOffer",
    "KubedrfSchedulerDriver",
    "Offer",
    "OfferMismatchError",
    "PodMutationHook",
    "Scheduler",
    "SchedulerDriver",
    "TaskInfo",
    "TaskState",
    "TaskStatus",
    "TaskTemplateError",
    "fit",
    "inject_offer_env",
    "load_hooks",
]
