"""Hidden states of marked words, at every layer, for any transformers model.

The base model (no LM head) runs with ``output_hidden_states=True``; layer 0
is the embedding output and layer l the output of block l, as transformers
returns them. A word's state in one text is the mean over its tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from circuitsweep.config.stimuli import WordInText
from circuitsweep.primitives.encoders import Encoded, WordEncoder


def base_model(model: PreTrainedModel) -> torch.nn.Module:
    """The transformer without its head (``BertModel`` is its own base)."""
    return getattr(model, "base_model", model)


def n_hidden_layers(model: PreTrainedModel) -> int:
    """Number of hidden-state layers the model returns: blocks + 1 (the embeddings)."""
    return int(model.config.num_hidden_layers) + 1


def _batch(encoded: Sequence[Encoded], pad_id: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Right-padded ``input_ids``, ``attention_mask`` and the word-span mask, all ``[B, T]``."""
    width = max(len(e.ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    span = torch.zeros((len(encoded), width), dtype=torch.float32)
    for row, e in enumerate(encoded):
        ids[row, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
        attention[row, : len(e.ids)] = 1
        span[row, e.span[0] : e.span[1]] = 1.0
    return ids.to(device), attention.to(device), span.to(device)


@torch.inference_mode()
def mean_word_states(
    model: PreTrainedModel,
    encoder: WordEncoder,
    items: Sequence[WordInText],
    groups: Sequence[int],
    n_groups: int,
    *,
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Mean word state of each group of items: ``[n_groups, n_layers, hidden]`` float32 on the CPU.

    ``groups[i]`` is the group (e.g. the primitive) of ``items[i]``; each item's
    state is first averaged over the word's tokens, then over the group's items.
    ``layers`` selects hidden-state layers (0 = embeddings; default all).
    Items are batched by length, so the result does not depend on their order.
    """
    if len(items) != len(groups):
        raise ValueError(f"{len(items)} items but {len(groups)} group indices")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    keep = list(range(n_hidden_layers(model))) if layers is None else [int(x) for x in layers]
    encoded = [encoder.encode(item) for item in items]
    order = sorted(range(len(items)), key=lambda i: (len(encoded[i].ids), i))
    group_ids = torch.tensor(list(groups), dtype=torch.long)
    counts = torch.bincount(group_ids, minlength=n_groups).to(torch.float64)
    if (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"groups {empty} have no items")
    hidden = int(model.config.hidden_size)
    sums = torch.zeros((n_groups, len(keep), hidden), dtype=torch.float64)
    net = base_model(model)
    for begin in range(0, len(order), batch_size):
        rows = order[begin : begin + batch_size]
        ids, attention, span = _batch([encoded[i] for i in rows], encoder.pad_id, device)
        out = net(input_ids=ids, attention_mask=attention, output_hidden_states=True)
        states = torch.stack([out.hidden_states[layer] for layer in keep], dim=1).float()  # [B, L, T, H]
        weights = span / span.sum(dim=1, keepdim=True)  # [B, T]
        words = torch.einsum("blth,bt->blh", states, weights).to("cpu", torch.float64)  # [B, L, H]
        sums.index_add_(0, group_ids[rows], words)
    return (sums / counts[:, None, None]).to(torch.float32)


def word_states(
    model: PreTrainedModel,
    encoder: WordEncoder,
    items: Sequence[WordInText],
    *,
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """State of the marked word in each item: ``[n_items, n_layers, hidden]`` float32 on the CPU."""
    return mean_word_states(
        model, encoder, items, range(len(items)), len(items), layers=layers, batch_size=batch_size, device=device
    )
