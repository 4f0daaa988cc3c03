"""The representational score kinds of one revision, and their spread over lexicon resamples (numpy only).

Every representational kind places a word's hidden state on axes built from
the lexicon words (:mod:`axis`), so the gap depends on which words the lexicons
happen to hold, not only on the primitives. :func:`lexicon_bootstrap_gaps`
measures that dependence: it redraws both lexicons with replacement (the
phenomenological one within its sensory and affective parts, so both keep
their sizes), rebuilds every axis (cross-validated as for the point estimate,
copies of a drawn word kept in one fold), rescores the primitives and records
the gap of every row. The primitives, their contexts and the control words are
held fixed: this is the lexicon's share of the uncertainty only; the item
share is the Welch interval (:mod:`gaps`), and :func:`gaps.lexicon_spread`
combines the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from circuitsweep.config.stimuli import Stimuli
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.axis import (
    AxisSet,
    affect_direction,
    control_contrast,
    fit_axes,
    remove_direction,
    resample_words,
)
from circuitsweep.primitives.streams import LEXICON_BOOTSTRAP, stream


@dataclass(frozen=True)
class LexiconStates:
    """The lexicon words' carrier states, and which word each row is (rows repeat in a resample)."""

    phenomenological: np.ndarray  # [W_phen, L, H]
    abstract: np.ndarray  # [W_abs, L, H]
    affective: np.ndarray  # [W_phen] bool: the word is in the affective part of the phenomenological lexicon
    phenomenological_words: np.ndarray  # [W_phen] int: index of the word in the stimuli's lexicon
    abstract_words: np.ndarray  # [W_abs] int

    @classmethod
    def of(cls, phenomenological: np.ndarray, abstract: np.ndarray, affective: np.ndarray) -> LexiconStates:
        """The lexicons as measured: every row its own word."""
        return cls(
            phenomenological,
            abstract,
            np.asarray(affective, dtype=bool),
            np.arange(len(phenomenological)),
            np.arange(len(abstract)),
        )

    def resample(self, min_distinct: int, rng: np.random.Generator) -> LexiconStates:
        """A bootstrap resample of both lexicons (the sensory and affective parts each within itself)."""
        rows_p = resample_words(self.affective, min_distinct, rng)
        rows_a = resample_words(np.zeros(len(self.abstract), dtype=bool), min_distinct, rng)
        return LexiconStates(
            self.phenomenological[rows_p],
            self.abstract[rows_a],
            self.affective[rows_p],
            self.phenomenological_words[rows_p],
            self.abstract_words[rows_a],
        )


@dataclass(frozen=True)
class KindScores:
    """One representational kind: per-layer scores, its axes and the lexicon states they were built from."""

    scores: np.ndarray  # [L, P] unclipped positions
    axes: AxisSet
    phenomenological: np.ndarray  # [W, L, H] (for the held-out AUC)
    abstract: np.ndarray


def representational_scores(
    lexicon: LexiconStates,
    primitives: np.ndarray,
    carried: np.ndarray,
    controls: np.ndarray,
    stimuli: Stimuli,
    *,
    n_folds: int,
    seed: int,
) -> dict[str, KindScores]:
    """Every representational kind of :mod:`contract` (in ``SCORE_KINDS`` order) from lexicon states.

    ``primitives [P, L, H]``: the primitives in context; ``carried [P, L, H]``
    and ``controls [W_control, L, H]``: the primitives' words and their control
    words in the carrier templates. ``seed`` deals the cross-validation folds.
    """
    phen, abst, affective = lexicon.phenomenological, lexicon.abstract, lexicon.affective

    def fit(phen_states: np.ndarray, abst_states: np.ndarray, phen_words: np.ndarray) -> AxisSet:
        return fit_axes(
            phen_states,
            abst_states,
            n_folds=n_folds,
            seed=seed,
            phenomenological_words=phen_words,
            abstract_words=lexicon.abstract_words,
        )

    words_p = lexicon.phenomenological_words
    axes = fit(phen, abst, words_p)
    kinds = {K.REPRESENTATIONAL: KindScores(axes.position(primitives).T, axes, phen, abst)}
    for kind, part in ((K.REPRESENTATIONAL_SENSORY, ~affective), (K.REPRESENTATIONAL_AFFECTIVE, affective)):
        part_axes = fit(phen[part], abst, words_p[part])
        kinds[kind] = KindScores(part_axes.position(primitives).T, part_axes, phen[part], abst)
    affect = affect_direction(phen[affective], phen[~affective])
    flat_phen, flat_abst, flat_primitives = (remove_direction(x, affect) for x in (phen, abst, primitives))
    flat_axes = fit(flat_phen, flat_abst, words_p)
    kinds[K.REPRESENTATIONAL_NO_AFFECT] = KindScores(
        flat_axes.position(flat_primitives).T, flat_axes, flat_phen, flat_abst
    )
    controlled = control_contrast(axes, carried, controls, stimuli)
    kinds[K.REPRESENTATIONAL_CONTROLLED] = KindScores(controlled, axes, phen, abst)
    return kinds


def with_summary(per_layer: np.ndarray, summary: np.ndarray) -> np.ndarray:
    """``[L, P]`` -> ``[L + 1, P]``: the layers, then their mean over the ``summary [L]`` layers."""
    return np.vstack([per_layer, per_layer[summary].mean(0, keepdims=True)])


#: Per-layer scores ``[L, P]`` of each kind from (resampled) lexicon states and a fold seed.
Scorer = Callable[[LexiconStates, int], dict[str, np.ndarray]]


def representational_scorer(
    primitives: np.ndarray, carried: np.ndarray, controls: np.ndarray, stimuli: Stimuli, n_folds: int
) -> Scorer:
    """The :data:`Scorer` of every representational kind (:func:`representational_scores`) of these states."""

    def score(lexicon: LexiconStates, seed: int) -> dict[str, np.ndarray]:
        kinds = representational_scores(lexicon, primitives, carried, controls, stimuli, n_folds=n_folds, seed=seed)
        return {kind: scored.scores for kind, scored in kinds.items()}

    return score


def lexicon_bootstrap_gaps(
    lexicon: LexiconStates,
    score: Scorer,
    in_a: np.ndarray,
    summary: np.ndarray,
    *,
    n_boot: int,
    n_folds: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Per kind, the 0a - 0b gap of every row under ``n_boot`` lexicon resamples: ``[n_boot, L + 1]``.

    Rows are the layers, then the summary (``summary [L]`` marks its layers);
    ``in_a [P]`` marks the 0a primitives. Each resample deals its own folds;
    all draws come from one Generator seeded by ``seed`` (a stream apart from
    the folds' and the permutations'), so a fixed seed gives identical spreads.
    """
    if n_boot < 2:
        raise ValueError(f"a lexicon bootstrap needs at least 2 resamples, got {n_boot}")
    in_a = np.asarray(in_a, dtype=bool)
    rng = stream(seed, LEXICON_BOOTSTRAP)
    gaps: dict[str, list[np.ndarray]] = {}
    for _ in range(n_boot):
        drawn = lexicon.resample(n_folds, rng)
        for kind, scores in score(drawn, int(rng.integers(2**63))).items():
            rows = with_summary(scores, summary)
            gaps.setdefault(kind, []).append(rows[:, in_a].mean(1) - rows[:, ~in_a].mean(1))
    return {kind: np.stack(values) for kind, values in gaps.items()}
