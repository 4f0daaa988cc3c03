"""The 0a - 0b gap with a bootstrap interval and a permutation null.

The statistic is gap = mean(scores of 0a) - mean(scores of 0b), one value per
row (a layer, or the summary). The unit of resampling is the stimulus (the
primitive), not the context: contexts of one primitive are not independent.

- Bootstrap: resample the primitives with replacement within each set;
  the interval is the percentile interval of the resampled gaps.
- Permutation null: shuffle the 0a/0b labels (set sizes kept); two-sided
  p = (1 + #{|null gap| >= |observed gap|}) / (1 + n_perm).

All rows share the same resamples and permutations (one seeded Generator each),
so rows are comparable and fixed seeds give identical numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitsweep.errors import DataError

_TIE = 1e-12


@dataclass(frozen=True)
class GapResult:
    """Per row ``[R]``: the gap, its bootstrap interval and its permutation p-value."""

    gap: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray


def summary_layers(layers: np.ndarray) -> np.ndarray:
    """Mask of the layers averaged into the summary: all blocks (layer >= 1), the embeddings only if alone.

    The embedding output (layer 0) is a context-free lookup, so it is reported
    per layer but left out of the summary.
    """
    layers = np.asarray(layers)
    blocks = layers >= 1
    return blocks if blocks.any() else np.ones_like(blocks, dtype=bool)


def _set_weights(index_rows: np.ndarray, members: np.ndarray, n_items: int, sign: float) -> np.ndarray:
    """``[n_rows, n_items]`` weights that average ``members[index_rows[r]]`` (times ``sign``) in row r."""
    n_rows, size = index_rows.shape
    weights = np.zeros((n_rows, n_items))
    np.add.at(weights, (np.repeat(np.arange(n_rows), size), members[index_rows].ravel()), sign / size)
    return weights


def gap_with_uncertainty(
    scores: np.ndarray,
    in_a: np.ndarray,
    *,
    n_boot: int = 10_000,
    n_perm: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> GapResult:
    """Gap of ``scores [R, N]`` between the items with ``in_a [N]`` True (0a) and False (0b), per row."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    in_a = np.asarray(in_a, dtype=bool)
    if scores.shape[1] != in_a.shape[0]:
        raise ValueError(f"scores have {scores.shape[1]} items but labels {in_a.shape[0]}")
    if not np.isfinite(scores).all():
        raise DataError("primitive scores hold NaN or infinite values; the gap would be meaningless")
    members_a, members_b = np.flatnonzero(in_a), np.flatnonzero(~in_a)
    if len(members_a) < 2 or len(members_b) < 2:
        raise DataError(f"the gap needs at least 2 items per set, got {len(members_a)} and {len(members_b)}")
    n_items = len(in_a)
    observed = scores[:, members_a].mean(1) - scores[:, members_b].mean(1)

    rng_boot, rng_perm = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    draw_a = rng_boot.integers(0, len(members_a), size=(n_boot, len(members_a)))
    draw_b = rng_boot.integers(0, len(members_b), size=(n_boot, len(members_b)))
    weights = _set_weights(draw_a, members_a, n_items, 1.0) + _set_weights(draw_b, members_b, n_items, -1.0)
    boot = scores @ weights.T  # [R, n_boot]
    tail = (1.0 - level) / 2 * 100
    ci_low, ci_high = np.percentile(boot, [tail, 100 - tail], axis=1)

    labels = rng_perm.permuted(np.tile(in_a, (n_perm, 1)), axis=1)  # [n_perm, N]
    contrast = labels / len(members_a) - (~labels) / len(members_b)
    null = scores @ contrast.T  # [R, n_perm]
    extreme = (np.abs(null) >= np.abs(observed)[:, None] - _TIE).sum(1)
    p_value = (1 + extreme) / (1 + n_perm)
    return GapResult(observed, ci_low, ci_high, p_value)
