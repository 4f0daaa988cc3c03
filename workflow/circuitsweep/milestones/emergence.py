"""Emergence curves per revision and milestones per model (docs/methods.md)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
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


#: Share of a curve's rise that its shape window must hold (docs/methods.md).
SHAPE_RISE_SHARE = 0.8


@dataclass(frozen=True)
class Shape:
    """How a curve rises: its label and the narrowest token window holding :data:`SHAPE_RISE_SHARE` of its rise.

    ``ratio``: tokens at the window's end over tokens at its start (None when
    the only such windows start at 0 tokens); ``window``: the two revisions.
    """

    label: str
    ratio: float | None
    window: tuple[str, str] | None


def _narrowest_window(values: Sequence[float], tokens: Sequence[int], rise: float) -> tuple[int, int, float | None]:
    """The pair (i, j), i < j, with values[j] - values[i] >= SHAPE_RISE_SHARE * rise and the smallest token ratio.

    Windows starting at 0 tokens have no finite ratio: they count only when no
    other window holds the share, and then the one ending earliest is taken.
    Ties go to the earliest window.
    """
    need = SHAPE_RISE_SHARE * rise
    best: tuple[float, int, int] | None = None
    from_zero: tuple[int, int] | None = None
    for j in range(1, len(values)):
        for i in range(j):
            if values[j] - values[i] < need:
                continue
            if tokens[i] <= 0:
                if from_zero is None:
                    from_zero = (i, j)
                continue
            ratio = tokens[j] / tokens[i]
            if best is None or (ratio, i, j) < best:
                best = (ratio, i, j)
    if best is not None:
        return best[1], best[2], best[0]
    assert from_zero is not None  # the pair of the whole rise holds all of it
    return from_zero[0], from_zero[1], None


def curve_shape(values: Sequence[float], tokens: Sequence[int], names: Sequence[str], factor: float) -> Shape:
    """How a curve rises on the token axis (docs/methods.md), so that sampling density does not change the label.

    The curve's rise is its largest increase from one revision to a later one.
    The window is the narrowest (smallest ratio of tokens, end over start) pair
    of swept revisions between which the curve rises by at least
    :data:`SHAPE_RISE_SHARE` of that; a sparse sweep can only widen it, so its
    ratio is an upper bound.

    - ``flat``: it never rises;
    - ``rise and fall``: it ends below its peak (its largest value) by more
      than half its rise;
    - ``phase transition``: the window's ratio is at most ``factor``;
    - ``gradual ramp``: the ratio is above ``factor``;
    - ``unresolved``: every window holding the share starts at a revision with
      0 tokens, where no ratio is defined (a revision between would tell).
    """
    if len(values) < 2:
        return Shape("single revision", None, None)
    rise = max(values[j] - min(values[:j]) for j in range(1, len(values)))
    if rise <= 0:
        return Shape("flat", None, None)
    start, end, ratio = _narrowest_window(values, tokens, rise)
    if max(values) - values[-1] > rise / 2:
        label = "rise and fall"
    elif ratio is None:
        label = "unresolved"
    else:
        label = "phase transition" if ratio <= factor else "gradual ramp"
    return Shape(label, ratio, (names[start], names[end]))


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
    """First BOS head (first revision with any head of class first), whether some BOS head is there at every
    later revision (``first_bos_head_sustained``), and the BOS peak of one model's curve.

    ``curve`` in training order; the peak is the largest BOS fraction and the
    first revision that reached it, so a BOS t50 never reached can say how far it got.
    Not sustained: a sink that forms and goes again, as the toys' plateau sinks do before the onset.
    """
    fractions = curve["bos_fraction"].to_list()
    at = next((i for i, fraction in enumerate(fractions) if fraction > 0), None)
    peak = curve.filter(pl.col("bos_fraction") == curve["bos_fraction"].max()).row(0, named=True)
    return {
        "first_bos_head_revision": None if at is None else curve["revision"][at],
        "first_bos_head_tokens": None if at is None else curve["tokens"][at],
        "first_bos_head_sustained": None if at is None else all(fraction > 0 for fraction in fractions[at:]),
        "bos_peak_fraction": peak["bos_fraction"],
        "bos_peak_revision": peak["revision"],
        "bos_peak_tokens": peak["tokens"],
    }


def late_bos_counts(bos: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """New BOS heads after the onset per revision: heads of class first at or after the induction onset that
    were of class first at no revision before it (docs/methods.md, "Milestones").

    ``bos``: ``[R, B, H]`` bool, whether each head is of class first, revisions in training order, for B
    classifications of the same heads (the point estimate, or bootstrap resamples); ``onset``: ``[B]``, the
    index of the induction onset's revision (-1: not reached, so no head is late). Returns ``[R, B]`` counts,
    0 before the onset. The study's first BOS head counts every sink, also those that park while nothing
    else is learnt yet and leave at the onset; this count keeps the heads that became sinks after it.
    """
    n_revisions = bos.shape[0]
    before = np.arange(n_revisions)[:, None] < onset[None, :]  # [R, B]
    earlier_sink = (bos & before[..., None]).any(axis=0)  # [B, H]
    late = bos & ~earlier_sink[None] & ~before[..., None] & (onset >= 0)[None, :, None]
    return late.sum(axis=-1)


def late_bos_milestones(heads: pl.DataFrame, curve: pl.DataFrame, onset_revision: str | None) -> dict:
    """The first revision with a new BOS head after the onset (:func:`late_bos_counts`), whether some new BOS
    head is there at every later revision (``first_late_bos_head_sustained``: a head that parks for one revision
    and leaves is not), and how many the final revision holds.

    ``heads``: one model's classified heads; ``curve``: its emergence rows (the kept revisions), in training
    order; ``onset_revision``: its induction onset (None: not reached, so neither is this milestone).
    """
    names = curve["revision"].to_list()
    onset = np.array([names.index(onset_revision) if onset_revision is not None else -1])
    order = pl.DataFrame({"revision": names, "order": range(len(names))})
    ordered = heads.join(order, on="revision").sort("order", "layer", "head")
    per_revision = ordered.group_by("order").agg(pl.len(), pl.struct("layer", "head").n_unique().alias("unique"))
    n_heads = ordered.height // len(names) if names else 0
    same = per_revision.height == len(names) and (per_revision["len"] == n_heads).all()
    if not same or not (per_revision["unique"] == n_heads).all():
        raise DataError(f"model {curve['model'][0]}: its revisions do not all hold the same heads, each once")
    bos = (ordered["class"] == C.BOS_CLASS).to_numpy().reshape(len(names), 1, n_heads)
    counts = late_bos_counts(bos, onset)[:, 0]
    at = int(np.argmax(counts > 0)) if counts.any() else None
    return {
        "first_late_bos_head_revision": None if at is None else names[at],
        "first_late_bos_head_tokens": None if at is None else curve["tokens"][at],
        "final_late_bos_heads": int(counts[-1]),
        "first_late_bos_head_sustained": None if at is None else bool((counts[at:] > 0).all()),
    }


def _shape_columns(curve: str, shape: Shape) -> dict[str, Any]:
    window = shape.window or (None, None)
    return {
        f"{curve}_shape": shape.label,
        f"{curve}_shape_ratio": shape.ratio,
        f"{curve}_shape_from": window[0],
        f"{curve}_shape_to": window[1],
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
    tokens = curve["tokens"].to_list()
    factor = thresholds.phase_transition_factor
    bos_shape = curve_shape(curve["bos_fraction"].to_list(), tokens, names, factor)
    induction_counts = curve["induction_selective_heads"].to_list()
    induction_shape = curve_shape([float(v) for v in induction_counts], tokens, names, factor)
    sustained = t50_sustained = None
    if onset:
        at = names.index(onset["revision"])
        sustained = all(count >= thresholds.induction_onset_heads for count in induction_counts[at:])
    if t50:
        fractions = curve["bos_fraction"].to_list()[names.index(t50["revision"]) :]
        t50_sustained = all(value >= thresholds.bos_fraction_milestone for value in fractions)
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
        "bos_t50_level": thresholds.bos_fraction_milestone,
        "bos_to_induction_ratio": ratio,
        **bos_milestones(curve),
        **_shape_columns("bos", bos_shape),
        **_shape_columns("induction", induction_shape),
        "final_circuit_size": circuit_size,
        "early_screen_revision": screen["revision"] if screen else None,
        "early_screen_tokens": screen["tokens"] if screen else None,
        "early_screen_token_share": screen["tokens"] / final["tokens"] if screen and final["tokens"] else None,
        "layers_without_bos": never_bos,
        "final_bos_fraction": final["bos_fraction"],
        "final_induction_heads": final["n_induction_heads"],
        "final_revision": final["revision"],
        "induction_onset_sustained": sustained,
        "bos_t50_sustained": t50_sustained,
        "probe_protocol": ",".join(protocols) or None,
    }


def milestones(
    curves: pl.DataFrame, heads: pl.DataFrame, thresholds: Mapping[str, MilestoneThresholds]
) -> pl.DataFrame:
    """One row per model with ``MILESTONE_COLUMNS``; the final circuit comes from each curve's final revision."""
    rows = []
    for (model,), curve in curves.group_by("model", maintain_order=True):
        ordered = curve.sort("tokens", "step")
        model_heads = heads.filter(pl.col("model") == model)
        circuit = final_circuit(model_heads, ordered["revision"][-1])
        row = model_milestones(ordered, thresholds[model], len(circuit))
        row.update(late_bos_milestones(model_heads, ordered, row["induction_onset_revision"]))
        rows.append(row)
    schema = {
        "induction_onset_revision": pl.String,
        "induction_onset_tokens": pl.Int64,
        "bos_t50_revision": pl.String,
        "bos_t50_tokens": pl.Int64,
        "bos_t50_level": pl.Float64,
        "bos_to_induction_ratio": pl.Float64,
        "first_bos_head_revision": pl.String,
        "first_bos_head_tokens": pl.Int64,
        "first_late_bos_head_revision": pl.String,
        "first_late_bos_head_tokens": pl.Int64,
        "final_late_bos_heads": pl.Int64,
        "first_late_bos_head_sustained": pl.Boolean,
        **{f"{curve}_shape_ratio": pl.Float64 for curve in ("bos", "induction")},
        **{f"{curve}_shape_{end}": pl.String for curve in ("bos", "induction") for end in ("from", "to")},
        "early_screen_revision": pl.String,
        "early_screen_tokens": pl.Int64,
        "early_screen_token_share": pl.Float64,
        "layers_without_bos": pl.List(pl.Int64),
        "induction_onset_sustained": pl.Boolean,
        "first_bos_head_sustained": pl.Boolean,
        "bos_t50_sustained": pl.Boolean,
        "probe_protocol": pl.String,
    }
    return pl.DataFrame(rows, schema_overrides=schema).select(C.MILESTONE_COLUMNS)
