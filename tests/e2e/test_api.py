"""The kubedrf API on a real apiserver: the CRDs install, examples apply, bad objects are refused.

Each refusal must come from the apiserver (schema, CEL rule or strict field validation) and
name the field at fault, so that a user reading kubectl's output knows what to fix. Every bad
object is a valid one with one thing changed, and ``test_the_valid_bases_are_accepted`` shows
the valid ones pass: each refusal is owed to that one change.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubedrf.api import API_VERSION
from kubedrf.api.crdgen import KINDS
from kubedrf.devcluster import cluster as devcluster

from .support import install_crds

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: YAML under examples/ that holds no Kubernetes objects, and why; everything else must apply.
NOT_MANIFESTS = {
    EXAMPLES / "scenarios": "simulator scenarios, the input of `kubedrf simulate`",
}
#: A node name for objects that refer to one; the apiserver does not check that it exists.
NODE = "kwok-node-0"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Kubectl:
    """The pinned kubectl against the session's cluster, with a discovery cache of its own."""

    binary: Path
    kubeconfig: Path
    cache_dir: Path

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
        ]
        return subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """Run; insist on success with no warnings; return stdout."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
        assert "Warning" not in result.stderr, f"kubectl {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def try_apply(
        self, namespace: str, *objects: Manifest, dry_run: bool = False
    ) -> subprocess.CompletedProcess[str]:
        args = ["apply", "-f", "-", *(["--dry-run=server"] if dry_run else [])]
        return self.run(*args, stdin=stream(placed(namespace, objects)))

    def apply(self, namespace: str, *objects: Manifest, dry_run: bool = False) -> str:
        result = self.try_apply(namespace, *objects, dry_run=dry_run)
        assert result.returncode == 0 and not result.stderr, result.stderr
        return result.stdout

    def delete(self, namespace: str, *objects: Manifest) -> None:
        self.ok("delete", "--ignore-not-found", "-f", "-", stdin=stream(placed(namespace, objects)))


NAMESPACED = {kind.kind for kind in KINDS if kind.scope == "Namespaced"}


def placed(namespace: str, objects: tuple[Manifest, ...]) -> list[Manifest]:
    """The objects, the namespaced ones in ``namespace``."""
    return [
        {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        if obj["kind"] in NAMESPACED
        else obj
        for obj in objects
    ]


def stream(objects: list[Manifest]) -> str:
    """A YAML stream of JSON documents: exact types, and each object checked by the apiserver
    (kubectl validates a v1 List on the client instead, against its copy of the schema)."""
    return "\n---\n".join(json.dumps(obj) for obj in objects)


def target(obj: Manifest, namespace: str) -> list[str]:
    """kubectl arguments that name an object: kind, name and, if namespaced, namespace."""
    where = [f"--namespace={namespace}"] if obj["kind"] in NAMESPACED else []
    return [obj["kind"].lower(), obj["metadata"]["name"], *where]


@pytest.fixture(scope="module")
def kubectl(cluster: devcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl, once the CRDs in crds/ are applied and Established.

    They stay installed afterwards: they are what the chart installs, and deleting them would
    delete every kubedrf object that other test modules made.
    """
    install_crds(cluster)
    cache = tmp_path_factory.mktemp("kubectl-cache")
    return Kubectl(cluster.binaries["kubectl"], cluster.kubeconfig, cache)


