"""How sure each milestone is: its checkpoint bracket and its range across bootstrap resamples (docs/methods.md).

A milestone is the first swept revision that reaches it, so two things make
it uncertain:

- checkpoint spacing: it lies after the swept revision before its own (its
  *bracket*: that revision and its tokens, beside its own), refined or not;
- probe sampling: the bootstrap over probe sequences
  (:mod:`circuitsweep.milestones.bootstrap`) gives per resample the counts each
  milestone is computed from; the milestone of every resample, by the same
  rule as the point estimate, gives its range (earliest and latest revision
  it lands on), the share of resamples landing on the point estimate's
  revision and the share not reaching it. A milestone is *fragile* when more
  than :data:`FRAGILE_SHARE` of the resamples land elsewhere.

Pure tables (polars and numpy), no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import numpy as np
import polars as pl

from circuitsweep.config.thresholds import MilestoneThresholds
from circuitsweep.errors import DataError
from circuitsweep.io import contracts as C
from circuitsweep.milestones.ablation_tables import causal_known

#: Each milestone with a bracket, and the milestones-table column naming its revision.
BRACKETED: dict[str, str] = {
    "induction_onset": "induction_onset_revision",
    "first_bos_head": "first_bos_head_revision",
    "first_late_bos_head": "first_late_bos_head_revision",
    "bos_t50": "bos_t50_revision",
    "early_screen": "early_screen_revision",
    "causal": "causal_revision",
}
#: The milestones the bootstrap over probe sequences recomputes (causal rests on the measured ablation).
BOOTSTRAPPED: tuple[str, ...] = ("induction_onset", "first_bos_head", "first_late_bos_head", "bos_t50", "early_screen")
#: A milestone is fragile when more than this share of the resamples land on another revision (or none).
FRAGILE_SHARE = 0.05


def bracket_columns(milestone: str) -> tuple[str, str]:
    """``<milestone>_previous_revision``, ``<milestone>_previous_tokens``: the swept revision before it."""
    return f"{milestone}_previous_revision", f"{milestone}_previous_tokens"


def bootstrap_columns(milestone: str) -> tuple[str, ...]:
    """The bootstrap columns of one milestone in the milestones table (see :data:`C.MILESTONE_BOOTSTRAP_COLUMNS`)."""
    return tuple(f"{milestone}_boot_{name}" for name in ("earliest", "latest", "agreement", "not_reached", "fragile"))


def add_brackets(table: pl.DataFrame, curves: pl.DataFrame) -> pl.DataFrame:
    """Add, for every milestone of ``table`` that has a revision column, the swept revision before it.

    ``curves``: the emergence table (the revisions each model's milestones were
    computed over). Null where the milestone is not reached, or reached at the
    model's first revision (nothing was swept before it). The causal milestone's
    bracket starts at the last revision before it whose causal state is known
    (:func:`ablation_tables.causal_known`): one whose circuit had no control is untested, not negative.
    """

    def before_each(revisions: pl.DataFrame) -> dict[str, tuple[str, int]]:
        names, tokens = revisions["revision"].to_list(), revisions["tokens"].to_list()
        return {names[i]: (names[i - 1], tokens[i - 1]) for i in range(1, len(names))}

    swept: dict[str, dict[str, tuple[str, int]]] = {}
    known: dict[str, dict[str, tuple[str, int]]] = {}
    for (model,), curve in curves.group_by("model", maintain_order=True):
        ordered = curve.sort("tokens", "step")
        swept[model] = before_each(ordered)
        if "ablation_tested" in ordered.columns:
            known[model] = before_each(ordered.filter(pl.col("revision").is_in(causal_known(ordered))))
    columns = []
    for milestone, column in BRACKETED.items():
        if column not in table.columns:
            continue
        revision_column, tokens_column = bracket_columns(milestone)
        previous = known if milestone == "causal" and known else swept
        before = [
            previous.get(model, {}).get(reached, (None, None))
            for model, reached in zip(table["model"].to_list(), table[column].to_list(), strict=True)
        ]
        columns.append(pl.Series(revision_column, [b[0] for b in before], dtype=pl.String))
        columns.append(pl.Series(tokens_column, [b[1] for b in before], dtype=pl.Int64))
    return table.with_columns(columns)


def first_true_index(hits: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, -1 where there is none."""
    return np.where(hits.any(axis=-1), hits.argmax(axis=-1), -1)


