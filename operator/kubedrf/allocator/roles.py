"""The role hierarchy: dotted names nest, and a missing parent is implicit with weight 1."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from kubedrf.resources import DNS_SUBDOMAIN

#: Task Pods carry their role as the value of a label, so a role name must also be a label
#: value: at most 63 characters.
MAX_ROLE_NAME = 63
#: The role-name grammar, in the RE2 subset Python and CEL's ``matches()`` share.
ROLE_NAME_PATTERN = f"^{DNS_SUBDOMAIN}$"
ROLE_NAME_RULE = (
    "lowercase letters, digits and '-' in dot-separated parts that start and end with a letter"
    f" or digit, at most {MAX_ROLE_NAME} characters (such as eng.frontend)"
)
_ROLE_NAME = re.compile(ROLE_NAME_PATTERN)


def role_name_error(name: str) -> str | None:
    """Why ``name`` is not a valid role name, or ``None`` when it is.

    Dots nest roles, so each dot-separated part must be non-empty; the rest is the rule of a
    label value, since the name becomes one on every task Pod.
    """
    if len(name) > MAX_ROLE_NAME or not _ROLE_NAME.fullmatch(name):
        return f"role name {name!r} is not valid: {ROLE_NAME_RULE}"
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
