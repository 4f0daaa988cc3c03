"""Run the three probes through a model and collect the head statistics.

One forward pass per probe batch through the base model (no LM head) with the
observed attention. Passes whose only product is attention statistics (the
induction probe, the random batch, and the repeated batch of a model without
an LM head) stop right after the last layer's attention has been observed:
the last layer's attention output and MLP and the final norm are not needed.
The LM head runs only on the repeated batch, in blocks of vocabulary rows
converted to float32 when used (:data:`WEIGHT_BLOCK_BYTES`) and chunks of
about :data:`LOGIT_CHUNK_BYTES` of float32 logits, for the in-context loss; a model
without an LM head (an encoder such as ``BertModel``) has no loss statistic.
Every decoder MLP runs over chunks of tokens (:mod:`mlp_chunks`), so neither
the logits nor an MLP's intermediates set the peak memory of a batch.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers import PreTrainedModel

from circuitsweep.config.probes import ProbeSettings
from circuitsweep.errors import DataError
from circuitsweep.heads.attention_hook import observing, run_until_stop
from circuitsweep.heads.logits import LogitTransform
from circuitsweep.heads.mlp_chunks import chunked_mlps
from circuitsweep.heads.observers import InductionObserver, RepeatedObserver, SinkObserver
from circuitsweep.heads.participation import SpectralCapture
from circuitsweep.heads.probes import random_batch, repeated_batch, run_induction_probe
from circuitsweep.heads.verify import verify_model
from circuitsweep.io import contracts as C
from circuitsweep.io.progress import LineProgress
from circuitsweep.plan import sizing

log = logging.getLogger(__name__)

#: Bytes of float32 logits per chunk of the LM head: bounds the transient ``[rows, vocab]``
#: logits (and their log-softmax) whatever the vocabulary size. Not smaller: glibc keeps freed
#: blocks under its 32 MiB mmap threshold in the heap, and 32 MiB chunks measured twice the
#: resident peak of 64 MiB ones (pythia-70m shape, benchmarks/heads_speed.py).
LOGIT_CHUNK_BYTES = 64 << 20


def logit_chunk_rows(vocab_size: int) -> int:
    """Positions per chunk of the LM head: :data:`LOGIT_CHUNK_BYTES` of float32 logits, at least one."""
    return max(1, LOGIT_CHUNK_BYTES // (4 * vocab_size))


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


#: Bytes of float32 LM-head weight converted at a time: a half-precision head (OLMo's 50304 x 2048)
#: is never copied to float32 whole (412 MB), only one block of vocabulary rows at a time.
WEIGHT_BLOCK_BYTES = sizing.LM_HEAD_BLOCK_BYTES


def _logsumexp_(logits: torch.Tensor) -> torch.Tensor:
    """``torch.logsumexp(logits, dim=1)`` of ``[rows, V]`` logits, computed in their place (they are overwritten).

    The same steps as torch's (subtract the finite row maximum, exp, sum,
    log, add the maximum back), so the same values, without its
    ``[rows, V]`` temporary: the LM head's chunk of logits is the only one.
    """
    maxes = logits.amax(1, keepdim=True)
    maxes.masked_fill_(maxes.abs() == float("inf"), 0)
    return logits.sub_(maxes).exp_().sum(1).log_().add_(maxes[:, 0])


@dataclass(frozen=True)
class LossHead:
    """The LM head, its final logit transform and its chunk sizes: float32 logits and losses.

    ``weight`` ``[vocab, d]`` and ``bias`` are the model's own tensors, in its
    dtype; each block of ``vocab_rows`` rows is converted to float32 when used,
    so the head costs at most :data:`WEIGHT_BLOCK_BYTES` beside the model.
    """

    weight: torch.Tensor
    bias: torch.Tensor | None
    rows: int
    vocab_rows: int
    transform: LogitTransform = LogitTransform()

    @classmethod
    def of(cls, model: PreTrainedModel) -> LossHead | None:
        """The model's LM head, or None for a model without one (an encoder's base model)."""
        head = model.get_output_embeddings()
        if head is None:
            return None
        vocab, width = head.weight.shape
        return cls(
            weight=head.weight.detach(),
            bias=None if getattr(head, "bias", None) is None else head.bias.detach(),
            rows=logit_chunk_rows(vocab),
            vocab_rows=max(1, WEIGHT_BLOCK_BYTES // (4 * width)),
            transform=LogitTransform.of(model.config.get_text_config()),
        )

    def _blocks(self) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor | None]]:
        """Each block of vocabulary rows with its float32 weight ``[rows, d]`` and bias."""
        vocab = self.weight.shape[0]
        for start in range(0, vocab, self.vocab_rows):
            block = slice(start, min(start + self.vocab_rows, vocab))
            bias = None if self.bias is None else self.bias[block].float()
            yield block, self.weight[block].float(), bias

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Float32 logits ``[..., vocab]`` of final hidden states ``[..., d]``, transformed as the model does."""
        hidden = hidden.float()
        out = hidden.new_empty((*hidden.shape[:-1], self.weight.shape[0]))
        for block, weight, bias in self._blocks():
            out[..., block] = self.transform(F.linear(hidden, weight, bias))
        return out

    def token_losses(self, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy (nats) summed over the batch, ``[T - 1]``.

        hidden: ``[B, T, d]`` final hidden states; tokens: ``[B, T]``. The
        log-sum-exp over the vocabulary runs block by block (float32), so
        neither the whole logits nor a float32 copy of the head is held.
        """
        flat_hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1]).float()
        targets = tokens[:, 1:].reshape(-1)
        n = flat_hidden.shape[0]
        log_norm = flat_hidden.new_full((n,), float("-inf"))
        target_logit = flat_hidden.new_zeros(n)
        positions = max(1, LOGIT_CHUNK_BYTES // (4 * self.vocab_rows))
        for block, weight, bias in self._blocks():
            for chunk in _batches(n, positions):
                logits = self.transform(F.linear(flat_hidden[chunk], weight, bias))
                local = targets[chunk] - block.start
                inside = (local >= 0) & (local < logits.shape[1])
                rows = inside.nonzero().squeeze(1)
                target_logit[chunk.start + rows] = logits[rows, local[rows]]
                log_norm[chunk] = torch.logaddexp(log_norm[chunk], _logsumexp_(logits))
                del logits  # freed before the next chunk's logits are computed, not after
        losses = log_norm - target_logit
        return losses.view(tokens.shape[0], -1).double().sum(0)


def head_statistics(
    model: PreTrainedModel,
    probes: ProbeSettings,
    first_token: int | None,
    device: torch.device,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """All reduced head statistics of one model (names in :mod:`contracts`).

    ``model`` must have been loaded with the observed attention implementation;
    a short verification pass (:func:`verify.verify_model`) first checks that
    every layer's attention is observed and the loss reproduces the model's logits.
    Without an LM head (``model.get_output_embeddings()`` is None) the result
    has no :data:`contracts.STAT_LOSS_PER_POSITION`.
    """
    with torch.inference_mode():
        verify_model(model, LossHead.of(model), probes.token_range, device)
        with chunked_mlps(model):
            return _measure(model, probes, first_token, device, progress)


def _spectral_capture(model: PreTrainedModel, query: int, n: int) -> SpectralCapture | None:
    """The participation-ratio capture of the induction passes; None (logged) where no output projection is found."""
    try:
        return SpectralCapture.of(model, query, n)
    except DataError as error:
        log.warning("no participation ratio (the pr column stays empty): %s", error)
        return None


def _measure(
    model: PreTrainedModel, probes: ProbeSettings, first_token: int | None, device: torch.device, progress: bool
) -> dict[str, torch.Tensor]:
    n_layers = model.config.get_text_config().num_hidden_layers
    last_layer = n_layers - 1
    base = model.base_model
    size = probes.batch_size
    ind, rep, rnd = probes.induction, probes.repeated, probes.random
    total = sum(len(_batches(b.n_sequences, size)) for b in (ind, rep, rnd))
    bar = LineProgress(total, "probe batches", unit="batches", interval=10.0, enabled=progress).start()
    stats: dict[str, torch.Tensor] = {}

    def attention_only(batch: torch.Tensor) -> None:
        run_until_stop(lambda: base(input_ids=batch, use_cache=False))

    probe = run_induction_probe(probes, first_token)
    induction = InductionObserver(n_layers, probe.baseline_record, ind.n_sequences)
    spectral = _spectral_capture(model, probe.last, probes.spectral_sequences)
    for part in _batches(ind.n_sequences, size):
        induction.start_batch(probe.first_a[part], probe.valid[part], probe.baseline_rows(part))
        # a batch holding spectral sequences runs up to the last layer's output projection
        capture = spectral.capturing(part, stop_at_last=True) if spectral else contextlib.nullcontext(0)
        with capture as kept, observing(induction, stop_after=None if kept else last_layer):
            attention_only(probe.tokens[part].to(device))
        bar.update()
    stats.update(induction.result())
    if spectral is not None:
        stats[C.STAT_SPECTRAL_PR] = spectral.result()

    tokens = repeated_batch(rep.n_sequences, rep.seq_len, probes.token_range, rep.seed, first_token)
    repeated = RepeatedObserver(n_layers)
    head = LossHead.of(model)
    has_loss = head is not None
    loss_sum = torch.zeros(rep.seq_len - 1, dtype=torch.float64)
    with observing(repeated, stop_after=None if has_loss else last_layer):
        for part in _batches(rep.n_sequences, size):
            batch = tokens[part].to(device)
            repeated.start_batch(len(batch))
            if not has_loss:
                attention_only(batch)
            else:
                hidden = base(input_ids=batch, use_cache=False).last_hidden_state
                loss_sum += head.token_losses(hidden, batch).cpu()
                del hidden
            bar.update()
    stats.update(repeated.result())
    if has_loss:
        stats[C.STAT_LOSS_PER_POSITION] = (loss_sum / rep.n_sequences).float()

    tokens = random_batch(rnd.n_sequences, rnd.seq_len, probes.token_range, rnd.seed, first_token)
    sink = SinkObserver(n_layers)
    with observing(sink, stop_after=last_layer):
        for part in _batches(rnd.n_sequences, size):
            sink.start_batch(part.stop - part.start)
            attention_only(tokens[part].to(device))
            bar.update()
    stats.update(sink.result())
    bar.close()
    return stats
