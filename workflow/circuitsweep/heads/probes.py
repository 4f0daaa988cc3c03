"""Probe batches of docs/methods.md: seeded, reproducible token sequences.

All batches draw token ids uniformly from ``[low, high)`` of the model's
vocabulary with ``numpy.random.RandomState(seed)``, as the study did, and then
apply the run's first-token policy to position 0.

The induction probe has two protocols (``probes.protocol``):

- ``xu2026`` (default): the study's procedure draw for draw (docs/methods.md): one
  ``RandomState`` for all sequences, single-draw replacement passes that may
  leave a stray A or B, a validity mask (B exactly once before the last
  position), and 50 fixed baseline positions by rejection sampling.
- ``clean``: no stray A or B (replacements are redrawn until they differ from
  both) and a per-sequence baseline that never contains that sequence's p or
  p + 1, which lifts the ceiling the fixed baseline puts on induction
  selectivity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from circuitsweep.config.probes import LOCAL_OFFSETS, ProbeSettings, baseline_candidates
from circuitsweep.errors import DataError

#: The induction-probe protocols (``probes.protocol``); the first is the study's and the default.
PROTOCOLS: tuple[str, ...] = ("xu2026", "clean")
STUDY_PROTOCOL = "xu2026"


@dataclass(frozen=True)
class InductionProbe:
    """One induction probe batch with everything its selectivities need.

    tokens: ``[N, T]``; A at ``first_a`` and at ``T - 1``, B at ``first_a + 1``.
    first_a: ``[N]`` position p of the first A, drawn from ``[min_first, T/2)``.
    valid: ``[N]`` bool, B occurs exactly once among positions ``0 .. T-2``;
        induction and duplicate attention are averaged over these only.
    baseline: key positions of the selectivity baseline, ``[K]`` shared by all
        sequences (xu2026) or ``[N, K]`` one row per sequence (clean).
    baseline_record: what the cache stores to reproduce ``baseline`` (int64):
        the K positions (xu2026) or the K + 2 ordered candidates (clean).
    protocol: the protocol that built it (:data:`PROTOCOLS`).
    """

    tokens: torch.Tensor
    first_a: torch.Tensor
    valid: torch.Tensor
    baseline: torch.Tensor
    baseline_record: torch.Tensor
    protocol: str

    @property
    def last(self) -> int:
        """The query position q = T - 1 (the second A)."""
        return self.tokens.shape[1] - 1

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    def baseline_rows(self, part: slice) -> torch.Tensor:
        """Baseline key positions of the sequences in ``part``, ``[B, K]``."""
        if self.baseline.dim() == 2:
            return self.baseline[part]
        n = len(range(*part.indices(len(self.tokens))))
        return self.baseline.expand(n, -1)


def _apply_first_token(tokens: np.ndarray, first_token: int | None) -> np.ndarray:
    if first_token is not None:
        tokens[:, 0] = first_token
    return tokens


def _check_geometry(seq_len: int, token_range: tuple[int, int], min_first_position: int) -> None:
    low, high = token_range
    if high - low < 3:
        raise ValueError(f"token range {token_range} holds fewer than 3 tokens")
    if seq_len // 2 <= min_first_position:
        raise ValueError(
            f"induction probe seq_len {seq_len} leaves no room for the first A: "
            f"need seq_len / 2 > min_first_position ({min_first_position})"
        )


def study_tokens(
    n_sequences: int, seq_len: int, token_range: tuple[int, int], seed: int, min_first_position: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """The study's induction sequences (docs/methods.md, ``xu2026``): tokens ``[N, T]`` and p ``[N]``.

    One ``RandomState(seed)``, sequence after sequence: filler, the (A, B)
    pair, p, one pass replacing every A but the one at p by a single fresh
    draw, then the same pass for B (sparing p + 1), then A at T - 1. A
    replacement may re-create A or B; the study keeps it. Each pass draws its
    replacements in position order, exactly as the study's per-position loop.
    """
    _check_geometry(seq_len, token_range, min_first_position)
    low, high = token_range
    rng = np.random.RandomState(seed)
    pool = np.arange(low, high)
    tokens = np.empty((n_sequences, seq_len), dtype=np.int64)
    first_a = np.empty(n_sequences, dtype=np.int64)
    positions = np.arange(seq_len)
    for i in range(n_sequences):
        seq = rng.randint(low, high, size=seq_len).astype(np.int64)
        a, b = rng.choice(pool, size=2, replace=False)
        p = rng.randint(min_first_position, seq_len // 2)
        seq[p], seq[p + 1] = a, b
        for token, keep in ((a, p), (b, p + 1)):
            hits = positions[(seq == token) & (positions != keep)]
            # one draw per hit, in position order: randint(size=m) is m consecutive single draws
            seq[hits] = rng.randint(low, high, size=len(hits))
        seq[-1] = a
        tokens[i], first_a[i] = seq, p
    return tokens, first_a


def clean_tokens(
    n_sequences: int, seq_len: int, token_range: tuple[int, int], seed: int, min_first_position: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Induction sequences without stray A or B (``clean``): tokens ``[N, T]`` and p ``[N]``.

    Vectorised over sequences; B differs from A; every other occurrence of A
    or B is redrawn until it is neither, so the only earlier A is at p.
    """
    _check_geometry(seq_len, token_range, min_first_position)
    low, high = token_range
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
    return tokens, p.astype(np.int64)


