"""Causal ablation of the induction circuit (docs/methods.md), on an already loaded model.

A head is ablated by zeroing its slice of the input to its layer's attention
output projection (a forward pre-hook), so its output never reaches the
residual stream. At each probe's query position (the last position of the
synthetic probe, each example's k on natural text) the model is scored on B,
the token that induction predicts: loss, top-1 and top-5 accuracy and the
mean logit. Conditions: none; the circuit (the all-head screen: induction
selectivity >= ``induction_circuit``, whatever the class, from this revision's scores: :func:`circuit_cut`); matched
random heads (same layers, same count per layer, from the non-circuit heads,
``random_draws`` draws from one ``RandomState(random_seed)``); and each
circuit head alone when the circuit has at most ``max_single_heads`` heads.
An empty circuit is recorded as such (a ``circuit`` row with no metrics), as
is a draw left empty because the circuit fills its layers (no control).
Every scored row also keeps its per-sequence outcomes
(``ABLATION_SEQUENCE_COLUMNS``), from the same pass, for the paired tests of
the tables (:mod:`heads.ablation_stats`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn
from torch.nn import functional as F

from circuitsweep.config.probes import AblationSettings
from circuitsweep.errors import DataError
from circuitsweep.heads.ablation_stats import SEQUENCE_SCHEMA
from circuitsweep.heads.classify import Thresholds, induction_member
from circuitsweep.heads.logits import LogitTransform
from circuitsweep.heads.matched import Head, by_layer, draw_note, heads_label, matched_draws
from circuitsweep.io import contracts as C

#: Names of the attention output projection across decoder classes (GPT-NeoX ``dense``;
#: Llama, OLMo, OLMoE, Qwen, Gemma ``o_proj``; GPT-2 ``c_proj``; others ``out_proj``/``wo``).
OUTPUT_PROJECTION_NAMES: tuple[str, ...] = ("o_proj", "dense", "out_proj", "c_proj", "wo")


def output_projections(model: nn.Module) -> dict[int, nn.Module]:
    """Each layer's attention output projection, by layer index.

    Found generically: an attention module (a module with an integer
    ``layer_idx`` whose class name contains "Attention") with a child named in
    :data:`OUTPUT_PROJECTION_NAMES`. Every layer must have exactly one.
    """
    found: dict[int, nn.Module] = {}
    for module in model.modules():
        layer = getattr(module, "layer_idx", None)
        if not isinstance(layer, int) or "Attention" not in type(module).__name__:
            continue
        children = dict(module.named_children())
        names = [name for name in OUTPUT_PROJECTION_NAMES if name in children]
        if len(names) != 1 or layer in found:
            raise DataError(
                f"{type(module).__name__} of layer {layer}: cannot tell its output projection "
                f"(children {sorted(children)}); ablation supports {', '.join(OUTPUT_PROJECTION_NAMES)}"
            )
        found[layer] = children[names[0]]
    n_layers = model.config.num_hidden_layers
    if sorted(found) != list(range(n_layers)):
        raise DataError(
            f"{type(model).__name__}: attention output projections found for layers {sorted(found)}, "
            f"expected 0..{n_layers - 1}; ablation cannot place its hooks"
        )
    return found


def _zero_heads_hook(heads: Sequence[int], n_heads: int):  # noqa: ANN202 - a torch hook
    def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        if x.shape[-1] % n_heads:
            raise DataError(f"output projection input width {x.shape[-1]} is not a multiple of {n_heads} heads")
        x = x.clone()
        x.view(*x.shape[:-1], n_heads, x.shape[-1] // n_heads)[..., list(heads), :] = 0
        return (x, *args[1:])

    return hook


@contextlib.contextmanager
def ablated(model: nn.Module, heads: Sequence[Head]) -> Iterator[None]:
    """Zero the given (layer, head) outputs inside the block."""
    projections = output_projections(model)
    n_heads = model.config.num_attention_heads
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    handles = [
        projections[layer].register_forward_pre_hook(_zero_heads_hook(sorted(hs), n_heads))
        for layer, hs in sorted(by_layer.items())
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class AblationProbe:
    """What one probe is scored on: tokens ``[N, T]``, query positions and target tokens (B) ``[N]``."""

    name: str
    tokens: torch.Tensor
    query: torch.Tensor
    target: torch.Tensor


def score_sequences(
    model: nn.Module, probe: AblationProbe, batch_size: int, device: torch.device, condition: str = "none"
) -> dict[str, np.ndarray]:
    """Per sequence ``[N]``: loss of its target token (nats, float64), whether it is the top-1 and in the top-5
    prediction (bool), and its logit (float64).

    The logits are the model's own (its config's scale and softcap, :class:`LogitTransform`), and must be
    finite: a NaN would make every paired test on the outcomes meaningless, so it stops the job in one line
    naming the probe, the ``condition`` (what is ablated) and the sequence.
    """
    head = model.get_output_embeddings()
    if head is None:
        raise DataError(f"{type(model).__name__} has no LM head; the ablation scores next-token predictions")
    base = model.base_model
    transform = LogitTransform.of(model.config.get_text_config())
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("loss", "top1", "top5", "logit")}
    with torch.inference_mode():
        for start in range(0, len(probe.tokens), batch_size):
            part = slice(start, start + batch_size)
            hidden = base(input_ids=probe.tokens[part].to(device), use_cache=False).last_hidden_state
            query = probe.query[part].to(device)
            at = hidden.gather(1, query[:, None, None].expand(-1, 1, hidden.shape[-1]))[:, 0]
            logits = transform(
                F.linear(at.float(), head.weight.float(), None if head.bias is None else head.bias.float())
            )
            finite = torch.isfinite(logits).all(-1)
            if not bool(finite.all()):
                bad = start + int((~finite).nonzero()[0, 0])
                raise DataError(
                    f"{probe.name} probe, {condition} ablated: the logits of sequence {bad} are not finite "
                    "(NaN or inf); no outcome can be scored"
                )
            target = probe.target[part].to(device)
            top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
            parts["loss"].append(F.cross_entropy(logits, target, reduction="none").double().cpu().numpy())
            parts["top1"].append((top[:, 0] == target).cpu().numpy())
            parts["top5"].append((top == target[:, None]).any(-1).cpu().numpy())
            parts["logit"].append(logits.gather(1, target[:, None])[:, 0].double().cpu().numpy())
    empty = {"loss": np.float64, "top1": bool, "top5": bool, "logit": np.float64}
    return {
        name: np.concatenate(values) if values else np.zeros(0, dtype=empty[name]) for name, values in parts.items()
    }


def mean_scores(sequences: dict[str, np.ndarray]) -> dict[str, float]:
    """Loss, top-1, top-5 and mean logit averaged over the sequences of :func:`score_sequences`."""
    names = {"loss": "loss", "top1": "top1", "top5": "top5", "mean_logit": "logit"}
    return {name: float(np.mean(sequences[key], dtype=np.float64)) for name, key in names.items()}


def sequence_columns(sequences: dict[str, np.ndarray] | None) -> dict[str, list | None]:
    """The per-sequence outcomes as the rows files keep them (``ABLATION_SEQUENCE_COLUMNS``; None: not scored)."""
    if sequences is None:
        return dict.fromkeys(C.ABLATION_SEQUENCE_COLUMNS)
    return {
        "seq_loss": sequences["loss"].astype(np.float64).tolist(),
        "seq_top1": sequences["top1"].astype(bool).tolist(),
        "seq_top5": sequences["top5"].astype(bool).tolist(),
    }


def score_targets(model: nn.Module, probe: AblationProbe, batch_size: int, device: torch.device) -> dict[str, float]:
    """Loss (nats), top-1, top-5 accuracy and mean logit of each query's target token, averaged over sequences."""
    return mean_scores(score_sequences(model, probe, batch_size, device))


