"""The master's loop: reconcile offers, snapshot, allocate, write offers, report.

Handlers only feed the cache and poke the loop; all decisions happen here, one cycle at a
time, every ``allocation_interval`` and soon after any event that frees or adds capacity
(events within ``batch_window`` share one cycle).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from kubedrf.allocator import AllocationResult, OfferDecision, allocate
from kubedrf.api import FRAMEWORK, OFFER, QUOTA, RESERVATION, ROLE
from kubedrf.api.conventions import format_time
from kubedrf.api.offer import OfferPhase
from kubedrf.master.cache import ClusterCache, object_key
from kubedrf.master.leader import LeaderElector
from kubedrf.master.lifecycle import OfferTransition, PodRefusal, Reconciliation, reconcile
from kubedrf.master.metrics import Metrics
from kubedrf.master.status import (
    Holding,
    cluster_total,
    differs,
    framework_status,
    holdings,
    idle_reasons,
    quota_statuses,
    reservation_statuses,
    role_statuses,
)
from kubedrf.master.sync import ApiReader
from kubedrf.master.writer import ApiWriter
from kubedrf.resources import Resources, canonical_number

logger = logging.getLogger(__name__)

#: At most this many API writes in flight at once.
WRITE_CONCURRENCY = 8


class Master:
    def __init__(
        self,
        cache: ClusterCache,
        writer: ApiWriter,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        leader: LeaderElector | None = None,
        reader: ApiReader | None = None,
    ) -> None:
        self.cache = cache
        self.reader = reader
        #: Whether the cache is known complete: a replica that just became leader relists
        #: first, since its watches may have missed deletions while it stood by.
        self._view_complete = leader is None
        self.settings = cache.settings
        self.writer = writer
        self.metrics = metrics
        self.clock = clock
        self.leader = leader
        self._trigger = asyncio.Event()
        self._triggered_at: float | None = None
        self._last_idle: dict[str, str] = {}
        self.cycles = 0

    # -- feeding -----------------------------------------------------------------------------

    def observe(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event: update the cache, and poke the loop if capacity or intent changed."""
        before = self.cache.bodies.get((kind, object_key(body) or ""))
        if not self.cache.apply(kind, event_type, body):
            return
        if _worth_a_cycle(kind, event_type, before, body):
            self.poke()

    def poke(self) -> None:
        if self._triggered_at is None:
            self._triggered_at = self.clock()
        self._trigger.set()

    async def run(self, stopped: asyncio.Event) -> None:
        """Cycle until ``stopped``; a failing cycle is logged and retried, never fatal."""
        interval = self.settings.allocation_interval
        while not stopped.is_set():
            try:
                await asyncio.wait_for(self._trigger.wait(), timeout=interval)
                await asyncio.sleep(self.settings.batch_window)
            except TimeoutError:
                pass
            self._trigger.clear()
            if not self.may_act():
                self._view_complete = False
                continue  # a standby: the watches keep its cache warm, the leader allocates
            if self._triggered_at is not None:
                self.metrics.allocation_queue_seconds.observe(self.clock() - self._triggered_at)
                self._triggered_at = None
            try:
                if not self._view_complete and self.reader is not None:
                    await self.reader.relist()
                self._view_complete = True
                await self.cycle()
            except Exception:
                logger.exception("allocation cycle failed; retrying next interval")

    def may_act(self) -> bool:
        """Whether this replica may write: always without election, else while it leads."""
        return self.leader is None or self.leader.is_leader

    # -- one cycle -----------------------------------------------------------------------------

    async def cycle(self) -> AllocationResult:
        started = time.perf_counter()
        now = self.clock()
        await self._carry_out(await self._reconcile(now), now)
        snapshot = self.cache.snapshot(now)
        config = self.settings.allocator_config()
        result = await asyncio.to_thread(allocate, snapshot, config)
        await self._bounded(self._make_offer(decision, now) for decision in result.offers)
        await self._report(result, now)
        self.cycles += 1
        self.metrics.allocation_runs.inc()
        self.metrics.allocation_run_seconds.observe(time.perf_counter() - started)
        return result

    async def _reconcile(self, now: float) -> Reconciliation:
        """The offer protocol's decisions; the destructive ones confirmed by fresh reads.

        A refusal deletes a task, and settling an Accept without a task it lists drops that
        task: a lagging watch (after a reconnect, or on a new leader) must not cause either.
        So the Pods and Offers they rest on are read afresh, and only refusals that the
        same rules still reach on the fresh facts are carried out.
        """
        plan = reconcile(self.cache, now)
        if self.reader is None or not (plan.refusals or plan.unconfirmed):
            return plan
        reads: set[tuple[str, str]] = {("pod", key) for key in plan.unconfirmed}
        for refusal in plan.refusals:
            reads.add(("pod", refusal.pod.key))
            if refusal.pod.offer_key is not None:
                reads.add(("offer", refusal.pod.offer_key))
        reader, gate = self.reader, asyncio.Semaphore(WRITE_CONCURRENCY)

        async def read(kind: str, key: str) -> bool | None:
            async with gate:
                try:
                    return await reader.read(kind, key)
                except Exception as error:  # unconfirmed: decided on a later cycle
                    logger.warning("reading %s %s afresh: %s", kind, key, error)
                    return None

        order = sorted(reads)
        answers = dict(zip(order, await asyncio.gather(*(read(*r) for r in order)), strict=True))
        for key in plan.unconfirmed:
            if answers.get(("pod", key)) is False:
                self.cache.confirmed_absent.add(key)
        verified = {
            r.pod.key
            for r in plan.refusals
            if answers.get(("pod", r.pod.key)) is not None
            and (r.pod.offer_key is None or answers.get(("offer", r.pod.offer_key)) is not None)
        }
        plan = reconcile(self.cache, now)
        plan.refusals = [r for r in plan.refusals if r.pod.key in verified]
        return plan

    async def _bounded(self, jobs: Iterable[Awaitable[None]]) -> None:
        """Run writes concurrently; one failed write is logged and retried by a later cycle
        (everything is recomputed from the cache), never allowed to fail the others. A
        replica that stops leading mid-cycle stops writing at once."""
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def gated(job: Awaitable[None]) -> None:
            async with gate:
                if not self.may_act():
                    if inspect.iscoroutine(job):
                        job.close()
                    return
                try:
                    await job
                except Exception:
                    logger.exception("a write failed; a later cycle tries again")

        await asyncio.gather(*(gated(job) for job in jobs))

    async def _carry_out(self, plan: Reconciliation, now: float) -> None:
        await self._bounded(self._transition(t, now) for t in plan.transitions)
        await self._bounded(self._refuse(r) for r in plan.refusals)
        await self._bounded(self.writer.delete_offer(o.namespace, o.name) for o in plan.deletions)

    async def _transition(self, transition: OfferTransition, now: float) -> None:
        offer = transition.offer
        status: dict[str, Any] = {
            "phase": transition.phase.value,
            "reason": transition.reason,
            "message": transition.message,
            "finishedAt": format_time(now),
            "observedGeneration": offer.generation,
        }
        if transition.tasks:
            status["tasks"] = list(transition.tasks)
        if transition.filter_expires_at is not None:
            status["filterExpiresAt"] = format_time(transition.filter_expires_at)
        if transition.refused is not None:
            status["refused"] = transition.refused.to_quantities()
        await self.writer.patch_status(OFFER, offer.name, status, offer.namespace)
        framework = offer.spec.framework if offer.spec else "?"
        self.metrics.offers.labels(f"{offer.namespace}/{framework}", transition.phase.value).inc()
        body = self.cache.bodies.get(("offer", offer.key))
        if body is not None:
            warning = transition.phase in (OfferPhase.RESCINDED, OfferPhase.EXPIRED)
            await self.writer.event(
                body, transition.reason, transition.message, "Warning" if warning else "Normal"
            )

    async def _refuse(self, refusal: PodRefusal) -> None:
        pod = refusal.pod
        body = self.cache.bodies.get(("pod", pod.key))
        logger.warning("refusing task %s: %s", pod.key, refusal.message)
        if body is not None:
            await self.writer.event(body, refusal.reason, refusal.message, "Warning", "Refuse")
        framework = self.cache.bodies.get(("framework", pod.framework_key or ""))
        if framework is not None:
            await self.writer.event(
                framework,
                refusal.reason,
                f"task {pod.name}: {refusal.message}",
                "Warning",
                "Refuse",
            )
        await self.writer.delete_pod(pod.namespace, pod.name)
        self.metrics.tasks_refused.labels(refusal.reason).inc()

    async def _make_offer(self, decision: OfferDecision, now: float) -> None:
        namespace, _, name = decision.framework.partition("/")
        record = self.cache.frameworks.get(decision.framework)
        if record is None or record.spec is None:
            return
        sized_for = []
        demand = record.spec.demand or []
        for index, count in decision.tasks:
            if index < len(demand):
                sized_for.append({"resources": dict(demand[index].resources), "count": count})
        spec = {
            "framework": name,
            "role": decision.role,
            "nodeName": decision.node,
            "resources": decision.resources.to_quantities(),
            "expiresAt": format_time(now + self.settings.offer_timeout),
            "sizedFor": sized_for,
        }
        created = await self.writer.create_offer(namespace, record.uid, name, spec)
        if created is not None:
            self.metrics.offers.labels(decision.framework, "Sent").inc()

    async def _report(self, result: AllocationResult, now: float) -> None:
        held = holdings(self.cache, now)
        cluster = cluster_total(self.cache)
        by_framework: dict[str, list[Holding]] = defaultdict(list)
        for holding in held:
            by_framework[holding.framework].append(holding)
        roles = role_statuses(self.cache, held, cluster)
        jobs: list[Awaitable[None]] = []
        for record in list(self.cache.frameworks.values()):
            mine = by_framework.get(record.key, [])
            status = framework_status(
                self.cache, record, mine=mine, cluster=cluster, result=result, now=now
            )
            body = self.cache.bodies.get(("framework", record.key))
            if differs(body, status):
                jobs.extend(self._condition_events(body, status))
                jobs.append(
                    self.writer.patch_status(FRAMEWORK, record.name, status, record.namespace)
                )
            jobs.extend(self._explain_idle(record.key, result))
        for kind, statuses in (
            (ROLE, roles),
            (QUOTA, quota_statuses(self.cache, held, now)),
            (RESERVATION, reservation_statuses(self.cache, now)),
        ):
            for name, status in statuses.items():
                body = self.cache.bodies.get((kind.singular, name))
                if differs(body, status):
                    jobs.extend(self._condition_events(body, status))
                    jobs.append(self.writer.patch_status(kind, name, status))
        await self._bounded(jobs)
        self._update_gauges(held, roles, cluster, now)

    def _condition_events(
        self, body: Mapping[str, Any] | None, status: Mapping[str, Any]
    ) -> list[Awaitable[None]]:
        """A Warning Event for each condition that turns False (bad input, refused roles):
        what the status says, also where ``kubectl describe`` and event watchers look."""
        if body is None:
            return []
        before = {
            c.get("type"): c.get("status")
            for c in (body.get("status") or {}).get("conditions") or []
        }
        return [
            self.writer.event(body, c["reason"], c["message"], "Warning", "Validate")
            for c in status.get("conditions") or []
            if c["type"] != "Offered"
            and c["status"] == "False"
            and before.get(c["type"]) != "False"
        ]

    def _explain_idle(self, framework: str, result: AllocationResult) -> list[Awaitable[None]]:
        """An Event when the answer to "why did my framework get no offer?" changes."""
        record = self.cache.frameworks[framework]
        reasons = idle_reasons(record, result)
        offered = any(o.framework == framework for o in result.offers)
        summary = (
            ""
            if offered or not reasons
            else "; ".join(f"role {role}: {why.value}" for role, why in sorted(reasons.items()))
        )
        if self._last_idle.get(framework, "") == summary:
            return []
        self._last_idle[framework] = summary
        body = self.cache.bodies.get(("framework", framework))
        if not summary or body is None:
            return []
        reason = next(iter(sorted(reasons.items())))[1].value
        return [self.writer.event(body, reason, f"no (further) offer: {summary}", "Normal")]

    def _update_gauges(
        self,
        held: list[Holding],
        roles: Mapping[str, Mapping[str, Any]],
        cluster: Resources,
        now: float,
    ) -> None:
        m = self.metrics
        for name, amount in cluster.items():
            m.resources_total.labels(name).set(canonical_number(name, amount))
        offered: dict[str, int] = {}
        for h in held:
            for name, amount in h.resources.items():
                offered[name] = offered.get(name, 0) + amount
        for name, amount in offered.items():
            m.resources_offered_or_allocated.labels(name).set(canonical_number(name, amount))
        for name, status in roles.items():
            m.dominant_share.labels(name).set(status["dominantShare"])
        for record in self.cache.frameworks.values():
            body = self.cache.bodies.get(("framework", record.key)) or {}
            share = (body.get("status") or {}).get("dominantShare")
            if share is not None:
                m.framework_share.labels(record.key).set(share)
        filters: dict[str, int] = {}
        for f in self.cache.filters(now):
            filters[f.role] = filters.get(f.role, 0) + 1
        for role in set(filters) | {lbl for lbl in _gauge_labels(m.active_filters)}:
            m.active_filters.labels(role).set(filters.get(role, 0))
        for role, spec in self.cache.active_quotas().items():
            for name, amount in spec.guarantee_resources().items():
                m.quota.labels(role, name, "guarantee").set(canonical_number(name, amount))
            for name, amount in (spec.limit_resources() or {}).items():
                m.quota.labels(role, name, "limit").set(canonical_number(name, amount))
            consumed: dict[str, int] = {}
            for h in held:
                if h.role == role or h.role.startswith(role + "."):
                    for name, amount in h.resources.items():
                        consumed[name] = consumed.get(name, 0) + amount
            for name, amount in consumed.items():
                m.quota.labels(role, name, "consumed").set(canonical_number(name, amount))
        m.offers_outstanding.set(sum(1 for _ in self.cache.outstanding_offers()))


def _gauge_labels(gauge: Any) -> list[str]:
    return [
        sample.labels.get("role", "") for metric in gauge.collect() for sample in metric.samples
    ]


def _generation(body: Mapping[str, Any] | None) -> Any:
    return (body or {}).get("metadata", {}).get("generation")


def _worth_a_cycle(
    kind: str, event_type: str | None, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> bool:
    """Whether an event may free or add capacity, or carries new intent."""
    if event_type == "DELETED" or before is None:
        return True
    if kind == "node":
        return True
    if kind == "pod":
        old = (before.get("status") or {}).get("phase")
        new = (after.get("status") or {}).get("phase")
        return old != new and new in ("Succeeded", "Failed")
    if kind == "framework":
        revive = "kubedrf.io/revived-at"
        old_annotations = before.get("metadata", {}).get("annotations") or {}
        new_annotations = after.get("metadata", {}).get("annotations") or {}
        if old_annotations.get(revive) != new_annotations.get(revive):
            return True
    return bool(_generation(before) != _generation(after))
