"""Emergence curves per revision and milestones per model (docs/methods.md)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import polars as pl

from circuitsweep.config.thresholds import MilestoneThresholds
from circuitsweep.errors import DataError
from circuitsweep.io import contracts as C


def _per_layer(heads: pl.DataFrame, flag: pl.Expr, n_layers: int) -> list[int]:
    counts = heads.filter(flag).group_by("layer").len()
    by_layer = dict(zip(counts["layer"].to_list(), counts["len"].to_list(), strict=True))
    return [int(by_layer.get(layer, 0)) for layer in range(n_layers)]


def _members(heads: pl.DataFrame) -> set[tuple[int, int]]:
    """(layer, head) of the induction members among ``heads`` (the screen: selectivity >= circuit cut, any class)."""
    members = heads.filter(pl.col("induction_member"))
    return set(zip(members["layer"].to_list(), members["head"].to_list(), strict=True))


def final_circuit(heads: pl.DataFrame, revision: str) -> set[tuple[int, int]]:
    """The final circuit: induction members of the one final ``revision`` (docs/methods.md).

    Membership is the classifier's ``induction_member`` (the all-head screen:
    induction selectivity >= the circuit threshold, whatever the class), the
    same rule early-screen recall counts with.
    """
    return _members(heads.filter(pl.col("revision") == revision))


def _kept_revisions(model: str, revisions: pl.DataFrame, skip: bool) -> list[tuple[dict, str | None]]:
    """The model's revision rows ordered by tokens then step, each with the earlier revision it duplicates.

    With ``skip``, duplicates (weights equal to an earlier revision's) are left out.
    """
    first_with_weights: dict[str, str] = {}
    kept = []
    for rev in revisions.filter(pl.col("model") == model).sort("tokens", "step").iter_rows(named=True):
        fingerprint = rev.get("weights_sha256")
        original = first_with_weights.setdefault(fingerprint, rev["revision"]) if fingerprint else None
        duplicate_of = original if original != rev["revision"] else None
        if not (skip and duplicate_of):
            kept.append((rev, duplicate_of))
    return kept


def emergence_curves(
    heads: pl.DataFrame, revisions: pl.DataFrame, skip_duplicates: Collection[str] = ()
) -> pl.DataFrame:
    """One row per model and revision with the columns of ``EMERGENCE_COLUMNS``.

    heads: classified heads of one or more models; revisions: one row per
    model and revision with ``n_layers`` and ``in_context_loss_drop``.
    Revisions are ordered by tokens, then step. Models in ``skip_duplicates``
    lose the revisions whose weights equal an earlier one's; the others keep
    them with ``duplicate_of`` naming the earliest revision with those
    weights. The final revision is the last row kept; early-screen recall is
    the share of its circuit (:func:`final_circuit`) already in the circuit by
    the same rule at each revision (``early_screen_recovered`` heads).
    """
    rows = []
    for model, model_heads in heads.group_by("model", maintain_order=True):
        kept = _kept_revisions(model[0], revisions, model[0] in skip_duplicates)
        if not kept:
            raise DataError(f"model {model[0]}: no revisions to build emergence curves from")
        circuit = final_circuit(model_heads, kept[-1][0]["revision"])
        for rev, duplicate_of in kept:
            at = model_heads.filter(pl.col("revision") == rev["revision"])
            if at.height == 0:
                raise DataError(f"model {model[0]}: revision {rev['revision']} has no classified heads")
            induction = at.filter(pl.col("class") == C.INDUCTION_CLASS)
            recovered = len(_members(at) & circuit)
            rows.append(
                {
                    "model": model[0],
                    "revision": rev["revision"],
                    "step": rev["step"],
                    "tokens": rev["tokens"],
                    "n_heads_total": at.height,
                    "bos_fraction": (at["class"] == C.BOS_CLASS).mean(),
                    "sink_ratio": at["sink"].mean(),
                    "n_induction_heads": induction.height,
                    "induction_selective_heads": int(at["induction_selective"].sum()),
                    "screen_heads": int(at["induction_member"].sum()),
                    "n_circuit_heads": int(at["in_circuit"].sum()),
                    "in_context_loss_drop": rev["in_context_loss_drop"],
                    "early_screen_recall": recovered / len(circuit) if circuit else None,
                    "bos_per_layer": _per_layer(at, pl.col("class") == C.BOS_CLASS, rev["n_layers"]),
                    "induction_per_layer": _per_layer(at, pl.col("class") == C.INDUCTION_CLASS, rev["n_layers"]),
                    "duplicate_of": duplicate_of,
                    "early_screen_recovered": recovered,
                    "probe_protocol": rev.get("probe_protocol"),
                    "valid_sequences": rev.get("valid_sequences"),
                }
            )
    schema = {
        "early_screen_recall": pl.Float64,
        "in_context_loss_drop": pl.Float64,
        "duplicate_of": pl.String,
        "probe_protocol": pl.String,
        "valid_sequences": pl.Int64,
    }
    return pl.DataFrame(rows, schema_overrides=schema).select(C.EMERGENCE_COLUMNS)


@dataclass(frozen=True)
class Shape:
    """How a curve rises: the largest rise between adjacent revisions as a share of the total."""

    label: str
    largest_rise_share: float | None
    between: tuple[str, str] | None


def curve_shape(values: Sequence[float], names: Sequence[str], phase_share: float) -> Shape:
    """How a curve rises (docs/methods.md), from the rises between adjacent revisions.

    - ``flat``: it never rises;
    - ``rise and fall``: it ends below its peak by more than half its rise
      (peak minus the lowest value before the first peak);
    - ``phase transition``: the largest rise holds strictly more than
      ``phase_share`` of the sum of all rises (two equal halves do not);
    - ``gradual ramp`` otherwise.

    The sum counts increases only, so the largest interval's share lies in
    (0, 1] even on a curve that dips.
    """
    if len(values) < 2:
        return Shape("single revision", None, None)
    rises = [b - a for a, b in zip(values[:-1], values[1:], strict=True)]
    total = sum(rise for rise in rises if rise > 0)
    if total <= 0:
        return Shape("flat", None, None)
    i = max(range(len(rises)), key=rises.__getitem__)
    share = rises[i] / total
    peak_at = max(range(len(values)), key=values.__getitem__)
    rise = values[peak_at] - min(values[: peak_at + 1])
    if values[peak_at] - values[-1] > rise / 2:
        label = "rise and fall"
    else:
        label = "phase transition" if share > phase_share else "gradual ramp"
    return Shape(label, share, (names[i], names[i + 1]))


def _first_reaching(curve: pl.DataFrame, column: str, threshold: float) -> dict | None:
    hits = curve.filter(pl.col(column) >= threshold)
    return hits.row(0, named=True) if hits.height else None


def _early_screen(curve: pl.DataFrame, fraction: float, circuit_size: int) -> dict | None:
    """First revision recovering at least ``fraction`` of the final circuit, compared on counts.

    ``recovered / size >= fraction`` is evaluated in exact rational arithmetic,
    so 2/3 (the study's "67%") passes 2 of 3 heads and 4 of 6.
    """
    if circuit_size == 0:
        return None
    needed = Fraction(fraction)
    for row in curve.iter_rows(named=True):
        if Fraction(row["early_screen_recovered"], circuit_size) >= needed:
            return row
    return None


def bos_milestones(curve: pl.DataFrame) -> dict:
    """First BOS head (first revision with any head of class first) and the BOS peak of one model's curve.

    ``curve`` in training order; the peak is the largest BOS fraction and the
    first revision that reached it, so a BOS t50 never reached can say how far it got.
    """
    first = curve.filter(pl.col("bos_fraction") > 0)
    peak = curve.filter(pl.col("bos_fraction") == curve["bos_fraction"].max()).row(0, named=True)
    return {
        "first_bos_head_revision": first["revision"][0] if first.height else None,
        "first_bos_head_tokens": first["tokens"][0] if first.height else None,
        "bos_peak_fraction": peak["bos_fraction"],
        "bos_peak_revision": peak["revision"],
        "bos_peak_tokens": peak["tokens"],
    }


def model_milestones(curve: pl.DataFrame, thresholds: MilestoneThresholds, circuit_size: int) -> dict:
    """The milestones of one model's emergence curve; ``circuit_size`` = size of its final induction circuit.

    The final revision is the curve's last by tokens, then step; every token
    share is against its tokens. The onset, its being sustained and the
    induction shape count induction-selective heads (any class), so BOS taking
    the induction heads' best class over does not end the onset.
    """
    curve = curve.sort("tokens", "step")
    names = curve["revision"].to_list()
    final = curve.row(-1, named=True)
    onset = _first_reaching(curve, "induction_selective_heads", thresholds.induction_onset_heads)
    t50 = _first_reaching(curve, "bos_fraction", thresholds.bos_fraction_milestone)
    screen = _early_screen(curve, thresholds.early_screen_recall, circuit_size)
    bos_shape = curve_shape(curve["bos_fraction"].to_list(), names, thresholds.phase_transition_share)
    induction_counts = curve["induction_selective_heads"].to_list()
    induction_shape = curve_shape([float(v) for v in induction_counts], names, thresholds.phase_transition_share)
    sustained = None
    if onset:
        at = names.index(onset["revision"])
        sustained = all(count >= thresholds.induction_onset_heads for count in induction_counts[at:])
    per_layer = curve["bos_per_layer"].to_list()
    never_bos = [layer for layer in range(len(per_layer[0])) if all(counts[layer] == 0 for counts in per_layer)]
    onset_tokens = onset["tokens"] if onset else None
    t50_tokens = t50["tokens"] if t50 else None
    ratio = t50_tokens / onset_tokens if onset_tokens and t50_tokens is not None else None
    protocols = sorted({p for p in curve["probe_protocol"].to_list() if p is not None})
    return {
        "model": final["model"],
        "n_revisions": curve.height,
        "final_tokens": final["tokens"],
        "induction_onset_revision": onset["revision"] if onset else None,
        "induction_onset_tokens": onset_tokens,
        "bos_t50_revision": t50["revision"] if t50 else None,
        "bos_t50_tokens": t50_tokens,
        "bos_to_induction_ratio": ratio,
        **bos_milestones(curve),
        "bos_shape": bos_shape.label,
        "bos_largest_rise_share": bos_shape.largest_rise_share,
        "bos_largest_rise_between": " -> ".join(bos_shape.between) if bos_shape.between else None,
        "induction_shape": induction_shape.label,
        "induction_largest_rise_share": induction_shape.largest_rise_share,
        "final_circuit_size": circuit_size,
        "early_screen_revision": screen["revision"] if screen else None,
        "early_screen_tokens": screen["tokens"] if screen else None,
        "early_screen_token_share": screen["tokens"] / final["tokens"] if screen and final["tokens"] else None,
        "layers_without_bos": never_bos,
        "final_bos_fraction": final["bos_fraction"],
        "final_induction_heads": final["n_induction_heads"],
        "final_revision": final["revision"],
        "induction_onset_sustained": sustained,
        "probe_protocol": ",".join(protocols) or None,
    }


def milestones(
    curves: pl.DataFrame, heads: pl.DataFrame, thresholds: Mapping[str, MilestoneThresholds]
) -> pl.DataFrame:
    """One row per model with ``MILESTONE_COLUMNS``; the final circuit comes from each curve's final revision."""
    rows = []
    for (model,), curve in curves.group_by("model", maintain_order=True):
        final = curve.sort("tokens", "step")["revision"][-1]
        circuit = final_circuit(heads.filter(pl.col("model") == model), final)
        rows.append(model_milestones(curve, thresholds[model], len(circuit)))
    schema = {
        "induction_onset_revision": pl.String,
        "induction_onset_tokens": pl.Int64,
        "bos_t50_revision": pl.String,
        "bos_t50_tokens": pl.Int64,
        "bos_to_induction_ratio": pl.Float64,
        "first_bos_head_revision": pl.String,
        "first_bos_head_tokens": pl.Int64,
        "bos_largest_rise_share": pl.Float64,
        "bos_largest_rise_between": pl.String,
        "induction_largest_rise_share": pl.Float64,
        "early_screen_revision": pl.String,
        "early_screen_tokens": pl.Int64,
        "early_screen_token_share": pl.Float64,
        "layers_without_bos": pl.List(pl.Int64),
        "induction_onset_sustained": pl.Boolean,
        "probe_protocol": pl.String,
    }
    return pl.DataFrame(rows, schema_overrides=schema).select(C.MILESTONE_COLUMNS)
