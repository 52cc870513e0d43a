"""Operations on refusal filters that the master and the simulator share."""

from __future__ import annotations

import math
from collections.abc import Iterable

from kubedrf.allocator.model import Filter


def revive(
    filters: Iterable[Filter], framework: str, role: str | None = None
) -> tuple[Filter, ...]:
    """Filters left after ``framework`` revives (all its roles, or just ``role``)."""
    return tuple(
        f for f in filters if not (f.framework == framework and (role is None or f.role == role))
    )


def expire(filters: Iterable[Filter], now: float) -> tuple[Filter, ...]:
    """Filters still in force at ``now``."""
    return tuple(f for f in filters if f.expires_at > now)


def refusal_expiry(declined_at: float, refuse_seconds: float, interval: float) -> float | None:
    """When the filter of an offer declined at ``declined_at`` expires; ``None``: no filter.

    A filter shorter than the allocation interval would expire before any cycle honoured it,
    and the framework would get the same offer straight back; so, as in Mesos (MESOS-4302),
    it lasts until the next cycle has run. A decline answered within the cycle's own instant
    (the simulator's) needs the expiry just past that next cycle, hence ``nextafter``.
    """
    if refuse_seconds <= 0:
        return None
    return max(declined_at + refuse_seconds, math.nextafter(declined_at + interval, math.inf))
