"""Milestone brackets: the two swept revisions a milestone lies between, and the revision to add next.

Pure and offline (no torch, no Snakemake). A milestone of docs/methods.md is the
*first* swept revision that reaches it, so it is only known to lie after the
swept revision before that one. Adding the available revision nearest the
middle of the two (in log tokens) and recomputing the milestone halves the
bracket; :mod:`circuitsweep.milestones.refine` repeats that until the two are adjacent
among the revisions the source publishes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from circuitsweep.checkpoints.revisions import Revision, sort_revisions
from circuitsweep.io import contracts as C
from circuitsweep.plan.rounds import Added


@dataclass(frozen=True)
class Bracket:
    """Where one milestone of one model lies among the swept revisions.

    ``upper``: the swept revision that reached it (None: not reached);
    ``lower``: the swept revision before ``upper`` (None: ``upper`` is the first swept);
    ``between``: the available revisions strictly between them, not swept;
    ``next``: the one of ``between`` nearest their middle in log tokens (None when ``between`` is empty);
    ``untestable``: the milestone could not be tested at any revision (the causal one with no matched control),
    which is no "not reached".
    """

    milestone: str
    lower: Revision | None
    upper: Revision | None
    between: tuple[Revision, ...]
    next: Revision | None
    untestable: bool = False

    @property
    def status(self) -> str:
        if self.untestable:
            return "untestable"
        if self.upper is None:
            return "not reached"
        if self.between:
            return "open"
        return "adjacent" if self.lower is not None else "first"


def _order(revision: Revision) -> tuple[int, int, str]:
    """Training order of the milestone tables: tokens, then step (then name, for a total order)."""
    return (revision.tokens, revision.step, revision.name)


def _value(revision: Revision, by_tokens: bool) -> int:
    return revision.tokens if by_tokens else revision.step


def middle_revision(lower: Revision | None, upper: Revision, candidates: Sequence[Revision]) -> Revision | None:
    """The candidate nearest the middle of ``lower`` and ``upper`` in log tokens (log steps when tokens are 0).

    Counts of 0 (step 0) have no logarithm: a lower end at 0 (or none) sits at the
    smallest positive count among the candidates and ``upper``. Ties go to the earlier candidate.
    """
    if not candidates:
        return None
    by_tokens = upper.tokens > 0
    positive = [_value(r, by_tokens) for r in (*candidates, upper) if _value(r, by_tokens) > 0]
    if not positive:
        return sort_revisions(candidates)[len(candidates) // 2]
    floor = math.log(min(positive))

    def position(revision: Revision | None) -> float:
        value = _value(revision, by_tokens) if revision is not None else 0
        return math.log(value) if value > 0 else floor

    middle = (position(lower) + position(upper)) / 2
    return min(sorted(candidates, key=_order), key=lambda r: abs(position(r) - middle))


def find_bracket(
    milestone: str,
    reached: str | None,
    swept: Sequence[Revision],
    available: Sequence[Revision],
    known: Collection[str] | None = None,
) -> Bracket:
    """The bracket of ``milestone``, reached first at swept revision ``reached`` (None: not reached).

    ``swept``: the revisions the milestone was computed over; ``available``:
    every revision the source publishes (those not swept are the candidates);
    ``known``: the swept revisions at which the milestone's state is known (None: all), so the lower end is the
    last known one before ``reached`` (the causal milestone: a revision without a matched control is untested).
    """
    ordered = sorted(swept, key=_order)
    names = [r.name for r in ordered]
    if reached is None:
        return Bracket(milestone, ordered[-1] if ordered else None, None, (), None)
    if reached not in names:
        raise ValueError(f"milestone {milestone} names revision {reached!r}, which is not among the swept revisions")
    at = names.index(reached)
    upper = ordered[at]
    before = [r for r in ordered[:at] if known is None or r.name in known]
    lower = before[-1] if before else None
    taken = set(names)
    # strictly between in training: another name for the checkpoint at either end is no candidate
    between = tuple(
        r
        for r in sorted(available, key=_order)
        if r.name not in taken
        and (lower is None or _order(r)[:2] > _order(lower)[:2])
        and _order(r)[:2] < _order(upper)[:2]
    )
    return Bracket(milestone, lower, upper, between, middle_revision(lower, upper, between))


def model_brackets(
    milestones_row: Mapping[str, object],
    swept: Sequence[Revision],
    available: Sequence[Revision],
    wanted: Sequence[str],
    known: Mapping[str, Collection[str]] | None = None,
) -> list[Bracket]:
    """The brackets of the ``wanted`` milestones of one model, from its row of the milestones table.

    ``known``: per milestone, the swept revisions at which its state is known (missing: all; see :func:`find_bracket`).
    """
    brackets = []
    for milestone in wanted:
        column = C.REFINE_MILESTONES[milestone]
        if column not in milestones_row:
            raise ValueError(f"the milestones table has no {column} column (milestone {milestone})")
        reached = milestones_row[column]
        name = reached if reached is None else str(reached)
        bracket = find_bracket(milestone, name, swept, available, (known or {}).get(milestone))
        if milestone == "causal" and milestones_row.get("causal_state") == "untestable":
            bracket = Bracket(milestone, None, None, (), None, untestable=True)
        brackets.append(bracket)
    return brackets


def bracket_table(brackets: Mapping[str, Sequence[Bracket]], added: Sequence[Added], rounds_left: int) -> pl.DataFrame:
    """One row per model and milestone with ``BRACKET_COLUMNS``.

    ``added``: every revision the rounds so far added; ``rounds_left``: rounds
    the budget still allows (with none left, no ``next_revision`` is proposed).
    """
    rows = []
    for model, of_model in brackets.items():
        for bracket in of_model:
            mine = [a for a in added if a.model == model and a.milestone == bracket.milestone]
            rows.append(
                {
                    "model": model,
                    "milestone": bracket.milestone,
                    "status": bracket.status,
                    "lower_revision": bracket.lower.name if bracket.lower else None,
                    "lower_tokens": bracket.lower.tokens if bracket.lower else None,
                    "upper_revision": bracket.upper.name if bracket.upper else None,
                    "upper_tokens": bracket.upper.tokens if bracket.upper else None,
                    "available_between": len(bracket.between),
                    "next_revision": bracket.next.name if bracket.next and rounds_left > 0 else None,
                    "rounds_used": len({a.round for a in mine}),
                    "revisions_added": len(mine),
                    "added_revisions": ",".join(a.revision for a in mine),
                }
            )
    schema = {
        "lower_revision": pl.String,
        "lower_tokens": pl.Int64,
        "upper_revision": pl.String,
        "upper_tokens": pl.Int64,
        "available_between": pl.Int64,
        "next_revision": pl.String,
        "rounds_used": pl.Int64,
        "revisions_added": pl.Int64,
        "added_revisions": pl.String,
    }
    if not rows:
        return pl.DataFrame(schema={"model": pl.String, "milestone": pl.String, "status": pl.String, **schema})
    return pl.DataFrame(rows, schema_overrides=schema).select(C.BRACKET_COLUMNS)


def next_revisions(table: pl.DataFrame, milestones: Collection[str] | None = None) -> dict[str, list[str]]:
    """Per model, the distinct revisions the bracket table proposes for the next round, in table order."""
    out: dict[str, list[str]] = {}
    for row in table.iter_rows(named=True):
        if row["next_revision"] is None or (milestones is not None and row["milestone"] not in milestones):
            continue
        chosen = out.setdefault(row["model"], [])
        if row["next_revision"] not in chosen:
            chosen.append(row["next_revision"])
    return out
