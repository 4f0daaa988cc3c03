"""Findings across models: whole-model BOS fractions (synthetic and natural text), BOS heads per layer and the
first layer holding one, the layer floor, the screen's size, the induction onset, BOS t50 and their ratio."""

from __future__ import annotations

from typing import Any

import polars as pl

from circuitsweep.errors import DataError
from circuitsweep.io import contracts as C
from circuitsweep.milestones.findings.rows import ACROSS_SCHEMA, HEADS, MILESTONES, SECTION_ACROSS, finding_row, plural
from circuitsweep.milestones.text import bos_t50_text, human_tokens


def bos_layers(final: pl.DataFrame, column: str = "class") -> tuple[float, list[int], int | None]:
    """Whole-model BOS fraction, BOS heads per layer (layer 0 first) and the first layer holding one, of one
    model's heads at one revision (``column``: ``class``, or ``natural_class`` for natural text)."""
    n_layers = int(final["layer"].max()) + 1
    bos = final.filter(pl.col(column) == C.BOS_CLASS).group_by("layer").len()
    counts = dict(zip(bos["layer"].to_list(), bos["len"].to_list(), strict=True))
    per_layer = [int(counts.get(layer, 0)) for layer in range(n_layers)]
    first = next((layer for layer, count in enumerate(per_layer) if count), None)
    return sum(per_layer) / final.height, per_layer, first


def across_models(heads: pl.DataFrame, milestones: pl.DataFrame) -> pl.DataFrame:
    """One row per model (``ACROSS_MODELS_COLUMNS``) at the milestones table's final revision."""
    rows = []
    for row in milestones.iter_rows(named=True):
        final = heads.filter((pl.col("model") == row["model"]) & (pl.col("revision") == row["final_revision"]))
        if final.height == 0:
            raise DataError(f"{row['model']}: heads.parquet has no heads at its final revision {row['final_revision']}")
        fraction, per_layer, first = bos_layers(final)
        natural = None
        if "natural_class" in final.columns and final["natural_class"].null_count() == 0:
            natural = bos_layers(final, "natural_class")[0]
        rows.append(
            {
                "model": row["model"],
                "final_revision": row["final_revision"],
                "n_heads": final.height,
                "bos_fraction": fraction,
                "natural_bos_fraction": natural,
                "bos_per_layer": per_layer,
                "first_bos_layer": first,
                "layers_without_bos": row["layers_without_bos"],
                "screen_size": row["final_circuit_size"],
                "induction_onset_tokens": row["induction_onset_tokens"],
                "bos_t50_tokens": row["bos_t50_tokens"],
                "bos_to_induction_ratio": row["bos_to_induction_ratio"],
            }
        )
    return pl.DataFrame(rows, schema=ACROSS_SCHEMA)


def _tokens_text(revision: str | None, tokens: int | None, fallback: str) -> str:
    return f"{revision} ({human_tokens(tokens)} tokens)" if revision else fallback


def across_rows(across: pl.DataFrame, milestones: pl.DataFrame) -> list[dict[str, Any]]:
    """The cross-model table as findings rows (``across models``), one group of rows per model."""
    rows = []
    facts = {row["model"]: row for row in milestones.iter_rows(named=True)}
    for row in across.iter_rows(named=True):
        model, fact = row["model"], facts[row["model"]]
        n = row["n_heads"]
        bos = round(row["bos_fraction"] * n)
        rows.append(
            finding_row(
                model,
                SECTION_ACROSS,
                "BOS fraction (synthetic)",
                f"{row['bos_fraction']:.1%} ({bos}/{n})",
                HEADS,
                value=row["bos_fraction"],
                count=bos,
                total=n,
            )
        )
        natural = row["natural_bos_fraction"]
        text = "not measured (probes.natural_text)" if natural is None else f"{natural:.1%} ({round(natural * n)}/{n})"
        rows.append(
            finding_row(
                model,
                SECTION_ACROSS,
                "BOS fraction (natural text)",
                text,
                HEADS,
                value=natural,
                count=None if natural is None else round(natural * n),
                total=n,
            )
        )
        per_layer = " ".join(map(str, row["bos_per_layer"]))
        rows.append(finding_row(model, SECTION_ACROSS, "BOS heads per layer", per_layer, HEADS))
        first = row["first_bos_layer"]
        text = "no BOS head" if first is None else f"L{first}"
        rows.append(
            finding_row(
                model,
                SECTION_ACROSS,
                "first layer with a BOS head",
                text,
                HEADS,
                value=None if first is None else float(first),
            )
        )
        never = row["layers_without_bos"] or []
        floor = {0, 1} <= set(never)
        text = ("layers " + ", ".join(map(str, never)) if never else "none") + (
            ": the layer-0/1 floor holds" if floor else ": no layer-0/1 floor"
        )
        rows.append(
            finding_row(
                model, SECTION_ACROSS, "layers without a BOS head at any revision", text, MILESTONES, value=float(floor)
            )
        )
        rows.append(
            finding_row(
                model,
                SECTION_ACROSS,
                "screen size",
                plural(row["screen_size"], "head"),
                MILESTONES,
                value=float(row["screen_size"]),
            )
        )
        onset = _tokens_text(fact["induction_onset_revision"], fact["induction_onset_tokens"], "not reached")
        rows.append(
            finding_row(
                model,
                SECTION_ACROSS,
                "induction onset",
                onset,
                MILESTONES,
                value=_float(fact["induction_onset_tokens"]),
            )
        )
        t50 = bos_t50_text(fact)
        rows.append(
            finding_row(model, SECTION_ACROSS, "BOS t50", t50, MILESTONES, value=_float(fact["bos_t50_tokens"]))
        )
        ratio = row["bos_to_induction_ratio"]
        text = f"{ratio:.3g}x" if ratio is not None else "undefined (a milestone not reached)"
        rows.append(finding_row(model, SECTION_ACROSS, "BOS t50 / induction onset", text, MILESTONES, value=ratio))
    return rows


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)
