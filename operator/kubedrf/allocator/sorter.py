"""Ordering policy: who is served next. The cycle asks a ``Sorter``; DRF is one implementation.

As in Mesos, the cycle knows nothing of how shares are computed: it adds clients, reports
what they were allocated, switches them on and off, and asks for the first one.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

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

    def schedule(
        self, runs: Mapping[Client, tuple[Sequence[int], int]]
    ) -> tuple[list[Client], bool]:
        """The clients ``first`` would name in turn if every active client ``c`` were given
        ``runs[c]`` (``n`` units of ``amounts``, one at a time) and then named once more
        (its last turn, in which it is expected to be switched off); an active client
        without a run has only that last turn. Nothing is recorded. The flag says whether
        switching a client off early leaves the turns of the others as they were."""


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


class _Turns(NamedTuple):
    """Turns in order: who (index into the clients met), what each receives, and whether
    it counts as an allocation (a client's last turn receives nothing)."""

    client: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]


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

    def schedule(
        self, runs: Mapping[Client, tuple[Sequence[int], int]]
    ) -> tuple[list[Client], bool]:
        """Progressive filling in closed form: a client's turns come at the keys it reaches
        unit by unit, and a role's at the keys its subtree's turns add up to, so each level
        is one sort of its children's turns by key instead of a heap operation per unit
        (the keys are computed as ``allocated`` computes them, so the order is the same)."""
        clients: list[Client] = []
        mixed: list[_Node] = []
        turns = self._turns(self._root, runs, clients, mixed)
        # Roles compete by their subtrees' sums, which change when a client leaves early.
        return [clients[i] for i in turns.client.tolist()], not mixed

    def _active_children(self, node: _Node) -> list[_Node]:
        # A child is active exactly when a current entry of it is in its parent's heap.
        seen: dict[int, _Node] = {}
        for _, _, _, version, child in node.heap:
            if child.active and child.version == version:
                seen[id(child)] = child
        return list(seen.values())

    def _turns(
        self,
        node: _Node,
        runs: Mapping[Client, tuple[Sequence[int], int]],
        clients: list[Client],
        mixed: list[_Node],
    ) -> _Turns:
        """The turns of ``node``'s subtree in order; ``clients`` collects who they name,
        ``mixed`` the nodes whose turns interleave those of roles."""
        width = self._resources
        if node.client is not None:
            amounts, n = runs.get(node.client, ((0,) * width, 0))
            clients.append(node.client)
            rows = np.zeros((n + 1, width), dtype=np.int64)
            rows[:n] = np.asarray(amounts, dtype=np.int64)
            units = np.ones(n + 1, dtype=np.int64)
            units[n] = 0  # the last turn receives nothing
            return _Turns(np.full(n + 1, len(clients) - 1, dtype=np.int64), rows, units)
        children = sorted(self._active_children(node), key=lambda child: child.name)
        parts = [self._turns(child, runs, clients, mixed) for child in children]
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return _Turns(empty, np.zeros((0, width), dtype=np.int64), empty)
        if len(parts) == 1:
            return parts[0]
        if any(child.client is None for child in children):
            mixed.append(node)
        shares: list[npt.NDArray[np.float64]] = []
        counts: list[npt.NDArray[np.int64]] = []
        names: list[npt.NDArray[np.int64]] = []
        positions: list[npt.NDArray[np.int64]] = []
        for rank, (child, part) in enumerate(zip(children, parts, strict=True)):
            share, count = self._keys(child, part)
            shares.append(share)
            counts.append(count)
            names.append(np.full(len(share), rank, dtype=np.int64))
            positions.append(np.arange(len(share), dtype=np.int64))
        order = np.lexsort(
            (
                np.concatenate(positions),
                np.concatenate(names),
                np.concatenate(counts),
                np.concatenate(shares),
            )
        )
        return _Turns(
            np.concatenate([p.client for p in parts])[order],
            np.concatenate([p.rows for p in parts])[order],
            np.concatenate([p.counts for p in parts])[order],
        )

    def _keys(
        self, child: _Node, turns: _Turns
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """``child``'s share and count before each of its turns, as ``allocated`` computes
        them (integer sums, then one division per resource: the same floats)."""
        before = (
            np.cumsum(turns.rows, axis=0)
            - turns.rows
            + np.asarray(child.allocation, dtype=np.int64)
        )
        best = np.zeros(len(before), dtype=np.float64)
        for i, total in self._shared:
            best = np.maximum(best, before[:, i] / total)
        counts = np.cumsum(turns.counts) - turns.counts + child.count
        return best / child.weight, counts

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
