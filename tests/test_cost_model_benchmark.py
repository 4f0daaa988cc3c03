"""benchmarks/cost_model.py, the measurement behind the cost model's CPU constants: its fit separates the fixed cost
per batch from the cost per token."""

from __future__ import annotations

import math

import torch
from bench_scripts import load_script


def test_the_fit_times_real_measurements_and_returns_finite_costs():
    """On a tiny model and batch sizes that vary apart from the token counts, the fit gives a finite fixed cost per
    batch and a positive cost per token: the timed call is the real head measurement."""
    bench = load_script("cost_model")
    torch.manual_seed(0)
    per_batch, per_token = bench.fit(bench.model(1, 32, 2), [(4, 1), (4, 4), (8, 2), (8, 8)], repeats=1)
    assert math.isfinite(per_batch) and per_token > 0


def test_the_runs_vary_batches_apart_from_tokens():
    """Batches and tokens of the timed runs are not proportional, or the least-squares fit could not tell the
    fixed cost per batch from the cost per token."""
    bench = load_script("cost_model")
    ratios = {-(-n // batch) / n for n, batch in bench.RUNS}
    assert len(ratios) > 1
