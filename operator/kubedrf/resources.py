"""Exact resource arithmetic over Kubernetes quantities.

Amounts are integers in canonical units: millicores for ``cpu``, bytes or counts for
everything else. Parsing goes through the Kubernetes client's own quantity parser, and
rounding follows Kubernetes (a fraction of a unit rounds up, as ``MilliValue``/``Value`` do),
so sums and differences never drift.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation

from kubernetes.utils.quantity import parse_quantity as _parse_quantity

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

#: The unprefixed names a node offers and a Pod requests; all others are ``hugepages-<size>``
#: or domain-qualified.
STANDARD_RESOURCES = (CPU, MEMORY, EPHEMERAL_STORAGE, PODS)
#: Longest resource name: Kubernetes' qualified-name prefix bound, applied to the whole name.
MAX_RESOURCE_NAME = 253
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#: Dot-joined DNS labels, unanchored: a resource's domain, and the shape of a role name.
DNS_SUBDOMAIN = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
#: The resource-name grammar, in the RE2 subset Python and CEL's ``matches()`` share.
RESOURCE_NAME_PATTERN = (
    "^(" + "|".join(STANDARD_RESOURCES) + r"|hugepages-[0-9]+([KMGTPE]i|[kMGTPE])?"
    rf"|{DNS_SUBDOMAIN}/[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?)$"
)
#: Domains Kubernetes keeps for its own resources (``IsNativeResource``).
RESERVED_RESOURCE_DOMAIN_PATTERN = r"^([^/]*\.)?kubernetes\.io/"
#: Quota's spelling of a resource (``requests.cpu``), which no node offers.
QUOTA_PREFIX = "requests."
RESOURCE_NAME_RULE = (
    "use cpu, memory, ephemeral-storage, pods, hugepages-<size>, or an extended resource"
    " <domain>/<name> such as nvidia.com/gpu (outside kubernetes.io, not starting with"
    f" {QUOTA_PREFIX!r}, at most {MAX_RESOURCE_NAME} characters)"
)
_RESOURCE_NAME = re.compile(RESOURCE_NAME_PATTERN)
_RESERVED_DOMAIN = re.compile(RESERVED_RESOURCE_DOMAIN_PATTERN)

#: Resources whose amounts are bytes; they are printed with binary suffixes.
BYTE_RESOURCES = frozenset({MEMORY, EPHEMERAL_STORAGE})

_BINARY_SUFFIXES = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20))
_BINARY_SUFFIXES_SMALL = (("Ki", 2**10),)


class QuantityError(ValueError):
    """A quantity that is malformed or negative; ``field`` names where it was found."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_quantity(value: object) -> Decimal:
    """The Kubernetes client's own parser, typed."""
    quantity: Decimal = _parse_quantity(value)  # type: ignore[no-untyped-call]
    return quantity


def unit_scale(name: str) -> int:
    """How many canonical units make one Kubernetes unit of ``name``."""
    return 1000 if name == CPU else 1


def resource_name_error(name: str) -> str | None:
    """Why ``name`` is not a resource a node can offer and a Pod request, or ``None``.

    Kubernetes' own rule (``IsStandardContainerResourceName`` and ``IsExtendedResourceName``),
    simplified: of the unprefixed names only the ones that can appear in both a node's
    allocatable and a Pod's requests (so not ``storage``, a volume's resource, nor quota names);
    a hugepages size is a whole number with a suffix rather than any quantity; and the whole
    name, not only its domain, is bounded to 253 characters.
    """
    if (
        len(name) > MAX_RESOURCE_NAME
        or not _RESOURCE_NAME.fullmatch(name)
        or name.startswith(QUOTA_PREFIX)
        or _RESERVED_DOMAIN.match(name)
    ):
        return f"resource name {name!r} is not valid: {RESOURCE_NAME_RULE}"
    return None


def is_byte_resource(name: str) -> bool:
    return name in BYTE_RESOURCES or name.startswith("hugepages-")


def is_gpu_resource(name: str) -> bool:
    """Extended resources that Mesos' GPU_RESOURCES capability guards (``*/gpu``)."""
    return name.endswith("/gpu")


def parse_amount(name: str, value: object, field: str | None = None) -> int:
    """Parse one quantity into canonical units, rejecting malformed and negative values."""
    where = field or name
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise QuantityError(
            where, f"must be a Kubernetes quantity such as '2' or '4Gi', got {value!r}"
        )
    try:
        quantity = parse_quantity(value)
    except (ValueError, InvalidOperation, TypeError):
        raise QuantityError(
            where, f"{value!r} is not a Kubernetes quantity (examples: '500m', '2', '4Gi')"
        ) from None
    if not quantity.is_finite():
        raise QuantityError(where, f"{value!r} is not a finite quantity")
    if quantity < 0:
        raise QuantityError(where, f"must not be negative, got {value!r}")
    amount: int = math.ceil(quantity * unit_scale(name))
    return amount


