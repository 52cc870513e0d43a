"""Prometheus metrics, named after what they measure, as Mesos' allocator metrics are."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kubedrf.allocator import AllocationResult, AllocatorConfig, Reason, Snapshot
from kubedrf.allocator.shares import FairShares, Shares, fair_shares
from kubedrf.api.conventions import parse_time
from kubedrf.master.view import MasterView
from kubedrf.resources import Resources, canonical_number

_PREFIX = "kubedrf_allocator"


class Metrics:
    """One set of metrics per master; tests give each master its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        #: The label sets each gauge was last set to, to remove those that vanish.
        self._series: dict[int, set[tuple[str, ...]]] = {}
        r = self.registry
        self.allocation_runs = Counter(
            f"{_PREFIX}_allocation_runs", "Allocation cycles run.", registry=r
        )
        self.allocation_run_seconds = Histogram(
            f"{_PREFIX}_allocation_run_seconds",
            "Time one allocation cycle took, snapshot to offers written.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.allocation_queue_seconds = Histogram(
            f"{_PREFIX}_allocation_queue_latency_seconds",
            "Time from a trigger (an event that frees or adds capacity) to its cycle starting.",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.dominant_share = Gauge(
            f"{_PREFIX}_role_dominant_share",
            "Weighted dominant share of a role.",
            ["role"],
            registry=r,
        )
        self.framework_share = Gauge(
            f"{_PREFIX}_framework_dominant_share",
            "Dominant share of a framework (before weights).",
            ["namespace", "framework"],
            registry=r,
        )
        self.active_filters = Gauge(
            f"{_PREFIX}_offer_filters_active",
            "Refusal filters in force, per role.",
            ["role"],
            registry=r,
        )
        self.resources_total = Gauge(
            f"{_PREFIX}_resources_total",
            "Allocatable resources of managed nodes (canonical units: cores, bytes).",
            ["resource"],
            registry=r,
        )
        self.resources_offered_or_allocated = Gauge(
            f"{_PREFIX}_resources_offered_or_allocated",
            "Resources held by frameworks: running tasks plus outstanding offers.",
            ["resource"],
            registry=r,
        )
        self.quota = Gauge(
            f"{_PREFIX}_quota",
            "Quota guarantee, limit and consumption of a role per resource.",
            ["role", "resource", "type"],
            registry=r,
        )
        self.offers = Counter(
            f"{_PREFIX}_offers",
            "Offers by what happened to them: sent, accepted, declined, expired, rescinded.",
            ["framework", "event"],
            registry=r,
        )
        self.offers_outstanding = Gauge(
            f"{_PREFIX}_offers_outstanding", "Offers not yet answered.", registry=r
        )
        self.revocations = Counter(
            f"{_PREFIX}_revocations",
            "Revocations by outcome: started; answered (the framework ended its tasks);"
            " evicted (the master did, after the deadline); blocked (a PodDisruptionBudget"
            " refused a task's eviction: once per task, not per retry); cancelled.",
            ["outcome"],
            registry=r,
        )
        self.tasks_bound = Counter(
            f"{_PREFIX}_tasks_bound",
            "Task Pods the master bound to their offer's node (result: bound or failed).",
            ["result"],
            registry=r,
        )
        self.tasks_refused = Counter(
            f"{_PREFIX}_tasks_refused",
            "Task Pods evicted for claiming what was not offered to them.",
            ["reason"],
            registry=r,
        )
        self.role_fair_share = Gauge(
            f"{_PREFIX}_role_fair_share",
            "Weighted DRF fair share of a role for the current demand, beside its dominant share.",
            ["role"],
            registry=r,
        )
        self.framework_fair_share = Gauge(
            f"{_PREFIX}_framework_fair_share",
            "DRF fair share of a framework for the current demand (before weights).",
            ["namespace", "framework"],
            registry=r,
        )
        self.frameworks_waiting = Gauge(
            f"{_PREFIX}_frameworks_waiting",
            "Frameworks with demand that the last cycle offered nothing, by the reason why.",
            ["reason"],
            registry=r,
        )
        self.first_offer_wait_seconds = Histogram(
            f"{_PREFIX}_first_offer_wait_seconds",
            "Time from a framework declaring demand while holding nothing to its first offer.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        for outcome in REVOCATION_OUTCOMES:  # every outcome exported from the start, at 0
            self.revocations.labels(outcome)
        for reason in Reason:
            if reason is not Reason.NO_DEMAND:
                self.frameworks_waiting.labels(reason.value).set(0)
        #: Since when each framework has wanted tasks while holding nothing (a timer only).
        self._waiting_since: dict[str, float] = {}
        self._fair_at: float | None = None

    def _set(self, gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
        """Set a labelled gauge to exactly ``values``: new series set, vanished ones removed."""
        known = self._series.setdefault(id(gauge), set())
        for labels in known - set(values):
            gauge.remove(*labels)
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        self._series[id(gauge)] = set(values)

    def record_cycle(self, view: MasterView, shares: Shares) -> None:
        """Set every gauge from one cycle's view and shares; series of objects that are gone
        are removed, so a deleted framework or role leaves no stale value behind."""
        self._set(self.resources_total, _per_resource(shares.cluster))
        held = Resources()
        for h in view.holdings:
            held += h.resources
        self._set(self.resources_offered_or_allocated, _per_resource(held))
        self._set(self.dominant_share, {(role,): share for role, share in shares.roles.items()})
        self._set(
            self.framework_share,
            {tuple(fw.split("/", 1)): share for fw, share in shares.frameworks.items()},
        )
        filters: dict[tuple[str, ...], float] = {}
        for f in view.filters():
            filters[(f.role,)] = filters.get((f.role,), 0) + 1
        self._set(self.active_filters, filters)
        quota: dict[tuple[str, ...], float] = {}
        for role, spec in view.active_quotas.items():
            consumed = shares.role_allocations.get(role, Resources())
            limit = spec.limit_resources() or Resources()
            for kind, amounts in (
                ("guarantee", spec.guarantee_resources()),
                ("limit", limit),
                ("consumed", consumed),
            ):
                for (name,), value in _per_resource(amounts).items():
                    quota[(role, name, kind)] = value
        self._set(self.quota, quota)
        self.offers_outstanding.set(len(view.outstanding))

    def record_decisions(
        self,
        view: MasterView,
        snapshot: Snapshot,
        result: AllocationResult,
        config: AllocatorConfig,
        fair: FairShares | None = None,
    ) -> None:
        """Fair shares for the current demand, who waits and why, and first-offer latency.

        ``fair`` are the cycle's own fair shares, when it computed them.
        """
        if self._fair_at is None or not 0 <= view.now - self._fair_at < FAIR_SHARE_EVERY:
            # A second allocation on the unheld snapshot: not worth doing every cycle.
            self._fair_at = view.now
            fair = fair if fair is not None else fair_shares(snapshot, config)
            self._set(self.role_fair_share, {(r,): share for r, share in fair.roles.items()})
            self._set(
                self.framework_fair_share,
                {tuple(fw.split("/", 1)): share for fw, share in fair.frameworks.items()},
            )
        offered = {o.framework for o in result.offers}
        waiting: dict[str, set[str]] = {reason.value: set() for reason in Reason}
        for framework, _, reason in result.idle:
            if reason is not Reason.NO_DEMAND and framework not in offered:
                waiting[reason.value].add(framework)
        del waiting[Reason.NO_DEMAND.value]
        for reason_name, frameworks in waiting.items():
            self.frameworks_waiting.labels(reason_name).set(len(frameworks))
        self._first_offers(view, snapshot, offered)

    def _first_offers(self, view: MasterView, snapshot: Snapshot, offered: set[str]) -> None:
        holding = {h.framework for h in view.holdings}
        wanting = {
            fw.name
            for fw in snapshot.frameworks
            if fw.demand and any(shape.count for shape in fw.demand)
        }
        for name in wanting - holding:
            if name not in self._waiting_since:
                # Created while this master ran: it has waited since its creation.
                body = view.bodies.get(("framework", name), {})
                created = parse_time(body.get("metadata", {}).get("creationTimestamp"))
                since = view.now if created is None else min(created, view.now)
                self._waiting_since[name] = since
        for name in list(self._waiting_since):
            if name in offered:
                self.first_offer_wait_seconds.observe(view.now - self._waiting_since.pop(name))
            elif name not in wanting or name in holding:
                del self._waiting_since[name]


#: Seconds between two computations of the fair-share gauges: each is a second allocation.
FAIR_SHARE_EVERY = 5.0

#: How a revocation can end; the master's revocation steps count each.
REVOCATION_OUTCOMES = ("started", "answered", "evicted", "blocked", "cancelled")


def _per_resource(resources: Resources) -> dict[tuple[str, ...], float]:
    return {(name,): canonical_number(name, amount) for name, amount in resources.items()}
