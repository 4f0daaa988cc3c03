"""Any transformers decoder class: scores, early stop, MLP chunks, the loss's logit transform, clear refusals."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from models import OTHER_DECODERS, tiny_decoder
from test_scores_reference import FIRST_TOKEN, PROBES, eager_reference

from circuitsweep.checkpoints.loading import auto_class
from circuitsweep.config import architectures
from circuitsweep.errors import ConfigError, UnsupportedModelError
from circuitsweep.heads import mlp_chunks
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.logits import LogitTransform
from circuitsweep.heads.measure import head_statistics
from circuitsweep.heads.mlp_chunks import decoder_mlps, mlp_width
from circuitsweep.heads.scores import head_scores, loss_halves
from circuitsweep.heads.verify import VERIFY_TOKENS

CPU = torch.device("cpu")
CHUNK_ROWS = 5


@pytest.mark.parametrize("architecture", list(OTHER_DECODERS))
def test_scores_early_stop_and_mlp_chunks_match_eager(architecture, monkeypatch):
    """For each class: every score and the loss halves equal full eager patterns to 1e-4 while the MLPs run
    in 5-row chunks, and the last MLP runs only for the repeated batch (plus the verification pass)."""
    observed = tiny_decoder(architecture, register(), seed=3)
    monkeypatch.setattr(mlp_chunks, "MLP_CHUNK_BYTES", CHUNK_ROWS * 4 * mlp_width(observed.config))
    last = decoder_mlps(observed)[-1]
    passes: list[int] = []
    chunk_rows: list[int] = []
    own_forward = last.forward
    last.forward = lambda hidden, *a, **k: chunk_rows.append(hidden.shape[1]) or own_forward(hidden, *a, **k)
    handle = last.register_forward_hook(lambda *_: passes.append(1))
    try:
        stats = head_statistics(observed, PROBES, FIRST_TOKEN, CPU, progress=False)
    finally:
        handle.remove()
    reference, halves = eager_reference(tiny_decoder(architecture, "eager", seed=3))
    scores = head_scores(stats)
    n_layers, n_heads = reference["baseline_attention"].shape
    for column, expected in reference.items():
        got = scores[column].to_numpy().reshape(n_layers, n_heads)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=column)
    np.testing.assert_allclose(loss_halves(stats), halves, rtol=1e-4)
    rep = PROBES.repeated
    assert len(passes) == -(-rep.n_sequences // PROBES.batch_size) + 1
    assert chunk_rows[0] == VERIFY_TOKENS  # the verification pass runs unchunked
    assert max(chunk_rows[1:]) == CHUNK_ROWS
    assert sum(chunk_rows[1:]) == rep.n_sequences * rep.seq_len


def test_gemma3_loss_needs_its_final_logit_softcap(monkeypatch):
    """Gemma 3's logits are soft-capped: without the cap the loss head no longer reproduces the model's logits,
    and the verification pass refuses the model instead of reporting a wrong in-context loss."""
    model = tiny_decoder("Gemma3ForCausalLM", register(), seed=3)
    assert "sliding_attention" in model.config.layer_types
    assert LogitTransform.of(model.config).softcap == 0.05
    monkeypatch.setattr(LogitTransform, "of", classmethod(lambda cls, config: cls()))
    with pytest.raises(UnsupportedModelError, match="Gemma3ForCausalLM cannot be measured: .*final logit transform"):
        head_statistics(model, PROBES, FIRST_TOKEN, CPU, progress=False)


def test_logit_scalings_of_cohere_and_granite():
    """Cohere multiplies logits by logit_scale, Granite divides them by logits_scaling; a soft-cap bends them."""
    logits = torch.tensor([-4.0, 0.5, 8.0])
    torch.testing.assert_close(LogitTransform.of(SimpleNamespace(logit_scale=0.5))(logits), logits * 0.5)
    torch.testing.assert_close(LogitTransform.of(SimpleNamespace(logits_scaling=4.0))(logits), logits / 4)
    capped = LogitTransform.of(SimpleNamespace(final_logit_softcapping=2.0))(logits)
    torch.testing.assert_close(capped, 2.0 * torch.tanh(logits / 2.0))
    assert LogitTransform.of(SimpleNamespace(final_logit_softcapping=None)) == LogitTransform()


def test_mlp_width_under_any_name():
    """MLP chunk widths come from whichever name a config uses; GPT-2's n_inner None means 4 x n_embd."""
    assert mlp_width(SimpleNamespace(intermediate_size=64)) == 64
    assert mlp_width(SimpleNamespace(n_inner=None, n_embd=48)) == 192
    assert mlp_width(SimpleNamespace(n_inner=100, n_embd=48)) == 100
    assert mlp_width(SimpleNamespace(ffn_dim=3072)) == 3072
    assert mlp_width(SimpleNamespace(ffn_hidden_size=256, hidden_size=64)) == 256
    assert mlp_width(SimpleNamespace(moe_intermediate_size=32, shared_expert_intermediate_size=96)) == 96
    assert mlp_width(SimpleNamespace(hidden_size=64)) is None


