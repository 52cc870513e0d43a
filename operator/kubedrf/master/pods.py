"""The cache's Pods, with the sums every cycle reads kept up to date as each Pod changes.

At 20,000 task Pods a cycle that summed every Pod again (what each node has in use, what
each client holds, the tasks revocation may end) spent most of its time on Pods that had not
changed. ``PodTable`` folds each Pod into per-place tallies when it is recorded and out when
it goes; a cycle freezes the tallies (a copy the size of nodes × clients, not of Pods) and
settles the few outstanding offers against them. Amounts are integers, so adding and taking
away give exactly what summing afresh gives.
"""

from __future__ import annotations

from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    ValuesView,
)
from dataclasses import dataclass
from typing import Any

from kubedrf.allocator import Task
from kubedrf.master.records import PodRecord
from kubedrf.resources import EMPTY, Resources

#: Where live Pods count: (node, framework key or ``None``, role or ``None``).
Place = tuple[str, str | None, str | None]


@dataclass(frozen=True, slots=True)
class Tally:
    """The requests of some live Pods and how many they are."""

    resources: Resources
    count: int

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.resources + other.resources, self.count + other.count)

    def __sub__(self, other: Tally) -> Tally:
        return Tally(self.resources - other.resources, self.count - other.count)


def place(pod: PodRecord) -> Place | None:
    """Where a Pod counts, or ``None`` when it holds nothing (ended, or on no node)."""
    if pod.terminal or not pod.node:
        return None
    return (pod.node, pod.framework_key, pod.role)


def _as_task(key: str, pod: PodRecord) -> Task | None:
    """A running task revocation may end: a live Pod of a (framework, role), named by its
    key (the cache's own string: one copy per Pod)."""
    framework = pod.framework_key
    if pod.terminal or not pod.node or not framework or not pod.role:
        return None
    return Task(key, framework, pod.role, pod.node, pod.requests, pod.created_at)


def _fold(tallies: dict[Place, Tally], where: Place, tally: Tally, sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) ``tally`` at ``where``; an emptied place goes."""
    current = tallies.get(where)
    if current is None:
        tallies[where] = tally if sign > 0 else Tally(EMPTY - tally.resources, -tally.count)
        return
    folded = current + tally if sign > 0 else current - tally
    if folded.count == 0 and folded.resources.is_empty():
        del tallies[where]
    else:
        tallies[where] = folded


def _fold_offer(
    by_offer: MutableMapping[str, Mapping[Place, Tally]],
    offer: str,
    where: Place,
    tally: Tally,
    sign: int,
) -> None:
    """``_fold`` into one offer's tallies, replacing its map (frozen copies share the old)."""
    inner = dict(by_offer.get(offer, {}))
    _fold(inner, where, tally, sign)
    if inner:
        by_offer[offer] = inner
    else:
        by_offer.pop(offer, None)


@dataclass(frozen=True, slots=True)
class PodSums:
    """One cycle's frozen copy of the tallies: the same facts summing every Pod would give.

    ``by_offer`` maps an offer key to the tallies of the live Pods labelled with it, so the
    Pods an outstanding offer still covers are taken out without visiting every Pod.
    ``tasks`` are the live tasks in key order, each with its offer key.
    """

    places: Mapping[Place, Tally]
    by_offer: Mapping[str, Mapping[Place, Tally]]
    tasks: tuple[tuple[Task, str | None], ...]

    @classmethod
    def of(cls, pods: Iterable[PodRecord]) -> PodSums:
        """Summed afresh: what the incremental table must always equal."""
        table = PodTable()
        for pod in pods:
            table[pod.key] = pod
        return table.sums()

    def charged(self, covered: frozenset[str]) -> dict[Place, Tally]:
        """Per place, the live Pods whose requests count on their own: all but those
        launched on an offer in ``covered`` (still outstanding, so the offer holds them)."""
        tallies = dict(self.places)
        for offer in covered:
            for where, tally in self.by_offer.get(offer, {}).items():
                _fold(tallies, where, tally, -1)
        return tallies

    def without(self, pods: Iterable[PodRecord]) -> PodSums:
        """The sums once ``pods`` (all in these sums) are gone."""
        gone = list(pods)
        if not gone:
            return self
        places = dict(self.places)
        by_offer = dict(self.by_offer)
        names = set()
        for pod in gone:
            names.add(pod.key)
            where = place(pod)
            if where is None:
                continue
            tally = Tally(pod.requests, 1)
            _fold(places, where, tally, -1)
            if (offer := pod.offer_key) is not None:
                _fold_offer(by_offer, offer, where, tally, -1)
        tasks = tuple(item for item in self.tasks if item[0].name not in names)
        return PodSums(places, by_offer, tasks)


