"""The master's cache of the cluster, fed only by watches and by its own writes.

Nothing here is truth of its own (invariant 6): outstanding offers, filters (declined offers
kept until their filter expires), revivals (an annotation) and allocations (Pods) all live
in the API, so a restarted master rebuilds exactly this state by listing.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubedrf.api import QuotaSpec, ReservationSpec, RoleSpec
from kubedrf.master.liveness import heard_from
from kubedrf.master.pods import PodTable
from kubedrf.master.records import (
    Body,
    ClusterObjectRecord,
    FrameworkRecord,
    InverseOfferRecord,
    NodeRecord,
    OfferRecord,
)
from kubedrf.master.settings import MasterSettings
from kubedrf.master.view import MasterView
from kubedrf.master.watched import BY_NAME

#: How long a deletion is remembered to turn away late events of the deleted object.
TOMBSTONE_SECONDS = 600.0
#: Kinds whose bodies the cache does not keep: no Event or status reads them (a Pod's
#: record names it in Events), and at scale they would be most of the cache.
RECORD_ONLY = frozenset({"pod", "node"})


def object_key(body: Body) -> str | None:
    """How the cache names an object: ``namespace/name``, or ``name`` when cluster-scoped."""
    meta = body.get("metadata", {})
    name = meta.get("name")
    if not name:
        return None
    return f"{meta['namespace']}/{name}" if meta.get("namespace") else str(name)


def _version(body: Body) -> int | None:
    return _as_version(body.get("metadata", {}).get("resourceVersion"))


def _as_version(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class ClusterCache:
    settings: MasterSettings
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    pods: PodTable = field(default_factory=PodTable)
    frameworks: dict[str, FrameworkRecord] = field(default_factory=dict)
    roles: dict[str, ClusterObjectRecord[RoleSpec]] = field(default_factory=dict)
    quotas: dict[str, ClusterObjectRecord[QuotaSpec]] = field(default_factory=dict)
    reservations: dict[str, ClusterObjectRecord[ReservationSpec]] = field(default_factory=dict)
    offers: dict[str, OfferRecord] = field(default_factory=dict)
    inverse_offers: dict[str, InverseOfferRecord] = field(default_factory=dict)
    #: Heartbeat Leases of frameworks: the framework each one speaks for.
    leases: dict[str, str | None] = field(default_factory=dict)
    bodies: dict[tuple[str, str], Body] = field(default_factory=dict)
    _versions: dict[tuple[str, str], int] = field(default_factory=dict)
    #: When this master first saw each offer's response, by offer key. A timer, not truth:
    #: after a restart it starts again, which only makes the master wait longer.
    answered_at: dict[str, float] = field(default_factory=dict)
    #: Pods a fresh read found absent, by key: a listed task that will never come.
    confirmed_absent: set[str] = field(default_factory=set)
    #: When an eviction of each Pod (by key) was last refused by a PodDisruptionBudget. A
    #: memory, not truth: after a restart the master simply tries those evictions again.
    refused_evictions: dict[str, float] = field(default_factory=dict)
    #: When this master last saw each framework show it is alive (see ``liveness``). A timer
    #: too: after a restart every framework is heard from afresh.
    heard_at: dict[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    #: The resourceVersion each deleted object was deleted at, and when, oldest first: until
    #: the next relist, or ``TOMBSTONE_SECONDS``, so a master that never relists keeps a
    #: bounded number (one per Pod that ended in the last minutes), not one per Pod ever.
    _tombstones: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    _writer: int | None = None

    def _owned(self) -> None:
        """The cache has one writer, the event loop's thread: a second writing thread would
        change the dictionaries while a cycle iterates them. Fail loudly instead."""
        me = threading.get_ident()
        if self._writer is None:
            self._writer = me
        elif self._writer != me:
            raise RuntimeError("ClusterCache written from a second thread; feed it from the loop")

    # -- feeding -----------------------------------------------------------------------------

    def apply(self, kind: str, event_type: str | None, body: Body) -> bool:
        """Record a watch event (or the answer to our own write); say whether it changed."""
        self._owned()
        key = object_key(body)
        if key is None:
            return False
        version = _version(body)
        known = self._known_version(kind, key)
        if event_type == "DELETED":
            if version is not None and known is not None and version < known:
                # The end of an earlier object of the same name (a Node removed and added
                # back, say), delivered after the newer one was listed: not this one's end.
                return False
            self._versions.pop((kind, key), None)
            if version is not None:
                self._bury(kind, key, version)
            self.bodies.pop((kind, key), None)
            if kind == "offer":
                self.answered_at.pop(key, None)
            elif kind == "framework":
                self.heard_at.pop(key, None)
            elif kind == "pod":
                self.refused_evictions.pop(key, None)
            return self._table(kind).pop(key, None) is not None
        if version is not None and known is not None and version < known:
            return False  # an older event than what our own write already recorded
        tombstone = self._tombstones.get((kind, key))
        if tombstone is not None and version is not None and version <= tombstone[0]:
            return False  # a late event of an object already deleted: never a ghost
        if version is not None and kind != "pod":  # a Pod's record carries its own
            self._versions[(kind, key)] = version
        before = self.bodies.get((kind, key))
        if before is None and kind in RECORD_ONLY and key in self._table(kind):
            before = {}  # seen before: only its record is kept
        if (alive := heard_from(kind, before, body)) is not None:
            self.heard_at[alive] = self.clock()
        if kind not in RECORD_ONLY:
            self.bodies[(kind, key)] = body
        self._table(kind)[key] = self._parse(kind, body)
        if kind == "offer" and (body.get("spec") or {}).get("response"):
            self.answered_at.setdefault(key, self.clock())
        elif kind == "pod":
            self.confirmed_absent.discard(key)
        return True

    def apply_listed(self, kind: str, bodies: Sequence[Body]) -> set[str]:
        """Record a page of a list; the keys it listed."""
        listed = set()
        for body in bodies:
            self.apply(kind, "ADDED", body)
            if (key := object_key(body)) is not None:
                listed.add(key)
        return listed

    def forget_unlisted(self, kind: str, listed: set[str], list_version: int | None) -> None:
        """The end of a full list: what it lacks was deleted while no watch was looking.

        Entries newer than the list (a watch delivered them after it was taken) stay.
        """
        for key in set(self._table(kind)) - listed:
            version = self._known_version(kind, key)
            if list_version is None or version is None or version <= list_version:
                self.forget(kind, key)
        # Tombstones older than the list can no longer meet a late event: the list is newer.
        self._tombstones = {
            (k, key): (v, at)
            for (k, key), (v, at) in self._tombstones.items()
            if k != kind or list_version is None or v > list_version
        }

    def _bury(self, kind: str, key: str, version: int) -> None:
        """Remember a deletion, and forget those older than ``TOMBSTONE_SECONDS``: a late
        event is one a lagging watch or a slow answer to our own write delivers, and neither
        lags by minutes (a watch resumes after its last version; calls time out sooner)."""
        now = self.clock()
        self._tombstones.pop((kind, key), None)  # re-inserted last: the dict stays oldest first
        self._tombstones[(kind, key)] = (version, now)
        while self._tombstones:
            oldest = next(iter(self._tombstones))
            if now - self._tombstones[oldest][1] < TOMBSTONE_SECONDS:
                break
            del self._tombstones[oldest]

    def _known_version(self, kind: str, key: str) -> int | None:
        """The resourceVersion last recorded: Pods keep theirs in the record, since a
        second table of tens of thousands of entries would cost a fifth of the cache."""
        if kind == "pod":
            pod = self.pods.get(key)
            return None if pod is None else _as_version(pod.version)
        return self._versions.get((kind, key))

    def record(self, kind: str, key: str) -> Any:
        """The parsed record of one object, or ``None``."""
        return self._table(kind).get(key)

    def bound(self, key: str) -> None:
        """Our own Binding succeeded: until the watch says so, the Pod counts as bound."""
        pod = self.pods.get(key)
        if pod is not None and not pod.bound:
            self.pods[key] = dataclasses.replace(pod, bound=True)

    def forget(self, kind: str, key: str) -> None:
        self._owned()
        self._table(kind).pop(key, None)
        self.bodies.pop((kind, key), None)
        self._versions.pop((kind, key), None)
        if kind == "offer":
            self.answered_at.pop(key, None)

    def _table(self, kind: str) -> MutableMapping[str, Any]:
        tables: dict[str, MutableMapping[str, Any]] = {
            "node": self.nodes,
            "pod": self.pods,
            "framework": self.frameworks,
            "role": self.roles,
            "quota": self.quotas,
            "reservation": self.reservations,
            "offer": self.offers,
            "inverseoffer": self.inverse_offers,
            "lease": self.leases,
        }
        return tables[kind]

    @staticmethod
    def _parse(kind: str, body: Body) -> Any:
        return BY_NAME[kind].parse(body)

    # -- a cycle's view ------------------------------------------------------------------------

    def freeze(self, now: float) -> MasterView:
        """The cache as one cycle sees it: copied once, every derived fact computed once."""
        return MasterView.freeze(
            self.settings,
            now,
            nodes=self.nodes,
            pods=self.pods,
            frameworks=self.frameworks,
            roles=self.roles,
            quotas=self.quotas,
            reservations=self.reservations,
            offers=self.offers,
            inverse_offers=self.inverse_offers,
            bodies=self.bodies,
            answered_at=self.answered_at,
            confirmed_absent=self.confirmed_absent,
            heard_at=self.heard_at,
            refused_evictions=self.refused_evictions,
        )
