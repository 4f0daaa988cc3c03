"""Seed spread: milestones of a family of models (``group:``, e.g. the seeds of one architecture).

A single training run gives one onset; the seeds of one architecture
(PolyPythias: Pythia 160M and 410M, 9 more seeds each) show how far that
onset moves with the seed alone. Pure tables, no torch.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

import polars as pl

from circuitsweep.errors import DataError
from circuitsweep.io import contracts as C


def group_milestones(milestones: pl.DataFrame, groups: Mapping[str, str]) -> pl.DataFrame:
    """One row per group and milestone with ``GROUP_MILESTONE_COLUMNS``.

    ``milestones``: the milestones table (one row per model; ``causal_tokens``
    only with the ablation); ``groups``: model -> group, for the grouped models.
    Statistics are over the models that reached the milestone (tokens);
    ``sd_tokens`` is the sample standard deviation (n - 1), null below two.
    """
    missing = sorted(set(groups) - set(milestones["model"].to_list()))
    if missing:
        raise DataError(f"group_milestones: the milestones table has no row for the grouped models {missing}")
    rows = []
    by_group: dict[str, list[str]] = {}
    for model, group in groups.items():
        by_group.setdefault(group, []).append(model)
    for group, models in by_group.items():
        members = milestones.filter(pl.col("model").is_in(models)).sort("model")
        for milestone, column in C.GROUP_MILESTONES.items():
            if column not in members.columns:
                continue
            tokens = [int(v) for v in members[column].to_list() if v is not None]
            rows.append(
                {
                    "group": group,
                    "milestone": milestone,
                    "n_models": members.height,
                    "n_reached": len(tokens),
                    "mean_tokens": statistics.fmean(tokens) if tokens else None,
                    "sd_tokens": statistics.stdev(tokens) if len(tokens) > 1 else None,
                    "min_tokens": min(tokens) if tokens else None,
                    "max_tokens": max(tokens) if tokens else None,
                    "models": ",".join(members["model"].to_list()),
                }
            )
    schema = {
        "group": pl.String,
        "milestone": pl.String,
        "n_models": pl.Int64,
        "n_reached": pl.Int64,
        "mean_tokens": pl.Float64,
        "sd_tokens": pl.Float64,
        "min_tokens": pl.Int64,
        "max_tokens": pl.Int64,
        "models": pl.String,
    }
    return pl.DataFrame(rows, schema=schema).select(C.GROUP_MILESTONE_COLUMNS)


def group_bands(curves: pl.DataFrame, groups: Mapping[str, str], column: str) -> pl.DataFrame:
    """Per group and token count, the min and max of curve ``column`` over the group's models.

    Columns ``group``, ``tokens``, ``low``, ``high``, ``n_models`` (models with a revision at those tokens),
    sorted by group and tokens.
    """
    grouped = curves.filter(pl.col("model").is_in(list(groups))).with_columns(
        pl.col("model").replace_strict(dict(groups), return_dtype=pl.String).alias("group")
    )
    return (
        grouped.group_by("group", "tokens")
        .agg(
            pl.col(column).min().cast(pl.Float64).alias("low"),
            pl.col(column).max().cast(pl.Float64).alias("high"),
            pl.col("model").n_unique().alias("n_models"),
        )
        .sort("group", "tokens")
    )