class PodTable(MutableMapping[str, PodRecord]):
    """Pods by key, as the cache records them, with their tallies kept in step.

    The one way in is ``table[key] = pod`` and ``del table[key]``, so no Pod can change
    without its tallies following. Inner per-offer maps are replaced, never changed, so a
    frozen ``PodSums`` may share them.
    """

    __slots__ = ("_by_offer", "_keys", "_ordered", "_places", "_pods", "_tasks")

    def __init__(self, pods: Mapping[str, PodRecord] | None = None) -> None:
        self._pods: dict[str, PodRecord] = {}
        self._places: dict[Place, Tally] = {}
        self._by_offer: dict[str, Mapping[Place, Tally]] = {}
        self._tasks: dict[str, tuple[Task, str | None]] = {}
        #: Task keys, sorted but for those added since (and some gone): sorting it again
        #: costs little more than a pass, since Python's sort merges the sorted runs.
        self._keys: list[str] = []
        #: The tasks in key order, rebuilt only after a task changed.
        self._ordered: tuple[tuple[Task, str | None], ...] | None = ()
        for key, pod in (pods or {}).items():
            self[key] = pod

    def __getitem__(self, key: str) -> PodRecord:
        return self._pods[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pods)

    def __len__(self) -> int:
        return len(self._pods)

    def __setitem__(self, key: str, pod: PodRecord) -> None:
        old = self._pods.get(key)
        if old is not None:
            self._count(key, old, -1)
        self._pods[key] = pod
        self._count(key, pod, 1)

    def __delitem__(self, key: str) -> None:
        self._count(key, self._pods.pop(key), -1)

    def __contains__(self, key: object) -> bool:
        return key in self._pods

    def get(self, key: str, default: Any = None) -> Any:
        return self._pods.get(key, default)

    def values(self) -> ValuesView[PodRecord]:
        return self._pods.values()

    def items(self) -> ItemsView[str, PodRecord]:
        return self._pods.items()

    def copy(self) -> dict[str, PodRecord]:
        """The Pods as a plain dict, copied at C speed (``dict(table)`` reads key by key)."""
        return dict(self._pods)

    def _count(self, key: str, pod: PodRecord, sign: int) -> None:
        where = place(pod)
        if where is not None:
            tally = Tally(pod.requests, 1)
            _fold(self._places, where, tally, sign)
            if (offer := pod.offer_key) is not None:
                _fold_offer(self._by_offer, offer, where, tally, sign)
        if sign < 0:
            if self._tasks.pop(key, None) is not None:
                self._ordered = None
            return
        task = _as_task(key, pod)
        if task is not None:
            if key not in self._tasks:
                self._keys.append(key)
            self._tasks[key] = (task, pod.offer_key)
            self._ordered = None

    def sums(self) -> PodSums:
        """A frozen copy for one cycle: tallies copied, the task order shared."""
        if self._ordered is None:
            keys = [key for key in dict.fromkeys(self._keys) if key in self._tasks]
            keys.sort()
            self._keys = keys
            self._ordered = tuple(self._tasks[key] for key in keys)
        return PodSums(dict(self._places), dict(self._by_offer), self._ordered)
