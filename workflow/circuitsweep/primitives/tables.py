"""The primitive tables as polars DataFrames, and writing them to disk.

Column names come from :mod:`circuitsweep.primitives.contract`. ``layer`` is
a string everywhere: a layer index ("0" = embeddings) or "summary".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from circuitsweep.config.stimuli import Stimuli
from circuitsweep.io import tables as table_io
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.compositions import CompositionNull, CompositionRanks
from circuitsweep.primitives.gaps import GapResult, LexiconSpread


@dataclass(frozen=True)
class RevisionIdentity:
    """Which checkpoint a table row describes."""

    model: str
    revision: str
    tokens: int | None
    parameters: int | None = None  # the model's parameter count


def _identity(identity: RevisionIdentity, n: int) -> dict[str, pl.Series]:
    return {
        "model": pl.Series([identity.model] * n, dtype=pl.String),
        "revision": pl.Series([identity.revision] * n, dtype=pl.String),
        "tokens": pl.Series([identity.tokens] * n, dtype=pl.Int64),
    }


def _frame(columns: dict[str, pl.Series], names: Sequence[str]) -> pl.DataFrame:
    if list(columns) != list(names):
        raise AssertionError(f"columns {list(columns)} differ from the contract {list(names)}")
    return pl.DataFrame(columns)


def _floats(values: np.ndarray) -> pl.Series:
    """A Float64 series with NaN as null."""
    return pl.Series(np.asarray(values, dtype=np.float64).ravel(), dtype=pl.Float64).fill_nan(None)


def primitive_scores_frame(
    identity: RevisionIdentity,
    layers: Sequence[str],
    scores: np.ndarray,
    stimuli: Stimuli,
    score_kind: str,
    *,
    lexicon_hits: np.ndarray | None = None,
    lexicon_mass: np.ndarray | None = None,
) -> pl.DataFrame:
    """primitives.parquet rows from ``scores [R, P]`` (R = len(layers)), layer-major.

    ``lexicon_hits`` / ``lexicon_mass``: ``[R, P]`` evidence behind each score (null when not given).
    """
    n_rows, n_primitives = scores.shape
    n = n_rows * n_primitives

    def optional(values: np.ndarray | None, dtype: type[pl.DataType]) -> pl.Series:
        if values is None:
            return pl.Series([None] * n, dtype=dtype)
        return pl.Series(np.broadcast_to(values, scores.shape).ravel().tolist(), dtype=dtype)

    return _frame(
        {
            **_identity(identity, n),
            "layer": pl.Series(np.repeat(list(layers), n_primitives).tolist(), dtype=pl.String),
            "primitive": pl.Series(list(stimuli.primitive_names) * n_rows, dtype=pl.String),
            "set": pl.Series([p.set for p in stimuli.primitives] * n_rows, dtype=pl.String),
            "score_kind": pl.Series([score_kind] * n, dtype=pl.String),
            "score": _floats(scores),
            "score_display": _floats(np.clip(scores, 0.0, 1.0)),
            "lexicon_hits": optional(lexicon_hits, pl.Int64),
            "lexicon_mass": optional(lexicon_mass, pl.Float64),
        },
        K.PRIMITIVE_COLUMNS,
    )


def gaps_frame(
    identity: RevisionIdentity,
    layers: Sequence[str],
    result: GapResult,
    score_kind: str,
    spread: LexiconSpread | None = None,
) -> pl.DataFrame:
    """primitive_gaps rows, one per entry of ``layers``; the summary row is the primary one.

    ``spread``: the lexicon-resampling columns (null without it).
    """
    n = len(layers)
    nulls = np.full(n, np.nan)
    lexicon = {
        "lexicon_sd": nulls if spread is None else spread.sd,
        "ci_lexicon_low": nulls if spread is None else spread.low,
        "ci_lexicon_high": nulls if spread is None else spread.high,
        "ci_total_low": nulls if spread is None else spread.total_low,
        "ci_total_high": nulls if spread is None else spread.total_high,
    }
    return _frame(
        {
            **_identity(identity, n),
            "layer": pl.Series(list(layers), dtype=pl.String),
            "score_kind": pl.Series([score_kind] * n, dtype=pl.String),
            "primary": pl.Series([layer == K.SUMMARY for layer in layers], dtype=pl.Boolean),
            **{name: _floats(getattr(result, name)) for name in ("gap", "ci_low", "ci_high")},
            **{name: _floats(values) for name, values in lexicon.items()},
            **{name: _floats(getattr(result, name)) for name in ("t_stat", "df", "p_value", "p_adjusted")},
            "n_0a": pl.Series([result.n_a] * n, dtype=pl.Int64),
            "n_0b": pl.Series([result.n_b] * n, dtype=pl.Int64),
            "parameters": pl.Series([identity.parameters] * n, dtype=pl.Int64),
        },
        K.GAP_COLUMNS,
    )


def compositions_frame(
    identity: RevisionIdentity,
    layers: Sequence[str],
    ranks: CompositionRanks,
    score_kind: str,
    null: CompositionNull,
    near_synonym: np.ndarray,
) -> pl.DataFrame:
    """compositions rows: hits over all compositions per entry of ``layers`` (ranks are ``[C, R]``).

    ``near_synonym [C]`` marks the compositions left out of ``hits_at_1_without_near_synonyms``.
    """
    n = len(layers)

    def hits(rank: np.ndarray | None, k: int) -> pl.Series:
        return pl.Series([None] * n if rank is None else (rank <= k).sum(0).tolist(), dtype=pl.Int64)

    def any_hits(rate: np.ndarray | None) -> pl.Series:
        return pl.Series([None] * n if rate is None else (rate > 0).sum(0).tolist(), dtype=pl.Int64)

    return _frame(
        {
            **_identity(identity, n),
            "layer": pl.Series(list(layers), dtype=pl.String),
            "score_kind": pl.Series([score_kind] * n, dtype=pl.String),
            "n_compositions": pl.Series([ranks.rank.shape[0]] * n, dtype=pl.Int64),
            "hits_at_1": hits(ranks.rank, 1),
            "hits_at_3": hits(ranks.rank, 3),
            "baseline_hits_at_1": hits(ranks.baseline_rank, 1),
            "baseline_hits_at_3": hits(ranks.baseline_rank, 3),
            "operator_hits_at_1": hits(ranks.operator_rank, 1),
            "null_operator_hits_at_1": _floats(null.operator_null_hits),
            "p_operator_shuffled": _floats(null.operator_p),
            "null_seed_hits_at_1": _floats(null.seed_null_hits),
            "p_seed_shuffled": _floats(null.seed_p),
            "n_near_synonym": pl.Series([int(np.sum(near_synonym))] * n, dtype=pl.Int64),
            "hits_at_1_without_near_synonyms": hits(ranks.rank[~np.asarray(near_synonym, dtype=bool)], 1),
            "mean_rank": pl.Series(ranks.rank.mean(0), dtype=pl.Float64),
            "baseline_mean_rank": pl.Series(ranks.baseline_rank.mean(0), dtype=pl.Float64),
            "hits_any": any_hits(ranks.hit_rate),
            "baseline_hits_any": any_hits(ranks.baseline_hit_rate),
        },
        K.COMPOSITION_COLUMNS,
    )


def composition_detail_frame(
    identity: RevisionIdentity, layers: Sequence[str], ranks: CompositionRanks, stimuli: Stimuli, score_kind: str
) -> pl.DataFrame:
    """One row per (layer, composition), layer-major."""
    n_rows, n_comp = len(layers), len(stimuli.compositions)
    n = n_rows * n_comp

    def per_cell(values: np.ndarray | None, dtype: type[pl.DataType]) -> pl.Series:
        return pl.Series([None] * n if values is None else np.asarray(values).T.ravel().tolist(), dtype=dtype)

    return _frame(
        {
            **_identity(identity, n),
            "layer": pl.Series(np.repeat(list(layers), n_comp).tolist(), dtype=pl.String),
            "score_kind": pl.Series([score_kind] * n, dtype=pl.String),
            "operator": pl.Series([c.operator for c in stimuli.compositions] * n_rows, dtype=pl.String),
            "seed": pl.Series([c.seed for c in stimuli.compositions] * n_rows, dtype=pl.String),
            "target": pl.Series([c.target for c in stimuli.compositions] * n_rows, dtype=pl.String),
            "near_synonym": pl.Series([c.near_synonym for c in stimuli.compositions] * n_rows, dtype=pl.Boolean),
            "rank": per_cell(ranks.rank, pl.Int64),
            "baseline_rank": per_cell(ranks.baseline_rank, pl.Int64),
            "operator_rank": per_cell(ranks.operator_rank, pl.Int64),
            "hit_rate": per_cell(ranks.hit_rate, pl.Float64),
            "baseline_hit_rate": per_cell(ranks.baseline_hit_rate, pl.Float64),
        },
        K.COMPOSITION_DETAIL_COLUMNS,
    )


def axis_frame(identity: RevisionIdentity, layers: Sequence[str], auc: np.ndarray, score_kind: str) -> pl.DataFrame:
    """Held-out AUC of one score kind's axis per layer."""
    n = len(layers)
    return _frame(
        {
            **_identity(identity, n),
            "layer": pl.Series(list(layers), dtype=pl.String),
            "score_kind": pl.Series([score_kind] * n, dtype=pl.String),
            "heldout_auc": pl.Series(np.asarray(auc, dtype=np.float64), dtype=pl.Float64),
        },
        K.AXIS_COLUMNS,
    )


