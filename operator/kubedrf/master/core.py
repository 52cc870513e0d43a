"""The master's loop: one cycle is a short pipeline over one frozen view of the cluster.

Handlers only feed the cache and poke the loop; every decision is a pure function of the
cycle's view, every write happens in the steps that say so. A cycle runs every
``allocation_interval`` and soon after any event that frees or adds capacity (events within
``batch_window`` share one cycle).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from kubedrf.allocator import (
    AllocationResult,
    OfferDecision,
    Revocation,
    allocate,
    explain,
    revocation_target,
)
from kubedrf.allocator.shares import fair_shares, shares
from kubedrf.allocator.sorter import DRFSorter, SorterFactory
from kubedrf.api import (
    INVERSE_OFFER,
    OFFER,
    InverseOfferPhase,
    InverseOfferSpec,
    OfferSpec,
    TaskDemand,
)
from kubedrf.api.conventions import moment
from kubedrf.api.inverse_offer import Beneficiary
from kubedrf.api.offer import OfferPhase
from kubedrf.kube import unreachable
from kubedrf.master.binder import Binder, bindings
from kubedrf.master.cache import ClusterCache, object_key
from kubedrf.master.leader import LeaderElector
from kubedrf.master.lifecycle import OfferTransition, PodRefusal, Reconciliation, reconcile
from kubedrf.master.metrics import Metrics
from kubedrf.master.records import PodRecord
from kubedrf.master.reporter import Reporter
from kubedrf.master.revoking import (
    Eviction,
    InverseOfferTransition,
    RevocationPlan,
    plan_revocations,
)
from kubedrf.master.sync import ApiReader
from kubedrf.master.view import MasterView
from kubedrf.master.writer import ApiWriter

logger = logging.getLogger(__name__)

#: At most this many API calls in flight at once.
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
        sorter: SorterFactory = DRFSorter,
    ) -> None:
        self.cache = cache
        self.settings = cache.settings
        self.writer = writer
        self.metrics = metrics
        self.reporter = Reporter(writer, metrics)
        self.binder = Binder(writer, metrics)
        self.clock = clock
        self.leader = leader
        self.reader = reader
        self.sorter = sorter
        #: Whether the cache is known complete: a replica that just became leader relists
        #: first, since its watches may have missed deletions while it stood by.
        self._view_complete = leader is None
        #: Whether the API went away during this cycle: its remaining writes are dropped.
        self._contact_lost = False
        self._failed_rounds = 0
        self._trigger = asyncio.Event()
        self._triggered_at: float | None = None
        self.cycles = 0

    # -- feeding -----------------------------------------------------------------------------

    def observe(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event: update the cache, and poke the loop if capacity or intent changed."""
        key = object_key(body) or ""
        before = self.cache.record(kind, key)
        if not self.cache.apply(kind, event_type, body):
            return
        if _worth_a_cycle(kind, event_type, before, self.cache.record(kind, key)):
            self.poke()

    def poke(self) -> None:
        if self._triggered_at is None:
            self._triggered_at = self.clock()
        self._trigger.set()

    def lost_contact(self) -> None:
        """The API could not be reached: the watches may have missed events while it was
        away, and reconnect only after their own backoff; so the next cycle relists before it
        decides, as a new leader does (an offer expired on a stale view refuses the tasks a
        framework launched on it meanwhile). The cycle under way writes nothing more: its
        writes would fail one by one, each after its own retries, while the apiserver that
        comes back is busiest."""
        self._view_complete = False
        self._contact_lost = True

    def may_act(self) -> bool:
        """Whether this replica may write: always without election, else while it leads."""
        return self.leader is None or self.leader.is_leader

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
            if self.leader is not None and self.leader.failed_rounds != self._failed_rounds:
                self._failed_rounds = self.leader.failed_rounds
                self.lost_contact()
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
            except Exception as error:
                if not unreachable(error):
                    logger.exception("allocation cycle failed; retrying next interval")
                    continue
                self.lost_contact()
                logger.warning("the API is unreachable (%s); relisting before a cycle", error)

    # -- one cycle -----------------------------------------------------------------------------

    async def cycle(self) -> AllocationResult:
        started = time.perf_counter()
        self._contact_lost = False
        config = self.settings.allocator_config()
        # 1. Freeze the cache into this cycle's view.
        view = self.cache.freeze(self.clock())
        # 2. Settle the offer protocol: accept, decline, expire, rescind; refuse bad claims.
        plan = reconcile(view)
        # 3. Confirm what would destroy a task with fresh reads, and decide again on them.
        if plan.refusals or plan.unconfirmed:
            view, plan = await self._confirm(plan, view.now)
        # 4. Write the settlements; the rest of the cycle decides on the view they leave.
        await self._carry_out(plan, view)
        view = plan.applied_to(view)
        # 5. Bind the valid claims that wait for the master (not for kube-scheduler).
        await self._bounded(self.binder.bind(b, view) for b in bindings(view))
        # 6. Plan revocation: settle inverse offers, evict past deadlines, ask for new ones.
        snapshot = view.snapshot()
        policy = self.settings.revocation_policy()
        # Each client's DRF target, once: revocation plans with it, explain and the
        # fair-share gauges read it (holds added below change only filters, which it ignores).
        targets = (
            await asyncio.to_thread(revocation_target, snapshot, config)
            if self.settings.revocation
            else None
        )
        revoking = await asyncio.to_thread(
            plan_revocations, view, snapshot, config, policy, targets
        )
        # 7. Allocate on the view as the settlements leave it, freed nodes held for whom
        #    they were freed for.
        snapshot = dataclasses.replace(snapshot, filters=snapshot.filters + revoking.holds)
        result = await asyncio.to_thread(allocate, snapshot, config, self.sorter)
        # 8. Write the revocation and the offers together: the offers hold nothing that a
        #    revoked task still holds in this view, so an offer owed waits for no eviction.
        await asyncio.gather(
            self._revoke(revoking, view),
            self._bounded(self._make_offer(view, decision) for decision in result.offers),
        )
        # 9. Report: statuses and Events that changed, and gauges, from the same shares;
        #    why each client offered nothing waits, explained on the same snapshot.
        cycle_shares = shares(snapshot, result, config)
        fair = fair_shares(snapshot, config, targets) if targets is not None else None
        waiting = await asyncio.to_thread(
            explain,
            snapshot,
            result,
            config,
            under_way=view.revocations_under_way(),
            fair=fair,
            held=cycle_shares,
        )
        await self._bounded(self.reporter.writes(view, snapshot, result, cycle_shares, waiting))
        self.reporter.gauges(view, snapshot, result, cycle_shares, config, fair=fair)
        self.cycles += 1
        self.metrics.allocation_runs.inc()
        self.metrics.allocation_run_seconds.observe(time.perf_counter() - started)
        return result

    async def _confirm(self, plan: Reconciliation, now: float) -> tuple[MasterView, Reconciliation]:
        """Read the Pods and Offers a destructive decision rests on, and reconcile again.

        A refusal deletes a task, and settling an Accept without a task it lists drops that
        task: a lagging watch (after a reconnect, or on a new leader) must cause neither.
        Only refusals the same rules still reach on the fresh facts are carried out.
        """
        if self.reader is None:
            return self.cache.freeze(now), plan
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
                    if unreachable(error):
                        self.lost_contact()
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
        view = self.cache.freeze(now)
        plan = reconcile(view)
        plan.refusals = [r for r in plan.refusals if r.pod.key in verified]
        return view, plan

    async def _bounded(self, jobs: Iterable[Awaitable[None]]) -> None:
        """Run writes concurrently; one failed write is logged and retried by a later cycle
        (everything is recomputed from the cache), never allowed to fail the others. A
        replica that stops leading mid-cycle stops writing at once, and so does one that
        lost the API (the next cycle relists and decides again)."""
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def gated(job: Awaitable[None]) -> None:
            async with gate:
                if not self.may_act() or self._contact_lost:
                    if inspect.iscoroutine(job):
                        job.close()
                    return
                try:
                    await job
                except Exception as error:
                    if not unreachable(error):
                        logger.exception("a write failed; a later cycle tries again")
                        return
                    if not self._contact_lost:  # once per cycle, and no traceback: expected
                        logger.warning("a write failed (%s); relisting before the next", error)
                    self.lost_contact()

        await asyncio.gather(*(gated(job) for job in jobs))

    async def _carry_out(self, plan: Reconciliation, view: MasterView) -> None:
        await self._bounded(self._transition(t, view) for t in plan.transitions)
        await self._bounded(self._refuse(r, view) for r in plan.refusals)
        await self._bounded(self.writer.delete(OFFER, o.namespace, o.name) for o in plan.deletions)

    async def _transition(self, transition: OfferTransition, view: MasterView) -> None:
        offer = transition.offer
        await self.writer.patch_status(
            OFFER, offer.name, transition.status(view.now), offer.namespace
        )
        framework = offer.spec.framework if offer.spec else "?"
        self.metrics.offers.labels(f"{offer.namespace}/{framework}", transition.phase.value).inc()
        body = view.bodies.get(("offer", offer.key))
        if body is not None:
            warning = transition.phase in (OfferPhase.RESCINDED, OfferPhase.EXPIRED)
            await self.writer.event(
                body, transition.reason, transition.message, "Warning" if warning else "Normal"
            )

    async def _refuse(self, refusal: PodRefusal, view: MasterView) -> None:
        pod = refusal.pod
        logger.warning("refusing task %s: %s", pod.key, refusal.message)
        # The refusal takes effect first: Events are only its explanation, and writing them
        # first kept a bad claim in place for as long as the API was slow to take them.
        await self.writer.delete_pod(pod.namespace, pod.name)
        await self.writer.event(
            pod.reference(), refusal.reason, refusal.message, "Warning", "Refuse"
        )
        framework = view.bodies.get(("framework", pod.framework_key or ""))
        if framework is not None:
            await self.writer.event(
                framework,
                refusal.reason,
                f"task {pod.name}: {refusal.message}",
                "Warning",
                "Refuse",
            )
        self.metrics.tasks_refused.labels(refusal.reason).inc()

    async def _revoke(self, plan: RevocationPlan, view: MasterView) -> None:
        for revocation in plan.revocations:
            logger.info(
                "revoking %s of %s on %s for %s (%s)",
                ", ".join(revocation.tasks),
                revocation.framework,
                revocation.node,
                revocation.beneficiary,
                revocation.beneficiary_role,
            )
        evicted: dict[str, list[str]] = {}

        async def evict(eviction: Eviction) -> None:
            if await self._evict(eviction, view):
                evicted.setdefault(eviction.record.key, []).append(eviction.pod.name)

        # Concurrently: a new leader may find dozens of deadlines passed at once.
        await self._bounded(evict(eviction) for eviction in plan.evictions)
        ongoing = [t.record.key for t in plan.transitions]
        jobs: list[Awaitable[None]] = [
            self._inverse_transition(t, view, tuple(sorted(evicted.get(t.record.key, ()))))
            for t in plan.transitions
        ]
        jobs += [
            self.writer.patch_status(
                INVERSE_OFFER,
                record.name,
                record.status.model_copy(
                    update={"evicted": sorted({*record.status.evicted, *names})}
                ),
                record.namespace,
            )
            for key, names in evicted.items()
            if key not in ongoing and (record := view.inverse_offers[key])
        ]
        jobs += [self.writer.delete(INVERSE_OFFER, r.namespace, r.name) for r in plan.deletions]
        jobs += [self._ask(view, revocation) for revocation in plan.revocations]
        await self._bounded(jobs)

    async def _evict(self, eviction: Eviction, view: MasterView) -> bool:
        pod, spec = eviction.pod, eviction.record.spec
        assert spec is not None
        beneficiary = f"role {spec.beneficiary.role} of {spec.beneficiary.namespace}/"
        beneficiary += spec.beneficiary.framework
        try:
            done = await self.writer.evict_pod(pod.namespace, pod.name)
        except Exception:
            logger.exception("evicting %s", pod.key)
            return False
        body = pod.reference()
        framework = view.bodies.get(("framework", eviction.record.framework_key or ""))
        if done:
            self.cache.refused_evictions.pop(pod.key, None)
            self.metrics.revocations.labels("evicted").inc()
            note = f"evicted after the deadline of {eviction.record.name}, for {beneficiary}"
            reason, type_ = "Revoked", "Warning"
        else:
            # Remembered, so the next cycles evict another task in its place or choose
            # another victim; counted and told once per task, not at every retry.
            self.cache.refused_evictions[pod.key] = view.now
            if pod.key in view.refused_evictions:
                return False
            self.metrics.revocations.labels("blocked").inc()
            note = f"a PodDisruptionBudget blocks its eviction for now (for {beneficiary})"
            reason, type_ = "EvictionBlocked", "Warning"
        for regarding in (body, framework):
            if regarding is not None:
                await self.writer.event(regarding, reason, f"task {pod.name}: {note}", type_)
        return done

    async def _inverse_transition(
        self, transition: InverseOfferTransition, view: MasterView, evicted: tuple[str, ...]
    ) -> None:
        record = transition.record
        status = transition.status(view.now, evicted)
        await self.writer.patch_status(INVERSE_OFFER, record.name, status, record.namespace)
        if transition.phase is InverseOfferPhase.COMPLETED and not status.evicted:
            self.metrics.revocations.labels("answered").inc()  # evictions count as they go
        elif transition.phase is InverseOfferPhase.CANCELLED:
            self.metrics.revocations.labels("cancelled").inc()
        framework = view.bodies.get(("framework", record.framework_key or ""))
        if framework is not None:
            await self.writer.event(
                framework, transition.reason, f"{record.name}: {transition.message}", "Normal"
            )

    async def _ask(self, view: MasterView, revocation: Revocation) -> None:
        """Create the InverseOffer for one revocation, with an Event naming the beneficiary."""
        record = view.frameworks.get(revocation.framework)
        if record is None:
            return
        namespace, _, beneficiary = revocation.beneficiary.partition("/")
        spec = InverseOfferSpec(
            framework=record.name,
            role=revocation.role,
            node_name=revocation.node,
            resources=revocation.resources.to_quantities(),
            tasks=[task.partition("/")[2] for task in revocation.tasks],
            beneficiary=Beneficiary(
                namespace=namespace, framework=beneficiary, role=revocation.beneficiary_role
            ),
            deadline=moment(view.now + self.settings.grace_period),
        )
        created = await self.writer.create_inverse_offer(record, spec)
        if created is None:
            logger.warning("the inverse offer to %s could not be created", record.key)
            return
        self.metrics.revocations.labels("started").inc()
        body = view.bodies.get(("framework", record.key))
        if body is not None:
            resources = ", ".join(f"{k}={v}" for k, v in spec.resources.items())
            note = (
                f"asked to free {resources} on {spec.node_name} ({', '.join(spec.tasks)}) for"
                f" role {spec.beneficiary.role} of {revocation.beneficiary} within"
                f" {self.settings.grace_period:g}s"
            )
            await self.writer.event(body, "Revoking", note, "Normal", "Revoke")

    async def _make_offer(self, view: MasterView, decision: OfferDecision) -> None:
        record = view.frameworks.get(decision.framework)
        if record is None or record.spec is None:
            return
        demand = record.spec.demand or []
        spec = OfferSpec(
            framework=record.name,
            role=decision.role,
            node_name=decision.node,
            resources=decision.resources.to_quantities(),
            expires_at=moment(view.now + self.settings.offer_timeout),
            sized_for=[
                TaskDemand(resources=dict(demand[index].resources), count=count)
                for index, count in decision.tasks
                if index < len(demand)
            ],
        )
        created = await self.writer.create_offer(record, spec)
        if created is not None:
            self.metrics.offers.labels(decision.framework, "Sent").inc()


