"""The phenomenological-abstract axis, per layer, with held-out calibration.

Each lexicon is split into ``n_folds`` folds (seeded). For fold k:

- direction u: mean of the phenomenological words outside fold k minus the
  mean of the abstract words outside fold k, normalised (one per layer);
- calibration: the words *in* fold k (held out from the direction) are
  projected on u; m_abs and m_phen are the means of their projections.

The position of a representation x on fold k's axis is
``(x . u - m_abs) / (m_phen - m_abs)``: 0 at the held-out abstract words'
mean, 1 at the held-out phenomenological words' mean, 0.5 halfway. Its
position is the mean over folds, and its score is that position, unclipped
(gaps of clipped scores are biased toward 0; tables clip only for display).
(An equal-variance logistic calibration was tried first and rejected:
the lexicons separate so well, d' 5-10 on MiniLM, that it pushed nearly every
primitive to 0 or 1.)

So every lexicon word either builds an axis or calibrates it, never both, and
the primitive words never enter any axis (the stimuli forbid them in the
lexicons). Axis quality is the held-out AUC: per fold, how well the projection
separates the held-out words, averaged over folds (calibration-free).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitsweep.config.stimuli import Stimuli
from circuitsweep.primitives.streams import FOLDS_ABSTRACT, FOLDS_PHENOMENOLOGICAL, stream


def fold_assignment(n_words: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index of each word, ``[n_words]``: a seeded shuffle dealt round-robin (balanced folds)."""
    folds = np.empty(n_words, dtype=np.int64)
    folds[rng.permutation(n_words)] = np.arange(n_words) % n_folds
    return folds


@dataclass(frozen=True)
class Axis:
    """One fold's axis at every layer; word indices refer to the two lexicons."""

    direction: np.ndarray  # [L, H] unit vectors (zero where the training means coincide)
    abstract_mean: np.ndarray  # [L] mean projection of the held-out abstract words
    phenomenological_mean: np.ndarray  # [L] mean projection of the held-out phenomenological words
    train_phenomenological: np.ndarray  # word indices that built the direction
    train_abstract: np.ndarray
    heldout_phenomenological: np.ndarray  # word indices that calibrated it
    heldout_abstract: np.ndarray

    def project(self, states: np.ndarray) -> np.ndarray:
        """Projections of ``states [N, L, H]`` on the axis: ``[N, L]``."""
        return np.einsum("nlh,lh->nl", states, self.direction)

    def position(self, states: np.ndarray) -> np.ndarray:
        """Position of ``states [N, L, H]`` between the held-out class means (0 = abstract, 1 = phen): ``[N, L]``.

        Where the two held-out means coincide the position is 0.5.
        """
        span = self.phenomenological_mean - self.abstract_mean
        offset = self.project(states) - self.abstract_mean
        return np.divide(offset, span, out=np.full_like(offset, 0.5), where=span != 0)


def fit_axis(
    phenomenological: np.ndarray,
    abstract: np.ndarray,
    train_phenomenological: np.ndarray,
    train_abstract: np.ndarray,
    heldout_phenomenological: np.ndarray,
    heldout_abstract: np.ndarray,
) -> Axis:
    """One axis from ``[W, L, H]`` lexicon states: direction from the train words, calibration from the held-out."""
    if (
        np.intersect1d(train_phenomenological, heldout_phenomenological).size
        or np.intersect1d(train_abstract, heldout_abstract).size
    ):
        raise ValueError("a word cannot both build and calibrate the same axis")
    if min(len(train_phenomenological), len(train_abstract), len(heldout_phenomenological), len(heldout_abstract)) < 1:
        raise ValueError("an axis needs at least one training and one held-out word per lexicon")
    diff = phenomenological[train_phenomenological].mean(0) - abstract[train_abstract].mean(0)  # [L, H]
    norm = np.linalg.norm(diff, axis=-1, keepdims=True)
    direction = np.divide(diff, norm, out=np.zeros_like(diff), where=norm > 0)
    held_abstract = np.einsum("nlh,lh->nl", abstract[heldout_abstract], direction)
    held_phenomenological = np.einsum("nlh,lh->nl", phenomenological[heldout_phenomenological], direction)
    return Axis(
        direction,
        held_abstract.mean(0),
        held_phenomenological.mean(0),
        np.asarray(train_phenomenological),
        np.asarray(train_abstract),
        np.asarray(heldout_phenomenological),
        np.asarray(heldout_abstract),
    )


