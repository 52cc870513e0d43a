"""The kinds the master watches, in one table: what handlers, relists and the cache share.

Two kinds are filtered by the API server, so what can never matter is never sent:

* Pods in phase Succeeded or Failed hold nothing (the master skips terminal Pods anyway);
  when a Pod ends, the watch reports it as deleted. Lost: finished Pods, which no decision
  reads. A label selector on tasks would lose the other Pods on managed nodes, whose
  requests count against free capacity, so Pods are not filtered by label.
* Nodes without the managed label are never offered. Lost: telling a node that lost the label
  from one that is gone (both rescind its offers, with one message for both).

Metadata-only watches would lose requests and allocatable, which allocation needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubedrf.api import (
    FRAMEWORK,
    GROUP,
    INVERSE_OFFER,
    OFFER,
    QUOTA,
    RESERVATION,
    ROLE,
    VERSION,
    Kind,
)
from kubedrf.api.conventions import LABEL_FRAMEWORK
from kubedrf.master.records import (
    TERMINAL_POD_PHASES,
    Body,
    FrameworkRecord,
    InverseOfferRecord,
    NodeRecord,
    OfferRecord,
    PodRecord,
    parse_quota,
    parse_reservation,
    parse_role,
)
from kubedrf.master.settings import MasterSettings


@dataclass(frozen=True, slots=True)
class Selectors:
    labels: str | None = None
    fields: str | None = None


def _managed_nodes(settings: MasterSettings) -> Selectors:
    return Selectors(labels=settings.managed_label)


def _live_pods(_: MasterSettings) -> Selectors:
    return Selectors(fields=",".join(f"status.phase!={p}" for p in sorted(TERMINAL_POD_PHASES)))


@dataclass(frozen=True, slots=True)
class Watched:
    """One watched kind: ``name`` is how the cache and the logs call it (``"pod"``)."""

    name: str
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    parse: Callable[[Body], Any]
    #: Server-side filters: what the settings make irrelevant is not watched or listed.
    selectors: Callable[[MasterSettings], Selectors] = lambda _: Selectors()
    #: Watched by a plain stream (``master.informer``) rather than kopf: the kinds Kubernetes
    #: makes by the thousand, whose events the master only records.
    informed: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _ours(kind: Kind, parse: Callable[[Body], Any]) -> Watched:
    namespaced = kind.scope == "Namespaced"
    return Watched(kind.singular, GROUP, VERSION, kind.plural, kind.kind, namespaced, parse)


WATCHED: tuple[Watched, ...] = (
    Watched(
        "node", "", "v1", "nodes", "Node", False, NodeRecord.parse, _managed_nodes, informed=True
    ),
    Watched("pod", "", "v1", "pods", "Pod", True, PodRecord.parse, _live_pods, informed=True),
    _ours(FRAMEWORK, FrameworkRecord.parse),
    _ours(ROLE, parse_role),
    _ours(QUOTA, parse_quota),
    _ours(RESERVATION, parse_reservation),
    _ours(OFFER, OfferRecord.parse),
    _ours(INVERSE_OFFER, InverseOfferRecord.parse),
    Watched(
        "lease",
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        True,
        lambda body: (body.get("metadata", {}).get("labels") or {}).get(LABEL_FRAMEWORK),
        # Frameworks' heartbeat Leases only, not every Lease (node heartbeats among them).
        selectors=lambda _: Selectors(labels=LABEL_FRAMEWORK),
    ),
)
BY_NAME: dict[str, Watched] = {w.name: w for w in WATCHED}
