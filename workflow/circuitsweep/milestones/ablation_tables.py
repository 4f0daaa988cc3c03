"""Ablation tables across revisions (no torch): the per-revision ablation table with its paired tests,
the columns it adds to the emergence table, and the "causal" milestone (docs/methods.md).

A drop is the top-1 accuracy of B without ablation minus that with the
condition's heads ablated (positive: the heads helped predict B); the excess
drop is the circuit's drop minus its matched-random draws' mean drop, paired
on the same probe sequences (:mod:`heads.ablation_stats`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from circuitsweep.errors import CacheError
from circuitsweep.heads import ablation_stats as S
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import read_table


def read_ablation_rows(path: Path) -> pl.DataFrame:
    """One revision's ablation rows file, refused (delete it and rerun) unless it has the current layout."""
    frame, metadata = read_table(path)
    missing = set(C.ABLATION_ROW_COLUMNS) - set(frame.columns)
    if missing or metadata.get("ablation_schema") != C.ABLATION_SCHEMA_VERSION:
        raise CacheError(
            f"{path} predates the per-sequence ablation outcomes (ablation_schema "
            f"{metadata.get('ablation_schema')}, expected {C.ABLATION_SCHEMA_VERSION}); delete it and rerun"
        )
    return frame.select(C.ABLATION_ROW_COLUMNS)


def _outcomes(row: Mapping[str, Any], where: str) -> dict[str, np.ndarray] | None:
    found = S.row_outcomes(row)
    if found is not None and len(found["top1"]) != row["n_sequences"]:
        raise CacheError(f"{where}: {len(found['top1'])} per-sequence outcomes, {row['n_sequences']} sequences")
    return found


def with_tests(rows: pl.DataFrame, resampling: S.Resampling | None = None) -> pl.DataFrame:
    """The ablation table: every row of ``rows`` (``ABLATION_ROW_COLUMNS``) with ``ABLATION_TEST_COLUMNS``
    in place of the per-sequence outcomes (``ABLATION_COLUMNS``).

    Per model, revision and probe: each condition against ``none``, and the circuit against the mean of its
    scored matched-random draws (none scored: no control, the excess is null).
    """
    resampling = resampling or S.Resampling()
    out = []
    for (model, revision, probe), group in rows.group_by("model", "revision", "probe", maintain_order=True):
        where = f"ablation rows of {model} {revision} ({probe})"
        records = list(group.iter_rows(named=True))
        outcomes = [_outcomes(row, where) for row in records]
        none = next((o for r, o in zip(records, outcomes, strict=True) if r["condition"] == "none"), None)
        controls = [
            o for r, o in zip(records, outcomes, strict=True) if r["condition"] == "matched_random" and o is not None
        ]
        if len(set(group["n_sequences"])) > 1:
            raise CacheError(f"{where}: conditions scored on different sequence counts; delete them and rerun")
        comparisons = [
            (None if row["condition"] == "none" else none, treated, controls if row["condition"] == "circuit" else [])
            for row, treated in zip(records, outcomes, strict=True)
        ]
        tested = S.group_tests(comparisons, *resampling(int(records[0]["n_sequences"] or 0)))
        out += [{**row, **tests} for row, tests in zip(records, tested, strict=True)]
    schema = {**dict(rows.schema), **{name: pl.Float64 for name in C.ABLATION_TEST_COLUMNS}, "n_controls": pl.Int64}
    schema = {name: schema[name] for name in C.ABLATION_COLUMNS}
    return pl.DataFrame([{name: row.get(name) for name in schema} for row in out], schema=schema)


def ablation_table(paths: Sequence[Path]) -> pl.DataFrame:
    """Every revision's ablation rows with their paired tests (``ABLATION_COLUMNS``), ordered by model, tokens,
    step, probe, condition, draw."""
    rows = pl.concat([read_ablation_rows(path) for path in paths], how="vertical_relaxed")
    table = with_tests(rows)
    order = {name: i for i, name in enumerate(C.ABLATION_CONDITIONS)}
    rank = pl.col("condition").replace_strict(order, default=len(order), return_dtype=pl.Int64)
    return table.sort("model", "tokens", "step", "probe", rank, "draw", "heads", nulls_last=True)


