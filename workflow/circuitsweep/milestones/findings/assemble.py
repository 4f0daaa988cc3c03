"""One run's :class:`Findings`: every section of every model, one paragraph per model, and the cross-model rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from circuitsweep.errors import DataError
from circuitsweep.heads.spectral import TopK, resolve_top_k, unranked_note
from circuitsweep.io import contracts as C
from circuitsweep.milestones.findings.across import across_models, across_rows
from circuitsweep.milestones.findings.claims import ablation_claims
from circuitsweep.milestones.findings.ranking import (
    class_rows,
    k_rows,
    precision_rows,
    screen_rows,
    selectivity_rows,
)
from circuitsweep.milestones.findings.rows import (
    SCHEMA,
    SECTION_CLAIMS,
    SECTION_K,
    SECTION_NON_BOS,
    SECTION_PRECISION,
    SPECTRAL,
    Findings,
    finding_row,
    k_range,
)


def model_rows(
    model: str,
    spectral: pl.DataFrame,
    heads: pl.DataFrame,
    final_ablation: pl.DataFrame | None,
    spectral_top_k: Sequence[int | float | str],
    thresholds: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every per-model section of one model (``spectral``: its rows of the spectral table; ``heads``: its
    classified heads, any revisions; ``final_ablation``: its rows of the final-ablation table or None;
    ``thresholds``: its classification thresholds, which name the screen's cut and join the selectivity levels)."""
    if spectral.height == 0:
        raise DataError(f"{model}: {SPECTRAL} has no rows for it")
    revision = spectral["final_revision"][0]
    final = heads.filter(pl.col("revision") == revision)
    if final.height == 0:
        raise DataError(f"{model}: heads.parquet has no heads at {revision}, the final revision of {SPECTRAL}")
    unranked = unranked_note(spectral)
    if unranked is not None:  # no integral: no precision, K or claim of the ranking, said once
        return [
            finding_row(model, SECTION_PRECISION, "not ranked", unranked, SPECTRAL),
            *selectivity_rows(model, final, thresholds),
        ]
    tops = resolve_top_k(spectral_top_k, spectral["integral"].to_list())
    return [
        *precision_rows(model, spectral),
        *k_rows(model, spectral, tops),
        *class_rows(model, spectral, tops),
        *selectivity_rows(model, final, thresholds),
        *screen_rows(model, spectral, tops, (thresholds or {}).get("induction_circuit")),
        *ablation_claims(model, final_ablation, spectral, tops),
    ]


def model_paragraph(model: str, rows: pl.DataFrame, spectral: pl.DataFrame, tops: Sequence[TopK]) -> str:
    """One short paragraph stating each of one model's findings with its number, from its ``rows`` (with the
    claims' ``short`` phrases)."""
    n = spectral.height
    revision = spectral["final_revision"][0]
    precision = rows.filter(pl.col("section") == SECTION_PRECISION)
    shown = precision.filter(pl.col("k").is_in([5, *(t.k for t in tops), n]))
    at = ", ".join(
        f"{value:.2f} at {'all ' + str(n) + ' heads' if k == n else f'K = {k}'}"
        for k, value in zip(shown["k"], shown["value"], strict=True)
    )
    parts = [f"{model}, final revision {revision} ({n} heads): precision of the spectral ranking {at}"]
    non_bos = rows.filter((pl.col("section") == SECTION_NON_BOS) & pl.col("k").is_in([t.k for t in tops]))
    if non_bos.height:
        at = ", ".join(f"{v:.2f} at K = {k}" for k, v in zip(non_bos["k"], non_bos["value"], strict=True))
        parts[-1] += f", without BOS heads {at}"
    elbow = values_of(rows, SECTION_K, "elbow")
    heuristic = rows.filter((pl.col("section") == SECTION_K) & (pl.col("item") == "17-19% heuristic"))
    if elbow is not None and heuristic.height:
        parts[-1] += (
            f"; elbow K = {elbow:g} (17-19% heuristic: {k_range(heuristic['count'][0], heuristic['total'][0])})"
        )
    claims = rows.filter(pl.col("section") == SECTION_CLAIMS)
    if claims["short"].n_unique() == 1:
        parts.append(f"The five ablation claims: {claims['short'][0]}")
        return ". ".join(parts) + "."
    by_claim: dict[str, list[str]] = {}
    for item, short in zip(claims["item"], claims["short"], strict=True):
        shorts = by_claim.setdefault(item.split(".")[0], [])
        if short not in shorts:
            shorts.append(short)
    parts += [f"({number}) {'; '.join(shorts)}" for number, shorts in by_claim.items()]
    return ". ".join(parts) + "."


def values_of(rows: pl.DataFrame, section: str, item: str) -> float | None:
    """The value of one row of ``rows`` (None when absent)."""
    found = rows.filter((pl.col("section") == section) & (pl.col("item") == item))
    return found["value"][0] if found.height else None


def findings(
    spectral: pl.DataFrame,
    heads: pl.DataFrame,
    milestones: pl.DataFrame,
    final_ablation: pl.DataFrame | None,
    spectral_top_k: Sequence[int | float | str],
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
) -> Findings:
    """A run's :class:`Findings` from its spectral, heads, milestones and (optional) final-ablation tables.

    ``spectral_top_k``: the run's ``ablation.spectral_top_k`` (counts, shares, ``elbow``); ``thresholds``: per
    model its classification thresholds (``class_selectivity``, ``induction_circuit``: they name the screen's
    cut and join the study's selectivity levels).
    """
    rows: list[dict[str, Any]] = []
    paragraphs = {}
    models = spectral["model"].unique(maintain_order=True).to_list()
    for model in models:
        own = spectral.filter(pl.col("model") == model)
        table = None
        if final_ablation is not None:
            table = final_ablation.filter(pl.col("model") == model)
        own_thresholds = (thresholds or {}).get(model) or {}
        model_table = pl.DataFrame(
            model_rows(model, own, heads.filter(pl.col("model") == model), table, spectral_top_k, own_thresholds),
            schema={**SCHEMA, "short": pl.String},
        )
        rows += model_table.drop("short").to_dicts()
        if (unranked := unranked_note(own)) is not None:
            paragraphs[model] = f"{model}, final revision {own['final_revision'][0]}: {unranked}."
            continue
        tops = resolve_top_k(spectral_top_k, own["integral"].to_list())
        paragraphs[model] = model_paragraph(model, model_table, own, tops)
    across = across_models(heads, milestones.filter(pl.col("model").is_in(models)))
    if len(models) > 1:
        rows += across_rows(across, milestones)
    frame = pl.DataFrame(rows, schema=SCHEMA).select(C.FINDINGS_COLUMNS)
    return Findings(rows=frame, across_models=across.select(C.ACROSS_MODELS_COLUMNS), paragraphs=paragraphs)
