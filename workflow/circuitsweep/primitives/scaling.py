"""Across models: the summary gap against model size, and compositions matched in most models.

Built from the stacked tables of every revision (no model, no torch):

- :func:`scaling_table`: per model and score kind, the summary gap of the
  model's last revision (most tokens) with its Welch interval (and, for the
  representational kinds, the item + lexicon interval), against the
  model's parameter count; :func:`circuitsweep.outputs.plots.primitive_scaling_figure`
  draws it. The gap against training tokens, per model, is ``primitive_gap.png``.
- :func:`composition_agreement`: per score kind, how many compositions are
  matched in at least 3 of every 4 models (the study: 11 of 30 in 3 of 4).
  Only the behavioural criterion (a target-cluster word in some reply) is the
  study's; the representational one (the target's cluster ranked first) is a
  different, stricter test, and neither is comparable unless the run holds the
  study's four chat models.
"""

from __future__ import annotations

import math

import polars as pl

from circuitsweep.primitives import contract as K

#: The score kinds drawn in the scaling figure (the others are in the table).
PLOTTED_KINDS: tuple[str, ...] = (K.REPRESENTATIONAL, K.REPRESENTATIONAL_CONTROLLED, K.NEXT_WORD, K.BEHAVIOURAL)


def _last_revisions(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of each model's last revision (most tokens; revision name breaks ties)."""
    last = (
        frame.select("model", "revision", "tokens")
        .unique()
        .sort("model", "tokens", "revision", nulls_last=False)
        .group_by("model", maintain_order=True)
        .last()
    )
    return frame.join(last.select("model", "revision"), on=["model", "revision"], how="inner")


def scaling_table(gaps: pl.DataFrame) -> pl.DataFrame:
    """The summary gap of each model's last revision per score kind, ordered by parameter count."""
    summary = _last_revisions(gaps.filter(pl.col("layer") == K.SUMMARY))
    return summary.select(K.SCALING_COLUMNS).sort("score_kind", "parameters", "model", nulls_last=True)


def composition_agreement(detail: pl.DataFrame, fraction: float = 0.75) -> pl.DataFrame:
    """Per score kind, compositions matched in at least ``fraction`` of the models (last revisions, summary).

    A composition is matched when its target's cluster ranks first
    (representational) or a word of it occurs in some reply (behavioural).
    """
    last = _last_revisions(detail.filter(pl.col("layer") == K.SUMMARY))
    matched = last.with_columns(
        matched=pl.when(pl.col("score_kind") == K.BEHAVIOURAL)
        .then(pl.col("hit_rate") > 0)
        .otherwise(pl.col("rank") <= 1)
    )
    rows = []
    for (kind,), part in matched.group_by("score_kind", maintain_order=True):
        n_models = part["model"].n_unique()
        needed = max(1, math.ceil(fraction * n_models))
        per_composition = part.group_by("operator", "seed", "near_synonym").agg(models=pl.col("matched").sum())
        agreed = per_composition.filter(pl.col("models") >= needed)
        comparable = (
            "criterion as the study's (a cluster word in the replies); comparable only with its 4 chat models"
            if kind == K.BEHAVIOURAL
            else "different criterion (target cluster ranked first by the hidden state); not the study's"
        )
        rows.append(
            {
                "score_kind": kind,
                "n_models": n_models,
                "models_needed": needed,
                "n_compositions": per_composition.height,
                "matched": agreed.height,
                "matched_without_near_synonyms": agreed.filter(~pl.col("near_synonym")).height,
                "comparison_with_study": comparable,
            }
        )
    schema = {
        "score_kind": pl.String,
        "n_models": pl.Int64,
        "models_needed": pl.Int64,
        "n_compositions": pl.Int64,
        "matched": pl.Int64,
        "matched_without_near_synonyms": pl.Int64,
        "comparison_with_study": pl.String,
    }
    frame = pl.DataFrame(rows, schema=schema)
    if tuple(frame.columns) != K.AGREEMENT_COLUMNS:
        raise AssertionError(f"columns {frame.columns} differ from the contract {K.AGREEMENT_COLUMNS}")
    return frame
