"""Readable messages for JSON-schema violations: the key's path and what was expected.

Shared by the config (``workflow/schemas/config.schema.yaml``) and the
primitive stimuli (``workflow/schemas/primitives.schema.yaml``).
"""

from __future__ import annotations

from typing import Any

import jsonschema

_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def where(path: Any) -> str:
    """A key path as ``a.b.0.c`` (``the top level`` when empty)."""
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "the top level"


def _plain_pattern(error: jsonschema.ValidationError) -> str:
    """What a ``pattern`` or ``minLength`` without a description asks for, without regex syntax where possible."""
    if error.validator == "minLength":
        return f"at least {error.validator_value} character{'s' if error.validator_value != 1 else ''} long"
    if error.validator == "pattern":
        return f"of the expected form (the regular expression {error.validator_value})"
    return f"allowed ({error.message})"


def describe(error: jsonschema.ValidationError) -> str:
    """One line naming the offending key, the value found and what the schema expects."""
    at = where(error.absolute_path)
    value = error.instance
    expected = error.schema.get("description") if isinstance(error.schema, dict) else None
    if "propertyNames" in error.schema_path:
        # the instance is a key of the mapping at ``at``: name it as the key the user wrote
        return f"{at}: the key {value!r} is not {expected or _plain_pattern(error)}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed))
        return f"{at}: unknown key {', '.join(map(repr, extra))}; expected one of {allowed}"
    if error.validator == "required":
        return f"{at}: {error.message}"
    if error.validator == "type":
        return f"{at}: expected {error.validator_value}, got {type(value).__name__} {value!r}"
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        return f"{at}: {value!r} is not allowed; expected one of {allowed}"
    if error.validator in _BOUNDS:
        return f"{at}: {value!r} is out of range; expected a value {_BOUNDS[error.validator]} {error.validator_value}"
    if error.validator in ("oneOf", "anyOf"):
        return f"{at}: {value!r} does not match any allowed form; expected {expected or 'one of the documented forms'}"
    if error.validator in ("minItems", "minProperties"):
        return f"{at}: has {len(value)} entries; expected at least {error.validator_value}" + (
            f" ({expected})" if expected else ""
        )
    if error.validator == "uniqueItems":
        seen: set[Any] = set()
        scalar = (str, int, float)
        repeated = sorted({v for v in value if isinstance(v, scalar) and (v in seen or seen.add(v))}, key=repr)
        return f"{at}: repeated entries {repeated}; expected distinct entries"
    if error.validator in ("pattern", "minLength"):
        return f"{at}: {value!r} is not {expected or _plain_pattern(error)}"
    return f"{at}: {error.message}" + (f"; expected {expected}" if expected else "")
