"""JSON-schema types without the holes of plain JSON Schema, and a walk for non-finite numbers.

Plain JSON Schema lets ``.nan`` and ``.inf`` through every ``number`` range
check (NaN compares false with everything), and accepts ``32.0`` as an
``integer``; the first gave silently wrong results (every head classed
``none``), the second a TypeError deep inside a job. Here ``number`` means a
finite int or float and ``integer`` means an int (booleans are neither).
"""

from __future__ import annotations

import math
from typing import Any

import jsonschema

from circuitsweep.config.schema_errors import where


def _is_number(_checker: Any, value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(_checker: Any, value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({"number": _is_number, "integer": _is_integer})

#: Draft 2020-12 with finite ``number`` and int-only ``integer``.
StrictValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)


def non_finite_values(value: Any, path: tuple[Any, ...] = ()) -> list[str]:
    """Every NaN or infinite float anywhere in ``value``, as ``key.path: nan`` lines."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where(path)}: {value!r} is not a finite number"]
    if isinstance(value, dict):
        return [line for key, child in value.items() for line in non_finite_values(child, (*path, key))]
    if isinstance(value, (list, tuple)):
        return [line for i, child in enumerate(value) for line in non_finite_values(child, (*path, i))]
    return []
