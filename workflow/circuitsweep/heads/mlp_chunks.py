"""Run each decoder layer's MLP over a few tokens at a time.

An MLP, dense or mixture-of-experts, acts on every token alone, so applying it
to the ``[B, T, d]`` residual stream in chunks of rows gives the same output,
while its widest transients (``[rows, intermediate]``: gate, up and their
product for a SwiGLU) stay within :data:`MLP_CHUNK_BYTES`. Unchunked, an
OLMo-1B MLP at batch 16 x 256 tokens holds three 128 MiB float32 tensors, the
peak of the whole forward pass; in chunks of 2048 rows the attention block
sets the peak instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

#: Bytes of one float32 ``[rows, intermediate]`` MLP transient per chunk. Like the LM head's
#: chunks it stays at or above glibc's largest mmap threshold (32 MiB): such blocks go back to the
#: system when freed, while smaller ones are kept in the heap and raise the resident peak.
MLP_CHUNK_BYTES = 64 << 20


def mlp_chunk_rows(intermediate_size: int, chunk_bytes: int | None = None) -> int:
    """Tokens per MLP chunk: ``chunk_bytes`` (default :data:`MLP_CHUNK_BYTES`) of float32 ``[rows, intermediate]``."""
    return max(1, (MLP_CHUNK_BYTES if chunk_bytes is None else chunk_bytes) // (4 * intermediate_size))


#: Config attributes that give an MLP's hidden width under the names different model families use
#: (dense MLP, per-expert and shared-expert widths of a mixture of experts).
MLP_WIDTH_NAMES: tuple[str, ...] = (
    "intermediate_size",
    "ffn_dim",
    "d_ff",
    "ffn_hidden_size",
    "n_inner",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
)


def mlp_width(config: object) -> int | None:
    """The widest MLP transient of a decoder layer, in features, from its config; None if it declares none.

    GPT-2 and GPT-J leave ``n_inner`` None, meaning 4 x ``n_embd``.
    """
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    widths = [v for name in MLP_WIDTH_NAMES if isinstance(v := getattr(config, name, None), int) and v > 0]
    if hasattr(config, "n_inner") and config.n_inner is None:
        hidden = getattr(config, "n_embd", None) or getattr(config, "hidden_size", None)
        if isinstance(hidden, int):
            widths.append(4 * hidden)
    return max(widths) if widths else None


def decoder_mlps(model: nn.Module) -> list[nn.Module]:
    """The per-layer MLP blocks (a layer's ``mlp``: GPT-NeoX, OLMo, Llama, GPT-2, MoE blocks); none for BERT."""
    return [m.mlp for m in model.modules() if isinstance(getattr(m, "mlp", None), nn.Module)]


def _row_chunked(forward: Callable[..., torch.Tensor], rows: int, name: str) -> Callable[..., torch.Tensor]:
    """``forward`` applied to ``[B, T, d]`` input as ``[1, rows, d]`` pieces, reassembled to ``[B, T, d_out]``."""

    def chunked(hidden: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if hidden.dim() != 3 or hidden.shape[0] * hidden.shape[1] <= rows:
            return forward(hidden, *args, **kwargs)
        batch, seq_len, _ = hidden.shape
        flat = hidden.reshape(1, batch * seq_len, hidden.shape[-1])
        out: torch.Tensor | None = None
        start = 0
        for piece in flat.split(rows, dim=1):
            result = forward(piece, *args, **kwargs)
            if not isinstance(result, torch.Tensor) or result.shape[:2] != piece.shape[:2]:
                raise TypeError(
                    f"{name}.forward returned {type(result).__name__} where a token-wise "
                    f"[1, {piece.shape[1]}, d] tensor was expected: it cannot run over chunks of tokens"
                )
            if out is None:
                out = result.new_empty(batch * seq_len, result.shape[-1])
            out[start : start + piece.shape[1]] = result[0]
            start += piece.shape[1]
        assert out is not None
        return out.view(batch, seq_len, -1)

    return chunked


@contextlib.contextmanager
def chunked_mlps(model: nn.Module, chunk_bytes: int | None = None) -> Iterator[int]:
    """Inside the block, every decoder MLP of ``model`` runs over chunks of tokens.

    Yields the rows per chunk (0 when the model has no chunkable MLP). The
    original ``forward`` of each MLP is restored on exit, also after an error.
    """
    mlps = decoder_mlps(model)
    config = getattr(model, "config", None)
    width = None if config is None else mlp_width(config)
    if not mlps or width is None:
        yield 0
        return
    rows = mlp_chunk_rows(width, chunk_bytes)
    own_forwards = [mlp.__dict__.get("forward") for mlp in mlps]
    for mlp in mlps:
        mlp.forward = _row_chunked(mlp.forward, rows, type(mlp).__name__)
    try:
        yield rows
    finally:
        for mlp, own in zip(mlps, own_forwards, strict=True):
            if own is None:
                del mlp.forward
            else:
                mlp.forward = own
