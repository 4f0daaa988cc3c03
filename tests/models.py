"""Tiny random-initialised models of the three decoder architectures and of BERT, built in memory for tests."""

from __future__ import annotations

import torch
from transformers import (
    BertConfig,
    BertModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    OlmoConfig,
    OlmoeConfig,
    OlmoeForCausalLM,
    OlmoForCausalLM,
    PreTrainedModel,
)

VOCAB = 64
ARCHITECTURES = ("GPTNeoXForCausalLM", "OlmoForCausalLM", "OlmoeForCausalLM")
#: Encoders without an LM head (bidirectional attention, no in-context loss).
ENCODERS = ("BertModel",)


def tiny_model(
    architecture: str, attn_implementation: str, seed: int = 0, layers: int = 2, heads: int = 4, vocab: int = VOCAB
) -> PreTrainedModel:
    """A 2-layer, 4-head model with hidden size 32 and a 64-token vocabulary (``BertModel``: no LM head)."""
    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=64,
        max_position_embeddings=256,
        attn_implementation=attn_implementation,
    )
    if architecture == "GPTNeoXForCausalLM":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(**common))
    elif architecture == "OlmoForCausalLM":
        model = OlmoForCausalLM(OlmoConfig(**common, pad_token_id=0, bos_token_id=1, eos_token_id=2))
    elif architecture == "OlmoeForCausalLM":
        model = OlmoeForCausalLM(
            OlmoeConfig(**common, num_experts=4, num_experts_per_tok=2, pad_token_id=0, bos_token_id=1, eos_token_id=2)
        )
    elif architecture == "BertModel":
        model = BertModel(BertConfig(**common, pad_token_id=0), add_pooling_layer=False)
    else:
        raise ValueError(architecture)
    return model.eval()
