"""After the API was out of reach, the master's loop relists before it decides again: its
watches may have missed events meanwhile, and reconnect only after their own backoff."""

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
