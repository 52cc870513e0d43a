"""A live cluster as a ``kubedrf simulate`` scenario, so a what-if runs offline on real state.

The simulator starts from nothing held, so each framework's task count is what it holds plus
what it still wants: the run shows where DRF takes this demand, not the path the cluster
took. Capacity Pods outside any framework use is taken off each node's allocatable.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kubedrf.kubectl.explain import Analysis
from kubedrf.resources import Resources


def dump(analysis: Analysis, cycles: int = 30) -> tuple[dict[str, Any], list[str]]:
    """The scenario document, and warnings for what the format cannot say."""
    view, snapshot = analysis.view, analysis.snapshot
    warnings: list[str] = []
    usable = {node.name for node in snapshot.nodes}
    document: dict[str, Any] = {
        "allocationInterval": f"{view.settings.allocation_interval:g}s",
        "cycles": cycles,
        "mode": view.settings.mode,
        "fairnessExcludedResources": sorted(view.settings.fairness_excluded),
        "nodes": [
            {
                "name": node.name,
                "allocatable": (node.allocatable - node.external_usage).clamped().to_quantities(),
            }
            for node in snapshot.nodes
        ],
        "roles": [
            {"name": name, "weight": weight} for name, weight in sorted(analysis.weights.items())
        ],
        "quotas": [
            {
                "role": role,
                "guarantee": spec.guarantee_resources().to_quantities(),
                **({"limit": dict(spec.limit)} if spec.limit is not None else {}),
            }
            for role, spec in sorted(view.active_quotas.items())
        ],
        "reservations": [
            {"role": r.role, "nodeName": r.node, "resources": r.resources.to_quantities()}
            for r in snapshot.reservations
            if r.node in usable
        ],
        "frameworks": [],
        "events": [],
    }
    held_tasks: Counter[str] = Counter()
    for h in view.holdings:
        held_tasks[h.framework] += h.tasks
    shapes: dict[str, Counter[Resources]] = {}
    for pod in view.live_pods():
        if pod.framework_key:
            shapes.setdefault(pod.framework_key, Counter())[pod.requests] += 1
    for key, record in sorted(view.frameworks.items()):
        spec = record.spec
        if spec is None:
            warnings.append(f"framework {key}: left out, its spec is invalid ({record.error})")
            continue
        refused = view.refused.get(key, {})
        roles = [role for role in spec.roles if role not in refused]
        if not roles:
            warnings.append(f"framework {key}: left out, every role refuses its namespace")
            continue
        framework: dict[str, Any] = {
            "name": key,
            "roles": roles,
            "refuseSeconds": spec.offer_filters.refuse_seconds,
        }
        if spec.capabilities:
            framework["capabilities"] = list(spec.capabilities)
        if spec.offer_filters.min_allocatable is not None:
            framework["minAllocatable"] = dict(spec.offer_filters.min_allocatable)
        if spec.demand:
            first = spec.demand[0]
            if len(spec.demand) > 1:
                warnings.append(
                    f"framework {key}: a scenario framework has one task shape; kept the first"
                    f" of its {len(spec.demand)} (spec.demand[0])"
                )
            framework["tasks"] = {
                "count": held_tasks[key] + first.count,
                "resources": Resources.parse(first.resources).to_quantities(),
            }
        elif key in shapes:
            shape, _ = shapes[key].most_common(1)[0]
            framework["tasks"] = {"count": held_tasks[key], "resources": shape.to_quantities()}
        document["frameworks"].append(framework)
        suppressed = roles if spec.suppressed else [r for r in spec.suppressed_roles if r in roles]
        for role in suppressed:
            document["events"].append({"at": "0s", "suppress": {"framework": key, "role": role}})
    return document, warnings
