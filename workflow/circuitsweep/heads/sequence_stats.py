"""Selectivity from per-sequence statistics, for any weighting of the probe sequences (numpy, no torch).

The induction observer keeps, per sequence, the last query's attention to each
target and its mean attention to the baseline positions
(:data:`contracts.STAT_PER_SEQUENCE`, ``[n, L, H, 7]``). A selectivity is a
ratio of means over sequences (induction and duplicate over valid sequences
only, docs/methods.md), so it is a function of weighted sums of these rows:
the point estimate weighs every sequence once, a bootstrap resample by how
often it drew the sequence.

Exact sums. Each stored value is rounded to a multiple of ``2**-grid_bits(n)``
(only values below about ``2**(23 - grid_bits)``, some 4e-6 for n = 2000, move,
by at most half that step, 2e-13), chosen so that any sum of at most n such
values (attention <= 1, with room to spare) times integer weights summing to n
is exactly representable in float64. Sums are then exact whatever their order
(a BLAS product, a torch reduction): the identity weighting reproduces the
point estimate bit for bit, and it is tested.
"""

from __future__ import annotations

import numpy as np

from circuitsweep.io import contracts as C

#: The last entry of a per-sequence row after the targets: the mean attention to the baseline positions.
BASELINE_COLUMN = len(C.TARGETS)
#: Targets averaged over valid sequences only (docs/methods.md); the others and the baseline over all.
VALID_ONLY: tuple[str, ...] = ("induction", "duplicate")
VALID_ONLY_COLUMNS: tuple[int, ...] = tuple(C.TARGETS.index(t) for t in VALID_ONLY)
#: Floor of the selectivity baseline (a ratio of means); :mod:`heads.scores` uses this one too.
BASELINE_FLOOR = 1e-8


def grid_bits(n_sequences: int) -> int:
    """Bits after the binary point kept in per-sequence values of a probe of ``n_sequences`` sequences.

    ``2 * n * 2**bits <= 2**53``: sums of n values of at most 2 (attention is at
    most 1) on this grid are exact in float64, with any integer weights summing to n.
    """
    return 52 - max(1, (max(1, n_sequences) - 1).bit_length())


def sequence_means(
    per_sequence: np.ndarray, valid: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean attention to each target and to the baseline, as float32, under each weighting of the sequences.

    per_sequence: ``[n, L, H, len(TARGETS) + 1]`` (:data:`contracts.STAT_PER_SEQUENCE`);
    valid: ``[n]`` bool; weights: ``[B, n]`` non-negative integer counts summing to n
    per row (None: one row of ones, the point estimate). Returns target means
    ``[B, L, H, len(TARGETS)]`` (induction and duplicate over the valid
    sequences a row weighs, 0 where it weighs none) and baseline means ``[B, L, H]``.
    Float64 sums divided by the weighed count and rounded to float32, as the
    observer rounds its means.
    """
    n = per_sequence.shape[0]
    if weights is None:
        weights = np.ones((1, n))
    weights = np.asarray(weights, dtype=np.float64)
    shape = per_sequence.shape[1:]
    values = per_sequence.astype(np.float64).reshape(n, *shape)
    valid64 = np.asarray(valid, dtype=np.float64)
    masked = values.copy()
    masked[..., list(VALID_ONLY_COLUMNS)] *= valid64[:, None, None, None]
    sums = (weights @ masked.reshape(n, -1)).reshape(len(weights), *shape)
    all_count = weights.sum(axis=1)[:, None, None, None]
    valid_count = (weights @ valid64)[:, None, None]
    means = sums / all_count
    with np.errstate(invalid="ignore", divide="ignore"):
        for column in VALID_ONLY_COLUMNS:
            means[..., column] = np.where(valid_count > 0, sums[..., column] / valid_count, 0.0)
    means = means.astype(np.float32)
    return means[..., :BASELINE_COLUMN], means[..., BASELINE_COLUMN]


def selectivity(target_mean: np.ndarray, baseline_mean: np.ndarray) -> np.ndarray:
    """Selectivity ``[..., len(TARGETS)]`` (float32): target means over the floored baseline mean, as the scores."""
    baseline = np.maximum(baseline_mean, np.float32(BASELINE_FLOOR))
    return target_mean / baseline[..., None]


def resample_weights(n_sequences: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n]`` int32 counts: how often each of ``resamples`` bootstrap draws takes each sequence.

    Each draw takes n sequences uniformly with replacement, from one
    ``numpy.random.default_rng(seed)`` (draw after draw), so a seed gives the
    same resamples for every revision of a model (its probe sequences are the same).
    """
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_sequences, size=(resamples, n_sequences))
    offsets = np.arange(resamples)[:, None] * n_sequences
    counts = np.bincount((picks + offsets).ravel(), minlength=resamples * n_sequences)
    return counts.reshape(resamples, n_sequences).astype(np.int32)
