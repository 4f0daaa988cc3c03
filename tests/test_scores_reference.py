"""The measurement engine against a reference from full eager attention patterns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from models import ARCHITECTURES, tiny_model

from circuitsweep.config.probes import LOCAL_OFFSETS
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.measure import ProbeSettings, head_statistics
from circuitsweep.heads.probes import random_batch, repeated_batch, run_induction_probe
from circuitsweep.heads.scores import head_scores, loss_halves
from circuitsweep.io import contracts as C

PROBES = ProbeSettings.from_dict(
    {
        "kind": "random_tokens",
        "token_range": [2, 64],
        "batch_size": 7,
        "induction": {
            "n_sequences": 20,
            "seq_len": 48,
            "seed": 42,
            "min_first_position": 20,
            "n_baseline": 20,
            "baseline_seed": 0,
        },
        "repeated": {"n_sequences": 12, "seq_len": 32, "seed": 1},
        "random": {"n_sequences": 10, "seq_len": 24, "seed": 2},
    }
)
FIRST_TOKEN = 1


def eager_reference(
    model, probes: ProbeSettings = PROBES, first_token: int | None = FIRST_TOKEN
) -> tuple[dict[str, np.ndarray], tuple[float, float] | None]:
    """Scores computed the plain way: full patterns of every layer, full LM head (loss halves None without one)."""
    ind = probes.induction
    probe = run_induction_probe(probes, first_token)
    base = probe.baseline_rows(slice(None)).numpy()  # [N, K]
    with torch.no_grad():
        attn = torch.stack(model(probe.tokens, output_attentions=True).attentions, 1).double().numpy()
    q = ind.seq_len - 1
    rows = attn[:, :, :, q, :]  # [N, L, H, T]
    p = probe.first_a.numpy()
    n = np.arange(len(p))
    valid = probe.valid.numpy()
    target = {
        "first": rows[..., 0],
        "induction": rows[n, :, :, p + 1],
        "duplicate": rows[n, :, :, p],
        "previous": rows[..., q - 1],
        "self": rows[..., q],
        "local": rows[..., [q - k for k in LOCAL_OFFSETS]].mean(-1),
    }
    # induction and duplicate over valid sequences only (DESIGN.md 3)
    mean = {t: (v[valid] if t in ("induction", "duplicate") else v).mean(0) for t, v in target.items()}
    baseline = np.stack([rows[i][..., base[i]].mean(-1) for i in n]).mean(0)
    out = {f"sel_{t}": mean[t] / np.maximum(baseline, 1e-8) for t in C.TARGETS}
    out["baseline_attention"] = baseline

    rep = probes.repeated
    tokens = repeated_batch(rep.n_sequences, rep.seq_len, probes.token_range, rep.seed, first_token)
    with torch.no_grad():
        result = model(tokens, output_attentions=True)
    attn = torch.stack(result.attentions, 1).double().numpy()
    half = rep.seq_len // 2
    queries = np.arange(half + 1, rep.seq_len)
    out["prefix_matching"] = attn[:, :, :, queries, queries - half + 1].mean(axis=(0, -1))
    out["duplicate_token"] = attn[:, :, :, queries, queries - half].mean(axis=(0, -1))
    out["previous_token"] = attn[:, :, :, queries, queries - 1].mean(axis=(0, -1))
    halves = None
    if getattr(result, "logits", None) is not None:
        losses = torch.nn.functional.cross_entropy(
            result.logits[:, :-1].double().reshape(-1, result.logits.shape[-1]),
            tokens[:, 1:].reshape(-1),
            reduction="none",
        ).view(len(tokens), -1)
        halves = (losses[:, : half - 1].mean().item(), losses[:, half:].mean().item())

    rnd = probes.random
    tokens = random_batch(rnd.n_sequences, rnd.seq_len, probes.token_range, rnd.seed, first_token)
    with torch.no_grad():
        attn = torch.stack(model(tokens, output_attentions=True).attentions, 1).double().numpy()
    out["sink_alpha"] = attn[:, :, :, :, 0].mean(axis=(0, -1))
    return out, halves


CLEAN = dataclasses.replace(PROBES, protocol="clean")


@pytest.mark.parametrize(
    ("architecture", "probes"),
    [*((a, PROBES) for a in ARCHITECTURES), ("GPTNeoXForCausalLM", CLEAN)],
    ids=[*ARCHITECTURES, "GPTNeoXForCausalLM-clean"],
)
def test_every_score_matches_eager_patterns(architecture, probes):
    """Scores reduced inside SDPA attention equal those from full eager patterns to 1e-4 (both protocols)."""
    observed = tiny_model(architecture, register(), seed=3)
    eager = tiny_model(architecture, "eager", seed=3)
    stats = head_statistics(observed, probes, FIRST_TOKEN, torch.device("cpu"), progress=False)
    scores = head_scores(stats)
    reference, halves = eager_reference(eager, probes)
    n_layers, n_heads = reference["baseline_attention"].shape
    for column, expected in reference.items():
        got = scores[column].to_numpy().reshape(n_layers, n_heads)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=column)
    np.testing.assert_allclose(loss_halves(stats), halves, rtol=1e-4)
