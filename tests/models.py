"""Tiny random-initialised models of many decoder classes and of BERT, built in memory for tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block on one torch thread: tiny models run about 10x faster so than on two contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def small_probes(batch_size: int = 7, induction_sequences: int = 24, spectral_sequences: int = 17):
    """Probe settings small enough for tiny models: 32-token induction sequences with a few spectral ones (by
    default 17 of 24 in batches of 7, so a batch straddles the spectral cut), 4 repeated and random ones of 16."""
    from circuitsweep.api import study_probes

    return study_probes(
        token_range=[2, VOCAB],
        batch_size=batch_size,
        induction={"n_sequences": induction_sequences, "seq_len": 32, "min_first_position": 4, "n_baseline": 8},
        repeated={"n_sequences": 4, "seq_len": 16},
        random={"n_sequences": 4, "seq_len": 16},
        spectral={"n_sequences": spectral_sequences},
    )


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


#: Further decoder classes any-decoder support is tested on, with the settings their tiny configs need:
#: small head_dim where the default is large, sliding-window layers, Gemma 3's final-logit soft-cap
#: (small enough to bend the tiny model's logits), and two mixture-of-experts classes.
OTHER_DECODERS: dict[str, dict] = {
    "LlamaForCausalLM": {},
    "Qwen2ForCausalLM": {},
    "Qwen3ForCausalLM": {"head_dim": 8},
    "Gemma3ForCausalLM": {
        "head_dim": 8,
        "query_pre_attn_scalar": 8,
        "sliding_window": 6,
        "layer_types": ["sliding_attention", "full_attention"],
        "final_logit_softcapping": 0.05,
    },
    "Olmo2ForCausalLM": {},
    "MistralForCausalLM": {"sliding_window": 10},
    "Phi3ForCausalLM": {},
    "GPT2LMHeadModel": {"n_inner": None, "n_positions": 256},
    "MixtralForCausalLM": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "Qwen3MoeForCausalLM": {
        "head_dim": 8,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 48,
        "decoder_sparse_step": 1,
    },
}


def tiny_decoder(
    architecture: str, attn_implementation: str, seed: int = 0, layers: int = 2, vocab: int = VOCAB, **overrides
) -> PreTrainedModel:
    """A 2-layer, 4-head decoder of any class in :data:`OTHER_DECODERS` (hidden size 32, 64-token vocabulary)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from circuitsweep.config.architectures import CAUSAL_LM, MAPPINGS, imported_mappings

    mapping = next(name for name, kind in MAPPINGS.items() if kind == CAUSAL_LM)
    model_type = imported_mappings()[mapping][architecture]
    settings = dict(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    settings.update(OTHER_DECODERS[architecture])
    settings.update(overrides)
    if architecture == "GPT2LMHeadModel":
        for name in ("num_key_value_heads", "intermediate_size", "max_position_embeddings"):
            settings.pop(name)
    torch.manual_seed(seed)
    config = AutoConfig.for_model(model_type, **settings)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    assert type(model).__name__ == architecture, type(model).__name__
    return model.eval()
