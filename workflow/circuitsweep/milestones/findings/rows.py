"""What every finding is: a row of ``tables/findings.csv`` (:class:`Findings`), the tables it is read from, and
the phrases the sections share (head labels, counts, shares)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from circuitsweep.io import contracts as C

#: The tables a finding is read from, as its ``source`` column names them.
SPECTRAL = "spectral.csv"
HEADS = "heads.parquet (final revision)"
ABLATION = "final_ablation.csv"
MILESTONES = "milestones.csv"

SECTION_PRECISION, SECTION_NON_BOS, SECTION_K, SECTION_CLASSES, SECTION_SELECTIVITY, SECTION_SCREEN = (
    C.FINDINGS_SECTIONS[:6]
)
SECTION_CLAIMS, SECTION_ACROSS = C.FINDINGS_SECTIONS[6:8]

#: The columns of a finding row (``FINDINGS_COLUMNS``) and their types.
SCHEMA: dict[str, Any] = {
    "model": pl.String,
    "section": pl.String,
    "item": pl.String,
    "k": pl.Int64,
    "value": pl.Float64,
    "count": pl.Int64,
    "total": pl.Int64,
    "text": pl.String,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p": pl.Float64,
    "source": pl.String,
}
#: The columns of the cross-model table (``ACROSS_MODELS_COLUMNS``) and their types.
ACROSS_SCHEMA: dict[str, Any] = {
    "model": pl.String,
    "final_revision": pl.String,
    "n_heads": pl.Int64,
    "bos_fraction": pl.Float64,
    "natural_bos_fraction": pl.Float64,
    "bos_per_layer": pl.List(pl.Int64),
    "first_bos_layer": pl.Int64,
    "layers_without_bos": pl.List(pl.Int64),
    "screen_size": pl.Int64,
    "induction_onset_tokens": pl.Int64,
    "bos_t50_tokens": pl.Int64,
    "bos_to_induction_ratio": pl.Float64,
}


@dataclass(frozen=True)
class Findings:
    """A run's findings: ``rows`` (``FINDINGS_COLUMNS``, = tables/findings.csv), ``across_models``
    (``ACROSS_MODELS_COLUMNS``, one row per model; findings.csv and .md hold it when the run has more than
    one model) and one paragraph per model (the report's Findings page)."""

    rows: pl.DataFrame
    across_models: pl.DataFrame
    paragraphs: dict[str, str]

    def section(self, model: str, section: str) -> pl.DataFrame:
        """The rows of one model's section (``contracts.FINDINGS_SECTIONS``)."""
        return self.rows.filter((pl.col("model") == model) & (pl.col("section") == section))


def finding_row(model: str, section: str, item: str, text: str, source: str, **values: Any) -> dict[str, Any]:
    """One row of findings.csv: which model and section, the item, its text, its source table and its values."""
    return {"model": model, "section": section, "item": item, "text": text, "source": source, **values}


def head_label(layer: int, head: int) -> str:
    """``L5H10``: the study's name of a head."""
    return f"L{layer}H{head}"


def share_text(count: int, total: int) -> str:
    """``0.75 (3/4)``."""
    return f"{count / total:.2f} ({count}/{total})"


def plural(count: float, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is 1 (``1 head``, ``2 heads``)."""
    return f"{count:g} {noun}" + ("" if count == 1 else "s")


def k_range(low: int, high: int) -> str:
    """``low-high``, or one number when they agree."""
    return str(low) if low == high else f"{low}-{high}"


def by_rank(spectral: pl.DataFrame) -> pl.DataFrame:
    """A model's spectral rows in rank order (rank 1, the largest integral, first)."""
    return spectral.sort("rank")


def head_names(frame: pl.DataFrame) -> list[str]:
    """The :func:`head_label` of each row of ``frame`` (``layer``, ``head``), in row order."""
    return [head_label(layer, head) for layer, head in frame.select("layer", "head").rows()]


def the_screen(size: float) -> str:
    """``the 4 screen heads``, ``the 1 screen head``."""
    return f"the {plural(size, 'screen head')}"
