"""Free capacity per node for one cycle, split into unreserved and per-role reserved pools.

Free = allocatable − external Pods − allocations (running tasks and open offers). Within a
cycle free capacity only shrinks, so a node that cannot serve a client now never can later
in the same pass; searches keep a cursor per client and never look back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from kubedrf.allocator.model import Allocation, Node, Reservation
from kubedrf.allocator.roles import in_subtree
from kubedrf.resources import Resources, is_gpu_resource

Vector = list[int]

#: How many nodes a search checks one by one before it switches to a vectorised scan.
_PROBES = 24


class ResourceIndex:
    """Dense positions for the resource names that exist on some node this cycle."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(sorted(set(names)))
        self.position = {name: i for i, name in enumerate(self.names)}
        # A snapshot repeats a few resource maps many times (node shapes, task sizes, filters
        # of one node), and reading a ``Resources`` through the Mapping protocol is slow, so
        # each distinct map is converted once per cycle.
        self._dense: dict[tuple[tuple[str, int], ...], tuple[int, ...]] = {}
        # And back: offers of one cycle mostly come in a few sizes (whole nodes of one shape,
        # tasks of one shape), so each distinct vector becomes a ``Resources`` once.
        self._sparse: dict[tuple[int, ...], Resources] = {}

    def __len__(self) -> int:
        return len(self.names)

    def dense(self, resources: Resources) -> Vector:
        """Amounts of the known resources; unknown names are dropped."""
        return list(self.dense_view(resources))

    def dense_view(self, resources: Resources) -> tuple[int, ...]:
        """Like ``dense`` but shared and read-only, for callers that only read it."""
        key = resources.key
        cached = self._dense.get(key)
        if cached is None:
            vector = [0] * len(self.names)
            for name, amount in key:
                i = self.position.get(name)
                if i is not None:
                    vector[i] = amount
            cached = self._dense[key] = tuple(vector)
        return cached

    def dense_strict(self, resources: Resources) -> Vector | None:
        """Like ``dense``, but ``None`` when something no node has is asked for."""
        if any(amount > 0 and name not in self.position for name, amount in resources.items()):
            return None
        return self.dense(resources)

    def sparse(self, vector: Sequence[int]) -> Resources:
        key = tuple(vector)
        resources = self._sparse.get(key)
        if resources is None:
            resources = Resources(zip(self.names, key, strict=True))
            self._sparse[key] = resources
        return resources


def _matrix(rows: Sequence[Sequence[int]], shape: tuple[int, int]) -> npt.NDArray[np.int64]:
    # reshape: an empty list of rows still has ``width`` columns.
    return np.array(rows, dtype=np.int64).reshape(shape)


def _sub(a: Vector, b: Sequence[int]) -> Vector:
    return [x - y for x, y in zip(a, b, strict=True)]


def _clamp(a: Vector) -> Vector:
    return [x if x > 0 else 0 for x in a]