def circuit_cut(thresholds: Thresholds) -> float:
    """The one number the ablated circuit depends on: the screen's induction selectivity cut (``induction_circuit``).

    A measurement job gets this number alone, so changing a threshold that does not move it reruns no model.
    """
    return thresholds.induction_circuit


def circuit_heads(scores: pl.DataFrame, cut: float) -> list[Head]:
    """The revision's induction circuit (layer, head), sorted: the all-head screen, ``sel_induction >= cut``.

    Whatever the head's best class (docs/methods.md): in sink-dominated models the
    induction heads' best class is first. NaN selectivity is an error.
    """
    nan = scores.filter(pl.col("sel_induction").is_nan() | pl.col("sel_induction").is_null())
    if nan.height:
        first = nan.row(0, named=True)
        raise DataError(f"{nan.height} heads have NaN induction selectivity (first: L{first['layer']}H{first['head']})")
    members = scores.filter(induction_member(cut)).sort("layer", "head")
    return list(zip(members["layer"].to_list(), members["head"].to_list(), strict=True))


def ablation_rows(
    model: nn.Module,
    scores: pl.DataFrame,
    cut: float,
    settings: AblationSettings,
    probes: Sequence[AblationProbe],
    device: torch.device,
) -> list[dict[str, Any]]:
    """Every condition on every probe: rows with the columns of ``ABLATION_ROW_COLUMNS`` but the identity.

    ``scores``: this revision's per-head scores; ``cut``: :func:`circuit_cut` of the run's thresholds.
    """
    circuit = circuit_heads(scores, cut)
    conditions: list[tuple[str, int | None, list[Head], str | None]] = [("none", None, [], None)]
    if not circuit:
        note = f"empty circuit: no head has induction selectivity >= {cut}"
        conditions.append(("circuit", None, [], note))
    else:
        conditions.append(("circuit", None, circuit, None))
        n_heads = model.config.num_attention_heads
        groups = by_layer(circuit)
        for draw, heads in enumerate(matched_draws(groups, n_heads, settings.random_draws, settings.random_seed)):
            conditions.append(("matched_random", draw, heads, draw_note(groups, n_heads, heads)))
        if len(circuit) <= settings.max_single_heads:
            conditions += [("single_head", None, [head], None) for head in circuit]
    rows = []
    for probe in probes:
        if settings.n_sequences is not None:
            keep = slice(0, settings.n_sequences)
            probe = AblationProbe(probe.name, probe.tokens[keep], probe.query[keep], probe.target[keep])
        for condition, draw, heads, note in conditions:
            empty = condition in ("circuit", "matched_random") and not heads
            metrics, sequences = dict.fromkeys(("loss", "top1", "top5", "mean_logit")), None
            if not empty:
                with ablated(model, heads):
                    sequences = score_sequences(
                        model, probe, settings.batch_size, device, f"{condition} {heads_label(heads)}".rstrip()
                    )
                metrics = mean_scores(sequences)
            rows.append(
                {
                    "probe": probe.name,
                    "condition": condition,
                    "draw": draw,
                    "heads": heads_label(heads),
                    "n_ablated": len(heads),
                    "circuit_size": len(circuit),
                    "n_sequences": len(probe.tokens),
                    **metrics,
                    "note": note,
                    **sequence_columns(sequences),
                }
            )
    return rows


