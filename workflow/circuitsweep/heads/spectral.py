"""The spectral phase's ranking (docs/methods.md), from cached participation ratios alone (no torch).

Per head, over a model's revisions ordered by tokens (then step): the
integral of max(PR - 1, 0) over ln(tokens) by the trapezoid rule, the final,
largest and smallest PR and their spread; heads ranked by integral,
descending (ties: layer, then head). A revision with 0 tokens has no
logarithm: it is left out of the integral (counted in ``n_left_out``) but its
PR counts for the final, max and min. With fewer than
:data:`MIN_RANKED_REVISIONS` revisions of more than 0 tokens there is no
integral: no head is ranked (``integral`` and ``rank`` null) and the table's
``note`` says why, never a ranking by head order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from circuitsweep.errors import CacheError, DataError
from circuitsweep.heads.classify import induction_member
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import read_table, write_csv, write_table

#: Revisions with tokens > 0 the integral needs (a trapezoid needs two ends).
MIN_RANKED_REVISIONS = 2

#: The columns :func:`spectral_ranking` returns, in order.
RANKING_COLUMNS: tuple[str, ...] = (
    "layer",
    "head",
    "integral",
    "final_pr",
    "max_pr",
    "min_pr",
    "spread",
    "rank",
    "n_revisions",
    "n_left_out",
)


def spectral_ranking(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per head (``RANKING_COLUMNS``) from rows of ``layer``, ``head``, ``tokens``, ``pr``.

    ``tokens``: training tokens of each row's revision (any unit: the integral
    over ln(tokens) does not depend on it); ``step``, when present, orders
    revisions with equal tokens. Rows with a null PR are an error (a revision
    measured without it), as is a head missing from some revision.
    """
    missing = [name for name in ("layer", "head", "tokens", "pr") if name not in frame.columns]
    if missing:
        raise DataError(f"spectral ranking: the frame lacks columns {missing}")
    if frame.height == 0:
        raise DataError("spectral ranking: no rows")
    bad = frame.filter(pl.col("pr").is_null() | pl.col("pr").is_nan())
    if bad.height:
        row = bad.row(0, named=True)
        raise DataError(
            f"spectral ranking: {bad.height} rows have no participation ratio (first: layer {row['layer']}, "
            f"head {row['head']}, tokens {row['tokens']}); measure them with this version"
        )
    if (frame["tokens"] < 0).any():
        raise DataError("spectral ranking: negative token counts")
    order = ["tokens", "step"] if "step" in frame.columns else ["tokens"]
    revisions = frame.select(order).unique().sort(order)
    counts = frame.group_by("layer", "head").len()
    if (counts["len"] != revisions.height).any() or frame.select(*order, "layer", "head").is_duplicated().any():
        raise DataError(
            f"spectral ranking: every head needs exactly one PR at each of the {revisions.height} revisions"
        )
    wide = frame.sort(*order).group_by("layer", "head", maintain_order=True).agg(pl.col("pr")).sort("layer", "head")
    pr = np.array(wide["pr"].to_list(), dtype=np.float64)  # [heads, revisions]
    tokens = revisions["tokens"].to_numpy().astype(np.float64)
    kept = tokens > 0
    ranked = int(kept.sum()) >= MIN_RANKED_REVISIONS
    excess = np.maximum(pr[:, kept] - 1.0, 0.0)
    integral = np.trapezoid(excess, np.log(tokens[kept]), axis=1) if ranked else np.full(len(pr), np.nan)
    out = wide.select("layer", "head").with_columns(
        pl.Series("integral", integral, nan_to_null=True),
        pl.Series("final_pr", pr[:, -1]),
        pl.Series("max_pr", pr.max(axis=1)),
        pl.Series("min_pr", pr.min(axis=1)),
        pl.Series("spread", pr.max(axis=1) - pr.min(axis=1)),
    )
    rank = np.empty(len(out), dtype=np.int64)
    rank[np.argsort(-integral, kind="stable")] = np.arange(1, len(out) + 1)
    return out.with_columns(
        pl.Series("rank", rank) if ranked else pl.lit(None, pl.Int64).alias("rank"),
        pl.lit(revisions.height, pl.Int64).alias("n_revisions"),
        pl.lit(int((~kept).sum()), pl.Int64).alias("n_left_out"),
    ).select(RANKING_COLUMNS)


