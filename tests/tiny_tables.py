"""A tiny real run's tables for CLI tests: model ``m``, revisions step0, step10 and step100, 2 layers of 2 heads."""

from __future__ import annotations

import polars as pl

from circuitsweep.io import contracts as C

STEPS = (0, 10, 100)


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