def format_amount(name: str, amount: int) -> str:
    """The shortest exact Kubernetes quantity for a canonical amount."""
    if name == CPU:
        return str(amount // 1000) if amount % 1000 == 0 else f"{amount}m"
    if is_byte_resource(name) and amount:
        for suffix, size in (*_BINARY_SUFFIXES, *_BINARY_SUFFIXES_SMALL):
            if amount % size == 0:
                return f"{amount // size}{suffix}"
    return str(amount)


def canonical_number(name: str, amount: int) -> int | float:
    """The number a report shows: cpu in cores, everything else in its base unit."""
    if name == CPU:
        return amount // 1000 if amount % 1000 == 0 else amount / 1000
    return amount


def zero_named(quantities: Mapping[str, object] | None, field: str = "resources") -> frozenset[str]:
    """Names a resource list sets to zero: a ``Resources`` drops them, but a limit of zero
    means "none of it", not "no limit"."""
    return frozenset(
        name
        for name, value in (quantities or {}).items()
        if parse_amount(name, value, f"{field}.{name}") == 0
    )


class Resources(Mapping[str, int]):
    """An immutable map from resource name to a non-zero canonical amount.

    Zero amounts are dropped, so two equal maps compare and hash equal. Amounts may go
    negative only through ``-``; use ``clamped()`` where a shortfall means "none left".
    """

    __slots__ = ("_amounts", "_hash", "_key")

    def __init__(self, amounts: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> None:
        items = amounts.items() if isinstance(amounts, Mapping) else amounts
        self._amounts: dict[str, int] = {name: int(v) for name, v in sorted(items) if v}
        self._hash: int | None = None
        self._key: tuple[tuple[str, int], ...] | None = None

    @classmethod
    def parse(cls, quantities: Mapping[str, object] | None, field: str = "resources") -> Resources:
        """Parse a Kubernetes resource list (``{"cpu": "1", "memory": "4Gi"}``)."""
        if not quantities:
            return EMPTY
        if not isinstance(quantities, Mapping):
            raise QuantityError(
                field, f"must be a map of resource name to quantity, got {quantities!r}"
            )
        amounts: dict[str, int] = {}
        for name, value in quantities.items():
            if not isinstance(name, str) or not name:
                raise QuantityError(
                    field, f"resource names must be non-empty strings, got {name!r}"
                )
            amounts[name] = parse_amount(name, value, f"{field}.{name}")
        return cls(amounts)

    def __getitem__(self, name: str) -> int:
        return self._amounts.get(name, 0)

    def __contains__(self, name: object) -> bool:
        return name in self._amounts

    def __iter__(self) -> Iterator[str]:
        return iter(self._amounts)

    def __len__(self) -> int:
        return len(self._amounts)

    @property
    def key(self) -> tuple[tuple[str, int], ...]:
        """The amounts as a tuple, equal for equal maps: a dictionary key that hashes and
        compares in C, for loops that look up thousands of equal but distinct maps."""
        if self._key is None:
            self._key = tuple(self._amounts.items())
        return self._key

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self.key)
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Resources):
            return self._amounts == other._amounts
        return NotImplemented

    def __repr__(self) -> str:
        return f"Resources({self.to_quantities()})"

    def __add__(self, other: Mapping[str, int]) -> Resources:
        amounts = dict(self._amounts)
        for name, value in other.items():
            amounts[name] = amounts.get(name, 0) + value
        return Resources(amounts)

    def __sub__(self, other: Mapping[str, int]) -> Resources:
        amounts = dict(self._amounts)
        for name, value in other.items():
            amounts[name] = amounts.get(name, 0) - value
        return Resources(amounts)

    def __mul__(self, factor: int) -> Resources:
        return Resources({name: value * factor for name, value in self._amounts.items()})

    def __le__(self, other: Mapping[str, int]) -> bool:
        """Whether every amount here fits within ``other``."""
        return all(value <= other.get(name, 0) for name, value in self._amounts.items())

    def clamped(self) -> Resources:
        """Negative amounts (a shortfall) become zero."""
        return Resources({name: value for name, value in self._amounts.items() if value > 0})

    def minimum(self, other: Mapping[str, int]) -> Resources:
        return Resources(
            {name: min(value, other.get(name, 0)) for name, value in self._amounts.items()}
        )

    def without(self, names: Iterable[str]) -> Resources:
        dropped = set(names)
        return Resources({n: v for n, v in self._amounts.items() if n not in dropped})

    def is_empty(self) -> bool:
        return not self._amounts

    def dominant_share(self, total: Mapping[str, int], excluded: Iterable[str] = ()) -> float:
        """Max over resources of amount/total, skipping ``excluded`` and absent totals."""
        skip = set(excluded)
        shares = [
            value / total[name]
            for name, value in self._amounts.items()
            if name not in skip and total.get(name, 0) > 0
        ]
        return max(shares, default=0.0)

    def to_quantities(self) -> dict[str, str]:
        """Kubernetes quantity strings, for the API and for people."""
        return {name: format_amount(name, value) for name, value in self._amounts.items()}

    def describe(self) -> str:
        """``cpu=16, memory=4Gi``: for messages people read."""
        return ", ".join(f"{k}={v}" for k, v in self.to_quantities().items())

    def to_canonical(self) -> dict[str, int | float]:
        """Numbers in canonical units (cpu in cores), for JSON reports."""
        return {name: canonical_number(name, value) for name, value in self._amounts.items()}


EMPTY = Resources()


def total(resources: Iterable[Mapping[str, int]]) -> Resources:
    """The sum of many resource maps."""
    amounts: dict[str, int] = {}
    for item in resources:
        for name, value in item.items():
            amounts[name] = amounts.get(name, 0) + value
    return Resources(amounts)
