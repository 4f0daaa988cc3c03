"""Observers that reduce each layer's attention to the statistics of docs/methods.md.

Each observer accumulates float64 sums over the sequences of a probe (one
forward pass per batch) and returns means with :meth:`result`. Only the query
rows a statistic needs are ever turned into probabilities.
"""

from __future__ import annotations

import torch

from circuitsweep.config.probes import LOCAL_OFFSETS
from circuitsweep.errors import DataError
from circuitsweep.heads.attention_hook import ScoreRows
from circuitsweep.heads.sequence_stats import BASELINE_COLUMN, VALID_ONLY, VALID_ONLY_COLUMNS, grid_bits
from circuitsweep.io import contracts as C

#: Query rows per probability chunk: bounds the transient ``[B, H, rows, T]``.
ROW_CHUNK = 64


class _Accumulator:
    """Float64 sums of per-layer tensors plus the number of sequences summed."""

    def __init__(self, n_layers: int) -> None:
        self.n_layers = n_layers
        self.sums: dict[str, list[torch.Tensor | None]] = {}
        self.count = 0

    def add(self, name: str, layer: int, value: torch.Tensor) -> None:
        slots = self.sums.setdefault(name, [None] * self.n_layers)
        value = value.detach().double()
        slots[layer] = value if slots[layer] is None else slots[layer] + value

    def means(self, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Mean of each statistic in ``names``; :class:`DataError` if one was not observed in every layer."""
        if self.count == 0:
            raise DataError("no probe sequences were observed")
        out = {}
        for name in names:
            slots = self.sums.get(name, [None] * self.n_layers)
            missing = [i for i, s in enumerate(slots) if s is None]
            if missing:
                raise DataError(
                    f"statistic {name} was never observed in layers {missing}: the model's attention did not "
                    "run through circuitsweep's attention function"
                )
            out[name] = (torch.stack(slots) / self.count).float().cpu()
        return out


class InductionObserver:
    """Last-query attention on the induction probe: targets, baseline and row, kept per sequence.

    Per sequence, the query q = T - 1 (the second A) attends to
    first = 0, induction = p + 1, duplicate = p, previous = q - 1, self = q
    and local = mean(q - 2 .. q - 5); baseline = mean over the sequence's
    baseline positions. These seven numbers per head and sequence are kept
    (:data:`contracts.STAT_PER_SEQUENCE`, float32 on the grid of
    :func:`sequence_stats.grid_bits`) with each sequence's validity; the means
    are computed from them: induction and duplicate over valid sequences only
    (B exactly once before q), every other target and the baseline over all
    sequences (docs/methods.md). The row is averaged over all sequences.
    """

    #: Targets averaged over valid sequences only.
    VALID_ONLY: tuple[str, ...] = VALID_ONLY

    def __init__(self, n_layers: int, baseline_record: torch.Tensor, n_sequences: int) -> None:
        self.acc = _Accumulator(n_layers)
        self.baseline_record = baseline_record
        self.n_sequences = n_sequences
        self.scale = float(2 ** grid_bits(n_sequences))
        self.per_sequence: torch.Tensor | None = None  # [n, L, H, len(TARGETS) + 1], allocated at the first layer
        self.sequence_valid = torch.zeros(n_sequences, dtype=torch.bool)
        self.first_a: torch.Tensor | None = None
        self.valid: torch.Tensor | None = None
        self.baseline: torch.Tensor | None = None
        self.rows = slice(0, 0)
        self.n_valid = 0

    def start_batch(self, first_a: torch.Tensor, valid: torch.Tensor, baseline: torch.Tensor) -> None:
        """Set the batch's first-A positions ``[B]``, validity ``[B]`` and baseline ``[B, K]``."""
        self.first_a, self.valid, self.baseline = first_a, valid, baseline
        self.rows = slice(self.acc.count, self.acc.count + len(first_a))
        if self.rows.stop > self.n_sequences:
            raise DataError(f"the induction probe has {self.n_sequences} sequences; a batch reached {self.rows.stop}")
        self.sequence_valid[self.rows] = valid.cpu().bool()
        self.acc.count += len(first_a)
        self.n_valid += int(valid.sum())

    def observe(self, layer: int, scores: ScoreRows) -> None:
        q = scores.seq_len - 1
        row = scores.probs(torch.tensor([q]))[:, :, 0]  # [B, H, T]
        n_heads = row.shape[1]
        p = self.first_a.to(row.device)[:, None, None].expand(-1, n_heads, 1)
        local = torch.tensor([q - k for k in LOCAL_OFFSETS], device=row.device)
        by_target = {
            "first": row[..., 0],
            "induction": row.gather(-1, p + 1)[..., 0],
            "duplicate": row.gather(-1, p)[..., 0],
            "previous": row[..., q - 1],
            "self": row[..., q],
            "local": row[..., local].mean(-1),
        }
        base = self.baseline.to(row.device)[:, None, :].expand(-1, n_heads, -1)  # [B, H, K]
        values = torch.stack([*(by_target[t] for t in C.TARGETS), row.gather(-1, base).mean(-1)], dim=-1)
        if self.per_sequence is None:
            shape = (self.n_sequences, self.acc.n_layers, n_heads, values.shape[-1])
            self.per_sequence = torch.zeros(shape, dtype=torch.float32)
        # on the grid of sequence_stats.grid_bits: every sum over sequences is then exact in float64
        self.per_sequence[self.rows, layer] = (torch.round(values.cpu().double() * self.scale) / self.scale).float()
        self.acc.add(C.STAT_LAST_ROW_MEAN, layer, row.sum(0))

    def result(self) -> dict[str, torch.Tensor]:
        if self.n_valid == 0:
            raise DataError("no valid induction-probe sequences were observed")
        out = self.acc.means((C.STAT_LAST_ROW_MEAN,))
        n = self.acc.count
        per_sequence, valid = self.per_sequence[:n], self.sequence_valid[:n]
        pair = list(VALID_ONLY_COLUMNS)
        means = torch.empty(per_sequence.shape[1:], dtype=torch.float64)
        for layer in range(per_sequence.shape[1]):  # one layer in float64 at a time; the sums are exact (the grid)
            rows = per_sequence[:, layer].double()  # [n, H, 7]
            means[layer] = rows.sum(0) / n
            means[layer][..., pair] = rows[valid][..., pair].sum(0) / self.n_valid
        means = means.float()
        out[C.STAT_TARGET_MEAN] = means[..., :BASELINE_COLUMN].contiguous()
        out[C.STAT_BASELINE_MEAN] = means[..., BASELINE_COLUMN].contiguous()
        out[C.STAT_PER_SEQUENCE] = per_sequence  # handed over, not copied: the observer is done
        out[C.STAT_SEQUENCE_VALID] = valid
        out[C.STAT_BASELINE_POSITIONS] = self.baseline_record.clone()
        out[C.STAT_VALID_SEQUENCES] = torch.tensor([self.n_valid, n], dtype=torch.int64)
        return out


class RepeatedObserver:
    """Prefix-matching, previous- and duplicate-token attention on ``[R, R]``.

    Queries i in T/2 + 1 .. T - 1 (their token repeats the one at i - T/2):
    prefix matching = attention to i - T/2 + 1, the token after the earlier
    occurrence; duplicate = to i - T/2; previous = to i - 1 (Olsson et al.).
    """

    def __init__(self, n_layers: int) -> None:
        self.acc = _Accumulator(n_layers)

    def start_batch(self, batch_size: int) -> None:
        self.acc.count += batch_size

    def observe(self, layer: int, scores: ScoreRows) -> None:
        half = scores.seq_len // 2
        queries = torch.arange(half + 1, scores.seq_len)
        sums = {C.STAT_PREFIX_MATCHING: 0.0, C.STAT_DUPLICATE_TOKEN: 0.0, C.STAT_PREVIOUS_TOKEN: 0.0}
        for chunk in queries.split(ROW_CHUNK):
            probs = scores.probs(chunk)  # [B, H, c, T]
            rows = chunk.to(probs.device)[None, None, :, None].expand(*probs.shape[:3], 1)
            sums[C.STAT_PREFIX_MATCHING] += probs.gather(-1, rows - half + 1)[..., 0].sum(-1)
            sums[C.STAT_DUPLICATE_TOKEN] += probs.gather(-1, rows - half)[..., 0].sum(-1)
            sums[C.STAT_PREVIOUS_TOKEN] += probs.gather(-1, rows - 1)[..., 0].sum(-1)
        for name, total in sums.items():
            self.acc.add(name, layer, total.sum(0) / len(queries))

    def result(self) -> dict[str, torch.Tensor]:
        return self.acc.means((C.STAT_PREFIX_MATCHING, C.STAT_DUPLICATE_TOKEN, C.STAT_PREVIOUS_TOKEN))


class SinkObserver:
    """Attention to position 0 from every query of the random batch (Gu et al.)."""

    def __init__(self, n_layers: int) -> None:
        self.acc = _Accumulator(n_layers)

    def start_batch(self, batch_size: int) -> None:
        self.acc.count += batch_size

    def observe(self, layer: int, scores: ScoreRows) -> None:
        parts = [scores.probs(chunk)[..., 0] for chunk in torch.arange(scores.seq_len).split(ROW_CHUNK)]
        self.acc.add(C.STAT_FIRST_ATTENTION, layer, torch.cat(parts, dim=-1).sum(0))  # [H, T]

    def result(self) -> dict[str, torch.Tensor]:
        return self.acc.means((C.STAT_FIRST_ATTENTION,))


class PerSequenceObserver:
    """One query per sequence attending to per-sequence targets and baseline sets (the natural-text probe).

    Per batch (:meth:`start_batch`): ``query`` ``[B]``, the query position of each
    sequence; ``targets`` ``[B, n_targets, P]``, key positions whose mean
    attention is each target's (repeat a position to fill P); ``baseline``
    ``[B, n_baseline]``, the sequence's baseline key positions. Sums per head
    over sequences of the target means ``[L, H, n_targets]`` and of the baseline
    mean ``[L, H]`` are stored under ``target_name`` and ``baseline_name``.
    """

    def __init__(self, n_layers: int, target_name: str, baseline_name: str) -> None:
        self.acc = _Accumulator(n_layers)
        self.names = (target_name, baseline_name)
        self.batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def start_batch(self, query: torch.Tensor, targets: torch.Tensor, baseline: torch.Tensor) -> None:
        self.batch = (query, targets, baseline)
        self.acc.count += len(query)

    def observe(self, layer: int, scores: ScoreRows) -> None:
        query, targets, baseline = self.batch
        row = scores.probs_per_sequence(query)  # [B, H, T]
        heads = row.shape[1]

        def mean_at(positions: torch.Tensor) -> torch.Tensor:  # [B, K] -> [B, H]
            index = positions.to(row.device)[:, None, :].expand(-1, heads, -1)
            return row.gather(-1, index).mean(-1)

        flat = targets.flatten(1)  # [B, n_targets * P]
        by_target = row.gather(-1, flat.to(row.device)[:, None, :].expand(-1, heads, -1))
        by_target = by_target.view(*by_target.shape[:2], *targets.shape[1:]).mean(-1)  # [B, H, n_targets]
        self.acc.add(self.names[0], layer, by_target.sum(0))
        self.acc.add(self.names[1], layer, mean_at(baseline).sum(0))

    def result(self) -> dict[str, torch.Tensor]:
        return self.acc.means(self.names)
