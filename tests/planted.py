"""A GPT-NeoX model whose weights plant known heads, for classifier tests.

Residual stream (hidden 256): dims 0..31 one-hot of the current token,
32..63 one-hot of the previous token (written by the previous-token head),
64 a constant. Heads have 64 dims: 0..15 rotary, 16..63 content.

Planted heads:
- layer 0 head 0: previous token (rotary phases peak at offset 1);
- layer 0 head 2: attends only to position 0 (the fixed first token);
- layer 1 head 1: induction (query = current token, key = previous token);
- every other head has zero query and key weights: uniform attention.
"""

from __future__ import annotations

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from circuitsweep.heads.classify import Thresholds

#: The study's classification thresholds (DESIGN.md 3): class 30x, circuit 50x / 100x, sink alpha 0.3.
STUDY_THRESHOLDS = Thresholds(class_selectivity=30, induction_circuit=50, previous_circuit=100, sink_alpha=0.3)

VOCAB = 32
FIRST_TOKEN = 1
HIDDEN, HEADS, HEAD = 256, 4, 64
ROTARY = 16
CONST = 64
PLANTED = {(0, 0): "previous", (0, 2): "first", (1, 1): "induction"}


def _qkv_rows(head: int, part: int) -> slice:
    start = head * 3 * HEAD + part * HEAD
    return slice(start, start + HEAD)


def planted_model(attn_implementation: str, strength: float = 40.0) -> GPTNeoXForCausalLM:
    """The planted model; ``strength`` scales every planted query (larger = sharper)."""
    config = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=16,
        max_position_embeddings=256,
        rotary_pct=ROTARY / HEAD,
        rope_theta=100.0,
        use_parallel_residual=True,
        attn_implementation=attn_implementation,
    )
    model = GPTNeoXForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in [model.gpt_neox.final_layer_norm] + [
            n for layer in model.gpt_neox.layers for n in (layer.input_layernorm, layer.post_attention_layernorm)
        ]:
            norm.weight.fill_(1.0)
        embed = model.gpt_neox.embed_in.weight
        embed[:, CONST] = 1.0
        embed[torch.arange(VOCAB), torch.arange(VOCAB)] = 1.0

        layer0 = model.gpt_neox.layers[0].attention
        qkv0 = layer0.query_key_value.weight
        half = ROTARY // 2
        theta = 100.0 ** (-torch.arange(half, dtype=torch.float64) / half)
        q_rows, k_rows, v_rows = (_qkv_rows(0, i) for i in range(3))
        # previous-token head: q . R(delta) k = sum_k cos((delta + 1) theta_k), peaking at delta = -1
        qkv0[q_rows][:half, CONST] = strength * torch.cos(theta).float()
        qkv0[q_rows][half:ROTARY, CONST] = -strength * torch.sin(theta).float()
        qkv0[k_rows][:half, CONST] = 1.0
        qkv0[v_rows][torch.arange(VOCAB), torch.arange(VOCAB)] = 1.0
        layer0.dense.weight[VOCAB + torch.arange(VOCAB), torch.arange(VOCAB)] = 10.0
        # first-position head: the key says "I am the first token"
        q_rows, k_rows = _qkv_rows(2, 0), _qkv_rows(2, 1)
        qkv0[q_rows][ROTARY, CONST] = strength
        qkv0[k_rows][ROTARY, FIRST_TOKEN] = 1.0

        layer1 = model.gpt_neox.layers[1].attention
        qkv1 = layer1.query_key_value.weight
        q_rows, k_rows = _qkv_rows(1, 0), _qkv_rows(1, 1)
        content = ROTARY + torch.arange(VOCAB)
        qkv1[q_rows][content, torch.arange(VOCAB)] = strength
        qkv1[k_rows][content, VOCAB + torch.arange(VOCAB)] = 1.0
    return model


#: Residual dims the induction head writes B's one-hot to, read by the unembedding (its planted value path).
INDUCTION_OUT = 96
#: Residual dim nothing writes: the unembedding weight there varies by step, so no two checkpoints share weights.
UNUSED = 200


def planted_checkpoint(step: int, onset: int, causal: int, attn_implementation: str = "eager") -> GPTNeoXForCausalLM:
    """The planted model as a training run's checkpoint at ``step``.

    Before ``onset`` the induction head (layer 1 head 1) attends uniformly (zero
    query); from ``onset`` it attends to B. From ``causal`` its value path also
    writes B's one-hot to dims ``INDUCTION_OUT..`` and the unembedding reads
    them, so the model predicts B and ablating the head costs top-1 accuracy;
    before that the head's output is zero and ablating it changes nothing.
    The previous-token and BOS heads are planted at every step.
    """
    model = planted_model(attn_implementation)
    with torch.no_grad():
        layer1 = model.gpt_neox.layers[1].attention
        qkv1 = layer1.query_key_value.weight
        if step < onset:
            qkv1[_qkv_rows(1, 0)] = 0.0
        if step >= causal:
            content = ROTARY + torch.arange(VOCAB)
            qkv1[_qkv_rows(1, 2)][content, torch.arange(VOCAB)] = 1.0
            layer1.dense.weight[INDUCTION_OUT + torch.arange(VOCAB), HEAD + content] = 10.0
            model.get_output_embeddings().weight[torch.arange(VOCAB), INDUCTION_OUT + torch.arange(VOCAB)] = 1.0
        model.get_output_embeddings().weight[0, UNUSED] = 1e-6 * (step + 1)
    return model


def save_planted_run(folder, steps, onset: int, causal: int) -> list:
    """Save :func:`planted_checkpoint` at each of ``steps`` as ``<folder>/checkpoint-<step>`` (a run_dir source)."""
    from pathlib import Path

    saved = []
    for step in steps:
        out = Path(folder) / f"checkpoint-{step}"
        planted_checkpoint(step, onset, causal).save_pretrained(out, safe_serialization=True)
        saved.append(out)
    return saved


def planted_sweep_settings() -> dict:
    """The small probes and thresholds (and no primitives) that the workflow tests sweep planted checkpoints with:
    the planted head (one layer-1 head) is the onset at ``induction_onset_heads: 1``."""
    return {
        "primitives": {"enabled": False},
        "probes": {
            "token_range": [2, VOCAB],
            "batch_size": 32,
            "induction": {"n_sequences": 32, "seq_len": 64},
            "repeated": {"n_sequences": 16, "seq_len": 64},
            "random": {"n_sequences": 16, "seq_len": 64},
        },
        "thresholds": {"class_selectivity": 8, "induction_circuit": 12, "induction_onset_heads": 1},
    }
