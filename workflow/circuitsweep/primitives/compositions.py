"""Compositions: does operator + seed land on the pre-registered target's cluster?

Representational, per layer:
- each cluster is the centroid of its words' states; the primitive states and
  the cluster centroids are centred by their own means (primitives are seen in
  natural sentences, cluster words in carrier templates: centring removes that
  shared offset);
- the composition is unit(operator) + unit(seed) (each counts equally); the
  seed-only baseline is unit(seed), the operator-only baseline unit(operator)
  (with 6 seeds and 5 operators, a baseline can hit at most 6 or 5 of the 30
  targets at rank 1: compare with the permutation nulls, not only with them);
- the rank of the target's cluster among all clusters by cosine similarity
  (1 = nearest; ties count against the target); hit@k = rank <= k.
The summary ranks by the similarity averaged over the summary layers.

Permutation nulls (:func:`composition_nulls`), from the same rank matrices:
- operators shuffled within seed: each composition is scored against the
  target of another composition with the same seed (so the seed is kept and
  the operator's contribution destroyed); p = (1 + #{null hits >= observed})
  / (1 + n_perm), one-sided;
- seeds shuffled within operator: the same with the operator kept.
Hits are also counted without the compositions marked ``near_synonym`` in
the stimuli (targets that nearly restate the seed, e.g. FEEL + GRIEF ->
sorrow), which an embedding can hit by the seed alone.

Behavioural: in the K continuations of a composition prompt (or, for the
baseline, of the bare seed), count the words of every cluster. A composition
is a hit ("hits_any") when some continuation holds a word of the target's
cluster; its rank orders the clusters by their word counts (ties count against
the target, a target with no word ranks last).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitsweep.config.stimuli import Stimuli
from circuitsweep.primitives.streams import COMPOSITIONS_OPERATOR_SHUFFLED, COMPOSITIONS_SEED_SHUFFLED, stream


@dataclass(frozen=True)
class CompositionRanks:
    """Ranks of each composition's target cluster: ``[C, R]`` for R rows (layers, summary)."""

    rank: np.ndarray
    baseline_rank: np.ndarray
    hit_rate: np.ndarray | None = None  # [C, R] behavioural only: share of continuations with a target word
    baseline_hit_rate: np.ndarray | None = None
    operator_rank: np.ndarray | None = None  # [C, R] representational only: the operator alone
    rank_matrix: np.ndarray | None = None  # [C, C, R]: rank of every cluster for each composition


