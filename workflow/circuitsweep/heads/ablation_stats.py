"""Paired statistics of the ablation over probe sequences (docs/methods.md, "How sure is an ablation?").

Pure functions on per-sequence outcomes (numpy, no torch): every ablated
condition is compared with a reference scored on the *same* probe sequences,
so each comparison is paired, sequence by sequence.

- top-1: the exact one-sided sign test on the per-sequence differences (with
  0/1 outcomes on both sides it is McNemar's exact test: only discordant
  sequences count, and under the null each is equally likely to go either way,
  a Binomial(discordant, 1/2)); a reference that is the per-sequence mean of
  several matched-random draws gives differences in steps of 1/draws, and the
  test counts their signs the same way;
- loss: a one-sided sign-flip permutation test of the mean difference (seeded;
  p = (1 + #{flipped mean >= observed}) / (1 + flips));
- intervals: the paired percentile bootstrap of the mean difference over
  sequences (seeded), 95% by default;
- :func:`holm`: Holm's step-down adjustment of a family of p-values.

Resampling is made once per sequence count (:class:`Resampling`) and every
difference of a group of conditions scored on the same sequences is resampled
in one matrix product (:func:`group_tests`), so a table of thousands of rows
costs seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import comb
from typing import Any

import numpy as np
import polars as pl

from circuitsweep.errors import DataError
from circuitsweep.io import contracts as C

#: Arrow types of the per-sequence columns (``ABLATION_SEQUENCE_COLUMNS``) in both ablations' rows files.
SEQUENCE_SCHEMA: dict[str, Any] = {
    "seq_loss": pl.List(pl.Float64),
    "seq_top1": pl.List(pl.Boolean),
    "seq_top5": pl.List(pl.Boolean),
}

#: Resamples of the paired bootstrap and sign flips of the permutation test.
RESAMPLES = 2000
#: Seed of both (one fixed seed: a table is the same on every run).
SEED = 0
#: Two-sided coverage of the reported intervals.
LEVEL = 0.95


def binomial_upper_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly (integer arithmetic, one rounding at the end)."""
    if n < 0:
        raise ValueError(f"a binomial count cannot be negative: n = {n}")
    if k > n:
        return 0.0
    k = max(k, 0)
    # the shorter of the two sums, each term from the last (exact: comb(n, i + 1) = comb(n, i) (n - i) / (i + 1))
    upper = n - k + 1 <= k
    first, last = (k, n) if upper else (0, k - 1)
    term, total = comb(n, first), 0
    for i in range(first, last + 1):
        total += term
        term = term * (n - i) // (i + 1)
    return (total if upper else 2**n - total) / 2**n


def sign_test_p(differences: np.ndarray) -> float:
    """One-sided exact sign test that positive differences are more likely than negative ones.

    ``differences``: ``[n]`` per-sequence differences; zeros (concordant sequences) do
    not count. With 0/1 outcomes on both sides this is McNemar's exact test. 1.0 when
    no sequence differs.
    """
    d = np.asarray(differences, dtype=np.float64)
    positive, negative = int((d > 0).sum()), int((d < 0).sum())
    return binomial_upper_tail(positive, positive + negative) if positive + negative else 1.0