def _drops(rows: pl.DataFrame) -> dict[str, Any]:
    """Summaries of one revision and probe: baseline top-1, circuit drop, matched-random mean drop and spread,
    and the circuit's paired excess drop over matched random (its interval and p; tested: it had a control)."""
    none = rows.filter(pl.col("condition") == "none")["top1"]
    base = none[0] if len(none) else None
    circuit = rows.filter(pl.col("condition") == "circuit")
    size = int(circuit["circuit_size"][0]) if circuit.height else None
    circuit_top1 = circuit["top1"][0] if circuit.height else None
    # an empty draw (the circuit fills its layers) is no control: it has no drop
    drawn = rows.filter((pl.col("condition") == "matched_random") & (pl.col("n_ablated") > 0))
    random = drawn["top1"].drop_nulls()
    circuit_drop = None if base is None or circuit_top1 is None else base - circuit_top1
    control_size = int(drawn["n_ablated"].max()) if drawn.height else 0
    random_drops = [base - v for v in random.to_list()] if base is not None else []
    random_drop = sum(random_drops) / len(random_drops) if random_drops else None
    spread = pl.Series(random_drops, dtype=pl.Float64).std() if len(random_drops) > 1 else None
    # a ratio only against a positive control drop (ablating random heads may even help)
    ratio = circuit_drop / random_drop if circuit_drop is not None and random_drop and random_drop > 0 else None
    tests = circuit.row(0, named=True) if circuit.height else {}
    tested = bool(tests.get("n_controls")) and tests.get("top1_excess_drop_p") is not None
    return {
        "size": size,
        "control_size": control_size,
        "top1": base,
        "circuit_drop": circuit_drop,
        "random_drop": random_drop,
        "random_drop_sd": spread,
        "ratio": ratio,
        "tested": tested,
        "excess": tests.get("top1_excess_drop") if tested else None,
        "excess_low": tests.get("top1_excess_drop_ci_low") if tested else None,
        "excess_high": tests.get("top1_excess_drop_ci_high") if tested else None,
        "excess_p": tests.get("top1_excess_drop_p") if tested else None,
    }


def ablation_summary(table: pl.DataFrame) -> pl.DataFrame:
    """One row per model and revision with ``ABLATION_EMERGENCE_COLUMNS`` (synthetic probe; natural drops if any).

    ``table``: the ablation table with its tests (:func:`ablation_table`). ``ablation_excess_p_holm`` is left
    null here: it depends on which revisions the curves keep (:func:`holm_adjusted`).
    """
    rows = []
    for (model, revision), rev in table.group_by("model", "revision", maintain_order=True):
        synthetic = _drops(rev.filter(pl.col("probe") == "synthetic"))
        natural = _drops(rev.filter(pl.col("probe") == "natural"))
        rows.append(
            {
                "model": model,
                "revision": revision,
                "ablation_circuit_size": synthetic["size"],
                "ablation_control_size": synthetic["control_size"],
                "ablation_top1": synthetic["top1"],
                "ablation_circuit_drop": synthetic["circuit_drop"],
                "ablation_random_drop": synthetic["random_drop"],
                "ablation_random_drop_sd": synthetic["random_drop_sd"],
                "ablation_drop_ratio": synthetic["ratio"],
                "ablation_tested": synthetic["tested"],
                "ablation_excess_drop": synthetic["excess"],
                "ablation_excess_ci_low": synthetic["excess_low"],
                "ablation_excess_ci_high": synthetic["excess_high"],
                "ablation_excess_p": synthetic["excess_p"],
                "ablation_excess_p_holm": None,
                "natural_ablation_circuit_drop": natural["circuit_drop"],
                "natural_ablation_random_drop": natural["random_drop"],
            }
        )
    schema = {name: pl.Float64 for name in C.ABLATION_EMERGENCE_COLUMNS}
    schema |= {"ablation_circuit_size": pl.Int64, "ablation_control_size": pl.Int64, "ablation_tested": pl.Boolean}
    return pl.DataFrame(rows, schema={"model": pl.String, "revision": pl.String, **schema})


def holm_adjusted(curves: pl.DataFrame) -> pl.DataFrame:
    """``curves`` with ``ablation_excess_p_holm``: each tested revision's excess p after Holm's adjustment over
    the model's tested revisions in the curves (untested revisions: null)."""
    adjusted: dict[tuple[str, str], float] = {}
    tested = curves.filter(pl.col("ablation_tested").fill_null(False))
    for (model,), curve in tested.group_by("model", maintain_order=True):
        for revision, p in zip(curve["revision"], S.holm(curve["ablation_excess_p"].to_list()), strict=True):
            adjusted[(model, revision)] = p
    values = [adjusted.get(key) for key in zip(curves["model"], curves["revision"], strict=True)]
    return curves.with_columns(pl.Series("ablation_excess_p_holm", values, dtype=pl.Float64))


def is_causal(circuit_drop: float | None, random_drop: float | None, factor: float) -> bool:
    """The factor rule: the circuit's top-1 drop is positive and exceeds ``factor`` x the matched-random drop
    (floored at 0). Without a matched-random drop (no circuit, or no head left to draw) nothing is claimed.

    The causal milestone also needs the excess drop to be significant (:func:`causal_milestones`).
    """
    if circuit_drop is None or circuit_drop <= 0 or random_drop is None:
        return False
    return circuit_drop > factor * max(random_drop or 0.0, 0.0)


def causal_known(curve: pl.DataFrame) -> list[str]:
    """The revisions of ``curve`` (emergence rows with ``ABLATION_EMERGENCE_COLUMNS``) whose causal state is known:
    those with no circuit (nothing to ablate) and those tested against a matched control. A revision whose circuit
    had no control is unknown, so the causal milestone's bracket starts at the last known revision before it."""
    known = curve.filter((pl.col("ablation_circuit_size") == 0) | pl.col("ablation_tested").fill_null(False))
    return known["revision"].to_list()


#: Why a model's causal milestone is untestable (``causal_note``).
NO_CONTROL = "no matched control at any revision (the circuit fills its layers)"
NO_CIRCUIT = "no circuit at any revision (no head reached the screen)"


def causal_milestones(curves: pl.DataFrame, factor: float, alpha: float = 0.01) -> pl.DataFrame:
    """Per model, the causal milestone (``CAUSAL_MILESTONE_COLUMNS``): the first revision (by tokens, then step)
    where the factor rule holds (:func:`is_causal`) and the circuit's excess top-1 drop over matched random has
    a Holm-adjusted one-sided p below ``alpha`` (over the model's tested revisions).

    States: ``causal``; ``not reached`` (tested somewhere, never both; the evidence is the tested revision
    with the largest excess drop); ``untestable`` (no revision had a matched control; a revision without
    one is untested, not negative). ``curves``: the emergence curves with ``ABLATION_EMERGENCE_COLUMNS``.

    The study's matched draw takes what a layer has left, so a tested circuit may face a smaller control.
    Beside the study's milestone, ``causal_full_control_revision`` is the first revision that passes the same
    test (same Holm family) with a control as large as the circuit: the stricter reading, never a replacement.
    """
    curves = holm_adjusted(curves)
    rows = []
    for (model,), curve in curves.group_by("model", maintain_order=True):
        ordered = list(curve.sort("tokens", "step").iter_rows(named=True))
        tested = [row for row in ordered if row["ablation_tested"]]
        passing = [
            row
            for row in tested
            if is_causal(row["ablation_circuit_drop"], row["ablation_random_drop"], factor)
            and row["ablation_excess_p_holm"] < alpha
        ]
        hit = passing[0] if passing else None
        full = next((row for row in passing if row["ablation_control_size"] >= row["ablation_circuit_size"]), None)
        evidence, note = hit, None
        if hit is not None:
            state = "causal"
        elif tested:
            state = "not reached"
            evidence = max(tested, key=lambda row: row["ablation_excess_drop"])  # the first of equals
        else:
            state = "untestable"
            note = NO_CONTROL if any(row["ablation_circuit_size"] for row in ordered) else NO_CIRCUIT
        rows.append(
            {
                "model": model,
                "causal_state": state,
                "causal_revision": hit["revision"] if hit else None,
                "causal_tokens": hit["tokens"] if hit else None,
                "causal_factor": factor,
                "causal_alpha": alpha,
                "causal_tested_revisions": len(tested),
                "causal_evidence_revision": evidence["revision"] if evidence else None,
                "causal_excess_drop": evidence["ablation_excess_drop"] if evidence else None,
                "causal_excess_ci_low": evidence["ablation_excess_ci_low"] if evidence else None,
                "causal_excess_ci_high": evidence["ablation_excess_ci_high"] if evidence else None,
                "causal_p": evidence["ablation_excess_p"] if evidence else None,
                "causal_p_holm": evidence["ablation_excess_p_holm"] if evidence else None,
                "causal_circuit_drop": evidence["ablation_circuit_drop"] if evidence else None,
                "causal_random_drop": evidence["ablation_random_drop"] if evidence else None,
                "causal_circuit_size": evidence["ablation_circuit_size"] if evidence else None,
                "causal_control_size": evidence["ablation_control_size"] if evidence else None,
                "causal_full_control_revision": full["revision"] if full else None,
                "causal_full_control_tokens": full["tokens"] if full else None,
                "causal_note": note,
            }
        )
    strings = ("causal_state", "causal_revision", "causal_evidence_revision", "causal_full_control_revision")
    counts = ("causal_tokens", "causal_tested_revisions", "causal_circuit_size", "causal_control_size")
    schema = {"model": pl.String} | {name: pl.Float64 for name in C.CAUSAL_MILESTONE_COLUMNS}
    schema |= {name: pl.String for name in (*strings, "causal_note")}
    schema |= {name: pl.Int64 for name in (*counts, "causal_full_control_tokens")}
    return pl.DataFrame(rows, schema=schema)
