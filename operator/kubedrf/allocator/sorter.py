"""Ordering policy: who is served next. The cycle asks a ``Sorter``; DRF is one implementation.

As in Mesos, the cycle knows nothing of how shares are computed: it adds clients, reports
what they were allocated, switches them on and off, and asks for the first one.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Protocol

#: A sorter client: (framework, role).
Client = tuple[str, str]


class Sorter(Protocol):
    def add_client(self, client: Client) -> None: ...

    def allocated(self, client: Client, amounts: Sequence[int], count: int) -> None:
        """Record that ``client`` holds ``amounts`` more (negative to release)."""

    def activate(self, client: Client) -> None: ...

    def deactivate(self, client: Client) -> None: ...

    def first(self) -> Client | None:
        """The active client to serve next, or ``None`` when none is active."""


class SorterFactory(Protocol):
    """Builds a cycle's sorter: totals per resource (dense), role weights, and the positions
    of fairness-excluded resources. ``DRFSorter`` itself is one."""

    def __call__(
        self, totals: Sequence[int], weights: Mapping[str, float], excluded: frozenset[int]
    ) -> Sorter: ...


class _Node:
    """A role, a role's own frameworks (Mesos' virtual leaf ``.``), or a client."""

    __slots__ = (
        "active",
        "active_children",
        "allocation",
        "client",
        "count",
        "heap",
        "name",
        "parent",
        "share",
        "version",
        "weight",
    )

    def __init__(self, name: str, weight: float, parent: _Node | None, resources: int) -> None:
        self.name = name
        self.weight = weight
        self.parent = parent
        self.allocation = [0] * resources
        self.count = 0
        self.share = 0.0
        self.version = 0
        self.active = False
        self.active_children = 0
        self.heap: list[tuple[float, int, str, int, _Node]] = []
        self.client: Client | None = None

    def key(self) -> tuple[float, int, str, int, _Node]:
        return (self.share, self.count, self.name, self.version, self)


class DRFSorter:
    """Hierarchical Dominant Resource Fairness.

    Siblings compete by weighted dominant share (ties: fewer allocations received, then
    name; see ``Snapshot.received``); the winner's subtree recurses. A role's allocation
    counts for all its ancestors. Frameworks subscribed to a role that also has child roles
    sit under a virtual leaf of weight 1.
    """

    def __init__(
        self,
        totals: Sequence[int],
        weights: Mapping[str, float],
        excluded: frozenset[int] = frozenset(),
    ) -> None:
        self._shared = [(i, t) for i, t in enumerate(totals) if t > 0 and i not in excluded]
        self._resources = len(totals)
        self._root = _Node("", 1.0, None, self._resources)
        self._roles: dict[str, _Node] = {}
        self._leaves: dict[Client, _Node] = {}
        self._has_children = {name.rpartition(".")[0] for name in weights if "." in name}
        for role in sorted(weights, key=lambda r: r.count(".")):
            head, dot, _ = role.rpartition(".")
            parent = self._roles[head] if dot else self._root
            self._roles[role] = _Node(role, weights[role], parent, self._resources)

    def _frameworks_node(self, role: str) -> _Node:
        node = self._roles[role]
        if role not in self._has_children:
            return node
        virtual = self._roles.get(role + "/.")
        if virtual is None:
            virtual = _Node(".", 1.0, node, self._resources)
            self._roles[role + "/."] = virtual
        return virtual

    def add_client(self, client: Client) -> None:
        if client in self._leaves:
            return
        framework, role = client
        leaf = _Node(framework, 1.0, self._frameworks_node(role), self._resources)
        leaf.client = client
        self._leaves[client] = leaf

    def allocated(self, client: Client, amounts: Sequence[int], count: int) -> None:
        # The hottest call of a cycle (once per offer or task, per level of the role tree):
        # the dominant share and the heap key (``_Node.key``) are computed inline.
        shared = self._shared
        changed = [(i, amount) for i, amount in enumerate(amounts) if amount]
        node = self._leaves[client]
        parent = node.parent
        while parent is not None:
            allocation = node.allocation
            for i, amount in changed:
                allocation[i] += amount
            node.count += count
            best = 0.0
            for i, total in shared:
                share = allocation[i] / total
                best = max(best, share)
            node.share = best / node.weight
            node.version += 1
            if node.active:
                heapq.heappush(parent.heap, (node.share, node.count, node.name, node.version, node))
            node = parent
            parent = node.parent

    def activate(self, client: Client) -> None:
        node: _Node | None = self._leaves[client]
        while node is not None and node.parent is not None and not node.active:
            node.active = True
            parent = node.parent
            heapq.heappush(parent.heap, node.key())
            parent.active_children += 1
            node = parent

    def deactivate(self, client: Client) -> None:
        node: _Node | None = self._leaves[client]
        while node is not None and node.parent is not None and node.active:
            node.active = False
            parent = node.parent
            parent.active_children -= 1
            if parent.active_children > 0:
                return
            node = parent

    def first(self) -> Client | None:
        node = self._root
        while node.client is None:
            heap = node.heap
            while heap:
                _, _, _, version, child = heap[0]
                if child.active and child.version == version:
                    break
                heapq.heappop(heap)
            if not heap:
                return None
            node = heap[0][4]
        return node.client
