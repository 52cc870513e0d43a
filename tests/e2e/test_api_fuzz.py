"""Random kubedrf objects against the real apiserver and a running master.

``test_api.py`` lists the hostile objects we thought of; here hypothesis makes the ones we did
not: huge and malformed quantities, unicode and very long names, extreme weights, references to
roles, nodes and frameworks that do not exist, and values of the wrong type. Each object must
either be refused with a message that names the field at fault, or be accepted and then
handled by the master: its allocation loop keeps cycling, a canary framework keeps getting
offers (no tenant's object halts allocation for everyone), no node is overcommitted, and the
master logs no traceback.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kubernetes import client

from kubedrf.api import API_VERSION

from .conftest import MasterFactory
from .support import GROUP, VERSION, Frameworks, MasterProcess, NodePool, assert_no_overcommit
from .support import wait_for as poll
from .test_api import NAMESPACED, Manifest

pytestmark = pytest.mark.e2e

PLURALS = {
    "Framework": "frameworks",
    "Role": "roles",
    "Quota": "quotas",
    "Reservation": "reservations",
    "Offer": "offers",
}
CANARY = "canary"
#: A field path as the apiserver names one, as the subject of an error (``spec.weight: ...``,
#: ``spec: Invalid value``) or quoted (``unknown field "spec.bogus"``).
FIELD = re.compile(r"\b(?:spec|metadata)(?:\.[\w\-/]+|\[[^\]]*\])*(?=:|\")")
#: Stands for "a fresh valid name": replaced by a unique one when the object is sent.
FRESH = "<fresh>"

_serial = itertools.count()

# -- strategies ---------------------------------------------------------------------------------

wrong_type = st.one_of(
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
long_text = st.text(min_size=0, max_size=300)
quantities = st.one_of(
    st.sampled_from(
        [
            "1",
            "500m",
            "4Gi",
            "0",
            "-1",
            "1e18",
            "9223372036854775807",
            "99999999999999999999999999Ei",
            "0.0001m",
            "1.5",
            "NaN",
            "",
            "lots",
            "١٢",
        ]
    ),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    wrong_type,
)
resource_names = st.one_of(
    st.sampled_from(
        [
            "cpu",
            "memory",
            "ephemeral-storage",
            "pods",
            "nvidia.com/gpu",
            "hugepages-2Mi",
            "",
            "CPU",
            "memroy",
            "kubernetes.io/gpu",
            "requests.cpu",
        ]
    ),
    long_text,
)
resource_maps = st.one_of(st.dictionaries(resource_names, quantities, max_size=4), wrong_type)
#: Roles that exist for the canary, roles that do not, and names no role may have.
role_refs = st.one_of(
    st.sampled_from(["default", "fz", "fz.child", "ghost", "ghost.deeper.still", "Eng..X_"]),
    st.just("r" * 253),
    long_text,
    wrong_type,
)
seconds = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 31536000, 31536001, 1e12]),
    wrong_type,
)
object_names = st.one_of(
    st.just(FRESH),
    st.just(FRESH),
    st.sampled_from(["r" * 64, "f" * 63, "роль", "Eng..X_", "a" * 253, "fz.child", ""]),
    long_text,
)
#: Nodes that do not exist: an offer on a node of the pool would be a real promise.
node_refs = st.one_of(st.sampled_from(["ghost-node", "n" * 300, "узел"]), long_text, wrong_type)
times = st.one_of(
    st.sampled_from(["2030-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]),
    long_text,
    wrong_type,
)
unknown = {"bogus": st.integers()}


def specs(
    base: dict[str, Any], required: dict[str, Any], optional: dict[str, Any]
) -> st.SearchStrategy[Any]:
    """Half the time a valid ``base`` with one field drawn at random (so that many objects get
    past the apiserver and reach the master); otherwise a spec with its required fields
    usually present, some optional ones, now and then an unknown field, or no map at all."""
    hostile = {**required, **optional}
    near_valid = st.sampled_from(sorted(hostile)).flatmap(
        lambda key: hostile[key].map(lambda value: {**base, key: value})
    )
    fields = st.fixed_dictionaries(
        {}, optional={**required, **optional, **unknown}
    ) | st.fixed_dictionaries(required, optional={**optional, **unknown})
    return st.one_of(near_valid, fields, near_valid, wrong_type)


demand = st.lists(
    st.fixed_dictionaries(
        {"count": seconds, "resources": resource_maps}, optional={"name": long_text}
    ),
    max_size=3,
)
framework_specs = specs(
    {"roles": ["fz"], "demand": [{"count": 2, "resources": {"cpu": "1"}}]},
    {"roles": st.lists(role_refs, max_size=18) | wrong_type},
    {
        "demand": demand | wrong_type,
        "offerFilters": st.fixed_dictionaries(
            {}, optional={"refuseSeconds": seconds, "minAllocatable": resource_maps}
        )
        | wrong_type,
        "suppressed": st.booleans() | wrong_type,
        "suppressedRoles": st.lists(role_refs, max_size=3) | wrong_type,
        "capabilities": st.lists(st.sampled_from(["GPU_RESOURCES", "ROOT"]) | long_text)
        | wrong_type,
        "failoverTimeout": seconds,
    },
)
role_specs = specs(
    {"weight": 2},
    {},
    {
        "weight": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.sampled_from([5e-324, 1e308, 0.001, 1000, 0, -1]),
            st.integers(),
            long_text,
            wrong_type,
        ),
        "namespaces": st.lists(long_text, max_size=3) | wrong_type,
    },
)
quota_specs = specs(
    {"role": "fz", "guarantee": {"cpu": "1"}, "limit": {"cpu": "2"}},
    {"role": role_refs},
    {"guarantee": resource_maps, "limit": resource_maps},
)
reservation_specs = specs(
    {"role": "fz", "nodeName": "ghost-node", "resources": {"cpu": "1"}},
    {"role": role_refs, "nodeName": node_refs, "resources": resource_maps},
    {},
)
offer_specs = specs(
    {
        "framework": CANARY,
        "role": "fz",
        "nodeName": "ghost-node",
        "resources": {"cpu": "1"},
        "expiresAt": "2030-01-01T00:00:00Z",
    },
    {
        "framework": st.sampled_from([CANARY, "ghost"]) | long_text | wrong_type,
        "role": role_refs,
        "nodeName": node_refs,
        "resources": resource_maps,
        "expiresAt": times,
    },
    {
        "response": st.fixed_dictionaries(
            {"action": st.sampled_from(["Accept", "Decline", "Maybe"]) | wrong_type},
            optional={
                "tasks": st.lists(long_text, max_size=3) | wrong_type,
                "refuseSeconds": seconds,
            },
        )
        | wrong_type
    },
)
bodies = st.lists(
    st.tuples(
        st.sampled_from(sorted(PLURALS)),
        object_names,
        st.just(None),
    ).flatmap(
        lambda head: st.tuples(
            st.just(head[0]),
            st.just(head[1]),
            {
                "Framework": framework_specs,
                "Role": role_specs,
                "Quota": quota_specs,
                "Reservation": reservation_specs,
                "Offer": offer_specs,
            }[head[0]],
        )
    ),
    min_size=1,
    max_size=5,
)

# -- the run ------------------------------------------------------------------------------------


@dataclass
class Sender:
    """Sends generated objects, judges refusals, and removes what was accepted."""

    api: client.ApiClient
    namespace: str
    made: list[tuple[str, str]] = field(default_factory=list)

    def send(self, kind: str, name: str, spec: Any) -> Manifest | None:
        """The object as created, or ``None`` when the apiserver refused it (judged here)."""
        if name == FRESH:
            name = f"fz-{next(_serial)}" if kind != "Role" else f"fz.n{next(_serial)}"
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        custom: Any = client.CustomObjectsApi(self.api)
        try:
            if kind in NAMESPACED:
                made: Manifest = custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURALS[kind], body
                )
            else:
                made = custom.create_cluster_custom_object(GROUP, VERSION, PLURALS[kind], body)
        except client.exceptions.ApiException as error:
            if error.status == 409:  # the same name twice in one example
                return None
            assert error.status in (400, 422), f"{kind} {name!r} got {error.status}: {error.body}"
            named = FIELD.findall(str(error.body))
            assert named, f"{kind} {name!r} refused without naming a field:\n{error.body}"
            return None
        self.made.append((kind, name))
        return made

    def cleanup(self) -> None:
        custom: Any = client.CustomObjectsApi(self.api)
        for kind, name in self.made:
            try:
                if kind in NAMESPACED:
                    custom.delete_namespaced_custom_object(
                        GROUP, VERSION, self.namespace, PLURALS[kind], name
                    )
                else:
                    custom.delete_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name)
            except client.exceptions.ApiException as error:
                assert error.status == 404, error.body
        self.made.clear()


def cycles(master: MasterProcess) -> float:
    return master.metric("kubedrf_allocator_allocation_runs_total") or 0.0


def assert_master_handles_it(
    master: MasterProcess, frameworks: Frameworks, pool: NodePool, ran: float, made_at: float
) -> None:
    """Two whole cycles ran after the objects were made (``ran`` cycles had run before), the
    canary got an offer made after them, nothing is overcommitted, and the master has neither
    exited nor logged a traceback."""
    assert master.process is not None and master.process.poll() is None, master.tail()
    poll(lambda: cycles(master) >= ran + 2, "two allocation cycles", timeout=20)
    # creationTimestamp has whole seconds: an offer stamped in the second the objects were
    # made counts, and the cycles above already saw them.
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(made_at))
    poll(
        lambda: any(o["metadata"]["creationTimestamp"] >= since for o in frameworks.offers(CANARY)),
        "an offer to the canary made after the objects",
        timeout=20,
    )
    assert_no_overcommit(frameworks.custom.api_client, pool.names)
    log = master.log.read_text(errors="replace")
    assert "Traceback" not in log, master.tail(80)


@pytest.fixture
def running(
    crds: None, start_master: MasterFactory, pool: NodePool, frameworks: Frameworks
) -> Iterator[MasterProcess]:
    """A master over two nodes, with a canary framework that always wants one more task."""
    pool.add(2)
    frameworks.create(CANARY, tasks={"cpu": "1", "memory": "1Gi"}, count=1000)
    master = start_master(**{"offer-timeout": "1s"})
    frameworks.wait_offers(CANARY)
    yield master


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(objects=bodies)
def test_random_objects_are_refused_naming_the_field_or_handled_by_the_master(
    running: MasterProcess,
    frameworks: Frameworks,
    pool: NodePool,
    objects: list[tuple[str, str, Any]],
) -> None:
    sender = Sender(frameworks.custom.api_client, frameworks.namespace)
    try:
        ran, made_at = cycles(running), time.time()
        accepted = [sender.send(kind, name, spec) for kind, name, spec in objects]
        event(f"{sum(made is not None for made in accepted)} of {len(objects)} accepted")
        if any(made is not None for made in accepted):
            assert_master_handles_it(running, frameworks, pool, ran, made_at)
    finally:
        sender.cleanup()
