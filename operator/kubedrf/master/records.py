"""Kubernetes objects as the master reads them: frozen records parsed from raw bodies.

Parsing never raises on a user's object: what cannot be understood is kept with an
``error`` so the master can report it in status conditions and Events.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from kubedrf.api import (
    FrameworkSpec,
    InverseOfferPhase,
    InverseOfferSpec,
    InverseOfferStatus,
    OfferSpec,
    OfferStatus,
    QuotaSpec,
    ReservationSpec,
    RoleSpec,
)
from kubedrf.api.conventions import (
    ANNOTATION_REVIVE,
    LABEL_FRAMEWORK,
    LABEL_OFFER,
    LABEL_ROLE,
    parse_time,
)
from kubedrf.api.offer import OfferPhase
from kubedrf.resources import (
    EMPTY,
    PODS,
    QuantityError,
    Resources,
    resource_name_error,
    total,
)

TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})

Body = Mapping[str, Any]


def validation_message(error: ValidationError, prefix: str = "spec") -> str:
    """One line per problem, each naming the field: ``spec.demand[0].resources: ...``."""
    lines = []
    for item in error.errors():
        path = prefix
        loc = list(item["loc"])
        if loc and loc[-1] == "[key]":  # a bad map key: the message names it, not the path
            loc = loc[:-2]
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        lines.append(f"{path}: {item['msg']}")
    return "; ".join(lines)


M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound=BaseModel)


def _spec(model: type[M], body: Body) -> tuple[M | None, str | None]:
    """The parsed spec, or why it cannot be used.

    Every resource map is parsed here once, so one object the allocator could not read is
    reported on that object (and left out) instead of failing the cycle for everyone.
    """
    try:
        spec = model.model_validate(body.get("spec") or {})
        _resource_maps(spec)
    except ValidationError as error:
        return None, validation_message(error)
    except (ValueError, OverflowError) as error:  # QuantityError names its field itself
        return None, str(error)
    return spec, None


def _resource_maps(spec: BaseModel) -> None:
    """Parse each resource map of a spec, raising ``QuantityError`` on the first bad one."""
    if isinstance(spec, FrameworkSpec):
        for i, task in enumerate(spec.demand or []):
            Resources.parse(task.resources, f"spec.demand[{i}].resources")
        Resources.parse(spec.offer_filters.min_allocatable or {}, "spec.offerFilters")
    elif isinstance(spec, OfferSpec):
        Resources.parse(spec.resources, "spec.resources")
        for i, task in enumerate(spec.sized_for):
            Resources.parse(task.resources, f"spec.sizedFor[{i}].resources")
    elif isinstance(spec, QuotaSpec):
        spec.guarantee_resources()
        spec.limit_resources()
    elif isinstance(spec, ReservationSpec):
        spec.reserved()


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    allocatable: Resources
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    ready: bool
    unschedulable: bool

    @classmethod
    def parse(cls, body: Body) -> NodeRecord:
        meta, spec, status = (
            body.get("metadata", {}),
            body.get("spec") or {},
            body.get("status") or {},
        )
        # Only resources an Offer may name: one outside the API's rule would make every
        # Offer on the node refused at creation.
        offerable = {
            name: amount
            for name, amount in (status.get("allocatable") or {}).items()
            if isinstance(name, str) and resource_name_error(name) is None
        }
        try:
            allocatable = Resources.parse(offerable, "status.allocatable")
        except QuantityError:
            allocatable = Resources()
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        taints = tuple(
            Taint(t.get("key", ""), t.get("value", "") or "", t.get("effect", ""))
            for t in spec.get("taints") or []
        )
        return cls(
            name=meta["name"],
            allocatable=allocatable,
            labels=dict(meta.get("labels") or {}),
            taints=taints,
            ready=ready,
            unschedulable=bool(spec.get("unschedulable")),
        )


def _container_requests(container: Body) -> Resources:
    requests = (container.get("resources") or {}).get("requests") or {}
    try:
        return Resources.parse(requests)
    except QuantityError:
        return Resources()


def pod_requests(spec: Body) -> Resources:
    """What the scheduler charges a Pod (Kubernetes >= 1.29, with sidecar containers).

    Init containers with ``restartPolicy: Always`` are sidecars: they keep running, so their
    requests add to everything started after them. A regular init container needs its own
    requests plus the sidecars started before it. The Pod needs the larger of the peak of
    its init phase and its containers plus all sidecars, plus its overhead.
    """
    sidecars = Resources()
    init_peak: dict[str, int] = {}
    for init in spec.get("initContainers") or []:
        requests = _container_requests(init)
        if init.get("restartPolicy") == "Always":
            sidecars += requests
            requests = sidecars
        else:
            requests = requests + sidecars
        for name, amount in requests.items():
            init_peak[name] = max(init_peak.get(name, 0), amount)
    running = total(_container_requests(c) for c in spec.get("containers") or []) + sidecars
    effective = dict(running)
    for name, amount in init_peak.items():
        effective[name] = max(effective.get(name, 0), amount)
    try:
        overhead = Resources.parse(spec.get("overhead") or {})
    except QuantityError:
        overhead = Resources()
    return Resources(effective) + overhead + Resources({PODS: 1})


def pinned_node(spec: Body) -> str | None:
    """The node a Pod is bound or pinned to (required node affinity on metadata.name)."""
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for match in term.get("matchFields") or []:
            values = match.get("values") or []
            if (
                match.get("key") == "metadata.name"
                and match.get("operator") == "In"
                and len(values) == 1
            ):
                return str(values[0])
    return None


@dataclass(frozen=True, slots=True)
class PodRecord:
    """All the master keeps of a Pod: what allocation, binding and reporting read.

    The cache holds tens of thousands of these; the whole body (containers, env, volumes,
    managed fields) would cost kilobytes each, so it is parsed here and dropped, and the
    strings thousands of Pods share (namespace, node, labels, keys) are interned.
    """

    namespace: str
    name: str
    uid: str
    node: str | None
    bound: bool
    requests: Resources
    terminal: bool
    framework: str | None
    role: str | None
    offer: str | None
    created_at: float
    #: ``spec.schedulerName``: whose Pod it is to bind.
    scheduler: str = "default-scheduler"
    #: ``metadata.resourceVersion``, for the Events that name the Pod.
    version: str | None = None
    #: ``namespace/framework`` and ``namespace/offer``: read for every Pod in every cycle,
    #: so formed (and interned) once here.
    framework_key: str | None = field(init=False, default=None)
    offer_key: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.framework:
            object.__setattr__(self, "framework_key", _shared(f"{self.namespace}/{self.framework}"))
        if self.offer:
            object.__setattr__(self, "offer_key", _shared(f"{self.namespace}/{self.offer}"))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, body: Body) -> PodRecord:
        meta, spec = body.get("metadata", {}), body.get("spec") or {}
        labels = meta.get("labels") or {}
        phase = (body.get("status") or {}).get("phase")
        node = pinned_node(spec)
        version = meta.get("resourceVersion")
        return cls(
            namespace=_shared(meta.get("namespace", "")),
            name=meta["name"],
            uid=meta.get("uid", ""),
            node=None if node is None else _shared(node),
            bound=bool(spec.get("nodeName")),
            requests=_interned(pod_requests(spec)),
            terminal=phase in TERMINAL_POD_PHASES,
            framework=_label(labels, LABEL_FRAMEWORK),
            role=_label(labels, LABEL_ROLE),
            offer=_label(labels, LABEL_OFFER),
            created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
            scheduler=_shared(spec.get("schedulerName") or "default-scheduler"),
            version=None if version is None else str(version),
        )

    def reference(self) -> Body:
        """The Pod as an Event names it: the cache keeps no body of its own for a Pod."""
        meta = {"name": self.name, "namespace": self.namespace, "uid": self.uid}
        if self.version is not None:
            meta["resourceVersion"] = self.version
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta}


def _shared(text: str) -> str:
    """One copy of a string thousands of Pods repeat."""
    return sys.intern(str(text))


def _label(labels: Mapping[str, Any], name: str) -> str | None:
    value = labels.get(name)
    return None if value is None else _shared(value)


#: Tasks come in a few shapes: thousands of Pods share one ``Resources`` each.
_SHAPES: dict[Resources, Resources] = {}


def _interned(requests: Resources) -> Resources:
    if len(_SHAPES) > 4096:
        _SHAPES.clear()
    return _SHAPES.setdefault(requests, requests)


@dataclass(frozen=True, slots=True)
class FrameworkRecord:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: FrameworkSpec | None
    error: str | None
    revived_at: float | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, body: Body) -> FrameworkRecord:
        meta = body.get("metadata", {})
        spec, error = _spec(FrameworkSpec, body)
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            spec=spec,
            error=error,
            revived_at=parse_time((meta.get("annotations") or {}).get(ANNOTATION_REVIVE)),
        )


@dataclass(frozen=True, slots=True)
class ClusterObjectRecord(Generic[S]):
    """A cluster-scoped kubedrf object (Role, Quota, Reservation) and its parsed spec."""

    name: str
    generation: int
    spec: S | None
    error: str | None


def parse_role(body: Body) -> ClusterObjectRecord[RoleSpec]:
    spec, error = _spec(RoleSpec, body)
    meta = body.get("metadata", {})
    return ClusterObjectRecord(meta["name"], int(meta.get("generation") or 0), spec, error)


def parse_quota(body: Body) -> ClusterObjectRecord[QuotaSpec]:
    spec, error = _spec(QuotaSpec, body)
    meta = body.get("metadata", {})
    return ClusterObjectRecord(meta["name"], int(meta.get("generation") or 0), spec, error)


def parse_reservation(body: Body) -> ClusterObjectRecord[ReservationSpec]:
    spec, error = _spec(ReservationSpec, body)
    meta = body.get("metadata", {})
    return ClusterObjectRecord(meta["name"], int(meta.get("generation") or 0), spec, error)


@dataclass(frozen=True, slots=True)
class OfferRecord:
    namespace: str
    name: str
    uid: str
    generation: int
    created_at: float
    spec: OfferSpec | None
    status: OfferStatus
    error: str | None
    #: ``spec.resources`` and ``spec.sizedFor`` parsed once: every cycle reads them for
    #: every outstanding offer, thousands at scale.
    offered: Resources = field(init=False, default=EMPTY)
    sized: tuple[tuple[Resources, int], ...] = field(init=False, default=())
    framework_key: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.spec is not None:
            object.__setattr__(self, "offered", Resources.parse(self.spec.resources))
            sized = tuple((Resources.parse(t.resources), t.count) for t in self.spec.sized_for)
            object.__setattr__(self, "sized", sized)
            framework = _shared(f"{self.namespace}/{self.spec.framework}")
            object.__setattr__(self, "framework_key", framework)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def phase(self) -> OfferPhase:
        return self.status.phase

    @property
    def outstanding(self) -> bool:
        return self.spec is not None and self.status.phase is OfferPhase.OFFERED

    @property
    def bad_response(self) -> str | None:
        """Why the framework's ``spec.response`` cannot be used, if it cannot."""
        return self.error if self.spec is not None else None

    def resources(self) -> Resources:
        return self.offered

    @classmethod
    def parse(cls, body: Body) -> OfferRecord:
        spec, error = _spec(OfferSpec, body)
        raw = body.get("spec")
        if spec is None and isinstance(raw, Mapping) and "response" in raw:
            # The master's part is sound and only the framework's answer is not: keep the
            # offer (it still holds its resources) so the master can refuse the answer.
            unanswered = {k: v for k, v in raw.items() if k != "response"}
            spec, _ = _spec(OfferSpec, {"spec": unanswered})
        return cls(**_identity(body), spec=spec, status=_status(OfferStatus, body), error=error)


