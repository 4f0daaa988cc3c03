"""Per revision, the cache side of the primitives: the tables from a primitive shard alone, without a model.

The scoring job (``score-primitives``) runs this on every revision; it imports
neither torch nor transformers, so it starts in about a second, and a change of
:class:`ScoringSettings` never reruns a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from circuitsweep.config.stimuli import SET_A, Stimuli
from circuitsweep.errors import CacheError
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.compositions import (
    CompositionNull,
    CompositionRanks,
    behavioural_ranks,
    composition_nulls,
    representational_ranks,
)
from circuitsweep.primitives.gaps import GapResult, gap_with_uncertainty, lexicon_spread, summary_layers
from circuitsweep.primitives.representational import (
    LexiconStates,
    lexicon_bootstrap_gaps,
    representational_scorer,
    representational_scores,
    with_summary,
)
from circuitsweep.primitives.shares import lexicon_hits, lexicon_share, next_word_share
from circuitsweep.primitives.tables import (
    PrimitiveTables,
    RevisionIdentity,
    axis_frame,
    composition_detail_frame,
    compositions_frame,
    gaps_frame,
    primitive_scores_frame,
)


@dataclass(frozen=True)
class ScoringSettings:
    """Cross-validation folds of the axis, permutations of the gap and composition nulls, lexicon resamples
    of the representational gaps (0 = none: the lexicon columns stay null), and their one seed."""

    n_folds: int = 5
    n_perm: int = 10_000
    lexicon_resamples: int = 200
    seed: int = 0


def scored_gap(scores: np.ndarray, in_a: np.ndarray, settings: ScoringSettings, family: np.ndarray) -> GapResult:
    """The gap of ``scores [R, P]`` over the primitives scored in every row (NaN = no score).

    With fewer than 2 scored primitives in a set, every statistic is NaN
    (the counts say why) instead of an error.
    """
    scored = np.isfinite(scores).all(0)
    n_a, n_b = int((in_a & scored).sum()), int((~in_a & scored).sum())
    if min(n_a, n_b) < 2:
        nan = np.full(scores.shape[0], np.nan)
        return GapResult(nan, nan, nan, nan, nan, nan, nan, nan, n_a, n_b)
    return gap_with_uncertainty(
        scores[:, scored], in_a[scored], n_perm=settings.n_perm, seed=settings.seed, family=family
    )


def stimuli_fingerprint(stimuli: Stimuli) -> np.ndarray:
    """The stimuli's sha256 as the ``[32]`` uint8 array a primitive cache stores under ``stimuli_sha256``."""
    return np.frombuffer(bytes.fromhex(stimuli.fingerprint()), dtype=np.uint8)