@pytest.fixture(scope="module")
def ns(kubectl: Kubectl) -> Iterator[str]:
    """A namespace for this module's namespaced objects (none of them needs a ServiceAccount)."""
    name = f"api-{uuid.uuid4().hex[:8]}"
    kubectl.ok("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl.ok("delete", "namespace", name, "--wait=false")


@pytest.fixture
def made(kubectl: Kubectl, ns: str) -> Iterator[list[Manifest]]:
    """Objects a test creates for real; they are deleted when it ends."""
    objects: list[Manifest] = []
    try:
        yield objects
    finally:
        if objects:
            kubectl.delete(ns, *objects)


# Builders: a valid object of each kind; ``spec`` overrides fields of its spec, ``drop`` removes
# some. Names are unique so that objects made for real never collide between tests.


def _unique(kind: str) -> str:
    return f"{kind.lower()}-{uuid.uuid4().hex[:6]}"


def _build(kind: str, base: Manifest, spec: Manifest | None, drop: tuple[str, ...]) -> Manifest:
    merged = {key: value for key, value in {**base, **(spec or {})}.items() if key not in drop}
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": _unique(kind)},
        "spec": merged,
    }


def framework(spec: Manifest | None = None, drop: tuple[str, ...] = ()) -> Manifest:
    base = {"roles": ["eng"], "demand": [{"count": 2, "resources": {"cpu": "1"}}]}
    return _build("Framework", base, spec, drop)


def offer(spec: Manifest | None = None, drop: tuple[str, ...] = ()) -> Manifest:
    base = {
        "framework": "a",
        "role": "eng",
        "nodeName": NODE,
        "resources": {"cpu": "3", "memory": "12Gi"},
        "expiresAt": "2030-01-01T00:00:00Z",
    }
    return _build("Offer", base, spec, drop)


def inverse_offer(spec: Manifest | None = None, drop: tuple[str, ...] = ()) -> Manifest:
    base = {
        "framework": "a",
        "role": "eng",
        "nodeName": NODE,
        "resources": {"cpu": "1"},
        "tasks": ["a-0"],
        "beneficiary": {"namespace": "other", "framework": "c", "role": "ops"},
        "deadline": "2030-01-01T00:00:00Z",
    }
    return _build("InverseOffer", base, spec, drop)


def role(spec: Manifest | None = None, drop: tuple[str, ...] = ()) -> Manifest:
    return _build("Role", {"weight": 2}, spec, drop)


def quota(spec: Manifest | None = None, drop: tuple[str, ...] = ()) -> Manifest:
    base = {"role": "eng", "guarantee": {"cpu": "4"}, "limit": {"cpu": "8"}}
    return _build("Quota", base, spec, drop)


def reservation(spec: Manifest | None = None, drop: tuple[str, ...] = ()) -> Manifest:
    base = {"role": "eng", "nodeName": NODE, "resources": {"cpu": "2", "memory": "1Gi"}}
    return _build("Reservation", base, spec, drop)


def names(kubectl: Kubectl, *args: str) -> set[str]:
    return set(kubectl.ok("get", *args, "-o", "name").split())


def object_name(obj: Manifest) -> str:
    return f"{obj['kind'].lower()}.kubedrf.io/{obj['metadata']['name']}"


# The CRDs and the example manifests.


def example_files() -> list[Path]:
    found = sorted({*EXAMPLES.rglob("*.yaml"), *EXAMPLES.rglob("*.yml")})
    return [path for path in found if not any(path.is_relative_to(d) for d in NOT_MANIFESTS)]


def documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_excluded_yaml_really_is_not_kubernetes_objects() -> None:
    """An exclusion must stay honest: nothing with apiVersion and kind hides in it."""
    assert example_files(), "no example manifests left to apply"
    for directory in NOT_MANIFESTS:
        files = sorted(directory.rglob("*.y*ml"))
        assert files, f"{_relative(directory)} is excluded but holds no YAML"
        for path in files:
            for doc in documents(path):
                assert not {"apiVersion", "kind"} <= doc.keys(), _relative(path)


@pytest.mark.parametrize("path", example_files(), ids=_relative)
def test_example_is_made_of_kubernetes_objects_the_models_accept(path: Path) -> None:
    models = {kind.kind: kind.spec for kind in KINDS}
    docs = documents(path)
    assert docs, f"{_relative(path)} is empty"
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), (
            f"{_relative(path)} holds YAML that is not a Kubernetes object; if that is meant,"
            " list its directory in NOT_MANIFESTS with the reason"
        )
        if doc["apiVersion"] == API_VERSION:
            models[doc["kind"]].model_validate(doc.get("spec") or {})


