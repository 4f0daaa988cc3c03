"""Lexicon-resampling uncertainty of the representational gap, on planted data (no model)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_primitives_scoring import IDENTITY, planted_cache

from circuitsweep.config.stimuli import Stimuli, load_stimuli
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.axis import fit_axes, resample_words
from circuitsweep.primitives.gaps import gap_with_uncertainty, lexicon_spread
from circuitsweep.primitives.representational import LexiconStates, lexicon_bootstrap_gaps
from circuitsweep.primitives.scoring import ScoringSettings, score_primitives

FAST = ScoringSettings(n_folds=5, n_perm=500, lexicon_resamples=50, seed=3)
HIDDEN = 4
N_PHEN, N_AFFECTIVE, N_ABST = 57, 17, 59  # the shipped lexicons' sizes
IN_A = np.array([True] * 8 + [False] * 8)
MU, DELTA, OFF_AXIS = 2.0, 0.4, 5.0  # lexicons at +-MU on e; primitives at +-DELTA on e and +-OFF_AXIS on f
TRUE_GAP = DELTA / MU  # the gap on the population axis: positions (x.e + MU) / (2 MU)


@pytest.fixture(scope="module")
def stimuli() -> Stimuli:
    return load_stimuli()


def planted_world(rng: np.random.Generator, lexicon_noise: float) -> tuple[LexiconStates, np.ndarray]:
    """One layer, ``HIDDEN`` dims: e = dim 0 separates the lexicons, f = dim 1 separates 0a from 0b too.

    Lexicon words scatter by ``lexicon_noise`` in every direction, so a finite
    lexicon tilts the axis toward f at random and moves the gap; the population
    axis (infinitely many words) is e, where the gap is :data:`TRUE_GAP`.
    """
    e, f = np.eye(HIDDEN)[0], np.eye(HIDDEN)[1]
    phen = MU * e + lexicon_noise * rng.normal(size=(N_PHEN, 1, HIDDEN))
    abst = -MU * e + lexicon_noise * rng.normal(size=(N_ABST, 1, HIDDEN))
    signs = np.where(IN_A, 1.0, -1.0)[:, None, None]
    primitives = signs * (DELTA * e + OFF_AXIS * f) + 0.5 * rng.normal(size=(len(IN_A), 1, HIDDEN))
    return LexiconStates.of(phen, abst, np.arange(N_PHEN) < N_AFFECTIVE), primitives


def plain_scorer(primitives: np.ndarray):
    """Scores of the plain representational kind: position on the cross-validated axis, ``[1, P]``."""

    def score(lexicon: LexiconStates, seed: int) -> dict[str, np.ndarray]:
        axes = fit_axes(
            lexicon.phenomenological,
            lexicon.abstract,
            n_folds=5,
            seed=seed,
            phenomenological_words=lexicon.phenomenological_words,
            abstract_words=lexicon.abstract_words,
        )
        return {K.REPRESENTATIONAL: axes.position(primitives).T}

    return score


def intervals(lexicon_noise: float, n_worlds: int, n_boot: int) -> dict[str, np.ndarray]:
    """Welch and item + lexicon intervals of the summary gap in ``n_worlds`` planted worlds: each ``[n_worlds, 2]``."""
    rng = np.random.default_rng(20261126)
    welch, total = [], []
    one_layer = np.array([True])
    for world in range(n_worlds):
        lexicon, primitives = planted_world(rng, lexicon_noise)
        score = plain_scorer(primitives)
        scores = score(lexicon, world)[K.REPRESENTATIONAL]  # [1, P]: the single layer is the summary
        result = gap_with_uncertainty(scores, IN_A, n_perm=1, seed=world)
        resampled = lexicon_bootstrap_gaps(lexicon, score, IN_A, one_layer, n_boot=n_boot, n_folds=5, seed=world)
        spread = lexicon_spread(result, resampled[K.REPRESENTATIONAL][:, :1])
        welch.append([result.ci_low[0], result.ci_high[0]])
        total.append([spread.total_low[0], spread.total_high[0]])
    return {"welch": np.array(welch), "total": np.array(total)}


def coverage(bounds: np.ndarray) -> float:
    return float(((bounds[:, 0] <= TRUE_GAP) & (bounds[:, 1] >= TRUE_GAP)).mean())


def test_resampled_words_keep_their_parts_and_stay_in_one_fold():
    """A resample keeps each part's size; copies of a drawn word share a fold, so none builds and calibrates."""
    rng = np.random.default_rng(0)
    strata = np.arange(30) < 8
    rows = resample_words(strata, 5, rng)
    assert len(rows) == 30 and strata[rows].sum() == 8 and len(np.unique(rows[strata[rows]])) >= 5
    states = rng.normal(size=(30, 2, 6))
    axes = fit_axes(
        states[rows], states[rows] + 1.0, n_folds=5, seed=1, phenomenological_words=rows, abstract_words=rows
    )
    for axis in axes.folds:
        assert not set(rows[axis.train_phenomenological]) & set(rows[axis.heldout_phenomenological])
        assert not set(rows[axis.train_abstract]) & set(rows[axis.heldout_abstract])
    with pytest.raises(ValueError, match="at least 5 words"):
        fit_axes(states[:9], states[:9], n_folds=5, phenomenological_words=np.repeat([0, 1, 2], 3))