def _only_takes_capacity(before: PodRecord | None, after: PodRecord | None) -> bool:
    """A live Pod outside every framework, new or just bound, asking what it asked."""
    if after is None or after.framework is not None or after.offer is not None or after.terminal:
        return False
    return before is None or (before.terminal, before.requests) == (after.terminal, after.requests)


def _worth_a_cycle(kind: str, event_type: str | None, before: Any, after: Any) -> bool:
    """Whether an event (as parsed records, before and after) can change a decision.

    Capacity freed or added, new intent, a new claim to judge and bind: yes. A node's
    heartbeat, a Pod starting to run or being bound, the master's own status writes: no,
    since no record field a decision reads changed. Nor a Pod of no framework created or
    bound (kube-scheduler placing thousands of them poked a cycle each): it only takes
    capacity, so no offer can come of it, and an outstanding offer it leaves too big is
    rescinded by the next periodic cycle, within one allocation interval.
    """
    if kind == "pod" and event_type != "DELETED" and _only_takes_capacity(before, after):
        return False
    if event_type == "DELETED" or before is None or after is None:
        return True
    if kind == "node":
        return bool(before != after)
    if kind == "pod":
        return bool(
            (before.terminal, before.node, before.requests)
            != (after.terminal, after.node, after.requests)
        )
    if kind == "framework":
        return bool((before.generation, before.revived_at) != (after.generation, after.revived_at))
    if kind == "lease":
        # A heartbeat changes no decision by itself; a framework heard from again after a
        # silence is back in the next periodic cycle, within one allocation interval.
        return False
    return bool(before.generation != after.generation)