def ablation_frame(rows: Sequence[dict[str, Any]], identity: dict[str, Any]) -> pl.DataFrame:
    """Rows of one revision with its identity (model, revision, step, tokens), in ``ABLATION_ROW_COLUMNS`` order."""
    schema = {
        "model": pl.String,
        "revision": pl.String,
        "step": pl.Int64,
        "tokens": pl.Int64,
        "probe": pl.String,
        "condition": pl.String,
        "draw": pl.Int64,
        "heads": pl.String,
        "n_ablated": pl.Int64,
        "circuit_size": pl.Int64,
        "n_sequences": pl.Int64,
        "loss": pl.Float64,
        "top1": pl.Float64,
        "top5": pl.Float64,
        "mean_logit": pl.Float64,
        "note": pl.String,
        **SEQUENCE_SCHEMA,
    }
    return pl.DataFrame([{**identity, **row} for row in rows], schema=schema).select(C.ABLATION_ROW_COLUMNS)


def synthetic_probe(probes: Any, first_token: int | None) -> AblationProbe:
    """The run's synthetic induction probe, scored at its last position (the second A) on B = ``tokens[p + 1]``.

    probes: the run's ``ProbeSettings``.
    """
    from circuitsweep.heads.probes import run_induction_probe

    probe = run_induction_probe(probes, first_token)
    query = torch.full((len(probe.tokens),), probe.last, dtype=torch.int64)
    target = probe.tokens.gather(1, (probe.first_a + 1)[:, None])[:, 0]
    return AblationProbe("synthetic", probe.tokens, query, target)
