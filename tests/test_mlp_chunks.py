"""Decoder MLPs run over chunks of tokens give the same model output and scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import ARCHITECTURES, ENCODERS, tiny_model
from test_scores_reference import FIRST_TOKEN, PROBES, eager_reference

from circuitsweep.heads import mlp_chunks
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.measure import head_statistics
from circuitsweep.heads.mlp_chunks import chunked_mlps, decoder_mlps, mlp_chunk_rows
from circuitsweep.heads.scores import head_scores

#: 5 rows of a 64-wide float32 intermediate: ragged chunks of every tiny batch below.
FIVE_ROWS = 5 * 4 * 64


def test_chunk_rows_follow_the_byte_budget():
    """OLMo-1B's 8192-wide MLP gets 2048 rows per 64 MiB; a budget below one row still gives one."""
    assert mlp_chunk_rows(8192) == 2048
    assert mlp_chunk_rows(64, FIVE_ROWS) == 5
    assert mlp_chunk_rows(10**9, 1) == 1


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_chunked_mlps_leave_the_hidden_states_unchanged(architecture):
    """Dense and mixture-of-experts MLPs act per token, so chunking changes no output beyond rounding."""
    model = tiny_model(architecture, "sdpa", seed=5)
    tokens = torch.randint(0, 64, (3, 17))
    with torch.inference_mode():
        plain = model.base_model(input_ids=tokens).last_hidden_state
        with chunked_mlps(model, FIVE_ROWS) as rows:
            chunked = model.base_model(input_ids=tokens).last_hidden_state
    assert rows == 5
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-6)


def test_every_chunk_is_computed_and_the_forward_restored():
    """3 x 17 tokens in chunks of 5: each layer's down projection sees 10 chunks of 5 and one of 1; afterwards
    the MLPs are the model's own again."""
    model = tiny_model("OlmoForCausalLM", "sdpa")
    mlps = decoder_mlps(model)
    calls: list[int] = []
    handles = [m.down_proj.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[1])) for m in mlps]
    with torch.inference_mode(), chunked_mlps(model, FIVE_ROWS):
        model.base_model(input_ids=torch.randint(0, 64, (3, 17)))
    for h in handles:
        h.remove()
    assert calls == ([5] * 10 + [1]) * len(mlps)
    assert all("forward" not in m.__dict__ for m in mlps)


def test_forward_is_restored_after_an_error():
    """An exception inside the block leaves no chunking wrapper behind."""
    model = tiny_model("GPTNeoXForCausalLM", "sdpa")
    with pytest.raises(RuntimeError, match="boom"), chunked_mlps(model, FIVE_ROWS):
        raise RuntimeError("boom")
    assert all("forward" not in m.__dict__ for m in decoder_mlps(model))


def test_an_mlp_that_is_not_token_wise_is_refused():
    """An MLP returning anything but a [1, rows, d] tensor stops with an error naming it, not a wrong output."""
    model = tiny_model("OlmoForCausalLM", "sdpa")
    mlp = decoder_mlps(model)[0]
    mlp.forward = lambda x: (x, None)
    with torch.inference_mode(), chunked_mlps(model, FIVE_ROWS), pytest.raises(TypeError, match="token-wise"):
        model.base_model(input_ids=torch.randint(0, 64, (2, 9)))
    assert mlp.forward(torch.ones(1))[1] is None


@pytest.mark.parametrize("architecture", ENCODERS)
def test_encoders_are_left_alone(architecture):
    """BERT's feed-forward has no ``mlp`` block: nothing is wrapped."""
    model = tiny_model(architecture, "sdpa")
    with chunked_mlps(model, FIVE_ROWS) as rows:
        assert rows == 0


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_scores_with_small_mlp_chunks_match_eager_patterns(architecture, monkeypatch):
    """head_statistics with ragged 5-row MLP chunks still equals the full eager reference to 1e-4."""
    monkeypatch.setattr(mlp_chunks, "MLP_CHUNK_BYTES", FIVE_ROWS)
    observed = tiny_model(architecture, register(), seed=3)
    scores = head_scores(head_statistics(observed, PROBES, FIRST_TOKEN, torch.device("cpu"), progress=False))
    reference, _ = eager_reference(tiny_model(architecture, "eager", seed=3))
    n_layers, n_heads = reference["baseline_attention"].shape
    for column, expected in reference.items():
        got = scores[column].to_numpy().reshape(n_layers, n_heads)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=column)
