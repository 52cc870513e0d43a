"""One frozen view of the cluster per cycle: what reconcile, the snapshot and status all read.

The cache changes with every watch event; a cycle that read it several times could settle
offers on one picture and allocate on another. ``ClusterCache.freeze`` copies the tables
once and computes every derived fact here, once: usable nodes, what each node has in use,
what each (framework, role) holds, outstanding offers, tenancy refusals and active quotas.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
    Task,
    TaskShape,
)
from kubedrf.allocator.explain import RevocationUnderWay
from kubedrf.api import OfferStatus, QuotaSpec, ReservationSpec, RoleSpec
from kubedrf.api.conventions import parse_time
from kubedrf.api.offer import OfferPhase
from kubedrf.api.tenancy import refusal
from kubedrf.master.liveness import Silence, silences
from kubedrf.master.pods import PodSums, PodTable
from kubedrf.master.records import (
    Body,
    ClusterObjectRecord,
    FrameworkRecord,
    InverseOfferRecord,
    NodeRecord,
    OfferRecord,
    PodRecord,
)
from kubedrf.master.settings import MasterSettings
from kubedrf.resources import EMPTY, PODS, Resources, total, zero_named


@dataclass(frozen=True, slots=True)
class Holding:
    """What one (framework, role) holds on one usable node: tasks and outstanding offers.

    The same sums feed the allocator's snapshot (as ``Allocation``s) and every status and
    metric, so what users read is what DRF sorted by.
    """

    framework: str
    role: str
    node: str
    resources: Resources
    tasks: int
    offers: int


@dataclass(frozen=True, slots=True)
class MasterView:
    settings: MasterSettings
    now: float
    nodes: Mapping[str, NodeRecord]
    pods: Mapping[str, PodRecord]
    frameworks: Mapping[str, FrameworkRecord]
    roles: Mapping[str, ClusterObjectRecord[RoleSpec]]
    quotas: Mapping[str, ClusterObjectRecord[QuotaSpec]]
    reservations: Mapping[str, ClusterObjectRecord[ReservationSpec]]
    offers: Mapping[str, OfferRecord]
    inverse_offers: Mapping[str, InverseOfferRecord]
    #: Raw bodies, for Events (whom they regard) and the statuses already written.
    bodies: Mapping[tuple[str, str], Body]
    #: When the master first saw each offer's response (a timer, see the cache).
    answered_at: Mapping[str, float]
    confirmed_absent: frozenset[str]
    #: When this master last heard from each framework, by its own clock (see ``liveness``).
    heard_at: Mapping[str, float]
    #: When an eviction of each Pod was last refused by a PodDisruptionBudget (see the cache).
    refused_evictions: Mapping[str, float]
    #: The live Pods summed by place, kept up to date by the cache (see ``pods``).
    pod_sums: PodSums
    # -- derived once, in freeze() --
    managed: frozenset[str]
    usable: Mapping[str, NodeRecord]
    outstanding: tuple[OfferRecord, ...]
    #: Per node, what its outstanding offers and the Pods they do not cover have in use.
    usage: Mapping[str, Resources]
    #: Per node, what those Pods alone have in use (offers aside).
    pod_usage: Mapping[str, Resources]
    #: Per usable node, what Pods of no (framework, role) have in use: not the allocator's.
    external: Mapping[str, Resources]
    holdings: tuple[Holding, ...]
    refused: Mapping[str, Mapping[str, str]]
    #: Per role, the Quota in force (the first by name); others are reported as conflicts.
    quota_owners: Mapping[str, str]
    active_quotas: Mapping[str, QuotaSpec]
    #: Frameworks not heard from within their failoverTimeout: Disconnected, offered nothing.
    disconnected: Mapping[str, Silence]

    @classmethod
    def freeze(
        cls, settings: MasterSettings, now: float, pod_sums: PodSums | None = None, **tables: Any
    ) -> MasterView:
        """Copy the tables (records are immutable; only the dicts need copying) and derive.

        Pods come as the cache's ``PodTable``, whose sums are kept up to date as Pods change,
        or as a plain mapping summed here; ``pod_sums`` spares that when the caller has them.
        """
        pods = tables.pop("pods")
        if pod_sums is None:
            pod_sums = pods.sums() if isinstance(pods, PodTable) else PodSums.of(pods.values())
        copied: dict[str, Any] = {
            name: dict(table) if isinstance(table, Mapping) else frozenset(table)
            for name, table in tables.items()
        }
        copied["pods"] = pods.copy() if isinstance(pods, PodTable) else dict(pods)
        copied["pod_sums"] = pod_sums
        return cls(settings=settings, now=now, **copied, **_derive(settings, now, copied))

    def after(
        self,
        statuses: Mapping[str, OfferStatus] = {},
        deleted_pods: frozenset[str] = frozenset(),
        deleted_offers: frozenset[str] = frozenset(),
    ) -> MasterView:
        """The view once the cycle's settlements are written: offers with their new status,
        refused Pods and cleaned-up Offers gone. Decided on, never read back from the API."""
        if not (statuses or deleted_pods or deleted_offers):
            return self  # nothing settled: deriving again would only cost a pass over Pods
        offers = {
            key: dataclasses.replace(o, status=statuses[key]) if key in statuses else o
            for key, o in self.offers.items()
            if key not in deleted_offers
        }
        pods = dict(self.pods)
        gone = [pods.pop(key) for key in deleted_pods if key in pods]
        tables = {
            "nodes": self.nodes,
            "pods": pods,
            "frameworks": self.frameworks,
            "roles": self.roles,
            "quotas": self.quotas,
            "reservations": self.reservations,
            "offers": offers,
            "inverse_offers": self.inverse_offers,
            "bodies": self.bodies,
            "answered_at": self.answered_at,
            "confirmed_absent": self.confirmed_absent,
            "heard_at": self.heard_at,
            "refused_evictions": self.refused_evictions,
        }
        return MasterView.freeze(self.settings, self.now, self.pod_sums.without(gone), **tables)

    # -- queries -----------------------------------------------------------------------------

    def live_pods(self) -> Iterator[PodRecord]:
        return (pod for pod in self.pods.values() if not pod.terminal and pod.node)

    def cluster_total(self) -> Resources:
        """What the allocator divides by: the usable nodes' allocatable."""
        return total(node.allocatable for node in self.usable.values())

    def role_specs(self) -> dict[str, RoleSpec]:
        return {name: r.spec for name, r in self.roles.items() if r.spec is not None}

    def filters(self) -> Iterator[Filter]:
        """Filters in force: declined offers kept until their filter expires, minus revivals."""
        for offer in self.offers.values():
            status = offer.status
            if offer.spec is None or offer.framework_key is None:
                continue
            if status.phase is not OfferPhase.DECLINED or status.filter_expires_at is None:
                continue
            expires = parse_time(status.filter_expires_at)
            if expires is None or expires <= self.now:
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

    def revocations_under_way(self) -> tuple[RevocationUnderWay, ...]:
        """Pending inverse offers as the explain step reads them: the allocator keeps no
        revocation once asked, so what a waiting beneficiary expects next comes from here."""
        under_way = []
        for record in sorted(self.inverse_offers.values(), key=lambda r: r.key):
            spec = record.spec
            if not record.pending or spec is None or record.framework_key is None:
                continue
            beneficiary = spec.beneficiary
            under_way.append(
                RevocationUnderWay(
                    framework=record.framework_key,
                    role=spec.role,
                    node=spec.node_name,
                    tasks=len(spec.tasks),
                    beneficiary=f"{beneficiary.namespace}/{beneficiary.framework}",
                    beneficiary_role=beneficiary.role,
                    deadline=parse_time(spec.deadline) or 0.0,
                )
            )
        return tuple(under_way)

    # -- the allocator's snapshot --------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        pods_per_slot = any(PODS in n.allocatable for n in self.usable.values())
        offered: dict[str, list[tuple[Resources, int]]] = defaultdict(list)
        for offer in self.outstanding:
            assert offer.spec is not None and offer.framework_key is not None
            offered[offer.framework_key].extend(offer.sized)
        frameworks = tuple(
            framework
            for record in sorted(self.frameworks.values(), key=lambda r: r.key)
            if (framework := self._framework(record, offered.get(record.key, []), pods_per_slot))
            is not None
        )
        return Snapshot(
            nodes=tuple(
                Node(name, node.allocatable, self.external.get(name, EMPTY))
                for name, node in sorted(self.usable.items())
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
                for role, spec in sorted(self.active_quotas.items())
            ),
            reservations=tuple(
                Reservation(r.spec.role, r.spec.node_name, r.spec.reserved())
                for _, r in sorted(self.reservations.items())
                if r.spec is not None
            ),
            allocations=tuple(
                Allocation(h.framework, h.role, h.node, h.resources, h.tasks + h.offers)
                for h in self.holdings
            ),
            filters=tuple(self.filters()),
            now=self.now,
            tasks=self.tasks() if self.settings.revocation else (),
        )

    def tasks(self) -> tuple[Task, ...]:
        """Running tasks one by one, for revocation: which to end, and how old each is."""
        covered = {o.key for o in self.outstanding}
        usable = self.usable
        return tuple(
            task
            for task, offer in self.pod_sums.tasks
            if task.node in usable and (offer is None or offer not in covered)
        )

    def _framework(
        self,
        record: FrameworkRecord,
        offered: list[tuple[Resources, int]],
        pods_per_slot: bool,
    ) -> Framework | None:
        spec = record.spec
        if spec is None or record.key in self.disconnected:
            return None
        refused = self.refused.get(record.key, {})
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


