"""The master's view of the cluster, fed only by watches and by its own writes.

Nothing here is truth of its own (invariant 6): outstanding offers, filters (declined offers
kept until their filter expires), revivals (an annotation) and allocations (Pods) all live
in the API, so a restarted master rebuilds exactly this state by listing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubedrf.allocator import (
    Allocation,
    Filter,
    Framework,
    Node,
    Quota,
    Reservation,
    Role,
    Snapshot,
    TaskShape,
)
from kubedrf.api import QuotaSpec, ReservationSpec, RoleSpec
from kubedrf.api.conventions import parse_time
from kubedrf.api.offer import OfferPhase
from kubedrf.api.tenancy import refusal
from kubedrf.master.records import (
    Body,
    ClusterObjectRecord,
    FrameworkRecord,
    NodeRecord,
    OfferRecord,
    PodRecord,
    parse_quota,
    parse_reservation,
    parse_role,
)
from kubedrf.master.settings import MasterSettings
from kubedrf.resources import PODS, Resources, total, zero_named

KINDS = ("node", "pod", "framework", "role", "quota", "reservation", "offer")


def object_key(body: Body) -> str | None:
    """How the cache names an object: ``namespace/name``, or ``name`` when cluster-scoped."""
    meta = body.get("metadata", {})
    name = meta.get("name")
    if not name:
        return None
    return f"{meta['namespace']}/{name}" if meta.get("namespace") else str(name)


def _version(body: Body) -> int | None:
    try:
        return int(body.get("metadata", {}).get("resourceVersion"))
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class ClusterCache:
    settings: MasterSettings
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    pods: dict[str, PodRecord] = field(default_factory=dict)
    frameworks: dict[str, FrameworkRecord] = field(default_factory=dict)
    roles: dict[str, ClusterObjectRecord[RoleSpec]] = field(default_factory=dict)
    quotas: dict[str, ClusterObjectRecord[QuotaSpec]] = field(default_factory=dict)
    reservations: dict[str, ClusterObjectRecord[ReservationSpec]] = field(default_factory=dict)
    offers: dict[str, OfferRecord] = field(default_factory=dict)
    bodies: dict[tuple[str, str], Body] = field(default_factory=dict)
    _versions: dict[tuple[str, str], int] = field(default_factory=dict)

    # -- feeding -----------------------------------------------------------------------------

    def apply(self, kind: str, event_type: str | None, body: Body) -> bool:
        """Record a watch event (or the answer to our own write); say whether it changed."""
        key = object_key(body)
        if key is None:
            return False
        version = _version(body)
        known = self._versions.get((kind, key))
        if event_type == "DELETED":
            self._versions.pop((kind, key), None)
            self.bodies.pop((kind, key), None)
            return self._table(kind).pop(key, None) is not None
        if version is not None and known is not None and version < known:
            return False  # an older event than what our own write already recorded
        if version is not None:
            self._versions[(kind, key)] = version
        self.bodies[(kind, key)] = body
        self._table(kind)[key] = self._parse(kind, body)
        return True

    def replace(self, kind: str, bodies: list[Body], list_version: int | None) -> None:
        """A full relist: what it lacks was deleted while no watch was looking.

        Entries newer than the list (a watch delivered them after it was taken) stay.
        """
        listed = set()
        for body in bodies:
            self.apply(kind, "ADDED", body)
            listed.add(object_key(body))
        for key in set(self._table(kind)) - listed:
            version = self._versions.get((kind, key))
            if list_version is None or version is None or version <= list_version:
                self.forget(kind, key)

    def forget(self, kind: str, key: str) -> None:
        self._table(kind).pop(key, None)
        self.bodies.pop((kind, key), None)
        self._versions.pop((kind, key), None)

    def _table(self, kind: str) -> dict[str, Any]:
        table: dict[str, Any] = getattr(self, kind + "s")
        return table

    @staticmethod
    def _parse(kind: str, body: Body) -> Any:
        parsers = {
            "node": NodeRecord.parse,
            "pod": PodRecord.parse,
            "framework": FrameworkRecord.parse,
            "role": parse_role,
            "quota": parse_quota,
            "reservation": parse_reservation,
            "offer": OfferRecord.parse,
        }
        return parsers[kind](body)

    # -- queries -----------------------------------------------------------------------------

    def is_managed(self, node: NodeRecord) -> bool:
        key, value = self.settings.managed_selector()
        return key in node.labels and (value is None or node.labels[key] == value)

    def usable_nodes(self) -> dict[str, NodeRecord]:
        """Managed nodes that may receive offers now."""
        return {
            name: node
            for name, node in self.nodes.items()
            if self.is_managed(node) and node.ready and not node.unschedulable
        }

    def live_pods(self) -> Iterator[PodRecord]:
        return (pod for pod in self.pods.values() if not pod.terminal and pod.node)

    def charged_pods(self) -> Iterator[PodRecord]:
        """Live Pods whose requests count on their own: tasks launched against an offer that
        is still outstanding are covered by that offer until the master settles it."""
        outstanding = {offer.key for offer in self.outstanding_offers()}
        return (pod for pod in self.live_pods() if pod.offer_key not in outstanding)

    def outstanding_offers(self) -> Iterator[OfferRecord]:
        """Offers not yet settled. They hold their resources until the master settles them,
        past ``expiresAt`` too: each cycle settles expired offers before it allocates."""
        return (o for o in self.offers.values() if o.outstanding and o.spec is not None)

    def role_specs(self) -> dict[str, RoleSpec]:
        return {name: r.spec for name, r in self.roles.items() if r.spec is not None}

    def refused_roles(self, framework: FrameworkRecord) -> dict[str, str]:
        """Roles the framework names but may not use, with the reason (tenancy)."""
        if framework.spec is None:
            return {}
        specs = self.role_specs()
        refused = {}
        for role in framework.spec.roles:
            reason = refusal(role, framework.namespace, specs)
            if reason is not None:
                refused[role] = reason
        return refused

    def node_usage(self) -> dict[str, Resources]:
        """Requests of every live Pod plus every outstanding offer, per node."""
        usage: dict[str, list[Resources]] = defaultdict(list)
        for pod in self.charged_pods():
            assert pod.node is not None
            usage[pod.node].append(pod.requests)
        for offer in self.outstanding_offers():
            assert offer.spec is not None
            usage[offer.spec.node_name].append(offer.resources())
        return {node: total(items) for node, items in usage.items()}

    def active_quotas(self) -> dict[str, QuotaSpec]:
        """One quota per role: the first by name wins; others are reported as conflicts."""
        quotas: dict[str, QuotaSpec] = {}
        for _, record in sorted(self.quotas.items()):
            if record.spec is not None and record.spec.role not in quotas:
                quotas[record.spec.role] = record.spec
        return quotas

    # -- the allocator's snapshot --------------------------------------------------------------

    def snapshot(self, now: float) -> Snapshot:
        nodes = self.usable_nodes()
        pods_per_slot = any(PODS in n.allocatable for n in nodes.values())
        external: dict[str, list[Resources]] = defaultdict(list)
        held: dict[tuple[str, str, str], tuple[list[Resources], int]] = {}

        def hold(framework: str, role: str, node: str, resources: Resources) -> None:
            items, count = held.get((framework, role, node), ([], 0))
            items.append(resources)
            held[(framework, role, node)] = (items, count + 1)

        for pod in self.charged_pods():
            assert pod.node is not None
            if pod.node not in nodes:
                continue
            if pod.framework_key and pod.role:
                hold(pod.framework_key, pod.role, pod.node, pod.requests)
            else:
                external[pod.node].append(pod.requests)
        offered: dict[str, list[tuple[Resources, int]]] = defaultdict(list)
        for offer in self.outstanding_offers():
            assert offer.spec is not None and offer.framework_key is not None
            hold(offer.framework_key, offer.spec.role, offer.spec.node_name, offer.resources())
            for task in offer.spec.sized_for:
                offered[offer.framework_key].append((Resources.parse(task.resources), task.count))

        frameworks = tuple(
            framework
            for record in sorted(self.frameworks.values(), key=lambda r: r.key)
            if (framework := self._framework(record, offered.get(record.key, []), pods_per_slot))
            is not None
        )
        return Snapshot(
            nodes=tuple(
                Node(name, node.allocatable, total(external.get(name, [])))
                for name, node in sorted(nodes.items())
            ),
            frameworks=frameworks,
            roles=tuple(
                Role(name, spec.weight) for name, spec in sorted(self.role_specs().items())
            ),
            quotas=tuple(
                Quota(
                    role,
                    spec.guarantee_resources(),
                    spec.limit_resources(),
                    zero_named(spec.limit, "spec.limit"),
                )
                for role, spec in sorted(self.active_quotas().items())
            ),
            reservations=tuple(
                Reservation(r.spec.role, r.spec.node_name, r.spec.reserved())
                for _, r in sorted(self.reservations.items())
                if r.spec is not None
            ),
            allocations=tuple(
                Allocation(fw, role, node, total(items), count)
                for (fw, role, node), (items, count) in sorted(held.items())
            ),
            filters=tuple(self.filters(now)),
            now=now,
        )

    def _framework(
        self,
        record: FrameworkRecord,
        offered: list[tuple[Resources, int]],
        pods_per_slot: bool,
    ) -> Framework | None:
        spec = record.spec
        if spec is None:
            return None
        refused = self.refused_roles(record)
        roles = tuple(role for role in spec.roles if role not in refused)
        if not roles:
            return None
        suppressed = frozenset(roles if spec.suppressed else spec.suppressed_roles)
        demand = None
        if spec.demand is not None:
            slot = Resources({PODS: 1}) if pods_per_slot else Resources()
            left = list(offered)
            shapes = []
            for task in spec.demand:
                shape = Resources.parse(task.resources)
                count = task.count
                for i, (resources, sized) in enumerate(left):
                    if resources == shape and sized and count:
                        used = min(sized, count)
                        count -= used
                        left[i] = (resources, sized - used)
                shapes.append(TaskShape(shape + slot, count))
            demand = tuple(shapes)
        minimum = spec.offer_filters.min_allocatable
        return Framework(
            name=record.key,
            roles=roles,
            suppressed_roles=suppressed,
            capabilities=frozenset(spec.capabilities),
            min_allocatable=None if minimum is None else (Resources.parse(minimum),),
            demand=demand,
        )

    def filters(self, now: float) -> Iterator[Filter]:
        """Filters in force: declined offers kept until their filter expires, minus revivals."""
        for offer in self.offers.values():
            status = offer.status
            if offer.spec is None or offer.framework_key is None:
                continue
            if status.phase is not OfferPhase.DECLINED or status.filter_expires_at is None:
                continue
            expires = parse_time(status.filter_expires_at)
            if expires is None or expires <= now:
                continue
            framework = self.frameworks.get(offer.framework_key)
            declined_at = parse_time(status.finished_at) or 0.0
            if framework and framework.revived_at and framework.revived_at >= declined_at:
                continue
            yield Filter(
                offer.framework_key,
                offer.spec.role,
                offer.spec.node_name,
                expires,
                Resources.parse(status.refused),
            )
