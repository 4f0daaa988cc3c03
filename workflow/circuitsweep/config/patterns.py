"""The checkpoint-name patterns a config may give, parsed and checked before any source is read.

- a run_dir ``source.pattern`` (``checkpoint-{step}``, ``iter_{step:07d}``): :func:`pattern_regex`;
- a Hub ``source.branch_pattern`` (``stage1-step{step}-tokens{tokens}B``): :func:`branch_pattern_regex`.
"""

from __future__ import annotations

import re
import string

from circuitsweep.errors import ConfigError


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A regular expression matching the folder names ``pattern`` formats, the step (ASCII digits) as group 1.

    Raises :class:`ConfigError` unless the pattern has exactly one field,
    ``{step}``, with no format spec or an integer one (``{step:07d}``).
    """
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as error:
        raise ConfigError(f"source.pattern {pattern!r}: {error}") from None
    fields = [(name, spec) for _, name, spec, _ in parts if name is not None]
    if [name for name, _ in fields] != ["step"] or not re.fullmatch(r"(0?[0-9]*d)?", fields[0][1] or ""):
        raise ConfigError(
            f"source.pattern {pattern!r} must hold exactly one {{step}} field (optionally {{step:07d}}-style)"
        )
    # ASCII digits only: ``\d`` would take ``checkpoint-٣`` (an Arabic-Indic three) for step 3
    regex = "".join(re.escape(text) + (r"([0-9]+)" if name is not None else "") for text, name, _, _ in parts)
    return re.compile(regex)


def branch_pattern_regex(pattern: str) -> re.Pattern[str]:
    """A regular expression for the branch names ``pattern`` formats, with groups ``step`` and ``tokens``.

    Raises :class:`ValueError` unless the pattern has one ``{step}`` field (optionally
    ``{step:07d}``-style) and at most one ``{tokens}`` field without a format spec.
    """
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as error:
        raise ValueError(f"branch_pattern {pattern!r}: {error}") from None
    names = [name for _, name, _, _ in parts if name is not None]
    specs = {name: spec for _, name, spec, _ in parts if name is not None}
    if sorted(names) not in (["step"], ["step", "tokens"]) or not re.fullmatch(r"(0?\d*d)?", specs["step"] or ""):
        raise ValueError(
            f"branch_pattern {pattern!r} must hold one {{step}} field (optionally {{step:07d}}-style) "
            "and at most one {tokens} field, with no other fields"
        )
    if specs.get("tokens"):
        raise ValueError(f"branch_pattern {pattern!r}: {{tokens}} takes no format spec (write its unit after it)")
    fields = {"step": r"(?P<step>\d+)", "tokens": r"(?P<tokens>\d+(?:\.\d+)?)"}
    return re.compile("".join(re.escape(text) + (fields[name] if name else "") for text, name, _, _ in parts))
