"""Per-head scores from the reduced statistics (docs/methods.md), without the model.

Everything here is a pure function of the cached tensors, so scores can be
recomputed, and heads reclassified, from the cache alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import polars as pl
import torch

from circuitsweep.errors import DataError
from circuitsweep.heads.sequence_stats import BASELINE_FLOOR  # the floor of the selectivity baseline (1e-8)
from circuitsweep.io import contracts as C


def selectivity(stats: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Selectivity of every head for every target, ``[L, H, len(TARGETS)]``.

    Mean attention to the target over sequences divided by the mean attention
    to the baseline positions over sequences and positions.
    """
    baseline = stats[C.STAT_BASELINE_MEAN].clamp_min(BASELINE_FLOOR)
    return stats[C.STAT_TARGET_MEAN] / baseline[..., None]


def sink_alpha(stats: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean attention to position 0 over every query 0 .. T-1 of the random batch, ``[L, H]``.

    Gu et al.'s alpha (docs/methods.md): query 0 is averaged in too (in a decoder it attends only to
    itself, so it adds 1/T to every head's alpha).
    """
    return stats[C.STAT_FIRST_ATTENTION].mean(-1)


def loss_halves(stats: Mapping[str, torch.Tensor]) -> tuple[float, float] | None:
    """Mean loss on the first and the second half of the repeated batch (nats).

    Targets 1 .. T/2 - 1 form the first half and T/2 + 1 .. T - 1 the second;
    target T/2 (the first repeated token, after a possibly replaced position 0)
    is in neither. None when the statistics hold no loss: a model without an
    LM head (an encoder) has none.
    """
    if C.STAT_LOSS_PER_POSITION not in stats:
        return None
    per_position = stats[C.STAT_LOSS_PER_POSITION].double()  # index i predicts token i + 1
    half = (len(per_position) + 1) // 2
    return float(per_position[: half - 1].mean()), float(per_position[half:].mean())


def in_context_loss_drop(stats: Mapping[str, torch.Tensor]) -> float | None:
    """Second-half minus first-half loss: negative when the context is used; None without a loss."""
    halves = loss_halves(stats)
    if halves is None:
        return None
    first, second = halves
    return second - first


#: The statistics every head score needs (the loss is optional: encoders have none).
SCORED_STATS: tuple[str, ...] = (
    C.STAT_TARGET_MEAN,
    C.STAT_BASELINE_MEAN,
    C.STAT_FIRST_ATTENTION,
    C.STAT_PREFIX_MATCHING,
    C.STAT_PREVIOUS_TOKEN,
    C.STAT_DUPLICATE_TOKEN,
)


def head_scores(stats: Mapping[str, torch.Tensor]) -> pl.DataFrame:
    """One row per head: layer, head and every column of ``HEAD_SCORE_COLUMNS``.

    Raises :class:`DataError` naming any statistic the scores need that ``stats`` lacks.
    """
    missing = [name for name in SCORED_STATS if name not in stats]
    if missing:
        raise DataError(f"statistics {missing} were never observed; the head scores cannot be computed")
    sel = selectivity(stats)
    n_layers, n_heads, _ = sel.shape
    columns: dict[str, torch.Tensor] = {f"sel_{t}": sel[..., i] for i, t in enumerate(C.TARGETS)}
    columns["baseline_attention"] = stats[C.STAT_BASELINE_MEAN]
    columns["sink_alpha"] = sink_alpha(stats)
    columns["prefix_matching"] = stats[C.STAT_PREFIX_MATCHING]
    columns["previous_token"] = stats[C.STAT_PREVIOUS_TOKEN]
    columns["duplicate_token"] = stats[C.STAT_DUPLICATE_TOKEN]
    if C.STAT_SPECTRAL_PR in stats:
        columns["pr"] = stats[C.STAT_SPECTRAL_PR]
    layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    frame = {"layer": layer.ravel().astype(np.int32), "head": head.ravel().astype(np.int32)}
    frame.update({name: columns[name].double().numpy().ravel() for name in C.HEAD_SCORE_COLUMNS if name in columns})
    scores = pl.DataFrame(frame)
    if "pr" not in columns:  # a model whose output projection is not found: an empty column, never a guess
        scores = scores.with_columns(pl.lit(None, pl.Float64).alias("pr"))
    return scores


def check_finite(stats: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse NaN or infinite statistics, naming the tensor and the first bad index.

    An absent loss (a model without an LM head) is not an error.
    """
    for name, tensor in stats.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = torch.nonzero(~torch.isfinite(tensor))[0].tolist()
            value = tensor[tuple(bad)].item()
            raise DataError(
                f"{where}: statistic {name} is {value} at index {bad}; refusing to score non-finite attention"
            )
    for value, name in zip(loss_halves(stats) or (), ("first", "second"), strict=False):
        if not math.isfinite(value):
            raise DataError(f"{where}: the {name}-half loss is {value}")
