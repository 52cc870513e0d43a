"""Framework liveness (Mesos' failover timeout): whom the master has stopped hearing from.

Clocks skew, so the master never compares a framework's timestamps with its own clock: it
notes, by its own clock, when it last *saw something change* that only a live framework
changes (its heartbeat Lease renewed, its spec edited, an offer answered, a task Pod
created) and judges by how long ago that was, as ``leader.py`` judges a held Lease. Those
notes are timers, not truth (invariant 6): a restarted master starts them afresh, so every
framework gets a whole ``failoverTimeout`` before it is judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubedrf.api.conventions import LABEL_FRAMEWORK, format_time
from kubedrf.master.records import Body, FrameworkRecord, PodRecord


def heard_from(kind: str, before: Body | None, after: Body) -> str | None:
    """The framework (``namespace/name``) that an object's change shows alive, if any.

    ``before`` is the object as last seen (``None`` on first sight). What the master itself
    writes (statuses, new Offers) and what kubelets write (Pod status) never counts.
    """
    meta = after.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    old_meta = (before or {}).get("metadata") or {}
    spec, old_spec = after.get("spec") or {}, (before or {}).get("spec") or {}
    name: object = None
    if kind == "lease":
        if before is None or spec.get("renewTime") != old_spec.get("renewTime"):
            name = (meta.get("labels") or {}).get(LABEL_FRAMEWORK)
    elif kind == "framework":
        if before is None or meta.get("generation") != old_meta.get("generation"):
            name = meta.get("name")
    elif kind == "offer":
        if spec.get("response") and spec.get("response") != old_spec.get("response"):
            name = spec.get("framework")
    elif kind == "pod" and before is None:
        name = (meta.get("labels") or {}).get(LABEL_FRAMEWORK)
    return f"{namespace}/{name}" if isinstance(name, str) and name and namespace else None


@dataclass(frozen=True, slots=True)
class Silence:
    """A framework not heard from within its failoverTimeout."""

    heard_at: float
    failover_timeout: float
    #: Its taskTeardownTimeout has passed too: its tasks are ended.
    teardown: bool
    task_teardown_timeout: float | None = None

    def message(self) -> str:
        return (
            f"not heard from within spec.failoverTimeout ({self.failover_timeout:g}s); last heard"
            f" from at {format_time(self.heard_at)}: no offers until its heartbeat resumes"
        )


def silences(
    frameworks: Mapping[str, FrameworkRecord], heard_at: Mapping[str, float], now: float
) -> dict[str, Silence]:
    """Frameworks, by key, silent for longer than their failoverTimeout.

    One the master has no note of counts as just heard from: it is judged only after a
    whole timeout of this master's own watching.
    """
    silent = {}
    for key, record in frameworks.items():
        spec = record.spec
        if spec is None:
            continue
        last = heard_at.get(key, now)
        if now - last < spec.failover_timeout:
            continue
        teardown = spec.task_teardown_timeout
        silent[key] = Silence(
            last, spec.failover_timeout, teardown is not None and now - last >= teardown, teardown
        )
    return silent


def torn_down(
    pods: Iterable[PodRecord], disconnected: Mapping[str, Silence]
) -> list[tuple[PodRecord, str]]:
    """The live tasks of frameworks silent past their taskTeardownTimeout, each with why it
    ends (as Mesos removes a framework, and its tasks, once its failover timeout passes)."""
    ended: list[tuple[PodRecord, str]] = []
    silent = {name: s for name, s in disconnected.items() if s.teardown}
    if not silent:
        return ended  # the usual cycle: no Pod to look at, let alone sort
    for pod in sorted(
        (p for p in pods if not p.terminal and (p.framework_key or "") in silent),
        key=lambda p: p.key,
    ):
        silence = silent[pod.framework_key or ""]
        assert silence.task_teardown_timeout is not None
        ended.append(
            (
                pod,
                f"framework {pod.framework} not heard from within spec.taskTeardownTimeout"
                f" ({silence.task_teardown_timeout:g}s; last heard from at"
                f" {format_time(silence.heard_at)}): its tasks are ended",
            )
        )
    return ended
