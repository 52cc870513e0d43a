"""The role hierarchy: dotted names nest, and a missing parent is implicit with weight 1."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

_SEGMENT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def role_name_error(name: str) -> str | None:
    """Why ``name`` is not a valid role name, or ``None`` when it is."""
    if not name:
        return "must not be empty"
    for segment in name.split("."):
        if not _SEGMENT.match(segment):
            return (
                f"{name!r}: every dot-separated part must be lowercase letters, digits and '-',"
                " starting and ending with a letter or digit"
            )
    return None


@lru_cache(maxsize=65536)
def lineage(role: str) -> tuple[str, ...]:
    """The role and its ancestors, root first: ``a.b.c`` → ``("a", "a.b", "a.b.c")``."""
    parts = role.split(".")
    return tuple(".".join(parts[: i + 1]) for i in range(len(parts)))


def parent(role: str) -> str | None:
    head, dot, _ = role.rpartition(".")
    return head if dot else None


def in_subtree(role: str, ancestor: str) -> bool:
    """Whether ``role`` is ``ancestor`` or one of its descendants."""
    return role == ancestor or role.startswith(ancestor + ".")


def role_weights(declared: Mapping[str, float], referenced: Iterable[str]) -> dict[str, float]:
    """Weights of every role in the tree: declared, referenced, and their implicit parents."""
    weights: dict[str, float] = {}
    for role in (*declared, *referenced):
        for name in lineage(role):
            weights.setdefault(name, declared.get(name, 1.0))
    return weights