def bootstrap_weights(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``[resamples, n]`` paired-bootstrap weights: how often each sequence is drawn in each resample, over n.

    ``weights @ d`` is the mean of ``d`` (``[n]``) in every resample; one matrix serves every
    condition scored on the same sequences, so they are resampled together.
    """
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples) if n else np.zeros((resamples, 0))
    return counts / max(n, 1)


def sign_flips(n: int, flips: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``[flips, n]`` random signs over n: ``flips @ d`` is the mean of ``d`` with each sequence's sign flipped."""
    rng = np.random.default_rng(seed + 1)
    return rng.choice(np.array([-1.0, 1.0]), size=(flips, n)) / max(n, 1)


class Resampling:
    """:func:`bootstrap_weights` and :func:`sign_flips` per sequence count, made once and shared by every
    condition of that count (``resampling(n) -> (weights, flips)``)."""

    def __init__(self, resamples: int = RESAMPLES, seed: int = SEED) -> None:
        self.resamples, self.seed = resamples, seed
        self._made: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n not in self._made:
            self._made[n] = (bootstrap_weights(n, self.resamples, self.seed), sign_flips(n, self.resamples, self.seed))
        return self._made[n]


def percentile_interval(means: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap means ``[resamples]``."""
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _flip_p(observed: float, flipped: np.ndarray) -> float:
    # a flipped mean equal to the observed one counts against it (ties up to rounding)
    hits = int((flipped >= observed - 1e-12 * max(1.0, abs(observed))).sum())
    return (1 + hits) / (1 + len(flipped))


def sign_flip_p(differences: np.ndarray, flips: np.ndarray) -> float:
    """One-sided sign-flip permutation p that the mean difference is > 0 (``flips`` from :func:`sign_flips`)."""
    d = np.asarray(differences, dtype=np.float64)
    return _flip_p(d.mean() if d.size else 0.0, flips @ d)


def format_p(value: float) -> str:
    """``0.0031``, ``0.18``; below 0.0001 ``< 0.0001`` (never scientific notation), for tables people read."""
    return "< 0.0001" if value < 1e-4 else f"{value:.2g}"


def format_paired(estimate: float | None, low: float | None, high: float | None, p: float | None) -> str | None:
    """``0.335 [0.245, 0.425], p = 0.0031``: a paired comparison in one cell; None when there is none."""
    if estimate is None or p is None:
        return None
    probability = format_p(p)
    return f"{estimate:.3f} [{low:.3f}, {high:.3f}], p {'' if probability.startswith('<') else '= '}{probability}"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order: the family's error rate stays below alpha when
    each adjusted p is compared with alpha. Sorted ascending, the j-th (from 0) is multiplied by (m - j), the
    running maximum is kept, and nothing exceeds 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p_values[i]))
        adjusted[i] = running
    return adjusted


#: One condition's per-sequence outcomes: ``top1`` (0/1, or a mean over draws) and ``loss`` (nats), each ``[n]``.
Outcomes = Mapping[str, np.ndarray]


def row_outcomes(row: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """The per-sequence outcomes of a rows-file row (``ABLATION_SEQUENCE_COLUMNS``); None when it was not scored."""
    if row.get("seq_top1") is None or row.get("seq_loss") is None:
        return None
    outcomes = {
        "top1": np.asarray(row["seq_top1"], dtype=np.float64),
        "loss": np.asarray(row["seq_loss"], dtype=np.float64),
    }
    if not np.isfinite(outcomes["loss"]).all():
        raise DataError(
            f"ablation rows of {row.get('model')} {row.get('revision')}: condition {row.get('condition')} "
            f"({row.get('heads') or 'no head'}) holds a non-finite per-sequence loss; delete the rows file and rerun"
        )
    return outcomes


def mean_outcomes(draws: Sequence[Outcomes]) -> dict[str, np.ndarray]:
    """The per-sequence mean of several draws' outcomes (the matched-random reference of an excess drop)."""
    return {name: np.mean([draw[name] for draw in draws], axis=0) for name in ("top1", "loss")}


#: One condition to test: its reference (no ablation; None for ``none`` itself), its outcomes (None: not
#: scored) and its matched-random controls (scored draws; empty: no excess).
Comparison = tuple[Outcomes | None, Outcomes | None, Sequence[Outcomes]]


def differences(reference: Outcomes | None, treated: Outcomes | None, controls: Sequence[Outcomes]) -> dict:
    """The per-sequence differences ``[n]`` one condition is tested on, by test column: top-1 drop
    (reference - treated) and loss increase (treated - reference) against ``reference``, and the same against
    the per-sequence mean of ``controls`` (the excess: (reference - treated) - (reference - control mean))."""
    out: dict[str, np.ndarray] = {}
    if treated is None:
        return out
    if reference is not None:
        out["top1_drop"] = np.asarray(reference["top1"], np.float64) - treated["top1"]
        out["loss_increase"] = np.asarray(treated["loss"], np.float64) - reference["loss"]
    if controls:
        control = mean_outcomes(controls)
        out["top1_excess_drop"] = control["top1"] - np.asarray(treated["top1"], np.float64)
        out["loss_excess_increase"] = np.asarray(treated["loss"], np.float64) - control["loss"]
    return out


def group_tests(comparisons: Sequence[Comparison], weights: np.ndarray, flips: np.ndarray) -> list[dict[str, Any]]:
    """``ABLATION_TEST_COLUMNS`` of conditions scored on the same n sequences, resampled together.

    Each difference's mean, its percentile bootstrap interval (``weights``, :func:`bootstrap_weights` of n) and
    its one-sided p: the exact sign test for top-1 (McNemar's with 0/1 outcomes), the sign-flip permutation
    test for the loss (``flips``, :func:`sign_flips` of n). Every difference of the group is resampled in one
    matrix product. Null where a side is missing (not scored, no reference, no control).
    """
    out: list[dict[str, Any]] = [dict.fromkeys(C.ABLATION_TEST_COLUMNS) for _ in comparisons]
    found = [(i, name, d) for i, c in enumerate(comparisons) for name, d in differences(*c).items() if d.size]
    if not found:
        return out
    stacked = np.stack([d for _, _, d in found], axis=1)  # [n, tests]
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(weights @ stacked, [tail, 1 - tail], axis=0)
    losses = [j for j, (_, name, _) in enumerate(found) if name.startswith("loss")]
    flipped = dict(zip(losses, (flips @ stacked[:, losses]).T, strict=True)) if losses else {}
    for j, (i, name, d) in enumerate(found):
        mean = float(d.mean())
        p = _flip_p(mean, flipped[j]) if j in flipped else sign_test_p(d)
        out[i].update({name: mean, f"{name}_ci_low": float(low[j]), f"{name}_ci_high": float(high[j]), f"{name}_p": p})
    for result, (_, treated, controls) in zip(out, comparisons, strict=True):
        if treated is not None and controls:
            result["n_controls"] = len(controls)
    return out


def condition_tests(
    reference: Outcomes | None,
    treated: Outcomes | None,
    controls: Sequence[Outcomes],
    weights: np.ndarray,
    flips: np.ndarray,
) -> dict[str, Any]:
    """``ABLATION_TEST_COLUMNS`` of one condition (:func:`group_tests` of it alone): its drop against
    ``reference`` (no ablation) and, with ``controls`` (its matched-random draws, scored), its excess drop over
    their per-sequence mean."""
    return group_tests([(reference, treated, controls)], weights, flips)[0]
