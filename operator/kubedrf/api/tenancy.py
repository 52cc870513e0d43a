"""Which namespaces' Frameworks may use which roles (``Role.spec.namespaces``)."""

from __future__ import annotations

from collections.abc import Mapping

from kubedrf.allocator.roles import lineage
from kubedrf.api.role import RoleSpec


def refusal(role: str, namespace: str, roles: Mapping[str, RoleSpec]) -> str | None:
    """Why a Framework in ``namespace`` may not use ``role``, or ``None`` when it may.

    A restriction on a role covers its whole subtree: ``eng.web`` is closed to a namespace
    that ``eng`` does not list. Roles without a Role object are open to every namespace.
    """
    for name in lineage(role):
        spec = roles.get(name)
        if spec is not None and not spec.allows(namespace):
            where = "" if name == role else f" (through its ancestor {name!r})"
            return (
                f"role {role!r} does not allow namespace {namespace!r}{where};"
                f" allowed: {', '.join(spec.namespaces)}"
            )
    return None
