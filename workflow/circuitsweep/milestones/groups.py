"""Seed spread: milestones of a family of models (``group:``, e.g. the seeds of one architecture).

A single training run gives one onset; the seeds of one architecture
(PolyPythias: Pythia 160M and 410M, 9 more seeds each) show how far that
onset moves with the seed alone. Pure tables, no torch.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from circuitsweep.errors import DataError
from circuitsweep.io import contracts as C


def censored_summary(tokens: Sequence[int | None]) -> dict[str, Any]:
    """Spread of one milestone over a group's models, some of which may never reach it (censored).

    ``tokens``: per model, the milestone's tokens, None when not reached (it
    lies beyond that model's last swept revision). Mean and sample SD (n - 1,
    null below two) only when every model reached it; otherwise the earliest,
    and the median where it is defined: the models not reached count as later
    than every reached one, so the median is known when the middle model(s)
    reached it. ``reached``: "k of n".
    """
    reached = sorted(int(v) for v in tokens if v is not None)
    n, k = len(tokens), len(reached)
    complete = k == n and n > 0
    middle = [(n - 1) // 2, n // 2]  # the middle ranks: one for odd n, two for even n
    median = statistics.median(reached) if complete else None
    if not complete and n and all(rank < k for rank in middle):
        median = (reached[middle[0]] + reached[middle[1]]) / 2
    return {
        "n_models": n,
        "n_reached": k,
        "reached": f"{k} of {n}",
        "mean_tokens": statistics.fmean(reached) if complete else None,
        "sd_tokens": statistics.stdev(reached) if complete and k > 1 else None,
        "median_tokens": None if median is None else float(median),
        "min_tokens": reached[0] if reached else None,
        "max_tokens": reached[-1] if complete else None,
    }


def group_milestones(milestones: pl.DataFrame, groups: Mapping[str, str]) -> pl.DataFrame:
    """One row per group and milestone with ``GROUP_MILESTONE_COLUMNS``.

    ``milestones``: the milestones table (one row per model; ``causal_tokens``
    only with the ablation); ``groups``: model -> group, for the grouped models.
    A model that never reached a milestone is censored (:func:`censored_summary`):
    mean, SD and the latest (``max_tokens``) only when all models reached it,
    else "k of n", the earliest (``min_tokens``) and the median where defined.
    A model whose causal milestone is untestable (``causal_state``: no matched
    control at any revision) is no censored one: it is left out of the causal
    row, whose ``reached`` and ``models`` say so.
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
            counted, untestable = members, []
            if milestone == "causal" and "causal_state" in members.columns:
                left_out = pl.col("causal_state") == "untestable"
                untestable = members.filter(left_out)["model"].to_list()
                counted = members.filter(~left_out)
            summary = censored_summary(counted[column].to_list())
            listed = ",".join(counted["model"].to_list())
            if untestable:
                summary["reached"] += f" testable ({len(untestable)} untestable, left out)"
                listed += f" (untestable: {','.join(untestable)})"
            rows.append({"group": group, "milestone": milestone, **summary, "models": listed})
    schema = {
        "group": pl.String,
        "milestone": pl.String,
        "n_models": pl.Int64,
        "n_reached": pl.Int64,
        "reached": pl.String,
        "mean_tokens": pl.Float64,
        "sd_tokens": pl.Float64,
        "median_tokens": pl.Float64,
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
