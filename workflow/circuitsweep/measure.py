"""Run the three probes through a model and collect the head statistics.

One forward pass per probe batch through the base model (no LM head) with the
observed attention; the LM head runs only on the repeated batch, in chunks,
for the in-context loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from circuitsweep import contracts as C
from circuitsweep.attention_hook import observing
from circuitsweep.probes import baseline_positions, induction_probe, random_batch, repeated_batch
from circuitsweep.reducers import InductionObserver, RepeatedObserver, SinkObserver

#: Positions per chunk of the LM head: bounds the transient ``[chunk, vocab]`` logits.
LOGIT_CHUNK = 2048


@dataclass(frozen=True)
class BatchSettings:
    n_sequences: int
    seq_len: int
    seed: int


@dataclass(frozen=True)
class InductionSettings(BatchSettings):
    min_first_position: int
    n_baseline: int
    baseline_seed: int


@dataclass(frozen=True)
class ProbeSettings:
    """The probes of one run (DESIGN.md 3), from the resolved ``probes`` config."""

    kind: str
    token_range: tuple[int, int]
    batch_size: int
    induction: InductionSettings
    repeated: BatchSettings
    random: BatchSettings

    @classmethod
    def from_dict(cls, probes: dict[str, Any]) -> ProbeSettings:
        return cls(
            kind=probes["kind"],
            token_range=tuple(probes["token_range"]),
            batch_size=probes["batch_size"],
            induction=InductionSettings(**probes["induction"]),
            repeated=BatchSettings(**probes["repeated"]),
            random=BatchSettings(**probes["random"]),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["token_range"] = list(self.token_range)
        return out


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def _token_losses(model: PreTrainedModel, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy (nats) summed over the batch, ``[T - 1]``.

    hidden: ``[B, T, d]`` final hidden states; tokens: ``[B, T]``.
    """
    head = model.get_output_embeddings()
    weight = head.weight.float()
    bias = None if getattr(head, "bias", None) is None else head.bias.float()
    flat_hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    flat_targets = tokens[:, 1:].reshape(-1)
    losses = torch.cat(
        [
            F.cross_entropy(F.linear(h.float(), weight, bias), t, reduction="none")
            for h, t in zip(flat_hidden.split(LOGIT_CHUNK), flat_targets.split(LOGIT_CHUNK), strict=True)
        ]
    )
    return losses.view(tokens.shape[0], -1).double().sum(0)


@torch.inference_mode()
def measure_heads(
    model: PreTrainedModel,
    probes: ProbeSettings,
    first_token: int | None,
    device: torch.device,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """All reduced head statistics of one model (names in :mod:`contracts`).

    ``model`` must have been loaded with the observed attention implementation.
    """
    n_layers = model.config.num_hidden_layers
    base = model.base_model
    size = probes.batch_size
    ind, rep, rnd = probes.induction, probes.repeated, probes.random
    total = sum(len(_batches(b.n_sequences, size)) for b in (ind, rep, rnd))
    bar = tqdm(total=total, desc="probe batches", disable=not progress, mininterval=2.0)
    stats: dict[str, torch.Tensor] = {}

    probe = induction_probe(
        ind.n_sequences, ind.seq_len, probes.token_range, ind.seed, ind.min_first_position, first_token
    )
    induction = InductionObserver(n_layers, baseline_positions(ind.seq_len, ind.n_baseline, ind.baseline_seed))
    with observing(induction):
        for part in _batches(ind.n_sequences, size):
            induction.start_batch(probe.first_a[part])
            base(input_ids=probe.tokens[part].to(device), use_cache=False)
            bar.update()
    stats.update(induction.result())

    tokens = repeated_batch(rep.n_sequences, rep.seq_len, probes.token_range, rep.seed, first_token)
    repeated = RepeatedObserver(n_layers)
    loss_sum = torch.zeros(rep.seq_len - 1, dtype=torch.float64)
    with observing(repeated):
        for part in _batches(rep.n_sequences, size):
            batch = tokens[part].to(device)
            repeated.start_batch(len(batch))
            hidden = base(input_ids=batch, use_cache=False).last_hidden_state
            loss_sum += _token_losses(model, hidden, batch).cpu()
            bar.update()
    stats.update(repeated.result())
    stats[C.STAT_LOSS_PER_POSITION] = (loss_sum / rep.n_sequences).float()

    tokens = random_batch(rnd.n_sequences, rnd.seq_len, probes.token_range, rnd.seed, first_token)
    sink = SinkObserver(n_layers)
    with observing(sink):
        for part in _batches(rnd.n_sequences, size):
            sink.start_batch(part.stop - part.start)
            base(input_ids=tokens[part].to(device), use_cache=False)
            bar.update()
    stats.update(sink.result())
    bar.close()
    return stats