@pytest.mark.parametrize("path", example_files(), ids=_relative)
def test_example_applies_cleanly(kubectl: Kubectl, path: Path) -> None:
    """Applied for real (a dry run cannot create a namespace that later objects live in), then
    deleted again, namespaces included."""
    docs = documents(path)
    try:
        applied = kubectl.ok("apply", "-f", str(path)).splitlines()
        assert len(applied) == len(docs), applied
        assert all(line.endswith(" created") for line in applied), f"not a clean apply: {applied}"
        assert len(kubectl.ok("get", "-f", str(path), "-o", "name").split()) == len(docs)
    finally:
        # Awaited (a namespace takes seconds to go): later tests may apply the same example.
        kubectl.ok("delete", "--ignore-not-found", "--timeout=120s", "-f", str(path))


def test_kubedrf_category_lists_every_kind(kubectl: Kubectl, ns: str, made: list[Manifest]) -> None:
    objects = [framework(), offer(), inverse_offer(), role(), quota(), reservation()]
    made += objects
    kubectl.apply(ns, *objects)
    listed = names(kubectl, "kubedrf", "--all-namespaces")
    assert {object_name(obj) for obj in objects} <= listed
    assert {name.split("/")[0] for name in listed} == {f"{k.singular}.kubedrf.io" for k in KINDS}


def test_short_names_reach_their_kind(kubectl: Kubectl, ns: str, made: list[Manifest]) -> None:
    every = (framework(), offer(), inverse_offer(), role(), quota(), reservation())
    objects = {obj["kind"]: obj for obj in every}
    made += objects.values()
    kubectl.apply(ns, *objects.values())
    expected = {
        "Framework": "fw",
        "Offer": "ofr",
        "InverseOffer": "iofr",
        "Role": "drfrole",
        "Quota": "drfquota",
        "Reservation": "drfres",
    }
    assert {kind.kind: kind.short_names for kind in KINDS} == {k: (s,) for k, s in expected.items()}
    for kind, short in expected.items():
        assert object_name(objects[kind]) in names(kubectl, short, "--all-namespaces"), short


def test_roles_still_mean_rbac_roles(kubectl: Kubectl, ns: str, made: list[Manifest]) -> None:
    drf_role = role()
    made.append(drf_role)
    kubectl.apply(ns, drf_role)
    mine = object_name(drf_role)
    for spelling in ("roles", "role"):
        rbac = names(kubectl, spelling, "--all-namespaces")
        assert rbac, "the control plane's bootstrap RBAC Roles are missing"
        assert all(name.startswith("role.rbac.authorization.k8s.io/") for name in rbac), rbac
    assert mine in names(kubectl, "roles.kubedrf.io")
    assert mine in names(kubectl, "drfrole")


def _table(kubectl: Kubectl, *args: str) -> tuple[list[str], dict[str, list[str]]]:
    """kubectl's table: the header's column names and each row's cells, keyed by NAME."""
    header, *rows = kubectl.ok("get", *args).splitlines()
    cells = [row.split() for row in rows]
    return header.split(), {row[0]: row for row in cells}


def _set_status(kubectl: Kubectl, ns: str, obj: Manifest, status: Manifest) -> None:
    patch = json.dumps({"status": status})
    kubectl.ok("patch", *target(obj, ns), "--subresource=status", "--type=merge", "-p", patch)


def test_offer_columns(kubectl: Kubectl, ns: str, made: list[Manifest]) -> None:
    made_offer = offer()
    made.append(made_offer)
    kubectl.apply(ns, made_offer)
    _set_status(kubectl, ns, made_offer, {"phase": "Offered"})
    name = made_offer["metadata"]["name"]
    header, rows = _table(kubectl, "offers", f"--namespace={ns}")
    assert header == ["NAME", "FRAMEWORK", "ROLE", "NODE", "CPU", "MEMORY", "PHASE", "AGE"]
    assert rows[name][:-1] == [name, "a", "eng", NODE, "3", "12Gi", "Offered"]
    wide, _ = _table(kubectl, "offers", f"--namespace={ns}", "--output=wide")
    assert wide[-2:] == ["EXPIRES", "AGE"]


