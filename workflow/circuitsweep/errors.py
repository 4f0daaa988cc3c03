"""Errors that describe a user-fixable problem: the CLI prints them without a traceback."""

from __future__ import annotations

from collections.abc import Sequence


class CircuitsweepError(Exception):
    """Base of every error whose message alone tells the user what to fix."""


class ConfigError(CircuitsweepError, ValueError):
    """A configuration problem, with the path of the offending key."""


class CacheError(CircuitsweepError, RuntimeError):
    """A cache file that is missing, truncated, corrupt or from another run."""


class SnapshotError(CircuitsweepError, RuntimeError):
    """A snapshot that cannot be fetched, verified or loaded as the configured model."""


class DataError(CircuitsweepError, ValueError):
    """Measured data that would give silently wrong results (NaN, empty, inconsistent)."""


class InputError(CircuitsweepError, ValueError):
    """A file or folder given to a command that is missing or not what the command reads."""


def config_problems(problems: Sequence[str]) -> ConfigError:
    """One :class:`ConfigError` for every problem found in a configuration, each on a line of its own.

    Schema checks and planning checks both report this way, so a user sees one
    form: ``invalid configuration (2 problems):`` then ``  - <key>: <problem>``.
    """
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return ConfigError(f"invalid configuration ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n{lines}")


USER_ERRORS: tuple[type[BaseException], ...] = (CircuitsweepError,)


class UnsupportedModelError(SnapshotError):
    """A model class whose attention circuitsweep cannot observe, or whose outputs it cannot reproduce."""


def error_line(error: BaseException, command: str | None = None) -> str:
    """How a user error is shown, by ``circuitsweep <command>`` and by Snakemake (no command) alike:
    ``circuitsweep[ <command>]: error: <message>``, the message naming the key, file or URL to fix."""
    return f"circuitsweep{' ' + command if command else ''}: error: {one_line(str(error))}"


def one_line(message: str) -> str:
    """A message of several lines (a config's list of problems) as one: its items joined by ``; ``."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    items = [line[2:] if line.startswith("- ") else line for line in lines[1:]]
    return " ".join([lines[0], "; ".join(items)]) if items else (lines[0] if lines else "")