def _derive(settings: MasterSettings, now: float, t: Mapping[str, Any]) -> dict[str, Any]:
    """Every fact more than one reader needs, computed once."""
    key, value = settings.managed_selector()
    nodes: Mapping[str, NodeRecord] = t["nodes"]
    managed = frozenset(
        name
        for name, node in nodes.items()
        if key in node.labels and (value is None or node.labels[key] == value)
    )
    usable = {
        name: nodes[name]
        for name in sorted(managed)
        if nodes[name].ready and not nodes[name].unschedulable
    }
    offers: Mapping[str, OfferRecord] = t["offers"]
    # Offers not yet settled hold their resources until the master settles them, past
    # expiresAt too: each cycle settles expired offers before it allocates.
    outstanding = tuple(o for _, o in sorted(offers.items()) if o.outstanding)
    # Live Pods whose requests count on their own: tasks launched against an offer that is
    # still outstanding are covered by that offer until the master settles it.
    sums: PodSums = t["pod_sums"]
    charged = sums.charged(frozenset(o.key for o in outstanding))
    pod_use: dict[str, list[Resources]] = defaultdict(list)
    external: dict[str, list[Resources]] = defaultdict(list)
    held: dict[tuple[str, str, str], list[Resources]] = defaultdict(list)
    tasks: dict[tuple[str, str, str], int] = defaultdict(int)
    offered: dict[tuple[str, str, str], int] = defaultdict(int)
    for (node, framework, role), tally in charged.items():
        pod_use[node].append(tally.resources)
        if framework and role:
            # A task on a node that is not usable now (NotReady, cordoned, gone and back)
            # still holds what it asked for: left out, its role would be offered up to its
            # quota limit elsewhere and hold more than the limit once the node is back.
            held[framework, role, node].append(tally.resources)
            tasks[framework, role, node] += tally.count
        elif node in usable:
            external[node].append(tally.resources)
    in_use = {node: list(items) for node, items in pod_use.items()}
    for offer in outstanding:
        assert offer.spec is not None and offer.framework_key is not None
        where = (offer.framework_key, offer.spec.role, offer.spec.node_name)
        in_use.setdefault(offer.spec.node_name, []).append(offer.resources())
        held[where].append(offer.resources())
        offered[where] += 1
    holdings = tuple(
        Holding(fw, role, node, total(items), tasks[fw, role, node], offered[fw, role, node])
        for (fw, role, node), items in sorted(held.items())
    )
    roles: Mapping[str, ClusterObjectRecord[RoleSpec]] = t["roles"]
    specs = {name: r.spec for name, r in roles.items() if r.spec is not None}
    frameworks: Mapping[str, FrameworkRecord] = t["frameworks"]
    refused = {
        fw.key: {
            role: reason
            for role in fw.spec.roles
            if (reason := refusal(role, fw.namespace, specs)) is not None
        }
        for fw in frameworks.values()
        if fw.spec is not None
    }
    quotas: Mapping[str, ClusterObjectRecord[QuotaSpec]] = t["quotas"]
    owners: dict[str, str] = {}
    for name, record in sorted(quotas.items()):  # one quota per role: the first by name wins
        if record.spec is not None:
            owners.setdefault(record.spec.role, name)
    active = {role: spec for role, name in owners.items() if (spec := quotas[name].spec)}
    return {
        "managed": managed,
        "usable": usable,
        "outstanding": outstanding,
        "usage": {node: total(items) for node, items in in_use.items()},
        "pod_usage": {node: total(items) for node, items in pod_use.items()},
        "external": {node: total(items) for node, items in external.items()},
        "holdings": holdings,
        "refused": refused,
        "quota_owners": owners,
        "active_quotas": active,
        "disconnected": silences(frameworks, t["heard_at"], now),
    }
