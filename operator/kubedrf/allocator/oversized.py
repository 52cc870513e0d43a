"""Demanded task shapes that no node could ever hold: judged once, for the master and the
simulator alike, so both warn about the same tasks in the same words."""

from __future__ import annotations

from dataclasses import dataclass

from kubedrf.allocator.model import Node, Snapshot
from kubedrf.resources import Resources


@dataclass(frozen=True, slots=True)
class Oversized:
    """A task shape of ``framework`` larger than every node; ``largest`` is the node that comes
    closest to holding it, named so the user sees what the cluster offers at most."""

    framework: str
    shape: Resources
    largest: Node

    def message(self) -> str:
        return (
            f"a task of {self.shape.describe()} is larger than every node: the largest for it,"
            f" {self.largest.name}, has {self.largest.allocatable.describe()} allocatable"
        )


def oversized(snapshot: Snapshot) -> tuple[Oversized, ...]:
    """Every (framework, shape) with tasks still wanted that fits no node even when empty.

    Demand that waits for capacity is normal; demand that can never be met is a mistake
    (a typo in a quantity, a node pool gone), and without a word it only looks like waiting.
    """
    if not snapshot.nodes:
        return ()  # no node to judge by: every framework waits for one alike
    found = []
    for framework in snapshot.frameworks:
        seen: set[Resources] = set()
        for task in framework.demand or ():
            shape = task.resources
            if task.count <= 0 or shape in seen:
                continue
            seen.add(shape)
            if not any(shape <= node.allocatable for node in snapshot.nodes):
                largest = min(snapshot.nodes, key=lambda node: (_shortfall(shape, node), node.name))
                found.append(Oversized(framework.name, shape, largest))
    return tuple(found)


def _shortfall(shape: Resources, node: Node) -> float:
    """How many times over its allocatable the shape asks of ``node`` at worst."""
    return max(
        (amount / node.allocatable[name] if node.allocatable.get(name, 0) > 0 else float("inf"))
        for name, amount in shape.items()
    )