def test_noisy_lexicon_widens_the_interval_and_restores_coverage():
    """A noisy lexicon tilts the axis: Welch's item-only interval under-covers the population gap, and the item +
    lexicon interval widens and covers it (nominal 95%); with a clean lexicon the two intervals coincide."""
    noisy = intervals(lexicon_noise=1.0, n_worlds=200, n_boot=40)
    width = {name: np.diff(bounds, axis=1)[:, 0] for name, bounds in noisy.items()}
    assert np.median(width["total"] / width["welch"]) > 1.5  # about 1.9
    assert coverage(noisy["welch"]) < 0.8, coverage(noisy["welch"])
    assert 0.9 <= coverage(noisy["total"]) <= 0.99, coverage(noisy["total"])

    clean = intervals(lexicon_noise=0.01, n_worlds=60, n_boot=10)
    np.testing.assert_allclose(clean["total"], clean["welch"], rtol=0, atol=2e-3)
    assert coverage(clean["total"]) >= 0.85


def test_score_tables_carry_the_lexicon_columns(stimuli):
    """Representational gap rows gain the lexicon SD, its interval and the total interval (wider than Welch's,
    deterministic per seed); next-word and behavioural rows and ``lexicon_resamples: 0`` leave them null."""
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    cache = planted_cache(stimuli, in_a)
    gaps = score_primitives(cache, stimuli, IDENTITY, FAST).gaps
    assert tuple(gaps.columns) == K.GAP_COLUMNS
    lexicon_columns = ["lexicon_sd", "ci_lexicon_low", "ci_lexicon_high", "ci_total_low", "ci_total_high"]
    sd, low, high, total_low, total_high = (gaps[c].to_numpy() for c in lexicon_columns)
    welch_low, welch_high = gaps["ci_low"].to_numpy(), gaps["ci_high"].to_numpy()
    assert (sd > 0).all() and (low < high).all()
    assert (total_low < welch_low).all() and (welch_high < total_high).all()
    again = score_primitives(cache, stimuli, IDENTITY, FAST).gaps
    assert again.equals(gaps)
    other = score_primitives(cache, stimuli, IDENTITY, dataclasses.replace(FAST, seed=4)).gaps
    assert not np.array_equal(other["lexicon_sd"].to_numpy(), sd)
    off = score_primitives(cache, stimuli, IDENTITY, dataclasses.replace(FAST, lexicon_resamples=0)).gaps
    assert off.select(lexicon_columns).null_count().row(0) == (off.height,) * 5
    assert off.drop(lexicon_columns).equals(gaps.drop(lexicon_columns))  # the point estimates do not move
