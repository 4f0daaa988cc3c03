"""An attention function registered with transformers' ``AttentionInterface``.

Models loaded with ``attn_implementation=ATTENTION_NAME`` compute their
attention output with SDPA, exactly as ``"sdpa"`` does, and additionally hand
the post-rotary query and key of every layer to the active :class:`Observer`,
which reduces them to a few statistics on the spot. No attention pattern of
any layer outlives its layer's call, so memory stays that of an SDPA forward.
A pass that needs nothing after the last layer's attention can be cut short
there (``observing(..., stop_after=layer)``, :func:`run_until_stop`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Protocol

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from circuitsweep.errors import UnsupportedModelError

ATTENTION_NAME = "circuitsweep"


class Observer(Protocol):
    """Receives the attention inputs of each layer during a forward pass."""

    def observe(self, layer: int, scores: ScoreRows) -> None:
        """Reduce layer ``layer``'s attention, available through ``scores``."""


class ScoreRows:
    """Lazy access to attention probabilities of selected query rows of one layer.

    query: ``[B, H, T, D]`` post-rotary; key: ``[B, H_kv, T, D]``; the mask is
    the additive or boolean mask the model passed, or None for plain causal.
    Probabilities are computed in float32 for only the rows asked for.
    """

    def __init__(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        scaling: float,
        mask: torch.Tensor | None,
        is_causal: bool,
    ) -> None:
        self.query = query
        self.key = repeat_kv(key, query.shape[1] // key.shape[1])
        self.scaling = scaling
        self.mask = mask
        self.is_causal = is_causal

    @property
    def seq_len(self) -> int:
        return self.query.shape[2]

    def probs(self, rows: torch.Tensor) -> torch.Tensor:
        """Attention probabilities of query positions ``rows``: ``[B, H, len(rows), T]``."""
        rows = rows.to(self.query.device)
        q = self.query[:, :, rows].float()
        scores = torch.matmul(q, self.key.float().transpose(-1, -2)) * self.scaling
        if self.mask is not None:
            mask = self.mask[..., rows, : scores.shape[-1]]
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(~mask, float("-inf"))
            else:
                scores = scores + mask.float()
        elif self.is_causal:
            keys = torch.arange(scores.shape[-1], device=scores.device)
            scores = scores.masked_fill(keys[None, :] > rows[:, None], float("-inf"))
        return torch.softmax(scores, dim=-1)

    def probs_per_sequence(self, rows: torch.Tensor) -> torch.Tensor:
        """Attention probabilities of one query position per sequence, ``rows[b]`` of sequence b: ``[B, H, T]``."""
        batch, heads, _, dim = self.query.shape
        rows = rows.to(self.query.device)
        at = rows[:, None, None, None]
        q = self.query.gather(2, at.expand(batch, heads, 1, dim)).float()
        scores = torch.matmul(q, self.key.float().transpose(-1, -2)) * self.scaling  # [B, H, 1, T]
        keys = scores.shape[-1]
        if self.mask is not None:
            mask = self.mask[..., :keys].expand(batch, -1, -1, -1)
            mask = mask.gather(2, at.expand(batch, mask.shape[1], 1, keys))
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(~mask, float("-inf"))
            else:
                scores = scores + mask.float()
        elif self.is_causal:
            later = torch.arange(keys, device=scores.device)[None, None, None, :] > at
            scores = scores.masked_fill(later, float("-inf"))
        return torch.softmax(scores, dim=-1)[:, :, 0]


class StopForward(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by the observed attention once the layer given to :func:`observing` as ``stop_after`` is observed.

    The rest of the forward pass (that layer's attention output and MLP, any
    later layers, the final norm) is then skipped: its result is not needed.
    The caller of the forward pass catches it.
    """


#: The active observer and the layer after whose observation the forward pass stops (None: never).
_observer: ContextVar[tuple[Observer, int | None] | None] = ContextVar("circuitsweep_observer", default=None)


def observed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """SDPA attention that first lets the active observer reduce this layer.

    Raises :class:`StopForward` right after observing the observer's stop layer.
    """
    active = _observer.get()
    if active is not None:
        observer, stop_after = active
        if kwargs.get("softcap") is not None:
            raise UnsupportedModelError(
                f"{type(module).__name__} soft-caps its attention logits, which SDPA (and so the observed "
                "attention) cannot do"
            )
        if not isinstance(getattr(module, "layer_idx", None), int):
            raise UnsupportedModelError(f"{type(module).__name__} has no layer_idx: its layers cannot be told apart")
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        observer.observe(module.layer_idx, ScoreRows(query, key, scale, attention_mask, bool(causal)))
        if stop_after is not None and module.layer_idx >= stop_after:
            raise StopForward(module.layer_idx)
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
    )


def register() -> str:
    """Register the observed attention (idempotent); returns its implementation name."""
    AttentionInterface.register(ATTENTION_NAME, observed_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME


@contextlib.contextmanager
def observing(observer: Observer, stop_after: int | None = None) -> Iterator[Observer]:
    """Route every layer's attention inputs to ``observer`` inside the block.

    With ``stop_after`` (a layer index), each forward pass raises
    :class:`StopForward` as soon as that layer's attention has been observed;
    run the passes through :func:`run_until_stop`.
    """
    token = _observer.set((observer, stop_after))
    try:
        yield observer
    finally:
        _observer.reset(token)


def run_until_stop(forward: Callable[[], object]) -> bool:
    """Call ``forward()``; True if it was cut short by :class:`StopForward`, False if it ran to the end."""
    try:
        forward()
    except StopForward:
        return True
    return False
