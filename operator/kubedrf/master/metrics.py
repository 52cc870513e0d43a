"""Prometheus metrics, named after what they measure, as Mesos' allocator metrics are."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_PREFIX = "kubedrf_allocator"


class Metrics:
    """One set of metrics per master; tests give each master its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
            ["framework"],
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
        self.tasks_refused = Counter(
            f"{_PREFIX}_tasks_refused",
            "Task Pods evicted for claiming what was not offered to them.",
            ["reason"],
            registry=r,
        )
