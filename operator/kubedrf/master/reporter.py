"""What users see after each cycle: statuses, Events and gauges, apart from the deciding loop.

Everything is computed from the cycle's view and the allocator's result and shares, never
read back from what the master just wrote, so a status shows the share DRF sorted by.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from kubedrf.allocator import AllocationResult, AllocatorConfig, Snapshot, Waiting
from kubedrf.allocator.oversized import oversized
from kubedrf.allocator.shares import FairShares, Shares
from kubedrf.api import FRAMEWORK, QUOTA, RESERVATION, ROLE
from kubedrf.api.conventions import format_time
from kubedrf.api.types import ConditionType
from kubedrf.master.metrics import Metrics
from kubedrf.master.status import (
    differs,
    framework_status,
    holdings_by_framework,
    idle_reasons,
    quota_statuses,
    reservation_statuses,
    role_statuses,
    status_patch,
)
from kubedrf.master.view import MasterView
from kubedrf.master.writer import ApiWriter

#: Conditions whose False is news, not a problem: no Warning Event when they turn False.
INFORMATIONAL = frozenset({ConditionType.OFFERED, ConditionType.REVOKING})

#: Conditions whose return to True gets an Event as well: a framework reconnecting.
RECOVERIES_ANNOUNCED = frozenset({ConditionType.CONNECTED})


class Reporter:
    def __init__(self, writer: ApiWriter, metrics: Metrics) -> None:
        self.writer = writer
        self.metrics = metrics
        #: The last "why no offer?" answer per framework: an Event only when it changes.
        self._last_idle: dict[str, str] = {}

    def writes(
        self,
        view: MasterView,
        snapshot: Snapshot,
        result: AllocationResult,
        shares: Shares,
        waiting: Sequence[Waiting] = (),
    ) -> list[Awaitable[None]]:
        """The status patches and Events this cycle calls for (only what changed);
        ``waiting`` is the allocator's explanation of the clients the cycle offered nothing."""
        jobs: list[Awaitable[None]] = []
        too_large = oversized(snapshot)
        by_framework: dict[str, list[Waiting]] = defaultdict(list)
        for w in waiting:
            by_framework[w.framework].append(w)
        held = holdings_by_framework(view, result)
        for record in view.frameworks.values():
            mine = by_framework.get(record.key, [])
            status = status_patch(
                framework_status(
                    view,
                    record,
                    shares=shares,
                    result=result,
                    oversized=too_large,
                    waiting=mine,
                    held=held.get(record.key, []),
                )
            )
            body = view.bodies.get(("framework", record.key))
            if differs(body, status):
                jobs.extend(self._condition_events(body, status))
                jobs.append(
                    self.writer.patch_status(FRAMEWORK, record.name, status, record.namespace)
                )
            jobs.extend(self._explain_idle(view, record.key, result, mine))
        for kind, statuses in (
            (ROLE, role_statuses(view, shares, result)),
            (QUOTA, quota_statuses(view, shares)),
            (RESERVATION, reservation_statuses(view)),
        ):
            for name, model in statuses.items():
                body = view.bodies.get((kind.singular, name))
                status = status_patch(model)
                if differs(body, status):
                    jobs.extend(self._condition_events(body, status))
                    jobs.append(self.writer.patch_status(kind, name, status))
        for gone in set(self._last_idle) - set(view.frameworks):
            del self._last_idle[gone]
        return jobs

    def gauges(
        self,
        view: MasterView,
        snapshot: Snapshot,
        result: AllocationResult,
        shares: Shares,
        config: AllocatorConfig,
        *,
        fair: FairShares | None = None,
    ) -> None:
        self.metrics.record_cycle(view, shares)
        self.metrics.record_decisions(view, snapshot, result, config, fair)

    def _condition_events(
        self, body: Mapping[str, Any] | None, status: Mapping[str, Any]
    ) -> list[Awaitable[None]]:
        """A Warning Event for each condition that turns False (bad input, refused roles):
        what the status says, also where ``kubectl describe`` and event watchers look."""
        if body is None:
            return []
        before = {
            c.get("type"): c.get("status")
            for c in (body.get("status") or {}).get("conditions") or []
        }
        conditions = status.get("conditions") or []
        # One Event per (reason, message): Ready and Connected both turn False on a disconnect.
        warnings = {
            (c["reason"], c["message"]): None
            for c in conditions
            if c["type"] not in INFORMATIONAL
            and c["status"] == "False"
            and before.get(c["type"]) != "False"
        }
        events: list[Awaitable[None]] = [
            self.writer.event(body, reason, message, "Warning", "Validate")
            for reason, message in warnings
        ]
        events += [
            self.writer.event(body, c["reason"], c["message"], "Normal", "Validate")
            for c in conditions
            if c["type"] in RECOVERIES_ANNOUNCED
            and c["status"] == "True"
            and before.get(c["type"]) == "False"
        ]
        return events

    def _explain_idle(
        self,
        view: MasterView,
        framework: str,
        result: AllocationResult,
        waiting: Sequence[Waiting],
    ) -> list[Awaitable[None]]:
        """An Event when the answer to "why did my framework get no offer?" changes: its
        reason, the resource that blocks, or what happens next, not every share that moves
        (the status has those)."""
        reasons = idle_reasons(view.frameworks[framework], result)
        offered = any(o.framework == framework for o in result.offers)
        explained = {w.role: w for w in waiting}
        answer = (
            ""
            if offered or not reasons
            else repr(
                [
                    (role, why, w.resource, [(n.kind, n.deadline) for n in w.next])
                    if (w := explained.get(role))
                    else (role, why)
                    for role, why in sorted(reasons.items())
                ]
            )
        )
        if self._last_idle.get(framework, "") == answer:
            return []
        self._last_idle[framework] = answer
        body = view.bodies.get(("framework", framework))
        if not answer or body is None:
            return []
        summary = " | ".join(
            f"role {role}: {w.sentence(format_time) if (w := explained.get(role)) else why.value}"
            for role, why in sorted(reasons.items())
        )
        reason = next(iter(sorted(reasons.items())))[1].value
        return [self.writer.event(body, reason, f"no (further) offer: {summary}", "Normal")]
