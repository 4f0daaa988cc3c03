"""The engine's shortcuts: passes stop after the last attention, the LM head runs in byte-sized chunks."""

from __future__ import annotations

import pytest
import torch
from models import ARCHITECTURES, tiny_model
from test_scores_reference import PROBES

from circuitsweep.heads import measure
from circuitsweep.heads.attention_hook import StopForward, observing, register, run_until_stop
from circuitsweep.heads.measure import head_statistics, logit_chunk_rows
from circuitsweep.heads.scores import loss_halves
from circuitsweep.io import contracts as C

CPU = torch.device("cpu")


def _n_batches(batch) -> int:
    return -(-batch.n_sequences // PROBES.batch_size)


def _last_mlp(model) -> torch.nn.Module:
    return model.base_model.layers[-1].mlp


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_only_the_loss_pass_runs_past_the_last_attention(architecture):
    """The last layer's MLP and the final hidden state are computed for the repeated batch only.

    (And once for the verification pass, which checks the whole forward pass before any probe.)
    """
    model = tiny_model(architecture, register(), seed=3)
    calls = []
    handle = _last_mlp(model).register_forward_hook(lambda *_: calls.append(1))
    try:
        stats = head_statistics(model, PROBES, 1, CPU, progress=False)
    finally:
        handle.remove()
    assert len(calls) == _n_batches(PROBES.repeated) + 1
    assert C.STAT_LOSS_PER_POSITION in stats


def test_encoder_passes_all_stop_after_the_last_attention():
    """Without an LM head no pass needs the last layer's output."""
    model = tiny_model("BertModel", register(), seed=3)
    calls = []
    handle = model.encoder.layer[-1].intermediate.register_forward_hook(lambda *_: calls.append(1))
    try:
        head_statistics(model, PROBES, 1, CPU, progress=False)
    finally:
        handle.remove()
    assert calls == []


def test_stop_is_scoped_to_the_observing_block():
    """Outside ``observing(..., stop_after=...)`` the same model runs to the end."""

    class Count:
        def __init__(self) -> None:
            self.layers: list[int] = []

        def observe(self, layer, scores) -> None:
            self.layers.append(layer)

    model = tiny_model("OlmoForCausalLM", register(), seed=3)
    tokens = torch.randint(2, 64, (2, 16))
    counter = Count()
    with torch.no_grad(), observing(counter, stop_after=0):
        assert run_until_stop(lambda: model.base_model(input_ids=tokens))
        with pytest.raises(StopForward):
            model.base_model(input_ids=tokens)
    assert counter.layers == [0, 0]
    with torch.no_grad():
        assert model(input_ids=tokens).logits.shape == (2, 16, 64)
        assert not run_until_stop(lambda: model.base_model(input_ids=tokens))


def test_logit_chunk_is_sized_in_bytes():
    """About 64 MiB of float32 logits per chunk, at least one row."""
    assert logit_chunk_rows(50304) == (64 << 20) // (4 * 50304) == 333
    assert logit_chunk_rows(32000) == 524
    assert logit_chunk_rows(10**9) == 1


def test_loss_does_not_depend_on_the_chunk_size(monkeypatch):
    """Chunks of 1 row and one chunk for everything give the same loss."""
    model = tiny_model("GPTNeoXForCausalLM", register(), seed=3)
    whole = loss_halves(head_statistics(model, PROBES, 1, CPU, progress=False))
    monkeypatch.setattr(measure, "LOGIT_CHUNK_BYTES", 4 * 64)  # one row of a 64-token vocabulary
    assert logit_chunk_rows(64) == 1
    rows = loss_halves(head_statistics(model, PROBES, 1, CPU, progress=False))
    assert rows == pytest.approx(whole, rel=1e-6)


def test_half_precision_model_keeps_its_weights():
    """A bfloat16 model: the float32 LM head is a copy made for the call; the model is left unchanged."""
    model = tiny_model("OlmoForCausalLM", register(), seed=3).to(torch.bfloat16)
    before = model.get_output_embeddings().weight.clone()
    stats = head_statistics(model, PROBES, 1, CPU, progress=False)
    weight = model.get_output_embeddings().weight
    assert weight.dtype == torch.bfloat16 and torch.equal(weight, before)
    assert all(torch.isfinite(torch.tensor(loss_halves(stats))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("softcap", [None, 5.0])
def test_loss_head_streams_blocks_of_vocabulary_rows_exactly(dtype, softcap):
    """Losses and logits computed block by block of vocabulary rows equal one float32 pass over the whole head.

    A half-precision head is converted one block at a time: the LossHead holds the model's own weight,
    not a float32 copy of it (412 MB for OLMo's head).
    """
    from torch.nn import functional as F

    from circuitsweep.heads.logits import LogitTransform
    from circuitsweep.heads.measure import LossHead

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(53, 16, generator=generator).to(dtype)
    bias = torch.randn(53, generator=generator).to(dtype)
    transform = LogitTransform(scale=0.7, softcap=softcap)
    head = LossHead(weight=weight, bias=bias, rows=5, vocab_rows=7, transform=transform)
    hidden = torch.randn(3, 11, 16, generator=generator)
    tokens = torch.randint(0, 53, (3, 11), generator=generator)
    full = transform(F.linear(hidden.float(), weight.float(), bias.float()))
    assert torch.allclose(head.logits(hidden), full, atol=1e-5)
    expected = F.cross_entropy(full[:, :-1].reshape(-1, 53), tokens[:, 1:].reshape(-1), reduction="none")
    assert torch.allclose(head.token_losses(hidden, tokens), expected.view(3, -1).double().sum(0), atol=1e-4)
    assert head.weight.data_ptr() == weight.data_ptr()


def test_in_place_logsumexp_equals_torch_bit_for_bit():
    """The loss head's log-sum-exp overwrites its chunk of logits instead of allocating a second one, and gives
    torch.logsumexp's values exactly, rows of -inf (a soft-capped or masked vocabulary block) included."""
    from circuitsweep.heads.measure import _logsumexp_

    logits = torch.randn(9, 301, generator=torch.Generator().manual_seed(1)) * 20
    logits[2] = float("-inf")
    logits[5, :7] = float("-inf")
    expected = torch.logsumexp(logits, dim=1)
    scratch = logits.clone()
    assert torch.equal(_logsumexp_(scratch), expected)