def _identity(body: Body) -> dict[str, Any]:
    """The metadata every offer-like record keeps: where it is, who it is, when it came."""
    meta = body.get("metadata", {})
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "generation": int(meta.get("generation") or 0),
        "created_at": parse_time(meta.get("creationTimestamp")) or 0.0,
    }


def _status(model: type[S], body: Body) -> S:
    """The status as the master wrote it; an unreadable one reads as a fresh object's."""
    try:
        return model.model_validate(body.get("status") or {})
    except ValidationError:
        return model()


@dataclass(frozen=True, slots=True)
class InverseOfferRecord:
    namespace: str
    name: str
    uid: str
    generation: int
    created_at: float
    spec: InverseOfferSpec | None
    status: InverseOfferStatus
    error: str | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def framework_key(self) -> str | None:
        return f"{self.namespace}/{self.spec.framework}" if self.spec else None

    @property
    def pending(self) -> bool:
        """Still asking for resources back: answered or not, its tasks have not all ended."""
        return self.spec is not None and self.status.phase in (
            InverseOfferPhase.OUTSTANDING,
            InverseOfferPhase.EVICTING,
        )

    @classmethod
    def parse(cls, body: Body) -> InverseOfferRecord:
        spec, error = _spec(InverseOfferSpec, body)
        return cls(
            **_identity(body),
            spec=spec,
            status=_status(InverseOfferStatus, body),
            error=error,
        )
