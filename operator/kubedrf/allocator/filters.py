"""Operations on refusal filters that the master and the simulator share."""

from __future__ import annotations

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