def valid_sequences(tokens: np.ndarray, first_a: np.ndarray) -> np.ndarray:
    """``[N]`` bool: B (the token at p + 1) occurs exactly once among positions 0 .. T-2.

    For such a sequence the study recovers p as (that position - 1), which is
    the drawn p: B is always kept at p + 1.
    """
    rows = np.arange(len(tokens))
    b = tokens[rows, first_a + 1]
    return (tokens[:, :-1] == b[:, None]).sum(axis=1) == 1


def _baseline_excluded(last: int) -> set[int]:
    """Positions no baseline may hold: 0, q, q - 1 (previous) and q - 5 .. q - 2 (local)."""
    return {0, last, last - 1, *(last - k for k in LOCAL_OFFSETS)}


def _eligible_positions(seq_len: int, n_baseline: int) -> np.ndarray:
    """Positions 1 .. q - 1 a baseline may hold, int64; too few for ``n_baseline`` is an error."""
    eligible = np.array(baseline_candidates(seq_len), dtype=np.int64)
    if n_baseline > len(eligible):
        raise ValueError(
            f"n_baseline {n_baseline} exceeds the {len(eligible)} eligible positions "
            f"of an induction probe of length {seq_len}"
        )
    return eligible


def baseline_positions(seq_len: int, n_baseline: int, seed: int) -> torch.Tensor:
    """The study's fixed baseline key positions (``xu2026``), ``[n_baseline]`` in draw order.

    Rejection sampling from ``RandomState(seed)``: draw r = randint(1, q) one
    at a time and keep it unless it is excluded (0, q, q - 1, q - 5 .. q - 2)
    or already kept, until ``n_baseline`` are kept. q = seq_len - 1.
    """
    _eligible_positions(seq_len, n_baseline)
    last = seq_len - 1
    excluded = _baseline_excluded(last)
    rng = np.random.RandomState(seed)
    kept: list[int] = []
    while len(kept) < n_baseline:
        r = int(rng.randint(1, last))
        if r not in excluded and r not in kept:
            kept.append(r)
    return torch.tensor(kept, dtype=torch.int64)


def clean_baseline_candidates(seq_len: int, n_baseline: int, seed: int) -> np.ndarray:
    """``n_baseline + 2`` distinct eligible positions in a seeded order (``clean``), int64.

    Each sequence uses the first ``n_baseline`` of them that are neither its p
    nor p + 1, so every sequence has exactly ``n_baseline`` baseline positions.
    """
    eligible = _eligible_positions(seq_len, n_baseline + 2)
    return np.random.RandomState(seed).choice(eligible, size=n_baseline + 2, replace=False)


def clean_baseline(candidates: np.ndarray, first_a: np.ndarray, n_baseline: int) -> np.ndarray:
    """Per-sequence baseline ``[N, n_baseline]``: the first candidates that are not p or p + 1."""
    usable = (candidates[None, :] != first_a[:, None]) & (candidates[None, :] != first_a[:, None] + 1)
    order = np.argsort(~usable, axis=1, kind="stable")[:, :n_baseline]
    return candidates[order]


def induction_probe(
    n_sequences: int,
    seq_len: int,
    token_range: tuple[int, int],
    seed: int,
    min_first_position: int = 20,
    first_token: int | None = None,
    protocol: str = STUDY_PROTOCOL,
    n_baseline: int = 50,
    baseline_seed: int = 0,
) -> InductionProbe:
    """The induction probe of ``protocol`` (:data:`PROTOCOLS`) with its baseline and validity mask.

    The first-token policy replaces position 0 after the sequences are drawn
    (the validity mask is taken on the tokens the model sees). No valid
    sequence at all is an error: induction selectivity would be undefined.
    """
    if protocol == "xu2026":
        tokens, first_a = study_tokens(n_sequences, seq_len, token_range, seed, min_first_position)
        baseline = baseline_positions(seq_len, n_baseline, baseline_seed)
        record = baseline
    elif protocol == "clean":
        tokens, first_a = clean_tokens(n_sequences, seq_len, token_range, seed, min_first_position)
        candidates = clean_baseline_candidates(seq_len, n_baseline, baseline_seed)
        baseline = torch.from_numpy(clean_baseline(candidates, first_a, n_baseline))
        record = torch.from_numpy(candidates)
    else:
        raise ValueError(f"unknown induction probe protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    _apply_first_token(tokens, first_token)
    valid = valid_sequences(tokens, first_a)
    if not valid.any():
        raise DataError(
            f"induction probe ({protocol}, {n_sequences} sequences, token range {list(token_range)}): "
            "no sequence has B exactly once, so induction selectivity is undefined; widen probes.token_range"
        )
    return InductionProbe(
        tokens=torch.from_numpy(tokens),
        first_a=torch.from_numpy(first_a),
        valid=torch.from_numpy(valid),
        baseline=baseline,
        baseline_record=record,
        protocol=protocol,
    )


def run_induction_probe(probes: ProbeSettings, first_token: int | None) -> InductionProbe:
    """The induction probe a run's ``probes`` settings describe: its protocol, seeds and baseline.

    The one place that turns settings into :func:`induction_probe` arguments, so
    the measurement, the ablation and the tests all see the same sequences.
    """
    ind = probes.induction
    return induction_probe(
        ind.n_sequences,
        ind.seq_len,
        probes.token_range,
        ind.seed,
        ind.min_first_position,
        first_token,
        protocol=probes.protocol,
        n_baseline=ind.n_baseline,
        baseline_seed=ind.baseline_seed,
    )


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
