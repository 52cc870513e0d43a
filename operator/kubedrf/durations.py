"""Durations as people write them in YAML and flags: ``1s``, ``500ms``, ``2m``, or seconds."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ``ValueError`` naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration"
                " (examples: '1s', '500ms', '2m', or a number of seconds)"
            )
        seconds = float(match.group(1)) * _SCALE[match.group(2)]
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds
