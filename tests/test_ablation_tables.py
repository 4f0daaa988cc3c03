"""Final tables with natural-text counts and ablation rows (head_tables, no model)."""

from __future__ import annotations

import polars as pl
import pytest
from test_emergence import THRESHOLDS, classified, revision_row

from circuitsweep.heads.ablation import ablation_frame
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import write_table
from circuitsweep.milestones.tables import HeadTableOutputs, head_tables

#: (revision, step, classes, top-1 without ablation, with the circuit ablated, per matched-random draw)
SCHEDULE = [
    ("step0", 0, {}, 0.01, None, []),
    ("step20", 20, {(1, 0): "induction"}, 0.05, 0.0, [0.02, 0.0]),  # circuit drop 0.05, random 0.04: not causal
    ("step30", 30, {(1, 0): "induction", (1, 1): "induction"}, 0.4, 0.05, [0.39, 0.38]),  # 0.35 vs 0.015
]


def ablation_rows(step: int, none: float, circuit: float | None, draws: list[float]) -> list[dict]:
    size = 0 if circuit is None else 1 + (step >= 30)
    base = {"probe": "synthetic", "circuit_size": size, "n_sequences": 100, "loss": 1.0, "top5": 0.5}
    rows = [{**base, "condition": "none", "draw": None, "heads": "", "n_ablated": 0, "top1": none, "mean_logit": 1.0}]
    rows.append(
        {**base, "condition": "circuit", "draw": None, "heads": "L1H0", "n_ablated": size, "top1": circuit,
         "mean_logit": 0.0, "note": "empty circuit" if circuit is None else None}
    )  # fmt: skip
    rows += [
        {
            **base,
            "condition": "matched_random",
            "draw": i,
            "heads": "L1H3",
            "n_ablated": size,
            "top1": v,
            "mean_logit": 1,
        }
        for i, v in enumerate(draws)
    ]
    if circuit is None:
        rows[1].update(loss=None, top5=None, mean_logit=None)
    return rows


@pytest.fixture
def tables(tmp_path):
    heads = pl.DataFrame([r for name, step, cls, *_ in SCHEDULE for r in classified("m", name, step, cls)])
    revisions = pl.DataFrame(
        [
            {**revision_row("m", name, step, 0.0, f"w{step}"), "natural_bos_fraction": step / 100,
             "natural_induction_heads": len(cls)}
            for name, step, cls, *_ in SCHEDULE
        ]
    )  # fmt: skip
    # what classify_heads records: head_tables checks it against the planned thresholds
    run = {"model": "m", "thresholds": dict(THRESHOLDS.__dict__)}
    write_table(tmp_path / "heads.parquet", heads, run)
    write_table(tmp_path / "revisions.parquet", revisions, run)
    paths = []
    for name, step, _, none, circuit, draws in SCHEDULE:
        identity = {"model": "m", "revision": name, "step": step, "tokens": step * 1000}
        path = tmp_path / f"ablation_{name}.parquet"
        write_table(path, ablation_frame(ablation_rows(step, none, circuit, draws), identity), {})
        paths.append(path)
    out = HeadTableOutputs(
        heads=tmp_path / "t" / "heads.parquet",
        emergence_parquet=tmp_path / "t" / "emergence.parquet",
        emergence_csv=tmp_path / "t" / "emergence.csv",
        milestones_parquet=tmp_path / "t" / "milestones.parquet",
        milestones_csv=tmp_path / "t" / "milestones.csv",
        milestones_md=tmp_path / "t" / "milestones.md",
        ablation_parquet=tmp_path / "t" / "ablation.parquet",
        ablation_csv=tmp_path / "t" / "ablation.csv",
    )
    head_tables(
        [tmp_path / "heads.parquet"],
        [tmp_path / "revisions.parquet"],
        {"m": THRESHOLDS},
        out,
        ablation_paths=paths,
        causal_factor=2.0,
    )
    return out


def test_emergence_gains_natural_and_ablation_columns(tables):
    """Natural counts and the circuit's and matched-random drops sit on each revision's emergence row."""
    curves = pl.read_parquet(tables.emergence_parquet)
    for name in (*C.NATURAL_EMERGENCE_COLUMNS, *C.ABLATION_EMERGENCE_COLUMNS):
        assert name in curves.columns
    row = curves.filter(pl.col("revision") == "step30").row(0, named=True)
    assert row["natural_bos_fraction"] == pytest.approx(0.3) and row["natural_induction_heads"] == 2
    assert row["ablation_circuit_drop"] == pytest.approx(0.35)
    assert row["ablation_random_drop"] == pytest.approx(0.015)
    assert row["ablation_drop_ratio"] == pytest.approx(0.35 / 0.015)
    empty = curves.filter(pl.col("revision") == "step0").row(0, named=True)
    assert empty["ablation_circuit_drop"] is None and empty["ablation_circuit_size"] == 0


def test_causal_milestone_is_the_first_revision_beyond_the_factor(tables):
    """step20's drop (0.05) is not above 2 x 0.04; step30's is: the circuit becomes causal at step30."""
    milestones = pl.read_csv(tables.milestones_csv)
    assert milestones["causal_revision"].item() == "step30"
    assert milestones["causal_tokens"].item() == 30000
    ablation = pl.read_csv(tables.ablation_csv)
    assert ablation.columns == list(C.ABLATION_COLUMNS)
    assert ablation.filter(pl.col("revision") == "step0")["condition"].to_list() == ["none", "circuit"]
