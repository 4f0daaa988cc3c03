"""Classification, emergence and milestones on the study's real token counts (issue 12, case 0).

Token counts pass 2**31 (Pythia step512 = 1,073,741,824 x 2; OLMo tokens2B vs
tokens4B): the key columns must be Int64 in every revision, or the concatenation
of revisions on both sides of 2**31 fails after all GPU work is done.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from tiny_tables import write_score_cache

from circuitsweep.config.load import load_config
from circuitsweep.heads.stage import classify_heads
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import read_table
from circuitsweep.milestones.tables import HeadTableOutputs, head_tables
from circuitsweep.plan.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
N_LAYERS, N_HEADS = 2, 2


def score_cache(path: Path, model: str, revision, weight: float) -> None:
    """One revision's head scores, as measure_heads writes them (head (1, 0) grows induction)."""
    rows = []
    for layer in range(N_LAYERS):
        for head in range(N_HEADS):
            induction = 100.0 * weight if (layer, head) == (1, 0) else 1.0
            rows.append(
                {"layer": layer, "head": head, **{c: 1.0 for c in C.HEAD_SCORE_COLUMNS}, "sel_induction": induction}
            )
    write_score_cache(path, rows, model, revision.name, revision.step, revision.tokens, (N_LAYERS, N_HEADS))


def straddling(revisions: list) -> list:
    """A few revisions below 2**31 tokens and a few above (all of them when few)."""
    below = [r for r in revisions if r.tokens < 2**31][:3]
    above = [r for r in revisions if r.tokens >= 2**31]
    return below + above[:2] + above[-2:] if len(above) > 4 else below + above


@pytest.mark.parametrize("config", ["paper.yaml", "full.yaml"])
def test_study_token_counts_classify_and_tabulate(config, tmp_path):
    """Every model of the study's configs classifies and tabulates; tokens and step stay Int64 and exact."""
    plan = plan_sweep(load_config(REPO / "config" / config), REPO)
    heads_paths, revision_paths, expected_tokens = [], [], {}
    for model, revisions in plan.revisions.items():
        chosen = straddling(revisions)
        expected_tokens[model] = sorted(r.tokens for r in chosen)
        paths = []
        for i, revision in enumerate(chosen):
            path = tmp_path / "cache" / model / revision.name / "heads.parquet"
            score_cache(path, model, revision, weight=i / max(len(chosen) - 1, 1))
            paths.append(path)
        heads_paths.append(tmp_path / "classes" / model / "heads.parquet")
        revision_paths.append(tmp_path / "classes" / model / "revisions.parquet")
        classify_heads(model, paths, plan.models[model].thresholds, heads_paths[-1], revision_paths[-1])
    out = HeadTableOutputs(
        *(tmp_path / "tables" / name for name in ("h.parquet", "e.parquet", "e.csv", "m.parquet", "m.csv", "m.md"))
    )
    head_tables(heads_paths, revision_paths, {m: s.milestones for m, s in plan.models.items()}, out)

    heads = read_table(out.heads)[0]
    curves = pl.read_parquet(out.emergence_parquet)
    for frame in (heads, curves, *(read_table(p)[0] for p in revision_paths)):
        assert frame.schema["tokens"] == pl.Int64 and frame.schema["step"] == pl.Int64
    for model, tokens in expected_tokens.items():
        assert sorted(curves.filter(pl.col("model") == model)["tokens"].to_list()) == tokens
    table = pl.read_csv(out.milestones_csv)
    assert table["final_tokens"].to_list() == [max(t) for t in expected_tokens.values()]