def _needed(fraction: float, sizes: np.ndarray) -> np.ndarray:
    """Per circuit size s, the fewest recovered heads c with c / s >= ``fraction`` (exact; s = 0: never)."""
    want = Fraction(fraction)
    table = {}
    for size in {int(s) for s in sizes.ravel()}:
        table[size] = next((c for c in range(size + 1) if Fraction(c, size) >= want), size + 1) if size else 1
    return np.vectorize(table.__getitem__, otypes=[np.int64])(sizes)


def resampled_milestones(
    curves: pl.DataFrame, thresholds: MilestoneThresholds
) -> tuple[list[str], dict[str, np.ndarray]]:
    """One model's milestone per resample, as the index of a revision in training order (-1: not reached).

    ``curves``: the model's rows of a bootstrap curves table
    (:data:`contracts.BOOTSTRAP_CURVE_COLUMNS`). Returns the revision names in
    order and, per milestone of :data:`BOOTSTRAPPED`, ``[1 + B]`` indices (row 0
    weighs every sequence once: the point estimate). The rules are those of
    :func:`emergence.model_milestones`.
    """
    ordered = curves.sort("resample", "tokens", "step")
    names = ordered.filter(pl.col("resample") == 0)["revision"].to_list()
    n_resamples = ordered["resample"].n_unique()
    if ordered.height != n_resamples * len(names):
        raise DataError("bootstrap curves: every resample must hold every revision once")

    def grid(column: str) -> np.ndarray:
        return ordered[column].to_numpy().reshape(n_resamples, len(names))

    bos, n_heads = grid("bos_heads"), grid("n_heads")
    recovered, sizes = grid("early_screen_recovered"), grid("final_circuit_size")
    return names, {
        "induction_onset": first_true_index(grid("induction_selective_heads") >= thresholds.induction_onset_heads),
        "first_bos_head": first_true_index(bos > 0),
        "first_late_bos_head": first_true_index(grid("late_bos_heads") > 0),
        "bos_t50": first_true_index(bos / n_heads >= thresholds.bos_fraction_milestone),
        "early_screen": first_true_index((sizes > 0) & (recovered >= _needed(thresholds.early_screen_recall, sizes))),
    }


def bootstrap_summary(
    boot_curves: pl.DataFrame, table: pl.DataFrame, thresholds: Mapping[str, MilestoneThresholds]
) -> pl.DataFrame:
    """Per model (the rows of ``table``), the bootstrap columns of every milestone of :data:`BOOTSTRAPPED`.

    Per milestone: the earliest and latest revision it lands on across the
    resamples that reach it, the share of resamples landing on the point
    estimate's revision (``agreement``; not reached counts as one outcome),
    the share not reaching it, and ``fragile`` (agreement below 1 -
    :data:`FRAGILE_SHARE`). The point estimate recomputed from the curves
    must be the table's: anything else is a :class:`DataError`.
    """
    rows = []
    for row in table.iter_rows(named=True):
        model = row["model"]
        curves = boot_curves.filter(pl.col("model") == model)
        if curves.height == 0:
            raise DataError(f"model {model}: no bootstrap curves")
        names, found = resampled_milestones(curves, thresholds[model])
        out = {"model": model}
        for milestone, index in found.items():
            point = names[index[0]] if index[0] >= 0 else None
            if point != row[BRACKETED[milestone]]:
                raise DataError(
                    f"model {model}: the bootstrap's point estimate of {milestone} is {point}, the milestones "
                    f"table says {row[BRACKETED[milestone]]}; the bootstrap and the tables are not of one run"
                )
            resampled = index[1:]
            reached = resampled[resampled >= 0]
            agreement = float(np.mean(resampled == index[0]))
            earliest, latest, share, missing, fragile = bootstrap_columns(milestone)
            out[earliest] = names[reached.min()] if reached.size else None
            out[latest] = names[reached.max()] if reached.size else None
            out[share] = agreement
            out[missing] = float(np.mean(resampled < 0))
            out[fragile] = agreement < 1 - FRAGILE_SHARE
        rows.append(out)
    schema = {"model": pl.String}
    for milestone in BOOTSTRAPPED:
        earliest, latest, share, missing, fragile = bootstrap_columns(milestone)
        schema.update({earliest: pl.String, latest: pl.String, share: pl.Float64, missing: pl.Float64})
        schema[fragile] = pl.Boolean
    return pl.DataFrame(rows, schema=schema).select("model", *C.MILESTONE_BOOTSTRAP_COLUMNS)
