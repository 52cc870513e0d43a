"""The kinds the master watches, in one table: what handlers, relists and the cache share."""

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
    #: Only objects carrying this label (frameworks' heartbeat Leases, not every Lease).
    label: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _ours(kind: Kind, parse: Callable[[Body], Any]) -> Watched:
    namespaced = kind.scope == "Namespaced"
    return Watched(kind.singular, GROUP, VERSION, kind.plural, kind.kind, namespaced, parse)


WATCHED: tuple[Watched, ...] = (
    Watched("node", "", "v1", "nodes", "Node", False, NodeRecord.parse),
    Watched("pod", "", "v1", "pods", "Pod", True, PodRecord.parse),
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
        label=LABEL_FRAMEWORK,
    ),
)
BY_NAME: dict[str, Watched] = {w.name: w for w in WATCHED}