def test_framework_columns(kubectl: Kubectl, ns: str, made: list[Manifest]) -> None:
    made_framework = framework({"roles": ["eng", "ops"]})
    made.append(made_framework)
    kubectl.apply(ns, made_framework)
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Registered",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    status = {
        "roleList": "eng,ops",
        "dominantShare": 0.5,
        "tasks": 3,
        "outstandingOffers": 1,
        "conditions": [ready],
    }
    _set_status(kubectl, ns, made_framework, status)
    name = made_framework["metadata"]["name"]
    header, rows = _table(kubectl, "frameworks", f"--namespace={ns}")
    assert header == ["NAME", "ROLES", "SHARE", "TASKS", "OFFERS", "READY", "CONNECTED", "AGE"]
    # Connected is empty (no such condition yet), so the row has no cell for it.
    assert rows[name][:-1] == [name, "eng,ops", "0.5", "3", "1", "True"]


# Objects the apiserver must refuse, each naming the field at fault.


@dataclass(frozen=True)
class Refused:
    """An object the apiserver must refuse; its message must name ``field`` and say ``says``."""

    case: str
    obj: Manifest
    field: str
    says: str


def _assert_refused(result: subprocess.CompletedProcess[str], field: str, says: str) -> None:
    stderr = result.stderr
    assert result.returncode == 1, f"accepted (exit {result.returncode}):\n{result.stdout}"
    # 422 reads 'The Quota "q" is invalid: <field>: ...'; a strict decoding error is a 400.
    assert " is invalid: " in stderr or "Error from server (BadRequest)" in stderr, stderr
    # The field is the subject of an error ("spec.weight: Invalid value ...") or quoted in one
    # ('unknown field "spec.rolez"'): naming a parent, or a child in passing, does not count.
    assert f"{field}:" in stderr or f'"{field}"' in stderr, f"{field} not named in:\n{stderr}"
    assert says in stderr, f"{says!r} not in:\n{stderr}"


TOO_MANY_ROLES = [f"r{index}" for index in range(17)]
WEIGHT_RANGE = "must be between 0.001 and 1000"
#: What a bad resource name is refused with, whichever map it is in.
BAD_RESOURCE = "is not valid: use cpu, memory, ephemeral-storage, pods, hugepages-<size>"
#: What a bad role name is refused with, whichever field holds it.
BAD_ROLE = "is not valid: lowercase letters, digits and '-' in dot-separated parts"


def named(obj: Manifest, name: str) -> Manifest:
    return {**obj, "metadata": {**obj["metadata"], "name": name}}


