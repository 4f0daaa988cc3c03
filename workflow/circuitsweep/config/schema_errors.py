"""Readable messages for JSON-schema violations: the key's path and what was expected.

Shared by the config (``workflow/schemas/config.schema.yaml``) and the
primitive stimuli (``workflow/schemas/primitives.schema.yaml``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import jsonschema
import yaml

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


#: Whether a value a config file reads is of the schema type named, for the types a config may give as text.
_READS_AS: dict[str, Callable[[Any], bool]] = {
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}
#: Why a workflow config holds a number as text (``--config KEY={...}``), and what to do instead.
NUMBER_TEXT_HINT = "(Snakemake's --config passes values inside {...} as text; set this key in a config file, unquoted)"
#: The same for a boolean: Snakemake's ``--config`` reads only ``True`` and ``False`` as booleans.
BOOLEAN_TEXT_HINT = (
    "(Snakemake's --config reads only True and False as booleans, and values inside {...} as text;"
    " set this key in a config file, unquoted)"
)


def text_hint(value: Any, expected: str | list[str]) -> str:
    """Why ``value`` is text (with a leading space) when a config file would read it as the ``expected``
    schema type (number, integer or boolean), else ``""``."""
    if not isinstance(value, str):
        return ""
    try:
        read = yaml.safe_load(value)
    except (yaml.YAMLError, ValueError, RecursionError):
        return ""
    types = [expected] if isinstance(expected, str) else list(expected)
    matched = [t for t in types if t in _READS_AS and _READS_AS[t](read)]
    if not matched:
        return ""
    return f" {BOOLEAN_TEXT_HINT if 'boolean' in matched else NUMBER_TEXT_HINT}"


#: Errors at a value itself that say a oneOf/anyOf branch is another form altogether (another type, other keys).
_OTHER_FORM = ("type", "required", "additionalProperties", "enum", "const")


def _fits(errors: list[jsonschema.ValidationError]) -> bool:
    """Whether a value has the form of the oneOf/anyOf branch it fails with ``errors``: its type and keys,
    failing only inside (``{every: 0}``) or in its size or entries (a list with a repeated entry)."""
    return not any(e.validator in _OTHER_FORM for e in errors if not e.relative_path)


def specific(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors inside a oneOf/anyOf ``error`` of the one branch whose form the value has, else ``[error]``.

    Only a list or mapping has a form (its type and keys) apart from the checks that fail, and the branch's
    own errors (a repeated entry, ``every: 0``) say more than "does not match any allowed form"; for a scalar,
    where no branch or several fit the value, or where a oneOf failed because several branches matched,
    which form was meant is unknown and ``error`` itself, with the description of every form, is kept.
    """
    if error.validator not in ("oneOf", "anyOf") or not isinstance(error.validator_value, list):
        return [error]
    if not isinstance(error.instance, (list, dict)):
        return [error]  # a number or string: its forms differ by range or value ("0 or at least 2"), all told
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for inner in error.context or ():
        branches.setdefault(inner.relative_schema_path[0], []).append(inner)
    if len(branches) != len(error.validator_value):
        return [error]  # a oneOf that more than one branch matched
    fitting = [i for i, errors in branches.items() if _fits(errors)]
    if len(fitting) != 1:
        return [error]
    return [leaf for inner in branches[fitting[0]] for leaf in specific(inner)]


def describe(error: jsonschema.ValidationError, config_hint: bool = False) -> str:
    """One line naming the offending key, the value found and what the schema expects. A oneOf/anyOf that the
    value fails in the one form it has is described by that form's own errors (:func:`specific`); with
    ``config_hint`` (a workflow config, which Snakemake's ``--config`` may have set) a number or boolean given
    as text says why (:func:`text_hint`)."""
    inner = specific(error)
    if inner[0] is not error:
        return "; ".join(dict.fromkeys(describe(e, config_hint) for e in inner))
    at = where(error.absolute_path)
    value = error.instance
    expected = error.schema.get("description") if isinstance(error.schema, dict) else None
    expected = " ".join(expected.split()) if isinstance(expected, str) else expected  # a folded YAML description
    if "propertyNames" in error.schema_path:
        # the instance is a key of the mapping at ``at``: name it as the key the user wrote
        return f"{at}: the key {value!r} is not {expected or _plain_pattern(error)}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed))
        close = [match for key in extra for match in difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.75)]
        guess = f" (did you mean {', '.join(map(repr, dict.fromkeys(close)))}?)" if close else ""
        return f"{at}: unknown key {', '.join(map(repr, extra))}{guess}; expected one of {allowed}"
    if error.validator == "required":
        return f"{at}: {error.message}"
    if error.validator == "type":
        hint = text_hint(value, error.validator_value) if config_hint else ""
        types = error.validator_value
        wanted = " or ".join(types) if isinstance(types, list) else types
        return f"{at}: expected {wanted}, got {type(value).__name__} {value!r}{hint}"
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
