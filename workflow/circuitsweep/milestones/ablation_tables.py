"""Ablation tables across revisions (no torch): the per-revision ablation table,
the columns it adds to the emergence table, and the "causal" milestone (docs/methods.md).

A drop is the top-1 accuracy of B without ablation minus that with the
condition's heads ablated (positive: the heads helped predict B).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from circuitsweep.errors import CacheError
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import read_table


def ablation_table(paths: Sequence[Path]) -> pl.DataFrame:
    """Every revision's ablation rows, ordered by model, tokens, step, probe, condition, draw."""
    frames = []
    for path in paths:
        frame, _ = read_table(path)
        missing = set(C.ABLATION_COLUMNS) - set(frame.columns)
        if missing:
            raise CacheError(f"{path} lacks ablation columns {sorted(missing)}; delete it and rerun")
        frames.append(frame.select(C.ABLATION_COLUMNS))
    table = pl.concat(frames, how="vertical_relaxed")
    order = {name: i for i, name in enumerate(C.ABLATION_CONDITIONS)}
    rank = pl.col("condition").replace_strict(order, default=len(order), return_dtype=pl.Int64)
    return table.sort("model", "tokens", "step", "probe", rank, "draw", "heads", nulls_last=True)


def _drops(rows: pl.DataFrame) -> dict[str, float | None]:
    """Summaries of one revision and probe: baseline top-1, circuit drop, matched-random mean drop and spread."""
    none = rows.filter(pl.col("condition") == "none")["top1"]
    base = none[0] if len(none) else None
    circuit = rows.filter(pl.col("condition") == "circuit")
    size = int(circuit["circuit_size"][0]) if circuit.height else None
    circuit_top1 = circuit["top1"][0] if circuit.height else None
    # an empty draw (the circuit fills its layers) is no control: it has no drop
    drawn = rows.filter((pl.col("condition") == "matched_random") & (pl.col("n_ablated") > 0))
    random = drawn["top1"].drop_nulls()
    circuit_drop = None if base is None or circuit_top1 is None else base - circuit_top1
    random_drops = [base - v for v in random.to_list()] if base is not None else []
    random_drop = sum(random_drops) / len(random_drops) if random_drops else None
    spread = pl.Series(random_drops, dtype=pl.Float64).std() if len(random_drops) > 1 else None
    # a ratio only against a positive control drop (ablating random heads may even help)
    ratio = circuit_drop / random_drop if circuit_drop is not None and random_drop and random_drop > 0 else None
    return {
        "size": size,
        "top1": base,
        "circuit_drop": circuit_drop,
        "random_drop": random_drop,
        "random_drop_sd": spread,
        "ratio": ratio,
    }


def ablation_summary(table: pl.DataFrame) -> pl.DataFrame:
    """One row per model and revision with ``ABLATION_EMERGENCE_COLUMNS`` (synthetic probe; natural drops if any)."""
    rows = []
    for (model, revision), rev in table.group_by("model", "revision", maintain_order=True):
        synthetic = _drops(rev.filter(pl.col("probe") == "synthetic"))
        natural = _drops(rev.filter(pl.col("probe") == "natural"))
        rows.append(
            {
                "model": model,
                "revision": revision,
                "ablation_circuit_size": synthetic["size"],
                "ablation_top1": synthetic["top1"],
                "ablation_circuit_drop": synthetic["circuit_drop"],
                "ablation_random_drop": synthetic["random_drop"],
                "ablation_random_drop_sd": synthetic["random_drop_sd"],
                "ablation_drop_ratio": synthetic["ratio"],
                "natural_ablation_circuit_drop": natural["circuit_drop"],
                "natural_ablation_random_drop": natural["random_drop"],
            }
        )
    schema = {name: pl.Float64 for name in C.ABLATION_EMERGENCE_COLUMNS} | {"ablation_circuit_size": pl.Int64}
    return pl.DataFrame(rows, schema={"model": pl.String, "revision": pl.String, **schema})


def is_causal(circuit_drop: float | None, random_drop: float | None, factor: float) -> bool:
    """The circuit's top-1 drop is positive and exceeds ``factor`` x the matched-random drop (floored at 0).

    Without a matched-random drop (no circuit, or no head left to draw) nothing is claimed.
    """
    if circuit_drop is None or circuit_drop <= 0 or random_drop is None:
        return False
    return circuit_drop > factor * max(random_drop or 0.0, 0.0)


def causal_milestones(curves: pl.DataFrame, factor: float) -> pl.DataFrame:
    """Per model, the first revision (by tokens, then step) whose circuit is causal: ``CAUSAL_MILESTONE_COLUMNS``."""
    rows = []
    for (model,), curve in curves.group_by("model", maintain_order=True):
        hit = None
        for row in curve.sort("tokens", "step").iter_rows(named=True):
            if is_causal(row["ablation_circuit_drop"], row["ablation_random_drop"], factor):
                hit = row
                break
        rows.append(
            {
                "model": model,
                "causal_revision": hit["revision"] if hit else None,
                "causal_tokens": hit["tokens"] if hit else None,
                "causal_factor": factor,
            }
        )
    schema = {"model": pl.String, "causal_revision": pl.String, "causal_tokens": pl.Int64, "causal_factor": pl.Float64}
    return pl.DataFrame(rows, schema=schema)