# One hostile object must not be accepted: each of these once halted every allocation cycle,
# crashed a framework, or limited nothing.
HOSTILE = [
    Refused(
        "demand for a resource named nothing",
        framework({"demand": [{"count": 1, "resources": {"": "1"}}]}),
        "spec.demand[0].resources",
        f"resource name '' {BAD_RESOURCE}",
    ),
    Refused(
        "quota limit on a misspelt resource",
        quota({"limit": {"cpu": "8", "memroy": "1Gi"}}),
        "spec.limit",
        f"resource name 'memroy' {BAD_RESOURCE}",
    ),
    Refused(
        "quota guarantee of a quota-style name",
        quota({"guarantee": {"requests.cpu": "1"}}),
        "spec.guarantee",
        f"resource name 'requests.cpu' {BAD_RESOURCE}",
    ),
    Refused(
        "minAllocatable of a resource in the kubernetes.io domain",
        framework({"offerFilters": {"minAllocatable": {"kubernetes.io/gpu": "1"}}}),
        "spec.offerFilters.minAllocatable",
        f"resource name 'kubernetes.io/gpu' {BAD_RESOURCE}",
    ),
    Refused(
        "reservation of an unqualified extended resource",
        reservation({"resources": {"gpu": "1"}}),
        "spec.resources",
        f"resource name 'gpu' {BAD_RESOURCE}",
    ),
    Refused(
        "offer of a capitalised resource",
        offer({"resources": {"CPU": "1"}}),
        "spec.resources",
        f"resource name 'CPU' {BAD_RESOURCE}",
    ),
    Refused(
        "decline for 1e12 seconds",
        offer({"response": {"action": "Decline", "refuseSeconds": 1e12}}),
        "spec.response.refuseSeconds",
        "should be less than or equal to",
    ),
    Refused(
        "refuseSeconds past a year",
        framework({"offerFilters": {"refuseSeconds": 31536001}}),
        "spec.offerFilters.refuseSeconds",
        "should be less than or equal to",
    ),
    Refused("role weight 5e-324", role({"weight": 5e-324}), "spec.weight", WEIGHT_RANGE),
    Refused("role weight 1e6", role({"weight": 1e6}), "spec.weight", WEIGHT_RANGE),
    Refused(
        "role named 64 characters",
        named(role(), "r" * 64),
        "metadata.name",
        f"role name '{'r' * 64}' {BAD_ROLE}",
    ),
    Refused(
        "framework named 64 characters",
        named(framework(), "f" * 64),
        "metadata.name",
        "must be at most 63 characters",
    ),
    Refused(
        "framework role in Cyrillic",
        framework({"roles": ["eng", "роль"]}),
        "spec.roles[1]",
        BAD_ROLE,
    ),
    Refused(
        "suppressed role with an empty part",
        framework({"roles": ["eng", "eng..x"], "suppressedRoles": ["eng..x"]}),
        "spec.suppressedRoles[0]",
        f"role name 'eng..x' {BAD_ROLE}",
    ),
    Refused("quota role with a space", quota({"role": "Bad Role!"}), "spec.role", BAD_ROLE),
    Refused(
        "reservation role of 253 characters",
        reservation({"role": "r" * 253}),
        "spec.role",
        "may not be more than 63",
    ),
    Refused(
        "offer role with capitals and an underscore",
        offer({"role": "Eng.X_"}),
        "spec.role",
        f"role name 'Eng.X_' {BAD_ROLE}",
    ),
]

