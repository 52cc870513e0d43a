"""kopf handlers: watch events become cache updates, and nothing more (Nodes and Pods come
through ``informer``).

Run with ``kubedrf master`` (flags) or ``kopf run -m kubedrf.master.handlers`` (settings from
``KUBEDRF_*`` environment variables; pass kopf's ``--liveness`` for the health endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

import kopf
import prometheus_client
from kubernetes import client

from kubedrf.kube import api_client
from kubedrf.master import memory
from kubedrf.master.cache import ClusterCache
from kubedrf.master.core import Master
from kubedrf.master.informer import inform
from kubedrf.master.leader import LeaderElector
from kubedrf.master.metrics import Metrics
from kubedrf.master.settings import MasterSettings
from kubedrf.master.sync import ApiReader, relist
from kubedrf.master.watched import WATCHED
from kubedrf.master.writer import ApiWriter

logger = logging.getLogger(__name__)

#: The kinds kopf watches; the others come through ``master.informer``.
KOPF_WATCHED = tuple(w for w in WATCHED if not w.informed)
#: A full relist this often catches deletions no watch reported.
RESYNC_SECONDS = 300.0


class Backoffs:
    """Seconds between retries of a failed kopf request (the master's are its watches):
    ``first``, then ``then`` for ever.

    kopf's defaults (1 s rising to 21 s) kept the watches away for seconds after the
    apiserver was back, and a watch whose retries ran out escalated out of kopf's watcher;
    the API being away is no reason to stop watching. kopf iterates its backoffs afresh for
    every request, so this is re-iterable; it has no length, so it never runs out. The loop
    does not wait for the watches: it relists once the API answers (``Master.lost_contact``).
    """

    def __init__(self, first: tuple[float, ...], then: float) -> None:
        self.first = first
        self.then = then

    def __iter__(self) -> Iterator[float]:
        return itertools.chain(self.first, itertools.repeat(self.then))


RECONNECT_BACKOFFS = Backoffs((0.2, 0.5), then=1.0)
#: A watch whose connection does not open within this long is retried, not waited on.
CONNECT_TIMEOUT_S = 5.0


def settings_of(memo: kopf.Memo) -> MasterSettings:
    """The flags ``kubedrf master`` put in the memo, else (``kopf run``) the environment."""
    given: MasterSettings | None = memo.get("settings")
    return given or MasterSettings.from_env()


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    master_settings = settings_of(memo)
    memory.limit_arenas()  # before the worker threads allocate
    settings.posting.level = logging.WARNING
    # Our kinds are known; scanning CRDs would need RBAC the chart rightly does not grant.
    settings.scanning.disabled = True
    # One line per watch event is noise at any scale; failures still log at WARNING.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    settings.watching.connect_timeout = CONNECT_TIMEOUT_S
    # Retry within a second, for as long as it takes; Retry-After on a 429 is still honoured.
    settings.networking.error_backoffs = RECONNECT_BACKOFFS
    for watched in KOPF_WATCHED:  # what can never matter is filtered by the API server
        selectors = watched.selectors(master_settings)
        if selectors.labels:
            settings.watching.label_selectors[watched.group, watched.plural] = selectors.labels
        if selectors.fields:
            settings.watching.field_selectors[watched.group, watched.plural] = selectors.fields
    api = api_client()
    cache = ClusterCache(master_settings)
    metrics = Metrics()
    leader = None
    if master_settings.leader_election_namespace:
        leader = LeaderElector(
            api, master_settings.leader_election_namespace, master_settings.leader_election_name
        )
    master = Master(
        cache, ApiWriter(api, cache), metrics, leader=leader, reader=ApiReader(api, cache)
    )
    if master_settings.metrics_port:
        prometheus_client.start_http_server(master_settings.metrics_port, registry=metrics.registry)
    versions = await relist(api, cache)
    view = cache.freeze(time.time())
    logger.info(
        "kubedrf master: %d usable nodes, %d frameworks, %d outstanding offers",
        len(view.usable),
        len(view.frameworks),
        len(view.outstanding),
    )
    stopped = asyncio.Event()
    memo["master"] = master
    memo["loop_watch"] = LoopWatch(stale_after(master_settings), time.monotonic())
    memo["stopped"] = stopped
    memo["tasks"] = [
        asyncio.create_task(master.run(stopped), name="kubedrf-allocation"),
        asyncio.create_task(_resync(api, cache, stopped), name="kubedrf-resync"),
        asyncio.create_task(_trim(stopped), name="kubedrf-trim"),
        *(
            asyncio.create_task(inform(api, master, w, versions[w.name], stopped))
            for w in WATCHED
            if w.informed
        ),
    ]
    if leader is not None:
        memo["tasks"].append(asyncio.create_task(leader.run(stopped), name="kubedrf-leader"))
    if master_settings.workloads:
        # Imported here: a master without the built-in framework never loads it.
        from kubedrf.workloads.framework import WorkloadsFramework  # noqa: PLC0415

        elected = leader

        def leading() -> bool:
            return elected is None or elected.is_leader

        workloads = WorkloadsFramework(api, is_leader=leading)
        memo["tasks"].append(asyncio.create_task(workloads.run(stopped), name="kubedrf-workloads"))


async def _resync(api: client.ApiClient, cache: ClusterCache, stopped: asyncio.Event) -> None:
    while not stopped.is_set():
        try:
            await asyncio.wait_for(stopped.wait(), timeout=RESYNC_SECONDS)
        except TimeoutError:
            try:
                await relist(api, cache)
            except Exception:
                logger.exception("resync failed; the watches keep the cache current")


async def _trim(stopped: asyncio.Event) -> None:
    """Hand freed memory back to the system now and then (see ``memory``)."""
    while not stopped.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), timeout=memory.TRIM_SECONDS)
        memory.trim()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    stopped: asyncio.Event | None = memo.get("stopped")
    if stopped is not None:
        stopped.set()
        await asyncio.gather(*memo.get("tasks", []), return_exceptions=True)


def stale_after(settings: MasterSettings) -> float:
    """How long the allocation loop may go without completing a cycle: generous, since a
    cycle on a large cluster or a new leader's relist takes seconds, but short enough that a
    stuck loop is restarted within a couple of minutes."""
    return max(60.0, 10 * settings.allocation_interval)


class LoopWatch:
    """Tells a live allocation loop from a stuck one, for the liveness and readiness probes.

    Answering HTTP proves nothing about the loop: it is alive when the master's cycle count
    moves. A standby does not allocate, so it is healthy while it stands by; its clock starts
    again when it becomes leader. Times are monotonic seconds, passed in.
    """

    def __init__(self, limit: float, now: float) -> None:
        self.limit = limit
        self.cycles: int | None = None
        self.progress_at = now

    def check(self, *, cycles: int, leading: bool, loop_running: bool, now: float) -> float:
        """Seconds since the loop last made progress; raise when it has stopped or is stuck."""
        if not loop_running:
            raise kopf.PermanentError("the allocation loop has stopped")
        if not leading or cycles != self.cycles:
            self.cycles, self.progress_at = cycles, now
        idle = now - self.progress_at
        if idle > self.limit:
            raise kopf.PermanentError(
                f"the allocation loop has completed no cycle for {idle:.0f}s"
                f" (limit {self.limit:.0f}s; {cycles} cycles in all)"
            )
        return idle


@kopf.on.probe(id="allocationLoop")
async def allocation_loop(memo: kopf.Memo, **_: Any) -> dict[str, float | int]:
    """kopf's health endpoint answers 500 when this raises, which fails the pod's probes."""
    master: Master | None = memo.get("master")
    watch: LoopWatch | None = memo.get("loop_watch")
    if master is None or watch is None:
        raise kopf.PermanentError("starting: the initial list of the cluster is not complete")
    tasks: list[asyncio.Task[None]] = memo.get("tasks", [])
    idle = watch.check(
        cycles=master.cycles,
        leading=master.may_act(),
        loop_running=bool(tasks) and not tasks[0].done(),
        now=time.monotonic(),
    )
    return {"cycles": master.cycles, "secondsSinceProgress": round(idle, 3)}


def _observe(kind: str) -> Any:
    # A coroutine, so kopf runs it on the event loop: a plain function would run in a worker
    # thread and mutate the cache while the cycle iterates it (the cache has one writer).
    async def handler(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        master: Master | None = memo.get("master")
        body = event.get("object")
        if master is not None and body:
            master.observe(kind, event.get("type"), body)

    return handler


for _watched in KOPF_WATCHED:
    kopf.on.event(
        _watched.group,
        _watched.version,
        _watched.plural,
        id=f"observe-{_watched.name}",
    )(_observe(_watched.name))
