"""Conventions the master and frameworks share on the wire: labels, annotations, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

from kubedrf.allocator.roles import MAX_ROLE_NAME

#: Labels every task Pod carries (and Offers carry the framework's).
LABEL_FRAMEWORK = "kubedrf.io/framework"
LABEL_ROLE = "kubedrf.io/role"
LABEL_OFFER = "kubedrf.io/offer"
#: How long a label value may be, and so a name that becomes one; the role tree, which knows
#: no Kubernetes, holds role names to the same bound.
MAX_LABEL_VALUE = MAX_ROLE_NAME
#: On a Framework: filters declined before this time no longer apply (Mesos' revive).
ANNOTATION_REVIVE = "kubedrf.io/revived-at"
#: A framework's heartbeat: a coordination.k8s.io Lease in its namespace, labelled with
#: LABEL_FRAMEWORK, that its driver renews (the master watches only labelled Leases).
HEARTBEAT_LEASE_PREFIX = "kubedrf-framework-"


def heartbeat_lease(framework: str) -> str:
    return f"{HEARTBEAT_LEASE_PREFIX}{framework}"


#: The ``schedulerName`` of task Pods the master binds itself (it already chose the node).
SCHEDULER_NAME = "kubedrf"
#: On an Offer: the ``schedulerName`` its task Pods take; absent, the default scheduler's.
ANNOTATION_SCHEDULER = "kubedrf.io/scheduler-name"


def parse_time(value: object) -> float | None:
    """Seconds since the epoch from an RFC 3339 timestamp (or a datetime)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def moment(seconds: float) -> datetime:
    """A metav1.Time: UTC, whole seconds (what the API stores)."""
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=0)


def format_time(seconds: float) -> str:
    return moment(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(seconds: float) -> str:
    """metav1.MicroTime, which events.k8s.io Events and Leases require."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