@dataclass(frozen=True)
class PrimitiveTables:
    """Everything :func:`circuitsweep.primitives.score_primitives` produces for one revision."""

    scores: pl.DataFrame  # primitives.parquet
    gaps: pl.DataFrame  # primitive_gaps.csv/.md
    compositions: pl.DataFrame  # compositions.csv/.md
    composition_detail: pl.DataFrame
    axis: pl.DataFrame


def concat_tables(parts: Sequence[PrimitiveTables]) -> PrimitiveTables:
    """Stack the tables of several revisions (or models)."""
    return PrimitiveTables(
        *(pl.concat([getattr(p, name) for p in parts]) for name in PrimitiveTables.__dataclass_fields__)
    )


def write_tables(tables: PrimitiveTables, directory: Path | str) -> dict[str, Path]:
    """Write the tables into ``directory`` (atomically); returns the paths by file name."""
    directory = Path(directory)
    paths = {
        name: directory / name
        for name in (
            K.PRIMITIVES_FILE,
            K.GAPS_CSV,
            K.GAPS_MD,
            K.COMPOSITIONS_CSV,
            K.COMPOSITIONS_MD,
            K.COMPOSITION_DETAIL_FILE,
            K.AXIS_FILE,
        )
    }
    table_io.write_parquet(tables.scores, paths[K.PRIMITIVES_FILE])
    table_io.write_csv(tables.gaps, paths[K.GAPS_CSV])
    table_io.write_markdown(tables.gaps, paths[K.GAPS_MD], title="Primitive gaps: mean(0a) - mean(0b)")
    table_io.write_csv(tables.compositions, paths[K.COMPOSITIONS_CSV])
    table_io.write_markdown(
        tables.compositions, paths[K.COMPOSITIONS_MD], title="Compositions: hits of the pre-registered targets"
    )
    table_io.write_parquet(tables.composition_detail, paths[K.COMPOSITION_DETAIL_FILE])
    table_io.write_csv(tables.axis, paths[K.AXIS_FILE])
    return paths
