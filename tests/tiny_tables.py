"""Tiny real tables for tests: one revision's score cache, and a classified run of model ``m`` (revisions
step0, step10 and step100, 2 layers of 2 heads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep.io import contracts as C
from circuitsweep.io.tables import write_table

STEPS = (0, 10, 100)


def write_score_cache(
    path: Path, rows: list[dict[str, Any]], model: str, revision: str, step: int, tokens: int, shape: tuple[int, int]
) -> None:
    """One revision's head scores ``rows`` (per layer and head) at ``path``, with the metadata measure-revision
    writes beside them; ``shape``: (layers, heads)."""
    metadata = {
        "model": model,
        "revision": revision,
        "step": step,
        "tokens": tokens,
        "n_layers": shape[0],
        "n_heads": shape[1],
        "loss_first_half": 5.0,
        "loss_second_half": 4.0,
        "in_context_loss_drop": -1.0,
        "first_token_policy": "none",
        "first_token_id": None,
        "probe": "random_tokens",
        "probe_protocol": "xu2026",
        "valid_sequences": 2000,
        "dtype": "float32",
        "weights_sha256": f"w-{revision}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(path, pl.DataFrame(rows), metadata)


def tiny_heads_and_revisions() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Classified heads (every selectivity 1 + step / 100, so none crosses the thresholds 10 / 20) and the
    per-revision facts of model ``m``, as ``classify-heads`` writes them."""
    from circuitsweep.heads.classify import Thresholds, head_classes

    rows = [
        {"model": "m", "revision": f"step{s}", "step": s, "tokens": s * 1000, "layer": layer, "head": head}
        | dict.fromkeys(C.SELECTIVITY_COLUMNS, 1.0 + s / 100)
        | {"baseline_attention": 0.01, "sink_alpha": 0.1, "prefix_matching": 0.0, "previous_token": 0.0}
        | {"duplicate_token": 0.0, "pr": 1.0 + head}
        for s in STEPS
        for layer in range(2)
        for head in range(2)
    ]
    heads = head_classes(pl.DataFrame(rows), Thresholds(10, 20, 20, 0.3))
    revisions = pl.DataFrame(
        [{"model": "m", "revision": f"step{s}", "step": s, "tokens": s * 1000, "n_layers": 2} for s in STEPS]
    ).with_columns(pl.lit(None, dtype=pl.Float64).alias("in_context_loss_drop"))
    return heads, revisions