def unranked_note(ranking: pl.DataFrame) -> str | None:
    """Why a ranking ranks no head (too few revisions with tokens > 0), or None when it ranks them."""
    if ranking.height and ranking["rank"].null_count() == 0:
        return None
    counted = int(ranking["n_revisions"][0] - ranking["n_left_out"][0]) if ranking.height else 0
    return (
        f"not ranked: the participation-ratio integral needs at least {MIN_RANKED_REVISIONS} revisions with "
        f"tokens > 0, this sweep has {counted}"
    )


def final_revision(heads: pl.DataFrame) -> pl.DataFrame:
    """The rows of the last revision by tokens, then step."""
    last = heads.select("tokens", "step", "revision").unique().sort("tokens", "step").row(-1, named=True)
    return heads.filter(pl.col("revision") == last["revision"])


def model_spectral(heads: pl.DataFrame, model: str, induction_circuit: float) -> pl.DataFrame:
    """One model's ``SPECTRAL_COLUMNS`` from its classified heads (``classes/<model>/heads.parquet``)."""
    ranking = spectral_ranking(heads.select("layer", "head", "step", "tokens", "pr"))
    final = final_revision(heads).sort("layer", "head")
    facts = final.select(
        "layer",
        "head",
        pl.col("revision").alias("final_revision"),
        pl.col("class").alias("final_class"),
        induction_member(induction_circuit).alias("screen"),
    )
    table = ranking.join(facts, on=["layer", "head"], how="left").with_columns(
        pl.lit(model).alias("model"), pl.lit(unranked_note(ranking), pl.String).alias("note")
    )
    return table.sort("rank", "layer", "head").select(C.SPECTRAL_COLUMNS)


def write_model_spectral(heads_path: Path, model: str, output: Path) -> None:
    """Rank one model's heads from its classified heads file and write ``classes/<model>/spectral.parquet``."""
    heads, metadata = read_table(heads_path)
    if metadata.get("model") != model:
        raise CacheError(f"{heads_path} belongs to model {metadata.get('model')!r}, not {model!r}; delete it and rerun")
    thresholds = metadata.get("thresholds") or {}
    if "induction_circuit" not in thresholds:
        raise CacheError(f"{heads_path} records no thresholds.induction_circuit; delete it and rerun")
    if "pr" not in heads.columns:
        raise CacheError(f"{heads_path} has no pr column (made by an older version); delete it and rerun")
    table = model_spectral(heads, model, float(thresholds["induction_circuit"]))
    write_table(output, table, {"model": model, "thresholds": thresholds})
    note = table["note"][0]
    if note is not None:
        print(f"{model}: {table.height} heads {note}")
        return
    print(f"{model}: {table.height} heads ranked over {table['n_revisions'][0]} revisions", end="")
    left_out = int(table["n_left_out"][0])
    print(f" ({left_out} with 0 tokens left out of the integral)" if left_out else "")


def spectral_table(model_paths: list[Path], parquet: Path, csv: Path) -> None:
    """Concatenate the models' spectral rankings into ``tables/spectral.parquet`` and ``.csv``."""
    frames, models = [], {}
    for path in model_paths:
        frame, metadata = read_table(path)
        frames.append(frame)
        models[metadata.get("model")] = {"thresholds": metadata.get("thresholds")}
    table = pl.concat(frames).select(C.SPECTRAL_COLUMNS)
    write_table(parquet, table, {"models": models})
    write_csv(table, csv)