def test_a_class_outside_the_attention_interface_is_refused():
    """Bloom, GPT-Neo and Falcon compute attention themselves: refused by name at planning and in the job."""
    for name in ("BloomForCausalLM", "GPTNeoForCausalLM", "FalconForCausalLM"):
        with pytest.raises(ConfigError, match=f"^{name} does not route attention through .*AttentionInterface"):
            architectures.check_at_planning(name)
        with pytest.raises(UnsupportedModelError, match=f"^{name} does not route attention"):
            auto_class(name)


def test_attention_that_never_reaches_the_hook_is_one_clear_error():
    """A model whose attention bypasses the observed function fails the verification pass naming its class,
    never later with a missing statistic."""
    model = tiny_decoder("LlamaForCausalLM", "sdpa")
    with pytest.raises(UnsupportedModelError, match="^LlamaForCausalLM cannot be measured: its attention never"):
        head_statistics(model, PROBES, FIRST_TOKEN, CPU, progress=False)


def test_attention_softcapping_is_refused():
    """Gemma 2 soft-caps attention logits, which SDPA cannot: one message naming the class and the reason."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, intermediate_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    model = Gemma2ForCausalLM._from_config(config, attn_implementation=register()).eval()
    with pytest.raises(UnsupportedModelError, match="^Gemma2ForCausalLM cannot be measured: .*soft-caps its attention"):
        head_statistics(model, PROBES, FIRST_TOKEN, CPU, progress=False)


def test_architecture_names_checked_at_planning_without_torch():
    """The planning check reads transformers' mappings without importing torch, and reads them right."""
    code = (
        "import sys; from circuitsweep.config import architectures as a; a.check_at_planning('Qwen2ForCausalLM');"
        "a.check_at_planning('GPT2LMHeadModel'); a.check_at_planning('BertModel');"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert architectures.planning_mappings() == architectures.imported_mappings()
    with pytest.raises(ConfigError, match="did you mean LlamaForCausalLM"):
        architectures.check_at_planning("LlamaForCausalLm")
    with pytest.raises(ConfigError, match="BertForMaskedLM is neither a causal LM nor a bare base model"):
        architectures.check_at_planning("BertForMaskedLM")


def test_a_statistic_never_observed_is_an_error_not_a_missing_key():
    """An observer that saw no layer, or statistics that lack one, fail with a message naming the statistic."""
    from circuitsweep.errors import DataError
    from circuitsweep.heads.observers import SinkObserver
    from circuitsweep.io import contracts as C

    observer = SinkObserver(n_layers=2)
    observer.start_batch(4)
    with pytest.raises(DataError, match=r"statistic random\.first_attention was never observed in layers \[0, 1\]"):
        observer.result()
    model = tiny_decoder("LlamaForCausalLM", register(), seed=3)
    stats = head_statistics(model, PROBES, FIRST_TOKEN, CPU, progress=False)
    del stats[C.STAT_PREFIX_MATCHING]
    with pytest.raises(DataError, match=r"statistics \['repeated\.prefix_matching'\] were never observed"):
        head_scores(stats)


def test_a_toy_source_must_name_a_class_the_toy_suite_trains():
    """Any decoder class loads from a checkpoint, but the toy trainer builds three: others are refused at planning."""
    from pathlib import Path

    from circuitsweep.config.load import load_config
    from circuitsweep.plan.sweep import plan_sweep

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "config" / "config.yaml")
    name = next(iter(config["models"]))
    config["models"][name]["architecture"] = "LlamaForCausalLM"
    expected = rf"models\.{name}\.architecture: the toy suite trains only GPTNeoXForCausalLM"
    with pytest.raises(ConfigError, match=expected):
        plan_sweep(config, root)