def check_cache(cached: Mapping[str, ArrayLike], stimuli: Stimuli) -> None:
    """Fail with :class:`CacheError` unless ``cached`` was measured with exactly these stimuli."""
    needed = (
        K.STATES_PRIMITIVES,
        K.STATES_PHENOMENOLOGICAL,
        K.STATES_ABSTRACT,
        K.STATES_CLUSTERS,
        K.STATES_CONTROLS,
        K.STATES_PRIMITIVES_CARRIED,
        K.LAYERS,
        K.STIMULI_SHA256,
    )
    missing = [name for name in needed if name not in cached]
    if missing:
        raise CacheError(f"the primitive cache lacks {missing}; delete it and rerun")
    if not np.array_equal(np.asarray(cached[K.STIMULI_SHA256]).astype(np.uint8), stimuli_fingerprint(stimuli)):
        raise CacheError(
            "the primitive cache was measured with other stimuli (primitives.yaml changed); delete it and rerun"
        )
    expected = {
        K.STATES_PRIMITIVES: len(stimuli.primitives),
        K.STATES_PHENOMENOLOGICAL: len(stimuli.phenomenological),
        K.STATES_ABSTRACT: len(stimuli.abstract),
        K.STATES_CLUSTERS: len(stimuli.cluster_words),
        K.STATES_CONTROLS: len(stimuli.control_words),
        K.STATES_PRIMITIVES_CARRIED: len(stimuli.primitives),
    }
    n_layers = cached[K.LAYERS].shape[0]
    for name, rows in expected.items():
        shape = tuple(cached[name].shape)
        if len(shape) != 3 or shape[0] != rows or shape[1] != n_layers:
            raise CacheError(f"primitive cache tensor {name} has shape {shape}; expected [{rows}, {n_layers}, hidden]")
    if K.NEXTWORD_PHENOMENOLOGICAL in cached:
        for name in (K.NEXTWORD_PHENOMENOLOGICAL, K.NEXTWORD_ABSTRACT):
            if tuple(cached[name].shape) != (len(stimuli.primitives),):
                raise CacheError(f"primitive cache tensor {name} is {tuple(cached[name].shape)}; expected [P]")
    if K.BEHAVIOUR_PHENOMENOLOGICAL in cached:
        n_p, n_c = len(stimuli.primitives), len(stimuli.compositions)
        samples = cached[K.BEHAVIOUR_PHENOMENOLOGICAL].shape[-1]
        behaviour = {
            K.BEHAVIOUR_PHENOMENOLOGICAL: (n_p, samples),
            K.BEHAVIOUR_ABSTRACT: (n_p, samples),
            K.BEHAVIOUR_COMPOSITION_CLUSTERS: (n_c, samples, n_c),
            K.BEHAVIOUR_SEED_CLUSTERS: (n_c, samples, n_c),
        }
        for name, shape in behaviour.items():
            if name not in cached or tuple(cached[name].shape) != shape:
                found = tuple(cached[name].shape) if name in cached else "missing"
                raise CacheError(f"primitive cache tensor {name} is {found}; expected shape {list(shape)}")


