"""The master's health probe: alive while the allocation loop completes cycles, not merely
while it answers HTTP."""

from __future__ import annotations

import pytest
from kopf import PermanentError

from kubedrf.master.handlers import LoopWatch, stale_after
from kubedrf.master.settings import MasterSettings


def test_a_leader_whose_cycle_count_moves_is_healthy() -> None:
    watch = LoopWatch(limit=60, now=0)
    for second in range(0, 600, 30):
        assert watch.check(cycles=second, leading=True, loop_running=True, now=second) == 0


def test_a_stuck_leader_fails_once_the_limit_passes() -> None:
    watch = LoopWatch(limit=60, now=0)
    watch.check(cycles=5, leading=True, loop_running=True, now=0)
    assert watch.check(cycles=5, leading=True, loop_running=True, now=60) == 60
    with pytest.raises(PermanentError, match="no cycle for 61s"):
        watch.check(cycles=5, leading=True, loop_running=True, now=61)


def test_a_standby_is_healthy_and_its_clock_starts_when_it_leads() -> None:
    watch = LoopWatch(limit=60, now=0)
    assert watch.check(cycles=0, leading=False, loop_running=True, now=500) == 0
    assert watch.check(cycles=0, leading=True, loop_running=True, now=550) == 50
    with pytest.raises(PermanentError):
        watch.check(cycles=0, leading=True, loop_running=True, now=561)


def test_a_loop_that_has_stopped_fails_at_once() -> None:
    watch = LoopWatch(limit=60, now=0)
    with pytest.raises(PermanentError, match="stopped"):
        watch.check(cycles=1, leading=False, loop_running=False, now=1)


def test_the_limit_is_a_minute_or_ten_intervals() -> None:
    assert stale_after(MasterSettings()) == 60
    assert stale_after(MasterSettings(allocation_interval="30s")) == 300