REFUSED = [
    Refused(
        "quota limit below guarantee",
        quota({"guarantee": {"cpu": "4", "memory": "1Gi"}, "limit": {"cpu": 2, "memory": "2Gi"}}),
        "spec.limit",
        "spec.limit.cpu (2) must be at least spec.guarantee.cpu (4)",
    ),
    Refused(
        "negative quantity, string",
        quota({"guarantee": {"cpu": "-1"}}),
        "spec.guarantee.cpu",
        "should match",
    ),
    Refused(
        "negative quantity, integer",
        quota({"guarantee": {"cpu": -1}}),
        "spec.guarantee.cpu",
        "should be greater than or equal to 0",
    ),
    Refused(
        "negative minAllocatable, integer",
        framework({"offerFilters": {"minAllocatable": {"memory": -5}}}),
        "spec.offerFilters.minAllocatable.memory",
        "should be greater than or equal to 0",
    ),
    Refused(
        "malformed quantity",
        quota({"limit": {"cpu": "8", "memory": "lots"}}),
        "spec.limit.memory",
        'Invalid value: "lots"',
    ),
    Refused("role weight 0", role({"weight": 0}), "spec.weight", WEIGHT_RANGE),
    Refused("role weight negative", role({"weight": -1.5}), "spec.weight", WEIGHT_RANGE),
    Refused(
        "refuseSeconds below 0",
        framework({"offerFilters": {"refuseSeconds": -1}}),
        "spec.offerFilters.refuseSeconds",
        "should be greater than or equal to 0",
    ),
    Refused(
        "unknown capability",
        framework({"capabilities": ["GPU_RESOURCES", "ROOT"]}),
        "spec.capabilities[1]",
        'Unsupported value: "ROOT"',
    ),
    Refused(
        "suppressedRoles names a role not in roles",
        framework({"roles": ["eng"], "suppressedRoles": ["eng", "ghost"]}),
        "spec.suppressedRoles",
        "must name roles listed in spec.roles, not ghost",
    ),
    Refused(
        "unknown field",
        framework({"refuseSeconds": 5}),
        "spec.refuseSeconds",
        "strict decoding error: unknown field",
    ),
    Refused(
        "demand count below 0",
        framework({"demand": [{"count": -1, "resources": {"cpu": "1"}}]}),
        "spec.demand[0].count",
        "should be greater than or equal to 0",
    ),
    Refused(
        "demand with empty resources",
        framework({"demand": [{"count": 1, "resources": {}}]}),
        "spec.demand[0].resources",
        "should have at least 1 properties",
    ),
    Refused(
        "demand with a zero quantity",
        framework({"demand": [{"count": 1, "resources": {"cpu": "1", "memory": "0"}}]}),
        "spec.demand[0].resources[memory]",
        "must be greater than zero",
    ),
    Refused(
        "reservation of zero",
        reservation({"resources": {"cpu": 0}}),
        "spec.resources[cpu]",
        "must be greater than zero",
    ),
    Refused(
        "reservation of nothing",
        reservation({"resources": {}}),
        "spec.resources",
        "should have at least 1 properties",
    ),
    Refused(
        "reservation without a node",
        reservation(drop=("nodeName",)),
        "spec.nodeName",
        "Required value",
    ),
    Refused(
        "too many roles",
        framework({"roles": TOO_MANY_ROLES}),
        "spec.roles",
        "must have at most 16 items",
    ),
    Refused("no roles", framework({"roles": []}), "spec.roles", "should have at least 1 items"),
    Refused(
        "demand without a count",
        framework({"demand": [{"resources": {"cpu": "1"}}]}),
        "spec.demand[0].count",
        "Required value",
    ),
    Refused(
        "negative demand quantity, integer",
        framework({"demand": [{"count": 1, "resources": {"cpu": -2}}]}),
        "spec.demand[0].resources.cpu",
        "should be greater than or equal to 0",
    ),
    Refused("quota without a role", quota(drop=("role",)), "spec.role", "Required value"),
    Refused("offer without expiry", offer(drop=("expiresAt",)), "spec.expiresAt", "Required"),
    Refused(
        "offer response neither Accept nor Decline",
        offer({"response": {"action": "Maybe"}}),
        "spec.response.action",
        'Unsupported value: "Maybe"',
    ),
    Refused(
        "decline with refuseSeconds below 0",
        offer({"response": {"action": "Decline", "refuseSeconds": -1}}),
        "spec.response.refuseSeconds",
        "should be greater than or equal to 0",
    ),
]


def test_the_valid_bases_are_accepted(kubectl: Kubectl, ns: str) -> None:
    bases = [framework(), offer(), role(), quota(), reservation()]
    kubectl.apply(ns, *bases, dry_run=True)


def test_the_edges_of_every_rule_are_accepted(kubectl: Kubectl, ns: str) -> None:
    """The hostile objects' counterparts: each rule's edge still passes."""
    edges = [
        named(role({"weight": 0.001}), "eng.web-2." + "r" * 52),
        role({"weight": 1000}),
        named(framework({"offerFilters": {"refuseSeconds": 31536000}}), "f" * 63),
        quota({"guarantee": {"nvidia.com/gpu": 1, "hugepages-2Mi": "4Mi"}, "limit": {}}),
        reservation({"role": "a-1.b-2", "resources": {"ephemeral-storage": "1Gi", "pods": 2}}),
        offer({"response": {"action": "Decline", "refuseSeconds": 31536000}}),
    ]
    kubectl.apply(ns, *edges, dry_run=True)