def score_primitives(
    cached: Mapping[str, ArrayLike],
    stimuli: Stimuli,
    identity: RevisionIdentity,
    settings: ScoringSettings = ScoringSettings(),
) -> PrimitiveTables:
    """All primitive tables of one revision from its cache alone (no model).

    Representational rows, for each representational kind (all lexicon,
    sensory part, affective part, affect direction removed, against word-class
    controls; see :mod:`contract`): every cached layer, then "summary"
    (per-primitive scores averaged over the summary layers, see
    :func:`gaps.summary_layers`); per kind the layer rows' p-values are
    adjusted together (max-|T|), the summary is the primary row, and with
    ``lexicon_resamples`` the gaps carry the lexicon-resampling spread and the
    item + lexicon interval (:mod:`representational`, :func:`gaps.lexicon_spread`). Next-word
    and behavioural rows ("summary" only) when the cache holds them. Scores
    are unclipped; primitives without a score (no lexicon hits) are left out
    of a gap and counted in ``n_0a``/``n_0b``. ``cached``: the shard's arrays
    (NumPy arrays, or CPU tensors as :func:`measure_primitives` returns them).
    """
    check_cache(cached, stimuli)

    def array(name: str) -> np.ndarray:
        return np.asarray(cached[name], dtype=np.float64)

    layers = np.asarray(cached[K.LAYERS])
    summary = summary_layers(layers)
    labels = [str(int(layer)) for layer in layers] + [K.SUMMARY]
    in_a = np.array([p.set == SET_A for p in stimuli.primitives])
    primitives = array(K.STATES_PRIMITIVES)
    layer_rows = np.arange(len(labels)) < len(layers)
    score_frames, gap_frames, axis_frames = [], [], []

    affective = np.array([w in set(stimuli.affective) for w in stimuli.phenomenological])
    lexicon = LexiconStates.of(array(K.STATES_PHENOMENOLOGICAL), array(K.STATES_ABSTRACT), affective)
    carried, controls = array(K.STATES_PRIMITIVES_CARRIED), array(K.STATES_CONTROLS)
    kinds = representational_scores(
        lexicon, primitives, carried, controls, stimuli, n_folds=settings.n_folds, seed=settings.seed
    )
    resampled = {}
    if settings.lexicon_resamples:
        resampled = lexicon_bootstrap_gaps(
            lexicon,
            representational_scorer(primitives, carried, controls, stimuli, settings.n_folds),
            in_a,
            summary,
            n_boot=settings.lexicon_resamples,
            n_folds=settings.n_folds,
            seed=settings.seed,
        )
    for kind, scored in kinds.items():
        scores = with_summary(scored.scores, summary)
        result = scored_gap(scores, in_a, settings, layer_rows)
        spread = lexicon_spread(result, resampled[kind]) if kind in resampled else None
        score_frames.append(primitive_scores_frame(identity, labels, scores, stimuli, kind))
        gap_frames.append(gaps_frame(identity, labels, result, kind, spread))
        auc = scored.axes.heldout_auc(scored.phenomenological, scored.abstract)
        axis_frames.append(axis_frame(identity, labels[:-1], auc, kind))

    ranks = representational_ranks(primitives, array(K.STATES_CLUSTERS), stimuli, summary)
    near_synonym = np.array([c.near_synonym for c in stimuli.compositions])

    def composition_null(ranks: CompositionRanks) -> CompositionNull:
        return composition_nulls(ranks.rank_matrix, stimuli, n_perm=settings.n_perm, seed=settings.seed)

    composition_frames = [
        compositions_frame(identity, labels, ranks, K.REPRESENTATIONAL, composition_null(ranks), near_synonym)
    ]
    detail_frames = [composition_detail_frame(identity, labels, ranks, stimuli, K.REPRESENTATIONAL)]

    one = [K.SUMMARY]
    if K.NEXTWORD_PHENOMENOLOGICAL in cached:
        phen_mass, abst_mass = array(K.NEXTWORD_PHENOMENOLOGICAL), array(K.NEXTWORD_ABSTRACT)
        share = next_word_share(phen_mass, abst_mass)[None, :]  # [1, P]
        mass = (phen_mass + abst_mass)[None, :]
        score_frames.append(primitive_scores_frame(identity, one, share, stimuli, K.NEXT_WORD, lexicon_mass=mass))
        gap_frames.append(gaps_frame(identity, one, scored_gap(share, in_a, settings, np.zeros(1, bool)), K.NEXT_WORD))

    if K.BEHAVIOUR_PHENOMENOLOGICAL in cached:
        counts = array(K.BEHAVIOUR_PHENOMENOLOGICAL), array(K.BEHAVIOUR_ABSTRACT)
        share = lexicon_share(*counts)[None, :]  # [1, P], NaN without hits
        hits = lexicon_hits(*counts)[None, :]
        behaviour = behavioural_ranks(
            np.asarray(cached[K.BEHAVIOUR_COMPOSITION_CLUSTERS]), np.asarray(cached[K.BEHAVIOUR_SEED_CLUSTERS])
        )
        score_frames.append(primitive_scores_frame(identity, one, share, stimuli, K.BEHAVIOURAL, lexicon_hits=hits))
        gap_frames.append(
            gaps_frame(identity, one, scored_gap(share, in_a, settings, np.zeros(1, bool)), K.BEHAVIOURAL)
        )
        composition_frames.append(
            compositions_frame(identity, one, behaviour, K.BEHAVIOURAL, composition_null(behaviour), near_synonym)
        )
        detail_frames.append(composition_detail_frame(identity, one, behaviour, stimuli, K.BEHAVIOURAL))

    return PrimitiveTables(
        scores=pl.concat(score_frames),
        gaps=pl.concat(gap_frames),
        compositions=pl.concat(composition_frames),
        composition_detail=pl.concat(detail_frames),
        axis=pl.concat(axis_frames),
    )