@dataclass(frozen=True)
class AxisSet:
    """The cross-validated axes of all folds."""

    folds: tuple[Axis, ...]

    def position(self, states: np.ndarray) -> np.ndarray:
        """Position of ``states [N, L, H]`` between the held-out class means, mean over folds: ``[N, L]``."""
        return np.mean([axis.position(states) for axis in self.folds], axis=0)

    def heldout_auc(self, phenomenological: np.ndarray, abstract: np.ndarray) -> np.ndarray:
        """Per layer, P(held-out phen word projects above a held-out abstract word), mean over folds: ``[L]``."""
        aucs = []
        for axis in self.folds:
            p = axis.project(phenomenological[axis.heldout_phenomenological])[:, None, :]
            a = axis.project(abstract[axis.heldout_abstract])[None, :, :]
            aucs.append(((p > a) + 0.5 * (p == a)).mean(axis=(0, 1)))
        return np.mean(aucs, axis=0)


def fit_axes(
    phenomenological: np.ndarray,
    abstract: np.ndarray,
    *,
    n_folds: int = 5,
    seed: int = 0,
    phenomenological_words: np.ndarray | None = None,
    abstract_words: np.ndarray | None = None,
) -> AxisSet:
    """Cross-validated axes from lexicon states ``[W_phen, L, H]`` and ``[W_abs, L, H]``.

    Fold k's direction uses the words outside fold k, its calibration the words in it.
    ``*_words [W]`` label which word each row is (default: every row its own word);
    folds are dealt over distinct labels, so the copies of a word drawn twice by a
    lexicon resample (:func:`resample_words`) all sit in one fold and a word never
    both builds and calibrates an axis.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    labels_p = np.arange(len(phenomenological)) if phenomenological_words is None else phenomenological_words
    labels_a = np.arange(len(abstract)) if abstract_words is None else abstract_words
    distinct_p, row_p = np.unique(labels_p, return_inverse=True)
    distinct_a, row_a = np.unique(labels_a, return_inverse=True)
    smallest = min(len(distinct_p), len(distinct_a))
    if smallest < n_folds:
        raise ValueError(f"{n_folds} folds need at least {n_folds} words per lexicon, got {smallest}")
    rng_p, rng_a = stream(seed, FOLDS_PHENOMENOLOGICAL), stream(seed, FOLDS_ABSTRACT)
    fold_p = fold_assignment(len(distinct_p), n_folds, rng_p)[row_p]
    fold_a = fold_assignment(len(distinct_a), n_folds, rng_a)[row_a]
    phenomenological = np.asarray(phenomenological, dtype=np.float64)
    abstract = np.asarray(abstract, dtype=np.float64)
    axes = tuple(
        fit_axis(
            phenomenological,
            abstract,
            np.flatnonzero(fold_p != k),
            np.flatnonzero(fold_a != k),
            np.flatnonzero(fold_p == k),
            np.flatnonzero(fold_a == k),
        )
        for k in range(n_folds)
    )
    return AxisSet(axes)


def resample_words(strata: np.ndarray, min_distinct: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of a bootstrap resample of a lexicon, drawn with replacement within each stratum: ``[W]``.

    ``strata [W]`` labels each word's part (so the sensory and affective parts
    of the phenomenological lexicon keep their sizes). A part's draw with fewer
    than ``min_distinct`` distinct words (too few for the folds) is drawn again.
    """
    strata = np.asarray(strata)
    drawn = []
    for label in np.unique(strata):
        part = np.flatnonzero(strata == label)
        needed = min(min_distinct, len(part))
        while True:
            rows = part[rng.integers(0, len(part), size=len(part))]
            if len(np.unique(rows)) >= needed:
                break
        drawn.append(rows)
    return np.sort(np.concatenate(drawn))


def affect_direction(affective: np.ndarray, sensory: np.ndarray) -> np.ndarray:
    """Unit direction per layer from the mean sensory to the mean affective lexicon word: ``[L, H]``.

    ``affective [W_a, L, H]`` and ``sensory [W_s, L, H]`` are phenomenological
    lexicon states; the direction is what separates naming a feeling from
    naming a bodily sensation, both phenomenological.
    """
    diff = np.asarray(affective).mean(0) - np.asarray(sensory).mean(0)
    norm = np.linalg.norm(diff, axis=-1, keepdims=True)
    return np.divide(diff, norm, out=np.zeros_like(diff), where=norm > 0)


def remove_direction(states: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``states [N, L, H]`` with their component along the unit ``direction [L, H]`` removed, per layer."""
    return states - np.einsum("nlh,lh->nl", states, direction)[..., None] * direction[None]


def control_contrast(
    axes: AxisSet, primitive_states: np.ndarray, control_states: np.ndarray, stimuli: Stimuli
) -> np.ndarray:
    """Position of each primitive's word minus the mean position of its control words: ``[L, P]``.

    Both are carrier-template states (``[P, L, H]`` and ``[W_control, L, H]``,
    the controls in :attr:`Stimuli.control_words` order), so the contrast
    compares a word with words of its own class in the same frames.
    """
    own = axes.position(primitive_states)  # [P, L]
    controls = axes.position(control_states)  # [W_control, L]
    sizes = [len(p.controls) for p in stimuli.primitives]
    bounds = np.cumsum([0, *sizes])
    matched = np.stack([controls[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    return (own - matched).T
