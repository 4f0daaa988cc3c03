"""Synthetic training data for the toy suite: random tokens with copied spans.

Every sequence starts with a fixed token (so heads can learn to sink
attention on position 0). The rest is uniform random tokens from
``[first_random_id, vocab_size)``. A share of the sequences additionally holds
``n_spans`` copies: a span of ``span_min..span_max`` tokens at a random source
offset is copied to a random later offset. Because both offsets are random, the
only way to predict a copy is to look up the earlier occurrence of the current
token and read the token after it -- an induction head. Copies at a fixed
period would instead be learned by relative position (docs/methods.md).
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
    part of an earlier one; the copies stay random-offset either way.
    """
    seq_len = tokens.shape[0]
    for _ in range(n_spans):
        length = _randint(span_min, span_max + 1, generator)
        if 1 + 2 * length > seq_len:
            continue
        source = _randint(1, seq_len - 2 * length + 1, generator)
        dest = _randint(source + length, seq_len - length + 1, generator)
        tokens[dest : dest + length] = tokens[source : source + length].clone()


def synthetic_batch(spec: ToySpec, generator: torch.Generator) -> torch.Tensor:
    """A training batch ``LongTensor [spec.batch, spec.seq_len]`` drawn from ``generator``.

    Row b: position 0 = ``spec.first_token_id``; positions 1.. random tokens in
    ``[FIRST_RANDOM_ID, spec.vocab_size)``; with probability ``spec.copy_fraction``
    the row also holds ``spec.n_spans`` copied spans at random offsets, else no copy.
    """
    tokens = torch.randint(FIRST_RANDOM_ID, spec.vocab_size, (spec.batch, spec.seq_len), generator=generator)
    with_copies = torch.rand(spec.batch, generator=generator) < spec.copy_fraction
    for row in range(spec.batch):
        if with_copies[row]:
            copy_spans(tokens[row], spec.n_spans, spec.span_min, spec.span_max, generator)
    tokens[:, 0] = spec.first_token_id
    return tokens
