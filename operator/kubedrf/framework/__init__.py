"""The framework SDK: write a second-level scheduler against kubedrf's offers."""

from kubedrf.framework.driver import OfferMismatchError, SchedulerDriver
from kubedrf.framework.hooks import PodMutationHook, inject_offer_env, load_hooks
from kubedrf.framework.model import Offer, TaskInfo, TaskState, TaskStatus
from kubedrf.framework.scheduler import Scheduler

__all__ = [
    "Offer",
    "OfferMismatchError",
    "PodMutationHook",
    "Scheduler",
    "SchedulerDriver",
    "TaskInfo",
    "TaskState",
    "TaskStatus",
    "inject_offer_env",
    "load_hooks",
]
