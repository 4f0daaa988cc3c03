"""Head classes from head scores and thresholds (docs/methods.md).

A head takes the class of its most selective target when that selectivity
reaches ``class_selectivity``, else ``none``; targets compete in the study's
order (``contracts.CLASS_ORDER``) and a tie goes to the earlier one.
Membership is the study's all-head screen, whatever the class: induction
member = induction selectivity >= ``induction_circuit`` (the one rule for the
final circuit, early-screen recall and the ablated circuit, docs/methods.md);
previous member = previous-token selectivity >= ``previous_circuit``;
circuit = either. Induction-selective = induction selectivity >=
``class_selectivity``, any class (the onset counts these). A sink head has
``sink_alpha`` above ``sink_alpha``.
"""

from __future__ import annotations

import polars as pl

from circuitsweep.config.thresholds import Thresholds
from circuitsweep.errors import DataError
from circuitsweep.io import contracts as C


def induction_member(induction_circuit: float) -> pl.Expr:
    """The study's all-head induction screen: ``sel_induction`` >= ``induction_circuit``, whatever the class.

    The one rule for the final circuit, early-screen recall, the spectral table's
    ``screen`` and the ablated circuits (docs/methods.md, 4).
    """
    return pl.col("sel_induction") >= induction_circuit


def head_classes(scores: pl.DataFrame, thresholds: Thresholds) -> pl.DataFrame:
    """Add ``CLASS_COLUMNS`` to a frame of head scores; NaN scores are an error.

    ``scores`` needs ``SELECTIVITY_COLUMNS``; without ``sink_alpha`` the ``sink`` column is null.
    """
    missing = [c for c in C.SELECTIVITY_COLUMNS if c not in scores.columns]
    if missing:
        raise DataError(f"head scores lack the selectivity columns {missing}; cannot classify")
    selectivity = scores.select(C.SELECTIVITY_COLUMNS)
    bad = scores.filter(pl.any_horizontal([pl.col(c).is_nan() | pl.col(c).is_null() for c in C.SELECTIVITY_COLUMNS]))
    if bad.height:
        first = bad.row(0, named=True)
        where = ", ".join(f"{k}={first[k]}" for k in C.KEY_COLUMNS if k in first)
        raise DataError(f"{bad.height} heads have NaN selectivity (first: {where}); refusing to classify")
    # compared in the study's class order: argmax returns the first maximum, so ties go to the earlier class
    in_order = selectivity.select(f"sel_{t}" for t in C.CLASS_ORDER).to_numpy()
    best = in_order.argmax(axis=1)
    best_value = selectivity.max_horizontal()
    best_target = pl.Series("best", [C.CLASS_ORDER[i] for i in best], dtype=pl.String)
    member = induction_member(thresholds.induction_circuit)
    previous_member = pl.col("sel_previous") >= thresholds.previous_circuit
    return scores.with_columns(
        pl.when(best_value >= thresholds.class_selectivity)
        .then(best_target)
        .otherwise(pl.lit(C.NO_CLASS))
        .alias("class"),
    ).with_columns(
        (pl.col("sel_induction") >= thresholds.class_selectivity).alias("induction_selective"),
        member.alias("induction_member"),
        previous_member.alias("previous_member"),
        (member | previous_member).alias("in_circuit"),
        (pl.col("sink_alpha") > thresholds.sink_alpha).alias("sink")
        if "sink_alpha" in scores.columns
        else pl.lit(None, pl.Boolean).alias("sink"),
    )


def natural_counts(classified: pl.DataFrame) -> dict[str, float | int]:
    """Natural-text BOS fraction and induction-head count of one revision's classified natural scores."""
    return {
        "natural_bos_fraction": float((classified["class"] == C.BOS_CLASS).mean()),
        "natural_induction_heads": int((classified["class"] == C.INDUCTION_CLASS).sum()),
    }