@pytest.mark.parametrize("bad", REFUSED + HOSTILE, ids=lambda bad: bad.case)
def test_apiserver_refuses_and_names_the_field(kubectl: Kubectl, ns: str, bad: Refused) -> None:
    result = kubectl.try_apply(ns, bad.obj, dry_run=True)
    _assert_refused(result, bad.field, bad.says)


# Changes the apiserver must refuse on objects that exist.


@dataclass(frozen=True)
class Change:
    """A merge patch to ``before`` (made for real) that the apiserver must refuse."""

    case: str
    before: Manifest
    patch: Manifest
    field: str
    says: str = "is immutable"


ACCEPTED = {"action": "Accept", "tasks": ["task-0"]}

CHANGES = [
    Change(
        "reservation moved to another node",
        reservation(),
        {"spec": {"nodeName": "kwok-node-1"}},
        "spec.nodeName",
    ),
    Change("offer for another framework", offer(), {"spec": {"framework": "b"}}, "spec.framework"),
    Change("offer under another role", offer(), {"spec": {"role": "ops"}}, "spec.role"),
    Change("offer moved to another node", offer(), {"spec": {"nodeName": "x"}}, "spec.nodeName"),
    Change(
        "offer of other resources",
        offer(),
        {"spec": {"resources": {"cpu": "4", "memory": "12Gi"}}},
        "spec.resources",
    ),
    Change(
        "offer expiring at another time",
        offer(),
        {"spec": {"expiresAt": "2031-01-01T00:00:00Z"}},
        "spec.expiresAt",
    ),
    Change(
        "offer sized for other tasks",
        offer({"sizedFor": [{"count": 1, "resources": {"cpu": "3", "memory": "12Gi"}}]}),
        {"spec": {"sizedFor": [{"count": 3, "resources": {"cpu": "1", "memory": "4Gi"}}]}},
        "spec.sizedFor",
    ),
    Change(
        "offer response changed once given",
        offer({"response": ACCEPTED}),
        {"spec": {"response": {"action": "Decline"}}},
        "spec.response",
        "spec.response cannot change once given",
    ),
    Change(
        "offer response withdrawn once given",
        offer({"response": ACCEPTED}),
        {"spec": {"response": None}},
        "spec.response",
        "spec.response cannot change once given",
    ),
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.case)
def test_apiserver_refuses_the_change_and_names_the_field(
    kubectl: Kubectl, ns: str, made: list[Manifest], change: Change
) -> None:
    made.append(change.before)
    kubectl.apply(ns, change.before)
    patch = json.dumps(change.patch)
    result = kubectl.run("patch", *target(change.before, ns), "--type=merge", "-p", patch)
    _assert_refused(result, change.field, change.says)


def test_what_may_change_does(kubectl: Kubectl, ns: str, made: list[Manifest]) -> None:
    """The counterpart of the refused changes: the same objects, patched where they may be."""
    made_offer, made_reservation = offer(), reservation()
    made += [made_offer, made_reservation]
    kubectl.apply(ns, made_offer, made_reservation)
    patches = [
        (made_offer, {"spec": {"response": ACCEPTED}}),
        (made_offer, {"spec": {"response": ACCEPTED}}),  # giving the same response again
        (made_reservation, {"spec": {"resources": {"cpu": "3"}, "role": "ops"}}),
    ]
    for obj, patch in patches:
        kubectl.ok("patch", *target(obj, ns), "--type=merge", "-p", json.dumps(patch))
    jsonpath = "-o=jsonpath={.spec.response.action} {.spec.resources.cpu}"
    assert kubectl.ok("get", *target(made_offer, ns), jsonpath) == "Accept 3"
    assert kubectl.ok("get", *target(made_reservation, ns), jsonpath) == " 3"