def cluster_centroids(cluster_states: np.ndarray, stimuli: Stimuli) -> np.ndarray:
    """Centroid of each composition's cluster, ``[C, L, H]``, from word states ``[W_cluster, L, H]``."""
    sizes = [len(c.cluster) for c in stimuli.compositions]
    if sum(sizes) != len(cluster_states):
        raise ValueError(f"{len(cluster_states)} cluster word states for {sum(sizes)} cluster words")
    bounds = np.cumsum([0, *sizes])
    return np.stack([cluster_states[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def target_ranks(similarity: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank of ``targets [Q]`` among the columns of ``similarity [Q, C, R]``: ``[Q, R]`` (1 = best)."""
    target = np.take_along_axis(similarity, targets[:, None, None], axis=1)  # [Q, 1, R]
    return (similarity >= target).sum(axis=1)


def all_ranks(similarity: np.ndarray) -> np.ndarray:
    """Rank of every column among the columns of ``similarity [Q, C, R]``: ``[Q, C, R]`` (ties count against)."""
    return (similarity[:, None, :, :] >= similarity[:, :, None, :]).sum(axis=2)


@dataclass(frozen=True)
class CompositionNull:
    """Per row ``[R]``: hits@1 under each null (mean over permutations) and the one-sided p-values."""

    operator_null_hits: np.ndarray
    operator_p: np.ndarray
    seed_null_hits: np.ndarray
    seed_p: np.ndarray


def _within_group_permutations(groups: np.ndarray, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_perm, C]`` index permutations that only exchange items of the same group."""
    perms = np.tile(np.arange(len(groups)), (n_perm, 1))
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        perms[:, members] = members[rng.permuted(np.tile(np.arange(len(members)), (n_perm, 1)), axis=1)]
    return perms


def composition_nulls(rank_matrix: np.ndarray, stimuli: Stimuli, *, n_perm: int, seed: int) -> CompositionNull:
    """Hits@1 nulls from ``rank_matrix [C, C, R]`` with targets shuffled within seed and within operator."""
    observed = (np.diagonal(rank_matrix, axis1=0, axis2=1).T <= 1).sum(0)  # [R]
    rng_op, rng_seed = stream(seed, COMPOSITIONS_OPERATOR_SHUFFLED), stream(seed, COMPOSITIONS_SEED_SHUFFLED)
    queries = np.arange(rank_matrix.shape[0])
    out = []
    for groups, rng in (
        (np.array([c.seed for c in stimuli.compositions]), rng_op),
        (np.array([c.operator for c in stimuli.compositions]), rng_seed),
    ):
        perms = _within_group_permutations(groups, n_perm, rng)  # [n_perm, C] target of each query
        hits = (rank_matrix[queries[None, :], perms] <= 1).sum(1)  # [n_perm, R]
        out += [hits.mean(0), (1 + (hits >= observed[None, :]).sum(0)) / (1 + n_perm)]
    return CompositionNull(*out)


def representational_ranks(
    primitive_states: np.ndarray, cluster_states: np.ndarray, stimuli: Stimuli, summary: np.ndarray
) -> CompositionRanks:
    """Ranks from ``primitive_states [P, L, H]`` and ``cluster_states [W_cluster, L, H]``; rows = L layers + summary.

    ``summary [L]`` masks the layers whose similarities are averaged into the summary row.
    """
    primitive_states = np.asarray(primitive_states, dtype=np.float64)
    centroids = cluster_centroids(np.asarray(cluster_states, dtype=np.float64), stimuli)
    centroids = _unit(centroids - centroids.mean(0, keepdims=True))  # [C, L, H]
    primitives = _unit(primitive_states - primitive_states.mean(0, keepdims=True))  # [P, L, H]
    operators = primitives[[stimuli.index(c.operator) for c in stimuli.compositions]]
    seeds = primitives[[stimuli.index(c.seed) for c in stimuli.compositions]]
    combined = _unit(operators + seeds)
    targets = np.arange(len(stimuli.compositions))

    def similarities(queries: np.ndarray) -> np.ndarray:
        similarity = np.einsum("qlh,clh->qcl", queries, centroids)  # [Q, C, L]
        summary_similarity = similarity[:, :, summary].mean(-1, keepdims=True)
        return np.concatenate([similarity, summary_similarity], axis=-1)

    joint = similarities(combined)
    return CompositionRanks(
        target_ranks(joint, targets),
        target_ranks(similarities(seeds), targets),
        operator_rank=target_ranks(similarities(operators), targets),
        rank_matrix=all_ranks(joint),
    )


def behavioural_ranks(composition_counts: np.ndarray, seed_counts: np.ndarray) -> CompositionRanks:
    """Ranks from cluster-word counts ``[C, K, n_clusters]`` of composition and bare-seed continuations; one row."""

    def ranks(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        targets = np.arange(counts.shape[0])
        total = counts.sum(1).astype(np.float64)  # [C, n_clusters]
        matrix = (total[:, None, :] >= total[:, :, None]).sum(2)  # [C, n_clusters]: rank of each cluster
        matrix = np.where(total > 0, matrix, total.shape[1])  # a cluster with no word ranks last
        hit_rate = (counts[targets, :, targets] > 0).mean(1)  # [C]
        return matrix[targets, targets][:, None], hit_rate[:, None], matrix[:, :, None]

    rank, rate, matrix = ranks(np.asarray(composition_counts))
    baseline_rank, baseline_rate, _ = ranks(np.asarray(seed_counts))
    return CompositionRanks(rank, baseline_rank, rate, baseline_rate, rank_matrix=matrix)
