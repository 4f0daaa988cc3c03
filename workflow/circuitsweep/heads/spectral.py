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

A model's ``spectral_leave_out`` revisions are left out of the ranking altogether
(``left_out_revisions``): the study ranked OLMo's and OLMoE's heads over their ten
pretraining branches, though its final classes and ablation are at ``main``. The
final revision's classes and screen come from the last revision swept, left out
or not.

How many of the ranked heads are the "spectral picks" (``ablation.spectral_top_k``,
:func:`resolve_top_k`): a count, a share of the model's heads, or ``elbow``, the
study's algorithmic K (:func:`elbow_k`); :func:`heuristic_k` is its 17-19% rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from circuitsweep.errors import CacheError, DataError
from circuitsweep.heads.classify import induction_member
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import read_table, write_csv, write_table

#: Revisions with tokens > 0 the integral needs (a trapezoid needs two ends).
MIN_RANKED_REVISIONS = 2

#: The columns :func:`spectral_ranking` returns, in order: the contract's per-head columns from layer to n_left_out.
RANKING_COLUMNS: tuple[str, ...] = C.SPECTRAL_COLUMNS[
    C.SPECTRAL_COLUMNS.index("layer") : C.SPECTRAL_COLUMNS.index("n_left_out") + 1
]


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


#: The study's K heuristic: 17-19% of a model's heads (its "writeup heuristic").
HEURISTIC_SHARES: tuple[float, float] = (0.17, 0.19)
#: The spectral_top_k entry that asks for the elbow K.
ELBOW = "elbow"


def elbow_k(integrals: Sequence[float]) -> int:
    """The study's algorithmic K: sort the integrals descending, ``argmax(-diff(sorted, 2)) + 1``.

    The position (1-based) after which the sorted curve bends most sharply downwards; the
    first such position on a tie. With fewer than three heads there is no second
    difference: every head.
    """
    values = np.sort(np.asarray(integrals, dtype=np.float64))[::-1]
    if len(values) < 3:
        return len(values)
    return int(np.argmax(-np.diff(values, 2))) + 1


def share_k(share: float, n_heads: int) -> int:
    """K for a share of ``n_heads``: ``floor(share x n_heads)``, at least 1 (0.176 of 256 heads -> 45)."""
    return max(1, math.floor(share * n_heads + 1e-9))


def heuristic_k(n_heads: int) -> tuple[int, int]:
    """The study's 17-19% heuristic as a range of K (256 heads -> 43-48)."""
    low, high = HEURISTIC_SHARES
    return share_k(low, n_heads), share_k(high, n_heads)


@dataclass(frozen=True)
class TopK:
    """One K of the spectral picks, and the ``spectral_top_k`` entries that asked for it (``"45"``,
    ``"0.176"``, ``"elbow"``)."""

    k: int
    asked: tuple[str, ...]

    def describe(self, n_heads: int) -> str | None:
        """How K was chosen, when not simply given as a count: ``K = 45: 17.6% of 256 heads, rounded down``,
        ``K = 1: 2.34% of 16 heads, at least 1``, ``K = 7: the elbow of the sorted integrals``."""
        how = self.how_chosen(n_heads, " and ")
        return f"K = {self.k}: {how}" if how else None

    def how_chosen(self, n_heads: int, sep: str = "; ") -> str | None:
        """:meth:`describe` without ``K = k:``: each entry that gave this K stated, joined by ``sep``."""
        words = []
        for entry in self.asked:
            if entry == ELBOW:
                words.append("the elbow of the sorted integrals")
            elif "." in entry:
                exact = float(entry) * n_heads
                note = "" if exact == self.k else ", at least 1" if exact < 1 else ", rounded down"
                words.append(f"{float(entry) * 100:g}% of {n_heads} heads{note}")
        return sep.join(words) if words else None


