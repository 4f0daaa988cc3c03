"""Compositions: does operator + seed land on the pre-registered target's cluster?

Representational, per layer:
- each cluster is the centroid of its words' states; the primitive states and
  the cluster centroids are centred by their own means (primitives are seen in
  natural sentences, cluster words in carrier templates: centring removes that
  shared offset);
- the composition is unit(operator) + unit(seed) (each counts equally), the
  seed-only baseline is unit(seed);
- the rank of the target's cluster among all clusters by cosine similarity
  (1 = nearest; ties count against the target); hit@k = rank <= k.
The summary ranks by the similarity averaged over the summary layers.

Behavioural: in the K continuations of a composition prompt (or, for the
baseline, of the bare seed), count the words of every cluster. A composition
is a hit ("hits_any") when some continuation holds a word of the target's
cluster; its rank orders the clusters by their word counts (ties count against
the target, a target with no word ranks last).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitsweep.primitives.stimuli import Stimuli


@dataclass(frozen=True)
class CompositionRanks:
    """Ranks of each composition's target cluster: ``[C, R]`` for R rows (layers, summary)."""

    rank: np.ndarray
    baseline_rank: np.ndarray
    hit_rate: np.ndarray | None = None  # [C, R] behavioural only: share of continuations with a target word
    baseline_hit_rate: np.ndarray | None = None


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

    def ranks(queries: np.ndarray) -> np.ndarray:
        similarity = np.einsum("qlh,clh->qcl", queries, centroids)  # [Q, C, L]
        summary_similarity = similarity[:, :, summary].mean(-1, keepdims=True)
        return target_ranks(np.concatenate([similarity, summary_similarity], axis=-1), targets)

    return CompositionRanks(ranks(combined), ranks(seeds))


def behavioural_ranks(composition_counts: np.ndarray, seed_counts: np.ndarray) -> CompositionRanks:
    """Ranks from cluster-word counts ``[C, K, n_clusters]`` of composition and bare-seed continuations; one row."""

    def ranks(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        targets = np.arange(counts.shape[0])
        total = counts.sum(1).astype(np.float64)  # [C, n_clusters]
        target_total = total[targets, targets]
        rank = (total >= target_total[:, None]).sum(1)
        rank = np.where(target_total > 0, rank, total.shape[1])
        hit_rate = (counts[targets, :, targets] > 0).mean(1)  # [C]
        return rank[:, None], hit_rate[:, None]

    rank, rate = ranks(np.asarray(composition_counts))
    baseline_rank, baseline_rate = ranks(np.asarray(seed_counts))
    return CompositionRanks(rank, baseline_rank, rate, baseline_rate)
