"""After the API was out of reach, the master's loop relists before it decides again: its
watches may have missed events meanwhile, and reconnect only after their own backoff. And
what a lagging watch hides is read afresh before a task is refused for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import urllib3
from kubernetes.client.exceptions import ApiException

from kubedrf.allocator import AllocationResult
from kubedrf.kube import unreachable
from kubedrf.master.cache import ClusterCache
from kubedrf.master.core import Master
from kubedrf.master.handlers import RECONNECT_BACKOFFS
from kubedrf.master.metrics import Metrics
from kubedrf.master.settings import MasterSettings
from tests.unit.test_master_lifecycle import NOW, cache_with, framework, node, offer, pod


class Reader:
    def __init__(self) -> None:
        self.relists = 0

    async def relist(self) -> None:
        self.relists += 1


class Leader:
    is_leader = True
    failed_rounds = 0


def refused_connection() -> Exception:
    return urllib3.exceptions.MaxRetryError(cast(Any, None), "/api/v1/pods", "refused")


def looping(master: Master, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the master's loop while ``scenario`` runs."""

    async def main() -> None:
        stopped = asyncio.Event()
        loop = asyncio.create_task(master.run(stopped))
        try:
            await scenario()
        finally:
            stopped.set()
            await loop

    asyncio.run(main())


async def cycles(master: Master, count: int) -> None:
    """Until the loop has completed ``count`` more cycles."""
    until = master.cycles + count
    for _ in range(500):
        if master.cycles >= until:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the loop completed {master.cycles} cycles, not {until}")


def make_master(reader: Reader, leader: Leader) -> Master:
    settings = MasterSettings(allocation_interval=0.01, batch_window=0, revocation=False)
    return Master(
        ClusterCache(settings),
        cast(Any, None),  # no write is made: the cluster is empty
        Metrics(),
        leader=cast(Any, leader),
        reader=cast(Any, reader),
    )


def with_failing_write(master: Master, error: Exception) -> None:
    """The master's first cycle has one write that fails with ``error``."""
    real = master.cycle
    calls = 0

    async def failing() -> None:
        raise error

    async def cycle() -> AllocationResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            jobs: list[Awaitable[None]] = [failing()]
            await master._bounded(jobs)
        return await real()

    master.cycle = cycle  # type: ignore[method-assign]


def test_a_leader_relists_before_the_cycle_after_an_election_round_that_missed_the_api() -> None:
    reader, leader = Reader(), Leader()
    master = make_master(reader, leader)

    async def scenario() -> None:
        await cycles(master, 3)
        assert reader.relists == 1  # as a new leader, once
        leader.failed_rounds = 1
        await cycles(master, 3)
        assert reader.relists == 2

    looping(master, scenario)


def test_a_write_that_cannot_reach_the_api_makes_the_next_cycle_relist() -> None:
    reader = Reader()
    master = make_master(reader, Leader())
    with_failing_write(master, refused_connection())
    looping(master, lambda: cycles(master, 3))
    assert reader.relists == 2


def test_a_write_the_api_refuses_does_not_make_the_master_relist() -> None:
    reader = Reader()
    master = make_master(reader, Leader())
    with_failing_write(master, ApiException(status=422, reason="Unprocessable Entity"))
    looping(master, lambda: cycles(master, 3))
    assert reader.relists == 1


def test_unreachable_tells_an_absent_api_from_a_refusal() -> None:
    assert unreachable(refused_connection())
    assert unreachable(ConnectionRefusedError())
    assert unreachable(ApiException(status=503))
    assert unreachable(ApiException(status=429))
    assert unreachable(ApiException(status=0))
    assert not unreachable(ApiException(status=404))
    assert not unreachable(ApiException(status=422))
    assert not unreachable(ValueError("bad body"))


def test_watch_retries_come_within_a_second_and_never_run_out() -> None:
    first = [delay for delay, _ in zip(RECONNECT_BACKOFFS, range(1000), strict=False)]
    assert len(first) == 1000 and max(first) <= 1.0
    # kopf iterates afresh for every request: a second request starts short again.
    assert next(iter(RECONNECT_BACKOFFS)) == first[0] < 1.0
    assert not hasattr(RECONNECT_BACKOFFS, "__len__")


class Recording:
    """An ApiWriter that records the calls it gets and does nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., Awaitable[None]]:
        async def call(*args: Any, **_: Any) -> None:
            self.calls.append((name, args))

        return call


class OfferReader(Reader):
    """Fresh reads find ``offers`` (by key); the watch has not delivered them yet."""

    def __init__(self, cache: ClusterCache, offers: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.cache, self.offers = cache, offers

    async def read(self, kind: str, key: str) -> bool:
        if kind == "offer" and key in self.offers:
            self.cache.apply("offer", "MODIFIED", self.offers[key])
            return True
        return kind == "pod"


def running_claim(offer_name: str) -> dict[str, Any]:
    """A task already bound (by another scheduler) a second after it was created."""
    return pod("t-0", "A", offer_name, created=NOW - 1)


def test_a_running_claim_whose_offer_only_a_fresh_read_finds_is_kept() -> None:
    made = offer("a-1", "A")
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", [])])
    cache.apply("pod", "ADDED", running_claim("a-1"))
    writer = Recording()
    master = Master(cache, cast(Any, writer), Metrics(), clock=lambda: NOW)
    master.reader = cast(Any, OfferReader(cache, {"team/a-1": made}))
    asyncio.run(master.cycle())
    assert ("delete_pod", ("team", "t-0")) not in writer.calls


def test_a_running_claim_on_an_offer_no_fresh_read_finds_is_refused_at_once() -> None:
    cache = cache_with(nodes=[node("n1")], frameworks=[framework("A", [])])
    cache.apply("pod", "ADDED", running_claim("elsewhere"))
    writer = Recording()
    master = Master(cache, cast(Any, writer), Metrics(), clock=lambda: NOW)
    master.reader = cast(Any, OfferReader(cache, {}))
    asyncio.run(master.cycle())
    assert ("delete_pod", ("team", "t-0")) in writer.calls


def test_once_a_write_cannot_reach_the_api_the_cycle_writes_nothing_more() -> None:
    """Each write would fail after its own retries, and the next cycle decides afresh on a
    relisted cache anyway: the rest of the cycle's writes are dropped, the next cycle's made."""
    reader = Reader()
    master = make_master(reader, Leader())
    written: list[str] = []
    real = master.cycle
    calls = 0

    async def failing() -> None:
        raise refused_connection()

    async def write(what: str) -> None:
        written.append(what)

    async def cycle() -> AllocationResult:
        nonlocal calls
        calls += 1
        master._contact_lost = False  # what a cycle starts with
        await master._bounded([write(f"before {calls}")])
        if calls == 1:
            await master._bounded([failing()])
        await master._bounded([write(f"after {calls}")])
        return await real()

    master.cycle = cycle  # type: ignore[method-assign]
    looping(master, lambda: cycles(master, 2))
    assert written[:3] == ["before 1", "before 2", "after 2"]
    assert reader.relists == 2