def _entry(value: int | float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def resolve_top_k(spec: Sequence[int | float | str], integrals: Sequence[float]) -> list[TopK]:
    """Each K of ``spec`` for one model whose heads have ``integrals``, in spec order, equal K merged.

    An entry is a count (an integer >= 1: a K above the head count stays as asked, and the
    ablation records the shortfall), a share of the heads (0 < share < 1, :func:`share_k`) or
    ``"elbow"`` (:func:`elbow_k`).
    """
    n_heads = len(integrals)
    found: dict[int, list[str]] = {}
    for value in spec:
        if value == ELBOW:
            k = elbow_k(integrals)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise DataError(f"ablation.spectral_top_k: {value!r} is neither a count, a share nor {ELBOW!r}")
        elif float(value).is_integer() and value >= 1:
            k = int(value)
        elif 0 < value < 1:
            k = share_k(float(value), n_heads)
        else:
            raise DataError(f"ablation.spectral_top_k: {value!r} is neither a count >= 1 nor a share in (0, 1)")
        found.setdefault(k, []).append(_entry(value))
    return [TopK(k, tuple(asked)) for k, asked in found.items()]


def unranked_note(ranking: pl.DataFrame) -> str | None:
    """Why a ranking ranks no head (too few revisions with tokens > 0), or None when it ranks them."""
    if ranking.height and ranking["rank"].null_count() == 0:
        return None
    if "note" in ranking.columns and ranking.height and ranking["note"][0] is not None:
        return str(ranking["note"][0])
    counted = 0
    if ranking.height and {"n_revisions", "n_left_out"} <= set(ranking.columns):
        counted = int(ranking["n_revisions"][0] - ranking["n_left_out"][0])
    return (
        f"not ranked: the participation-ratio integral needs at least {MIN_RANKED_REVISIONS} revisions with "
        f"tokens > 0, this sweep has {counted}"
    )


def final_revision(heads: pl.DataFrame) -> pl.DataFrame:
    """The rows of the last revision by tokens, then step."""
    last = heads.select("tokens", "step", "revision").unique().sort("tokens", "step").row(-1, named=True)
    return heads.filter(pl.col("revision") == last["revision"])


def model_spectral(
    heads: pl.DataFrame, model: str, induction_circuit: float, leave_out: Sequence[str] = ()
) -> pl.DataFrame:
    """One model's ``SPECTRAL_COLUMNS`` from its classified heads (``classes/<model>/heads.parquet``).

    ``leave_out``: revisions the ranking leaves out (the config's ``spectral_leave_out``); each must be among
    ``heads``' revisions (a :class:`DataError` names one that is not)."""
    measured = set(heads["revision"].unique().to_list())
    missing = [name for name in leave_out if name not in measured]
    if missing:
        raise DataError(
            f"spectral ranking of {model}: spectral_leave_out names {', '.join(map(repr, missing))}, which its "
            "classified heads do not hold"
        )
    ranked = heads.filter(~pl.col("revision").is_in(list(leave_out)))
    if ranked.height == 0:
        raise DataError(f"spectral ranking of {model}: spectral_leave_out ({', '.join(leave_out)}) leaves no revision")
    ranking = spectral_ranking(ranked.select("layer", "head", "step", "tokens", "pr"))
    note = unranked_note(ranking)
    if note is not None and leave_out:
        note += f", after spectral_leave_out left out {', '.join(leave_out)}"
    final = final_revision(heads).sort("layer", "head")
    facts = final.select(
        "layer",
        "head",
        pl.col("revision").alias("final_revision"),
        pl.col("class").alias("final_class"),
        induction_member(induction_circuit).alias("screen"),
    )
    table = ranking.join(facts, on=["layer", "head"], how="left").with_columns(
        pl.lit(model).alias("model"),
        pl.lit(", ".join(leave_out) or None, pl.String).alias("left_out_revisions"),
        pl.lit(note, pl.String).alias("note"),
    )
    return table.sort("rank", "layer", "head").select(C.SPECTRAL_COLUMNS)


def write_model_spectral(heads_path: Path, model: str, output: Path, leave_out: Sequence[str] = ()) -> None:
    """Rank one model's heads from its classified heads file and write ``classes/<model>/spectral.parquet``;
    ``leave_out``: revisions the ranking leaves out (:func:`model_spectral`)."""
    heads, metadata = read_table(heads_path)
    if metadata.get("model") != model:
        raise CacheError(f"{heads_path} belongs to model {metadata.get('model')!r}, not {model!r}; delete it and rerun")
    thresholds = metadata.get("thresholds") or {}
    if "induction_circuit" not in thresholds:
        raise CacheError(f"{heads_path} records no thresholds.induction_circuit; delete it and rerun")
    if "pr" not in heads.columns:
        raise CacheError(f"{heads_path} has no pr column (made by an older version); delete it and rerun")
    table = model_spectral(heads, model, float(thresholds["induction_circuit"]), leave_out)
    write_table(output, table, {"model": model, "thresholds": thresholds, "spectral_leave_out": list(leave_out)})
    note = table["note"][0]
    if note is not None:
        print(f"{model}: {table.height} heads {note}")
        return
    print(f"{model}: {table.height} heads ranked over {table['n_revisions'][0]} revisions", end="")
    left_out = int(table["n_left_out"][0])
    print(f" ({left_out} with 0 tokens left out of the integral)" if left_out else "", end="")
    print(f"; left out as configured: {', '.join(leave_out)}" if leave_out else "")


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
