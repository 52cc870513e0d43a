"""Dominant shares after a cycle, over the same nodes and exclusions the sorter used.

Reporting takes its shares from here rather than computing its own, so the share a user
reads in status or a metric is the one DRF sorted by: the snapshot's usable nodes are the
total, fairness-excluded resources are skipped, and role shares are weighted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubedrf.allocator.model import AllocationResult, AllocatorConfig, FairShare, Snapshot
from kubedrf.allocator.revocation import revocation_target
from kubedrf.allocator.roles import lineage, role_weights
from kubedrf.resources import Resources, total


@dataclass(frozen=True, slots=True)
class Shares:
    #: Per framework, unweighted (0..1), over all its roles.
    frameworks: Mapping[str, float]
    #: Per role (implicit parents included), divided by the role's weight.
    roles: Mapping[str, float]
    #: What each role holds, its subtree included.
    role_allocations: Mapping[str, Resources]
    #: The usable nodes' allocatable: what shares divide by.
    cluster: Resources


def shares(
    snapshot: Snapshot,
    result: AllocationResult | None = None,
    config: AllocatorConfig | None = None,
) -> Shares:
    """Shares of what the snapshot holds plus the offers ``result`` makes."""
    excluded = (config or AllocatorConfig()).fairness_excluded
    cluster = total(node.allocatable for node in snapshot.nodes)
    held: list[tuple[str, str, Resources]] = [
        (a.framework, a.role, a.resources) for a in snapshot.allocations
    ]
    held += [(o.framework, o.role, o.resources) for o in (result.offers if result else ())]
    by_framework: dict[str, list[Resources]] = defaultdict(list)
    by_role: dict[str, list[Resources]] = defaultdict(list)
    for framework, role, resources in held:
        by_framework[framework].append(resources)
        for name in lineage(role):
            by_role[name].append(resources)
    referenced = [role for fw in snapshot.frameworks for role in fw.roles] + list(by_role)
    weights = role_weights({r.name: r.weight for r in snapshot.roles}, referenced)
    role_allocations = {name: total(by_role.get(name, [])) for name in weights}
    return Shares(
        frameworks={
            fw: total(items).dominant_share(cluster, excluded) for fw, items in by_framework.items()
        },
        roles={
            name: allocated.dominant_share(cluster, excluded) / weights[name]
            for name, allocated in role_allocations.items()
        },
        role_allocations=role_allocations,
        cluster=cluster,
    )


@dataclass(frozen=True, slots=True)
class FairShares:
    """The DRF fair shares for the current demand, summed the way ``Shares`` sums holdings."""

    #: Per (framework, role), holding beside target.
    clients: Mapping[tuple[str, str], FairShare]
    #: Per framework, unweighted, over all its roles.
    frameworks: Mapping[str, float]
    #: Per role (subtree included), divided by the role's weight.
    roles: Mapping[str, float]


def fair_shares(
    snapshot: Snapshot,
    config: AllocatorConfig | None = None,
    targets: Sequence[FairShare] | None = None,
) -> FairShares:
    """Where DRF would take each client, framework and role if nothing were held: what a
    share is compared with in status, in metrics and by ``kubectl drf``.

    ``targets`` are ``revocation_target(snapshot, config)`` when the cycle already has them.
    """
    config = config or AllocatorConfig()
    targets = revocation_target(snapshot, config) if targets is None else targets
    cluster = total(node.allocatable for node in snapshot.nodes)
    by_framework: dict[str, list[Resources]] = defaultdict(list)
    by_role: dict[str, list[Resources]] = defaultdict(list)
    for f in targets:
        by_framework[f.framework].append(f.target)
        for name in lineage(f.role):
            by_role[name].append(f.target)
    weights = role_weights({r.name: r.weight for r in snapshot.roles}, list(by_role))
    excluded = config.fairness_excluded
    return FairShares(
        clients={(f.framework, f.role): f for f in targets},
        frameworks={
            fw: total(items).dominant_share(cluster, excluded) for fw, items in by_framework.items()
        },
        roles={
            name: total(items).dominant_share(cluster, excluded) / weights[name]
            for name, items in by_role.items()
        },
    )