class NodePool:
    """Unreserved and reserved free capacity of every managed node, in cycle order."""

    def __init__(
        self,
        nodes: Sequence[Node],
        allocations: Sequence[Allocation],
        reservations: Sequence[Reservation],
        index: ResourceIndex,
    ) -> None:
        self.index = index
        self.names = [node.name for node in nodes]
        self.position = {name: i for i, name in enumerate(self.names)}
        width = len(index)
        shape = (len(nodes), width)
        # Free = allocatable − external usage − allocations, summed in numpy: per-node Python
        # lists cost more than the rest of the cycle's setup at 10k nodes.
        allocatable = _matrix([index.dense_view(node.allocatable) for node in nodes], shape)
        used = _matrix([index.dense_view(node.external_usage) for node in nodes], shape)
        rows: list[int] = []  # the node of each allocation on a known node
        placed: list[Allocation] = []
        for allocation in allocations:
            n = self.position.get(allocation.node)
            if n is not None:
                rows.append(n)
                placed.append(allocation)
        if placed:
            amounts = [index.dense_view(a.resources) for a in placed]
            np.add.at(used, rows, _matrix(amounts, (len(rows), width)))
        self.allocatable: list[Vector] = allocatable.tolist()
        free: list[Vector] = np.maximum(allocatable - used, 0).tolist()
        gpu = [i for i, name in enumerate(index.names) if is_gpu_resource(name)]
        self.gpu_mask: npt.NDArray[np.bool_] = np.asarray((allocatable[:, gpu] > 0).any(axis=1))
        self.gpu: list[bool] = self.gpu_mask.tolist()

        # What each role holds on nodes with reservations: its own pool is drawn on first.
        reserved_at = {self.position.get(r.node) for r in reservations}
        by_node_role: dict[int, dict[str, Vector]] = {}
        for n, allocation in zip(rows, placed, strict=True):
            if n not in reserved_at:
                continue
            vector = index.dense(allocation.resources)
            per_role = by_node_role.setdefault(n, {})
            if allocation.role in per_role:
                per_role[allocation.role] = [
                    x + y for x, y in zip(per_role[allocation.role], vector, strict=True)
                ]
            else:
                per_role[allocation.role] = vector

        #: node → role → reserved capacity not yet used by the role's subtree.
        self.reserved: dict[int, dict[str, Vector]] = {}
        #: reservation role → reserved capacity its subtree already uses (quota accounting).
        self.reserved_in_use: dict[str, Vector] = {}
        #: reservation role → node positions holding some of it, in cycle order.
        self.reserved_nodes: dict[str, list[int]] = {}
        self._split_reservations(reservations, by_node_role, free, width)

        self.free = free
        self._matrix: npt.NDArray[np.int64] = np.array(free, dtype=np.int64).reshape(
            len(nodes), width
        )
        #: Nodes whose row in ``_matrix`` lags behind ``free``: rows are copied only when a
        #: vectorised scan needs them, as a node takes many tasks between two scans.
        self._stale: set[int] = set()
        # Union-find over nodes with unreserved capacity left: _next[i] leads to the first
        # live node at or after i (len(nodes) when none).
        self._next = list(range(len(nodes) + 1))
        for n, vector in enumerate(free):
            if not any(vector):
                self._next[n] = n + 1

    def _split_reservations(
        self,
        reservations: Sequence[Reservation],
        by_node_role: dict[int, dict[str, Vector]],
        free: list[Vector],
        width: int,
    ) -> None:
        """Carve reserved pools out of free capacity; a role's own usage draws on them first."""
        per_node: dict[int, dict[str, Vector]] = {}
        for reservation in reservations:
            n = self.position.get(reservation.node)
            if n is None:
                continue
            pools = per_node.setdefault(n, {})
            vector = self.index.dense(reservation.resources)
            old = pools.get(reservation.role, [0] * width)
            pools[reservation.role] = [x + y for x, y in zip(old, vector, strict=True)]
        for n in sorted(per_node):
            usage = {role: list(v) for role, v in by_node_role.get(n, {}).items()}
            left = free[n]
            # Deepest reservations first, so a child's usage draws on its own pool.
            for role in sorted(per_node[n], key=lambda r: (-r.count("."), r)):
                pool = per_node[n][role]
                taken = [0] * width
                for user, vector in usage.items():
                    if not in_subtree(user, role):
                        continue
                    for i in range(width):
                        take = min(vector[i], pool[i] - taken[i])
                        if take > 0:
                            taken[i] += take
                            vector[i] -= take
                in_use = self.reserved_in_use.setdefault(role, [0] * width)
                for i in range(width):
                    in_use[i] += taken[i]
                remaining = [min(p - t, f) for p, t, f in zip(pool, taken, left, strict=True)]
                remaining = _clamp(remaining)
                left = _sub(left, remaining)
                if any(remaining):
                    self.reserved.setdefault(n, {})[role] = remaining
                    self.reserved_nodes.setdefault(role, []).append(n)
            free[n] = left

    # -- queries ---------------------------------------------------------------------------

    @property
    def matrix(self) -> npt.NDArray[np.int64]:
        """Unreserved free capacity of every node (rows in cycle order), as a matrix."""
        if self._stale:
            matrix, free = self._matrix, self.free
            for n in self._stale:
                matrix[n] = free[n]
            self._stale.clear()
        return self._matrix

    def holds(self, vector: Sequence[int]) -> int:
        """How many requests of ``vector`` the unreserved free capacity holds, node by node:
        no more can be placed, whatever else is placed meanwhile."""
        matrix = self.matrix
        count = None
        for i, amount in needs(vector):
            fit = np.maximum(matrix[:, i], 0) // amount
            count = fit if count is None else np.minimum(count, fit)
        return 0 if count is None else int(count.sum())

    def free_total(self) -> Vector:
        """Unreserved free capacity summed over every node."""
        total: Vector = self.matrix.sum(axis=0).tolist()
        return total

    def uniform_free(self) -> Vector | None:
        """The unreserved free capacity of every node that has some left, when all of them
        have the same (a cluster of one node type, nothing running yet); else ``None``."""
        matrix = self.matrix
        live = matrix[matrix.any(axis=1)]
        if not len(live) or not (live == live[0]).all():
            return None
        unit: Vector = live[0].tolist()
        return unit

    def reserved_for(self, n: int, role: str) -> list[tuple[str, Vector]]:
        """Reserved pools on node ``n`` that ``role`` may draw from (its own and ancestors')."""
        pools = self.reserved.get(n)
        if not pools:
            return []
        return [(owner, v) for owner, v in pools.items() if in_subtree(role, owner) and any(v)]

    def reserved_candidates(self, role: str, lineage: Sequence[str]) -> list[int]:
        nodes: set[int] = set()
        for owner in lineage:
            nodes.update(self.reserved_nodes.get(owner, ()))
        return sorted(nodes)

    def offerable(self, n: int, role: str) -> Vector:
        """Everything ``role`` could be offered on node ``n``, before quota caps."""
        vector = list(self.free[n])
        for _, pool in self.reserved_for(n, role):
            vector = [x + y for x, y in zip(vector, pool, strict=True)]
        return vector

    def live_from(self, n: int) -> int:
        """The first node at or after ``n`` with unreserved capacity left."""
        nxt = self._next
        if nxt[n] == n:
            return n
        root = n
        while nxt[root] != root:
            root = nxt[root]
        while nxt[n] != root:
            nxt[n], n = root, nxt[n]
        return root

    def search(
        self,
        start: int,
        fits: Fit,
        skip: set[int],
        gpu_allowed: bool,
    ) -> tuple[int | None, int, bool]:
        """First node at or after ``start`` whose unreserved capacity ``fits``.

        Returns (node or None, where the next search may resume, whether a filter hid a
        node that would have fit).
        """
        total = len(self.names)
        n = self.live_from(start)
        filtered = False
        for _ in range(_PROBES):
            if n >= total:
                return None, n, filtered
            if n in skip:
                # A filtered node only matters for the "filtered" answer: test it once.
                if not filtered and (gpu_allowed or not self.gpu[n]):
                    filtered = fits.python(self.free[n])
            elif (gpu_allowed or not self.gpu[n]) and fits.python(self.free[n]):
                return n, n, filtered
            n = self.live_from(n + 1)
        if n >= total:
            return None, n, filtered
        mask = fits.numpy(self.matrix[n:])
        if not gpu_allowed:
            mask &= ~self.gpu_mask[n:]
        for offset in np.flatnonzero(mask):
            candidate = n + int(offset)
            if candidate not in skip:
                return candidate, candidate, filtered
            filtered = True
        return None, total, filtered

    # -- updates ---------------------------------------------------------------------------

    def take(self, n: int, unreserved: Sequence[int], draws: Sequence[tuple[str, Vector]]) -> None:
        """Remove an allocation from node ``n``: ``draws`` from reserved pools, the rest free."""
        free = self.free[n]
        for i, amount in enumerate(unreserved):
            if amount:
                free[i] -= amount
        self._stale.add(n)
        for owner, amounts in draws:
            pool = self.reserved[n][owner]
            for i, amount in enumerate(amounts):
                pool[i] -= amount
        if not any(free):
            self._next[n] = n + 1


class Fit:
    """A test of whether unreserved free capacity can serve a request."""

    def __init__(self, alternatives: Sequence[Sequence[tuple[int, int]]]) -> None:
        # Any one alternative suffices; each is a list of (resource position, amount).
        self.alternatives = [list(alt) for alt in alternatives]

    def python(self, free: Sequence[int]) -> bool:
        # Plain loops: this runs for every probed node, and nested any/all generators cost
        # several times more than the comparisons themselves.
        for alt in self.alternatives:
            for i, amount in alt:
                if free[i] < amount:
                    break
            else:
                return True
        return False

    def numpy(self, matrix: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        mask = np.zeros(matrix.shape[0], dtype=bool)
        for alt in self.alternatives:
            part = np.ones(matrix.shape[0], dtype=bool)
            for i, amount in alt:
                part &= matrix[:, i] >= amount
            mask |= part
        return mask


def needs(vector: Sequence[int]) -> list[tuple[int, int]]:
    """The non-zero entries of a request, which are all a fit test looks at."""
    return [(i, amount) for i, amount in enumerate(vector) if amount > 0]
