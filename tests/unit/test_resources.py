"""Exact resource arithmetic over Kubernetes quantities."""

from __future__ import annotations

import pytest

from kubedrf.resources import QuantityError, Resources, format_amount, parse_amount


@pytest.mark.parametrize(
    ("name", "quantity", "amount"),
    [
        ("cpu", "1", 1000),
        ("cpu", "500m", 500),
        ("cpu", 2.5, 2500),
        ("cpu", "0.0001", 1),  # rounds up like Kubernetes' MilliValue
        ("memory", "4Gi", 4 * 2**30),
        ("memory", "1.5Gi", 1536 * 2**20),
        ("memory", "100M", 100_000_000),
        ("nvidia.com/gpu", "2", 2),
        ("ephemeral-storage", "1Ki", 1024),
    ],
)
def test_parse_amount_uses_canonical_integer_units(name: str, quantity: str, amount: int) -> None:
    assert parse_amount(name, quantity) == amount


@pytest.mark.parametrize("bad", ["-1", "abc", "1Gx", "", True, None, [1]])
def test_parse_amount_rejects_bad_quantities_naming_the_field(bad: object) -> None:
    with pytest.raises(QuantityError) as caught:
        Resources.parse({"cpu": bad}, "spec.resources")
    assert caught.value.field == "spec.resources.cpu"


def test_arithmetic_is_exact_where_floats_drift() -> None:
    tenth = Resources.parse({"cpu": "100m"})
    summed = Resources()
    for _ in range(10):
        summed += tenth
    assert summed == Resources.parse({"cpu": "1"})
    assert summed - tenth * 10 == Resources()


def test_zero_amounts_vanish_and_comparison_is_componentwise() -> None:
    a = Resources.parse({"cpu": "1", "memory": "0"})
    assert a == Resources({"cpu": 1000}) and "memory" not in a
    assert Resources.parse({"cpu": "1"}) <= Resources.parse({"cpu": "2", "memory": "1Gi"})
    assert not Resources.parse({"cpu": "1", "memory": "1"}) <= Resources.parse({"cpu": "2"})
    assert (Resources({"cpu": 1}) - Resources({"cpu": 3})).clamped().is_empty()


@pytest.mark.parametrize(
    ("name", "amount", "text"),
    [
        ("cpu", 1500, "1500m"),
        ("cpu", 3000, "3"),
        ("memory", 12 * 2**30, "12Gi"),
        ("memory", 1000, "1000"),
    ],
)
def test_format_round_trips(name: str, amount: int, text: str) -> None:
    assert format_amount(name, amount) == text
    assert parse_amount(name, text) == amount


def test_dominant_share_skips_excluded_and_absent_resources() -> None:
    total = Resources.parse({"cpu": "9", "memory": "18Gi", "pods": "10"})
    used = Resources.parse({"cpu": "3", "memory": "12Gi", "pods": "9", "example.com/foo": "5"})
    assert used.dominant_share(total) == pytest.approx(0.9)
    assert used.dominant_share(total, excluded={"pods"}) == pytest.approx(2 / 3)
    assert used.to_canonical() == {"cpu": 3, "example.com/foo": 5, "memory": 12 * 2**30, "pods": 9}
