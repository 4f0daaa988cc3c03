"""Synthetic training data for the toy suite: random tokens with copied spans and skip-bigram chains.

Every sequence starts with a fixed token (so heads can learn to sink
attention on position 0). The rest is uniform random tokens from
``[first_random_id, vocab_size)``. A share of the sequences additionally holds
``n_spans`` copies: a span of ``span_min..span_max`` tokens at a random source
offset is copied to a random later offset. Because both offsets are random, the
only way to predict a copy is to look up the earlier occurrence of the current
token and read the token after it -- an induction head. Copies at a fixed
period would instead be learned by relative position (docs/methods.md).

Two options shape when the toy's heads form (docs/methods.md, "The toy suite"):

- ``chain_spans`` skip-bigram chains per sequence (in a ``chain_fraction`` of
  the sequences, written before the copies): stretches of ``chain_min..chain_max``
  tokens in which each token is a fixed permutation of the token two before it,
  ``x[t + 1] = perm[x[t - 1]]``. Predicting them needs the previous token, so
  previous-token heads form within the first hundred steps, and the induction
  heads that build on them soon after;
- ``first_in_content``: the first token's id is drawn as an ordinary token
  too, so position 0 cannot be told from its id alone: a layer-0 head can find
  it only as the farthest token (the study's layer floor: no BOS head in the
  first layers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from circuitsweep.toy.spec import ToySpec


#: Token ids below this are reserved (0: padding/eos, 1: the default first token).
FIRST_RANDOM_ID = 2


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """One integer uniform in ``[low, high)``."""
    return int(torch.randint(low, high, (1,), generator=generator).item())


def copy_spans(tokens: torch.Tensor, n_spans: int, span_min: int, span_max: int, generator: torch.Generator) -> None:
    """Copy ``n_spans`` random spans of one sequence ``[T]`` to random later offsets, in place.

    Position 0 is never a source or a destination. A later span may overwrite
    part of an earlier one; the copies stay random-offset either way. A drawn
    length whose span and copy do not fit after position 0 is skipped.
    """
    seq_len = tokens.shape[0]
    for _ in range(n_spans):
        length = _randint(span_min, span_max + 1, generator)
        if 1 + 2 * length > seq_len:
            continue
        source = _randint(1, seq_len - 2 * length + 1, generator)
        dest = _randint(source + length, seq_len - length + 1, generator)
        tokens[dest : dest + length] = tokens[source : source + length].clone()


def chain_permutation(low: int, high: int, seed: int) -> list[int]:
    """The fixed permutation of the chains: ``perm[i - low]`` follows ``i`` (ids in ``[low, high)``), from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return (low + torch.randperm(high - low, generator=generator)).tolist()


def write_chains(
    tokens: torch.Tensor, n_chains: int, length: tuple[int, int], perm: list[int], low: int, generator: torch.Generator
) -> None:
    """Overwrite ``n_chains`` random stretches of one sequence ``[T]`` with skip-bigram chains, in place.

    A stretch of ``length[0]..length[1]`` tokens keeps its first two (random) tokens;
    each later token is ``perm[token two before - low]``. Position 0 is never written.
    """
    seq_len = tokens.shape[0]
    for _ in range(n_chains):
        size = min(_randint(length[0], length[1] + 1, generator), seq_len - 1)
        start = _randint(1, seq_len - size + 1, generator)
        row = tokens.tolist()
        for position in range(start + 2, start + size):
            row[position] = perm[row[position - 2] - low]
        tokens[start : start + size] = torch.tensor(row[start : start + size], dtype=tokens.dtype)


def synthetic_batch(spec: ToySpec, generator: torch.Generator) -> torch.Tensor:
    """A training batch ``LongTensor [spec.batch, spec.seq_len]`` drawn from ``generator``.

    Row b: position 0 = ``spec.first_token_id``; positions 1.. random tokens in
    ``[FIRST_RANDOM_ID, spec.vocab_size)`` (from the first token's id with
    ``first_in_content``); with probability ``spec.chain_fraction`` the row holds
    ``spec.chain_spans`` skip-bigram chains, then with probability
    ``spec.copy_fraction`` ``spec.n_spans`` copied spans at random offsets (a copy
    may carry part of a chain). Without chains and ``first_in_content`` (their
    defaults) the draws are those of the plain copy data.
    """
    low = spec.first_token_id if spec.first_in_content else FIRST_RANDOM_ID
    tokens = torch.randint(low, spec.vocab_size, (spec.batch, spec.seq_len), generator=generator)
    chain_spans = spec.chain_spans
    if chain_spans:
        perm = chain_permutation(low, spec.vocab_size, spec.chain_seed)
        with_chains = torch.rand(spec.batch, generator=generator) < spec.chain_fraction
        for row in range(spec.batch):
            if with_chains[row]:
                write_chains(tokens[row], chain_spans, (spec.chain_min, spec.chain_max), perm, low, generator)
    with_copies = torch.rand(spec.batch, generator=generator) < spec.copy_fraction
    for row in range(spec.batch):
        if with_copies[row]:
            copy_spans(tokens[row], spec.n_spans, spec.span_min, spec.span_max, generator)
    tokens[:, 0] = spec.first_token_id
    return tokens
