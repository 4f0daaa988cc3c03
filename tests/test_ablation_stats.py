"""The ablation's paired statistics (heads.ablation_stats) on hand-built outcome vectors with known p-values."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from circuitsweep.heads import ablation_stats as S
from circuitsweep.io import contracts as C


def hits(n: int, *on: int) -> np.ndarray:
    out = np.zeros(n)
    out[list(on)] = 1
    return out


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [(5, 5, 1 / 32), (0, 5, 1.0), (6, 5, 0.0), (7, 9, 46 / 512), (3, 4, 5 / 16), (1, 1, 0.5), (0, 0, 1.0)],
)
def test_binomial_upper_tail_is_exact(k, n, p):
    """P(X >= k) for X ~ Binomial(n, 1/2): C(9,7) + C(9,8) + C(9,9) = 46 of 512, and so on."""
    assert S.binomial_upper_tail(k, n) == p


def test_binomial_upper_tail_of_thousands_of_pairs():
    """Exact for n in the thousands (integer sums, one division): 1040 of 2000 against the normal approximation's
    0.0384, and the symmetric point at one half and a bit."""
    n = 2000
    assert S.binomial_upper_tail(1040, n) == pytest.approx(sum(comb(n, i) for i in range(1040, n + 1)) / 2**n)
    assert 0.035 < S.binomial_upper_tail(1040, n) < 0.042
    assert S.binomial_upper_tail(1000, n) == pytest.approx(0.5 + comb(n, 1000) / 2 ** (n + 1))


def test_mcnemar_counts_only_discordant_sequences():
    """Reference hits on 0..9, treated on 0..2 and 10: 7 sequences lost, 1 gained, 2 kept both ways, the rest
    missed both ways: p = P(X >= 7 | n = 8) = 9/256, whatever the concordant sequences."""
    reference, treated = hits(40, *range(10)), hits(40, 0, 1, 2, 10)
    assert S.sign_test_p(reference - treated) == pytest.approx(9 / 256)
    assert S.sign_test_p(np.concatenate([reference - treated, np.zeros(500)])) == pytest.approx(9 / 256)
    assert S.sign_test_p(treated - reference) == pytest.approx(S.binomial_upper_tail(1, 8))  # the other side
    assert S.sign_test_p(np.zeros(10)) == 1.0


def test_sign_test_against_a_mean_of_draws_counts_signs():
    """Against the per-sequence mean of 3 draws, a sequence counts for the side its difference falls on: the
    circuit loses B on seqs 0-2, the draws on seq 0 (one of three) and seq 3 (one of three): 3 for, 1 against."""
    circuit = 1 - hits(16, 0, 1, 2)
    draws = [{"top1": 1 - hits(16, 0), "loss": np.zeros(16)}, {"top1": 1 - hits(16, 3), "loss": np.zeros(16)}]
    draws.append({"top1": np.ones(16), "loss": np.zeros(16)})
    control = S.mean_outcomes(draws)
    assert control["top1"][:4] == pytest.approx([2 / 3, 1, 1, 2 / 3])
    assert S.sign_test_p(control["top1"] - circuit) == pytest.approx(5 / 16)


def test_sign_flip_p_with_every_sign_pattern_is_the_exact_permutation_p():
    """With all 2^n sign patterns as the flips, p = (1 + #{flipped mean >= observed}) / (1 + 2^n): for (1, 1, 1)
    only the identity reaches the observed mean, 2/9; for (1, -1, 2) three do (1, -1, 2; 1, 1, 2; -1, -1, 2), 4/9."""
    patterns = np.array(list(itertools.product([-1.0, 1.0], repeat=3))) / 3
    assert S.sign_flip_p(np.array([1.0, 1.0, 1.0]), patterns) == pytest.approx(2 / 9)
    assert S.sign_flip_p(np.array([1.0, -1.0, 2.0]), patterns) == pytest.approx(4 / 9)
    assert S.sign_flip_p(np.zeros(3), patterns) == 1.0  # no difference: nothing to claim


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    """The paired bootstrap of a mean: the same seed gives the same interval; a constant difference has a point
    interval; 200 lost of 400 gives about 0.5 +- 1.96 x 0.025."""
    weights, flips = S.Resampling()(400)
    assert weights.shape == (S.RESAMPLES, 400) and np.allclose(weights.sum(1), 1.0)
    assert np.array_equal(weights, S.bootstrap_weights(400))
    assert not np.array_equal(weights, S.bootstrap_weights(400, seed=1))
    none = {"top1": np.ones(400), "loss": np.zeros(400)}
    result = S.condition_tests(none, {"top1": hits(400, *range(200)), "loss": np.full(400, 0.25)}, [], weights, flips)
    assert result["top1_drop"] == 0.5 and result["top1_drop_p"] == pytest.approx(2.0**-200)
    assert result["top1_drop_ci_low"] == pytest.approx(0.451, abs=0.01)
    assert result["top1_drop_ci_high"] == pytest.approx(0.549, abs=0.01)
    assert result["loss_increase_ci_low"] == pytest.approx(0.25) == result["loss_increase_ci_high"]
    assert result["loss_increase_p"] == pytest.approx(1 / (1 + S.RESAMPLES))  # no flip reaches it: the floor


def test_a_group_is_tested_as_each_condition_alone():
    """Conditions resampled together get what each gets alone (the same weights and flips), up to rounding."""
    n = 64
    weights, flips = S.Resampling()(n)
    rng = np.random.default_rng(3)
    none = {"top1": (rng.random(n) < 0.8).astype(float), "loss": rng.random(n)}
    conditions = [
        (None, none, []),
        (none, {"top1": (rng.random(n) < 0.3).astype(float), "loss": rng.random(n) + 1}, []),
        (none, {"top1": (rng.random(n) < 0.5).astype(float), "loss": rng.random(n)}, [none, none]),
        (none, None, [none]),
    ]
    together = S.group_tests(conditions, weights, flips)
    for grouped, alone in zip(together, [S.condition_tests(*c, weights, flips) for c in conditions], strict=True):
        assert {k for k, v in grouped.items() if v is None} == {k for k, v in alone.items() if v is None}
        assert {k: v for k, v in grouped.items() if v is not None} == pytest.approx(
            {k: v for k, v in alone.items() if v is not None}, rel=1e-12, abs=1e-12
        )
    assert set(together[0].values()) == set(together[3].values()) == {None}


def test_holm_step_down():
    """Holm: sorted p times (m, m-1, ...), running maximum, at most 1, back in the given order."""
    assert S.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert S.holm([0.2, 0.6]) == pytest.approx([0.4, 0.6])
    assert S.holm([0.5, 0.9, 0.7]) == pytest.approx([1.0, 1.0, 1.0])
    assert S.holm([]) == []


def test_condition_tests_fill_every_column_or_none():
    """A condition with a reference and controls gets every test column; without controls the excess columns are
    null; an unscored condition has none."""
    n = 32
    weights, flips = S.Resampling()(n)
    none = {"top1": np.ones(n), "loss": np.zeros(n)}
    circuit = {"top1": hits(n, *range(8)), "loss": np.full(n, 2.0)}
    draws = [{"top1": np.ones(n), "loss": np.full(n, 0.5)}, {"top1": 1 - hits(n, 31), "loss": np.full(n, 0.5)}]
    full = S.condition_tests(none, circuit, draws, weights, flips)
    assert list(full) == list(C.ABLATION_TEST_COLUMNS) and None not in full.values()
    assert full["top1_drop"] == pytest.approx(24 / 32) and full["top1_drop_p"] == pytest.approx(2.0**-24)
    assert full["n_controls"] == 2 and full["top1_excess_drop"] == pytest.approx(24 / 32 - 0.5 / 32)
    assert full["loss_increase"] == pytest.approx(2.0) and full["loss_excess_increase"] == pytest.approx(1.5)
    alone = S.condition_tests(none, circuit, [], weights, flips)
    assert alone["top1_drop"] == full["top1_drop"] and alone["n_controls"] is None
    assert alone["top1_excess_drop"] is None and alone["loss_excess_increase_p"] is None
    assert set(S.condition_tests(none, None, draws, weights, flips).values()) == {None}
