"""``kubedrf simulate`` on random scenario files: a result, or clear one-line errors that name
a field; never a traceback. The files are near-valid scenarios with random damage (wrong
types, huge or odd quantities, unicode and long names, missing or unknown keys), since
wholly random YAML would only ever test the first check."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubedrf.cli.main import main

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["1e400", "99999999999999999999Ei", "-1", "0", "1.5Gi", "1m", "∞", "", " "]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
NAMES = st.one_of(
    st.sampled_from(["A", "B", "eng", "eng.web", "n1"]),
    st.text(min_size=0, max_size=300),
    st.just("é" * 400),
)
DURATIONS = st.one_of(st.sampled_from(["1s", "0s", "5m", "-1s", "1h", "x"]), ODD)


def quantity() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(["1", "4", "500m", "8Gi", "1e3", "1Ti"]), ODD)


def resources() -> st.SearchStrategy[Any]:
    keys = st.one_of(
        st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "pods"]), st.text(max_size=30)
    )
    return st.one_of(st.dictionaries(keys, quantity(), max_size=3), ODD)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    nodes = draw(
        st.lists(st.fixed_dictionaries({"name": NAMES, "allocatable": resources()}), max_size=3)
    )
    frameworks = draw(
        st.lists(
            st.fixed_dictionaries(
                {"name": NAMES},
                optional={
                    "roles": st.one_of(st.lists(NAMES, max_size=2), ODD),
                    "tasks": st.fixed_dictionaries(
                        {"count": st.one_of(st.integers(-5, 10**9), ODD), "resources": resources()},
                        optional={"duration": DURATIONS},
                    ),
                    "arrivesAt": DURATIONS,
                    "refuseSeconds": ODD,
                },
            ),
            max_size=3,
        )
    )
    scenario: dict[str, Any] = {"nodes": nodes, "frameworks": frameworks}
    extra = {
        "cycles": st.one_of(st.integers(-3, 30), ODD),
        "mode": st.one_of(st.sampled_from(["demand", "classic"]), ODD),
        "allocationInterval": DURATIONS,
        "roles": st.lists(
            st.fixed_dictionaries({"name": NAMES}, optional={"weight": ODD}), max_size=2
        ),
        "quotas": st.lists(
            st.fixed_dictionaries(
                {"role": NAMES}, optional={"guarantee": resources(), "limit": resources()}
            ),
            max_size=2,
        ),
        "reservations": st.lists(
            st.fixed_dictionaries({"role": NAMES, "nodeName": NAMES, "resources": resources()}),
            max_size=2,
        ),
        "events": st.lists(
            st.dictionaries(st.sampled_from(["at", "addNodes", "setTasks", "suppress"]), ODD),
            max_size=2,
        ),
        st.text(max_size=10): ODD,
    }
    for key, strategy in extra.items():
        if draw(st.booleans()):
            scenario[draw(key) if isinstance(key, st.SearchStrategy) else key] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:  # now and then, not a mapping at all
        return {"_": draw(ODD)}
    return scenario


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_a_random_scenario_gets_a_result_or_errors_naming_a_field_never_a_traceback(
    tmp_path_factory: Any, scenario: dict[str, Any]
) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "scenario.yaml"
    body = scenario["_"] if set(scenario) == {"_"} else scenario
    path.write_text(yaml.safe_dump(body, allow_unicode=True))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["simulate", str(path), "--json"])
    assert "Traceback" not in err.getvalue() + out.getvalue()
    if code == 0:
        assert out.getvalue().lstrip().startswith("{")
    else:
        assert code == 2, err.getvalue()
        lines = err.getvalue().splitlines()
        assert lines and all(line.startswith("error: ") for line in lines), err.getvalue()
