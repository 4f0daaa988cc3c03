"""Probe batches of DESIGN.md section 3: seeded, reproducible token sequences.

All batches draw token ids uniformly from ``[low, high)`` of the model's
vocabulary with ``numpy.random.RandomState(seed)``, as the study did, and then
apply the run's first-token policy to position 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from circuitsweep.heads.probe_settings import baseline_candidates


@dataclass(frozen=True)
class InductionProbe:
    """The study's induction probe.

    tokens: ``[N, T]``; A at ``first_a`` and at ``T - 1``, B at ``first_a + 1``.
    first_a: ``[N]`` position p of the first A, drawn from ``[min_first, T/2)``.
    """

    tokens: torch.Tensor
    first_a: torch.Tensor

    @property
    def last(self) -> int:
        """The query position q = T - 1 (the second A)."""
        return self.tokens.shape[1] - 1


def _apply_first_token(tokens: np.ndarray, first_token: int | None) -> np.ndarray:
    if first_token is not None:
        tokens[:, 0] = first_token
    return tokens


def induction_probe(
    n_sequences: int,
    seq_len: int,
    token_range: tuple[int, int],
    seed: int,
    min_first_position: int = 20,
    first_token: int | None = None,
) -> InductionProbe:
    """Random sequences with one planted ``A B ... A`` pattern (DESIGN.md 3).

    Every other occurrence of A or B is replaced by a fresh random token, so
    the only earlier A is at p and the correct induction target is p + 1.
    """
    low, high = token_range
    if high - low < 3:
        raise ValueError(f"token range {token_range} holds fewer than 3 tokens")
    if seq_len // 2 <= min_first_position:
        raise ValueError(
            f"induction probe seq_len {seq_len} leaves no room for the first A: "
            f"need seq_len / 2 > min_first_position ({min_first_position})"
        )
    rng = np.random.RandomState(seed)
    tokens = rng.randint(low, high, size=(n_sequences, seq_len)).astype(np.int64)
    a = rng.randint(low, high, size=n_sequences)
    b = low + (a - low + rng.randint(1, high - low, size=n_sequences)) % (high - low)
    p = rng.randint(min_first_position, seq_len // 2, size=n_sequences)
    clash = (tokens == a[:, None]) | (tokens == b[:, None])
    while clash.any():
        tokens[clash] = rng.randint(low, high, size=int(clash.sum()))
        clash = (tokens == a[:, None]) | (tokens == b[:, None])
    rows = np.arange(n_sequences)
    tokens[rows, p] = a
    tokens[rows, p + 1] = b
    tokens[:, seq_len - 1] = a
    _apply_first_token(tokens, first_token)
    return InductionProbe(tokens=torch.from_numpy(tokens), first_a=torch.from_numpy(p.astype(np.int64)))


def baseline_positions(seq_len: int, n_baseline: int, seed: int) -> torch.Tensor:
    """The fixed "other" key positions of the selectivity baseline, ``[n_baseline]``.

    Drawn once, without replacement, from :func:`probe_settings.baseline_candidates`:
    ``[1, q)`` excluding q - 1 (previous) and q - 2 .. q - 5 (local), q = seq_len - 1.
    """
    candidates = np.array(baseline_candidates(seq_len), dtype=np.int64)
    if n_baseline > len(candidates):
        raise ValueError(
            f"n_baseline {n_baseline} exceeds the {len(candidates)} eligible positions "
            f"of an induction probe of length {seq_len}"
        )
    chosen = np.random.RandomState(seed).choice(candidates, size=n_baseline, replace=False)
    return torch.from_numpy(np.sort(chosen))


def repeated_batch(
    n_sequences: int, seq_len: int, token_range: tuple[int, int], seed: int, first_token: int | None = None
) -> torch.Tensor:
    """``[R, R]`` with R random of length ``seq_len / 2``; ``[N, seq_len]``.

    With a first-token policy the token at position 0 differs from position
    T/2, so scores and losses use the second-half positions T/2 + 1 .. T - 1.
    """
    if seq_len % 2:
        raise ValueError(f"repeated batch seq_len must be even, got {seq_len}")
    half = np.random.RandomState(seed).randint(*token_range, size=(n_sequences, seq_len // 2))
    tokens = np.concatenate([half, half], axis=1).astype(np.int64)
    return torch.from_numpy(_apply_first_token(tokens, first_token))


def random_batch(
    n_sequences: int, seq_len: int, token_range: tuple[int, int], seed: int, first_token: int | None = None
) -> torch.Tensor:
    """Plain random tokens, ``[N, seq_len]`` (the sink probe of Gu et al.)."""
    tokens = np.random.RandomState(seed).randint(*token_range, size=(n_sequences, seq_len)).astype(np.int64)
    return torch.from_numpy(_apply_first_token(tokens, first_token))
