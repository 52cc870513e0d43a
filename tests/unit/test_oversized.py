"""Task shapes larger than every node: judged once, for the master and the simulator."""

from __future__ import annotations

from kubedrf.allocator.oversized import oversized
from tests.builders import make_framework, make_snapshot, res


def test_a_task_larger_than_every_node_is_named_with_the_node_closest_to_holding_it() -> None:
    snapshot = (
        make_snapshot()
        .node("small", cpu="4", memory="8Gi")
        .node("big", cpu="9", memory="18Gi")
        .framework(make_framework("A").demand(3, cpu="16", memory="4Gi"))
        .obj()
    )
    (found,) = oversized(snapshot)
    assert (found.framework, found.shape, found.largest.name) == (
        "A",
        res(cpu="16", memory="4Gi"),
        "big",
    )
    assert found.message() == (
        "a task of cpu=16, memory=4Gi is larger than every node: the largest for it, big,"
        " has cpu=9, memory=18Gi allocatable"
    )


def test_a_task_that_fits_some_node_when_it_is_empty_is_not_oversized() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="4", memory="8Gi")
        .node("n2", cpu="9", memory="4Gi")
        .framework(make_framework("A").demand(1, cpu="9", memory="4Gi"))
        .framework(make_framework("B").demand(0, cpu="100"))  # wants no more: no warning
        .obj()
    )
    assert oversized(snapshot) == ()


def test_a_resource_no_node_has_makes_a_task_oversized() -> None:
    snapshot = (
        make_snapshot()
        .node("n1", cpu="9", memory="18Gi")
        .framework(make_framework("A").demand(1, cpu="1", gpu="1"))
        .obj()
    )
    (found,) = oversized(snapshot)
    assert found.largest.name == "n1"
