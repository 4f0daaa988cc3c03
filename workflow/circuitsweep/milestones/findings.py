"""The study's findings per model and across models (docs/methods.md, "Findings"), from a run's tables alone.

Per model, at the final revision of its spectral ranking:

- precision at K: of the top K heads by participation-ratio integral, the share
  with a class (any class: best selectivity >= the class threshold), at
  ``PRECISION_K`` and all heads (K capped at the head count); non-BOS precision as
  the study's tier-1 script: drop the heads of class first from the ranking, then
  the share classified among the top K of the rest;
- K selection: the elbow (:func:`heads.spectral.elbow_k`) beside the 17-19%
  heuristic and the run's own K (``ablation.spectral_top_k``);
- the class breakdown of each top K and of all heads;
- the induction-selectivity distribution (heads at ``SELECTIVITY_LEVELS``) and,
  per K, which screen heads the top K holds and which it misses;
- the five ablation claims, measured from the final-revision ablation table
  (:func:`ablation_claims`); a claim the run cannot test says why.

Across models (more than one model): whole-model BOS fraction on the synthetic and
natural-text probes, BOS heads per layer and the first layer holding one, the layers
without a BOS head at any revision (the study's layer-0/1 floor), the screen's size,
the induction onset, BOS t50 and their ratio.

Pure functions of Polars frames (no torch, no model): ``tables/findings.{csv,md,html}``
and ``cs.findings`` compute the same :class:`Findings`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep.errors import DataError
from circuitsweep.heads.spectral import TopK, elbow_k, heuristic_k, resolve_top_k, unranked_note
from circuitsweep.io import contracts as C
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.io.tables import read_table, write_csv
from circuitsweep.milestones.text import bos_t50_text, human_tokens

#: The study's K for precision at K (its README, Phase 2), then all heads.
PRECISION_K: tuple[int, ...] = (5, 10, 15, 20, 30, 45, 60, 80, 100, 130, 160, 200)
#: The study's induction-selectivity levels (heads at or above each).
SELECTIVITY_LEVELS: tuple[float, ...] = (10, 30, 50, 100, 200)
#: A level's heads are named when there are at most this many.
NAMED_HEADS = 8

SPECTRAL = "spectral.csv"
HEADS = "heads.parquet (final revision)"
ABLATION = "final_ablation.csv"
MILESTONES = "milestones.csv"

SECTION_PRECISION, SECTION_NON_BOS, SECTION_K, SECTION_CLASSES, SECTION_SELECTIVITY, SECTION_SCREEN = (
    C.FINDINGS_SECTIONS[:6]
)
SECTION_CLAIMS, SECTION_ACROSS = C.FINDINGS_SECTIONS[6:8]

_SCHEMA: dict[str, Any] = {
    "model": pl.String,
    "section": pl.String,
    "item": pl.String,
    "k": pl.Int64,
    "value": pl.Float64,
    "count": pl.Int64,
    "total": pl.Int64,
    "text": pl.String,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p": pl.Float64,
    "source": pl.String,
}
_ACROSS_SCHEMA: dict[str, Any] = {
    "model": pl.String,
    "final_revision": pl.String,
    "n_heads": pl.Int64,
    "bos_fraction": pl.Float64,
    "natural_bos_fraction": pl.Float64,
    "bos_per_layer": pl.List(pl.Int64),
    "first_bos_layer": pl.Int64,
    "layers_without_bos": pl.List(pl.Int64),
    "screen_size": pl.Int64,
    "induction_onset_tokens": pl.Int64,
    "bos_t50_tokens": pl.Int64,
    "bos_to_induction_ratio": pl.Float64,
}


@dataclass(frozen=True)
class Findings:
    """A run's findings: ``rows`` (``FINDINGS_COLUMNS``, = tables/findings.csv), ``across_models``
    (``ACROSS_MODELS_COLUMNS``, one row per model; findings.csv and .md hold it when the run has more than
    one model) and one paragraph per model (the report's Findings page)."""

    rows: pl.DataFrame
    across_models: pl.DataFrame
    paragraphs: dict[str, str]

    def section(self, model: str, section: str) -> pl.DataFrame:
        """The rows of one model's section (``contracts.FINDINGS_SECTIONS``)."""
        return self.rows.filter((pl.col("model") == model) & (pl.col("section") == section))


def _row(model: str, section: str, item: str, text: str, source: str, **values: Any) -> dict[str, Any]:
    return {"model": model, "section": section, "item": item, "text": text, "source": source, **values}


def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def _share(count: int, total: int) -> str:
    return f"{count / total:.2f} ({count}/{total})"


def _plural(count: float, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is 1 (``1 head``, ``2 heads``)."""
    return f"{count:g} {noun}" + ("" if count == 1 else "s")


def _range(low: int, high: int) -> str:
    """``low-high``, or one number when they agree."""
    return str(low) if low == high else f"{low}-{high}"


def precision_ks(n_heads: int) -> list[int]:
    """``PRECISION_K`` below ``n_heads``, then ``n_heads`` (all heads)."""
    return [k for k in PRECISION_K if k < n_heads] + ([n_heads] if n_heads else [])


def precision_at_k(classes: Sequence[str], ks: Sequence[int]) -> list[tuple[int, int]]:
    """(K, heads classified among the first K) for ``classes`` in rank order; any class but ``none`` counts."""
    return [(k, sum(c != C.NO_CLASS for c in classes[:k])) for k in ks]


def non_bos_classes(classes: Sequence[str]) -> list[str]:
    """The ranking without the heads of class first (the study's tier-1 script), in rank order."""
    return [c for c in classes if c != C.BOS_CLASS]


def _ranked(spectral: pl.DataFrame) -> pl.DataFrame:
    return spectral.sort("rank")


def precision_rows(model: str, spectral: pl.DataFrame) -> list[dict[str, Any]]:
    """Precision at K and non-BOS precision at K of one model's spectral ranking (rows)."""
    classes = _ranked(spectral)["final_class"].to_list()
    n = len(classes)
    rows = []
    for k, count in precision_at_k(classes, precision_ks(n)):
        item = f"all {n} heads" if k == n else f"K = {k}"
        rows.append(
            _row(model, SECTION_PRECISION, item, _share(count, k), SPECTRAL, k=k, value=count / k, count=count, total=k)
        )
    rest = non_bos_classes(classes)
    if not rest:
        text = "every head is of class first: no non-BOS head to rank"
        return [*rows, _row(model, SECTION_NON_BOS, "non-BOS heads", text, SPECTRAL, value=0.0, count=0, total=n)]
    for k, count in precision_at_k(rest, precision_ks(len(rest))):
        item = f"all {len(rest)} non-BOS heads" if k == len(rest) else f"K = {k}"
        rows.append(
            _row(model, SECTION_NON_BOS, item, _share(count, k), SPECTRAL, k=k, value=count / k, count=count, total=k)
        )
    classified = sum(c != C.NO_CLASS for c in rest)
    text = (
        f"{classified} of {len(rest)} non-BOS heads classified ({classified / len(rest):.3f}; "
        f"{classified / n:.1%} of all {n} heads)"
    )
    rows.append(
        _row(
            model,
            SECTION_NON_BOS,
            "non-BOS heads classified",
            text,
            SPECTRAL,
            value=classified / len(rest),
            count=classified,
            total=len(rest),
        )
    )
    return rows


def k_rows(model: str, spectral: pl.DataFrame, tops: Sequence[TopK]) -> list[dict[str, Any]]:
    """The elbow, the 17-19% heuristic and the run's K (``ablation.spectral_top_k``) of one model (rows)."""
    ranked = _ranked(spectral)
    n = ranked.height
    elbow = elbow_k(ranked["integral"].to_list())
    classes = ranked["final_class"].to_list()
    _, count = precision_at_k(classes, [elbow])[0]
    low, high = heuristic_k(n)
    rows = [
        _row(
            model,
            SECTION_K,
            "elbow",
            f"K = {elbow}: argmax of -diff(sorted integrals, 2) + 1; precision at it {_share(count, elbow)}",
            SPECTRAL,
            k=elbow,
            value=float(elbow),
        ),
        _row(
            model,
            SECTION_K,
            "17-19% heuristic",
            f"K = {_range(low, high)} of {n} heads",
            SPECTRAL,
            value=None,
            count=low,
            total=high,
        ),
    ]
    for top in tops:
        asked = ", ".join(top.asked)
        beyond = f", above the model's {n} heads: all of them" if top.k > n else ""
        how = top.describe(n)
        text = f"K = {top.k}" + (f" ({how[4:]})" if how else "") + beyond
        rows.append(_row(model, SECTION_K, f"spectral_top_k {asked}", text, SPECTRAL, k=top.k, value=float(top.k)))
    return rows


def class_rows(model: str, spectral: pl.DataFrame, tops: Sequence[TopK]) -> list[dict[str, Any]]:
    """Heads of each class among each top K and among all heads (the classes all heads hold, in class order)."""
    classes = _ranked(spectral)["final_class"].to_list()
    n = len(classes)
    present = [c for c in (*C.TARGETS, C.NO_CLASS) if c in classes]
    rows = []
    sets = [(min(top.k, n), f"top {top.k}" if top.k <= n else f"top {top.k} (all {n})") for top in tops]
    for k, label in [*sets, (n, f"all {n}")]:
        subset = classes[:k]
        for cls in present:
            count = subset.count(cls)
            rows.append(
                _row(
                    model,
                    SECTION_CLASSES,
                    f"{label}: {cls}",
                    f"{count} ({count / k:.1%})",
                    SPECTRAL,
                    k=None if label.startswith("all") else k,
                    value=count / k,
                    count=count,
                    total=k,
                )
            )
    return rows


def _names(frame: pl.DataFrame) -> list[str]:
    return [head_label(layer, head) for layer, head in frame.select("layer", "head").rows()]


def selectivity_levels(thresholds: Mapping[str, Any] | None) -> list[tuple[float, str]]:
    """``SELECTIVITY_LEVELS`` and the run's class and circuit thresholds among them, each with its name."""
    names = {"class_selectivity": "the class threshold", "induction_circuit": "the circuit threshold"}
    levels = {float(level): "" for level in SELECTIVITY_LEVELS}
    for key, name in names.items():
        value = (thresholds or {}).get(key)
        if value is not None:
            levels[float(value)] = ", ".join(filter(None, [levels.get(float(value), ""), name]))
    return sorted(levels.items())


def selectivity_rows(model: str, final: pl.DataFrame, thresholds: Mapping[str, Any] | None = None) -> list[dict]:
    """Heads at each of ``SELECTIVITY_LEVELS`` (and the run's class and circuit thresholds) of induction
    selectivity at the final revision (synthetic; natural text too where measured)."""
    rows = []
    probes = [("sel_induction", "")]
    if "natural_sel_induction" in final.columns and final["natural_sel_induction"].null_count() < final.height:
        probes.append(("natural_sel_induction", " (natural text)"))
    for column, suffix in probes:
        for level, name in selectivity_levels(thresholds):
            at = final.filter(pl.col(column) >= level).sort(column, descending=True)
            named = f": {', '.join(_names(at))}" if 0 < at.height <= NAMED_HEADS else ""
            text = _plural(at.height, "head") + (f" ({name})" if name else "") + named
            rows.append(
                _row(
                    model,
                    SECTION_SELECTIVITY,
                    f">= {level:g}{suffix}",
                    text,
                    HEADS,
                    value=float(at.height),
                    count=at.height,
                    total=final.height,
                )
            )
    return rows


def screen_rows(model: str, spectral: pl.DataFrame, tops: Sequence[TopK], cut: float | None) -> list[dict[str, Any]]:
    """Per K, the screen heads (``spectral.csv`` screen) the top K holds and those it misses, with their ranks."""
    screen = _ranked(spectral).filter(pl.col("screen"))
    rows = []
    for top in tops:
        if screen.height == 0:
            at = f" >= {cut:g}" if cut is not None else " at the circuit threshold"
            text = f"no screen head: no head has induction selectivity{at}"
            rows.append(_row(model, SECTION_SCREEN, f"top {top.k}", text, SPECTRAL, k=top.k, count=0, total=0))
            continue
        inside = screen.filter(pl.col("rank") <= top.k)
        outside = screen.filter(pl.col("rank") > top.k)
        missed = ", ".join(f"{name} (rank {rank})" for name, rank in zip(_names(outside), outside["rank"], strict=True))
        text = f"holds {inside.height} of {_the_screen(screen.height)}" + (
            f" ({', '.join(_names(inside))})" if inside.height else ""
        )
        text += f"; misses {missed}" if outside.height else "; misses none"
        rows.append(
            _row(
                model,
                SECTION_SCREEN,
                f"top {top.k}",
                text,
                SPECTRAL,
                k=top.k,
                value=float(outside.height),
                count=inside.height,
                total=screen.height,
            )
        )
    return rows


# --- the five ablation claims -------------------------------------------------


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _pp(value: float) -> str:
    return f"{100 * value:.2f} pp"


def _the_screen(size: float) -> str:
    """``the 4 screen heads``, ``the 1 screen head``."""
    return f"the {_plural(size, 'screen head')}"


Bounds = tuple[float | None, float | None, float | None]


def interval(row: Mapping[str, Any] | None, metric: str, excess: bool) -> Bounds:
    """A paired 95% interval and p of ``row`` where the ablation table carries them (``<name>_ci_low``,
    ``<name>_ci_high``, ``<name>_p``): the first name holding ``metric`` (``top1``, ``loss``), with ``excess``
    in it for a claim against matched random heads and without it for one against no ablation."""
    if row is None:
        return None, None, None
    names = sorted(name[: -len("_ci_low")] for name in row if name.endswith("_ci_low"))
    for name in names:
        if f"{name}_ci_high" not in row or row[f"{name}_ci_low"] is None:
            continue
        if metric in name and ("excess" in name) == excess:
            return row[f"{name}_ci_low"], row[f"{name}_ci_high"], row.get(f"{name}_p")
    return None, None, None


def _interval_text(bounds: Bounds) -> str:
    """``95% interval [low, high], p = p`` (bounds to 3 decimals), or "" without an interval."""
    low, high, p = bounds
    if low is None or high is None:
        return ""
    return f"95% interval [{low:.3f}, {high:.3f}]" + (f", p = {p:.2g}" if p is not None else "")


def _with_interval(text: str, bounds: Bounds, excess: bool = False) -> str:
    """``text`` with its paired interval and p; an ``excess`` interval is against the mean of the matched
    draws (the ablation table's excess columns), the quantity the claim's text compares with."""
    shown = _interval_text(bounds)
    label = "excess over the matched draws' mean: " if excess else ""
    return text + f" ({label}{shown})" if shown else text


@dataclass(frozen=True)
class _Random:
    """A matched-random family: ``control`` (the mean of its ``n`` scored draws, or draw 0 alone) and ``draw``
    (draw 0, the study's)."""

    control: dict | None
    draw: dict | None
    n: int

    @property
    def label(self) -> str:
        return f"mean of {self.n} draws" if self.n != 1 else "1 draw"

    def draw0(
        self, metric: str, show: Callable[[float], str], ratio: Callable[[float], str | None] | None = None
    ) -> str:
        """``; draw 0, the study's, <show(its metric)>`` beside a mean of several draws ("" otherwise), with
        ``ratio(its metric)``, the study's ratio (its figures are draw 0's), where that gives one."""
        if self.n == 1 or self.draw is None or self.draw is self.control or self.draw[metric] is None:
            return ""
        value = self.draw[metric]
        study = ratio(value) if ratio is not None else None
        return f"; draw 0, the study's, {show(value)}" + (f", its ratio {study}" if study else "")


class _Ablation:
    """One model's rows of the final-revision ablation table, looked up by probe, condition, K and statistic."""

    def __init__(self, table: pl.DataFrame) -> None:
        self.table = table

    def get(self, probe: str, condition: str, k: int | None = None, statistic: str | None = None) -> dict | None:
        rows = self.table.filter((pl.col("probe") == probe) & (pl.col("condition") == condition))
        rows = rows.filter(pl.col("k").is_null() if k is None else pl.col("k") == k)
        if statistic is not None:
            rows = rows.filter(pl.col("statistic").str.starts_with(statistic))
        return rows.row(0, named=True) if rows.height else None

    def random(self, probe: str, prefix: str, k: int | None, treated: dict | None) -> _Random:
        """The matched-random family of ``treated`` (``spectral_top`` or ``screen``): its mean over the scored
        draws, the control its excess test is against (draw 0 where the table holds no mean), and draw 0."""
        draw = self.get(probe, f"{prefix}_random", k, "draw 0")
        mean = self.get(probe, f"{prefix}_random", k, "mean of")
        n = (treated or {}).get("n_controls")
        if n is None:
            n = int(mean["statistic"].split()[-1]) if mean is not None else 1
        return _Random(mean if mean is not None else draw, draw, int(n))

    def singles(self, probe: str) -> list[tuple[str, list[str], dict]]:
        """Each head ablated alone (induction_head, screen_head): (label, its conditions, row), first seen first."""
        found: dict[str, tuple[list[str], dict]] = {}
        for row in self.table.filter(pl.col("probe") == probe).iter_rows(named=True):
            if row["condition"] in ("induction_head", "screen_head") and row["heads"]:
                found.setdefault(row["heads"], ([], row))[0].append(row["condition"])
        return [(label, sorted(set(conditions)), row) for label, (conditions, row) in found.items()]


def _no_control(row: dict | None, heads: str) -> str | None:
    """Why a matched-random draw is no control (None when it is one): absent, empty (``heads`` fill their
    layers) or not scored."""
    if row is None:
        return f"no matched-random rows in {ABLATION}"
    if not row["n_ablated"]:
        return f"no matched control ({heads} leave no other head in their layers)"
    if row["top1"] is None:
        return "the matched-random draw was not scored"
    return None


def _ratio_caveat(control: dict, metric: str) -> tuple[str, str]:
    """Why a ratio over ``control``'s damage means little, for the claim's text and its short phrase: the
    control's own paired interval (``metric`` against no ablation) reaches 0, so the ratio is as large as the
    noise lets it be. ``("", "")`` when the interval is clear of 0 or absent."""
    low, high, _ = interval(control, metric, excess=False)
    if low is None or high is None or low > 0:
        return "", ""
    text = f", over a matched-random change not distinguishable from 0 (95% interval [{low:.3f}, {high:.3f}])"
    return text, ", random's change within noise"


def _shortfall(row: dict | None) -> str:
    return f"; the matched draw is {_plural(row['shortfall'], 'head')} short" if row and row["shortfall"] else ""


def _claim(model: str, item: str, text: str, short: str, source: str = ABLATION, **values: Any) -> dict[str, Any]:
    """A claim's row; ``short`` is its phrase in the model's paragraph (not a column of findings.csv)."""
    return {**_row(model, SECTION_CLAIMS, item, text, source, **values), "short": short}


def _interval_values(bounds: Bounds) -> dict[str, float | None]:
    return {"ci_low": bounds[0], "ci_high": bounds[1], "p": bounds[2]}


CLAIMS: tuple[str, ...] = (
    "1. spectral picks vs matched random",
    "2. screen heads among the picks",
    "3. screen vs matched random",
    "3. screen vs spectral picks",
    "4. single heads",
    "5. natural text: screen vs matched random",
)


def ablation_claims(
    model: str,
    table: pl.DataFrame | None,
    spectral: pl.DataFrame,
    tops: Sequence[TopK],
) -> list[dict[str, Any]]:
    """The study's five ablation claims for one model, measured from its rows of the final-ablation table
    (``FINAL_ABLATION_TABLE_COLUMNS``; matched random: the mean of the scored draws, the control of the excess
    test, with draw 0, the study's, beside it):

    1. spectral picks vs matched random at each K (loss differential, nats);
    2. whether the top K picks hold any screen head (and what ablating them does to top-1);
    3. the screen's top-1 drop vs its matched random (ratio) and vs the top K picks ("distribution wins");
    4. each single head's top-1 drop (absolute, with its interval; its share of the baseline beside it);
    5. the screen's natural-text top-1 drop vs its matched random (ratio).

    Without a table, an empty screen, no matched control or no natural text, the claim's row says so. Rows in
    claim order; each carries ``short``, its phrase in the model's paragraph.
    """
    if table is None or table.height == 0:
        text = "not tested: the run has no final-revision ablation (ablation.enabled is false)"
        return [_claim(model, claim, text, "not tested (no final-revision ablation)") for claim in CLAIMS]
    ablation = _Ablation(table)
    ranked = _ranked(spectral)
    screen = ranked.filter(pl.col("screen"))
    none = ablation.get("synthetic", "none")
    if none is None:
        raise DataError(f"{model}: {ABLATION} has no synthetic row without ablation")
    base = none["top1"]
    first = [_picks_claim(model, ablation, top.k, none) for top in tops]
    held = [_held_claim(model, ablation, top.k, base, screen) for top in tops]
    third = _screen_claims(model, ablation, "synthetic", CLAIMS[2], tops, ranked)
    singles = ablation.singles("synthetic")
    fourth = [_single_claim(model, label, conditions, row, base) for label, conditions, row in singles]
    if not singles:
        text = "no head was ablated alone (no induction-class or screen head)"
        fourth = [_claim(model, CLAIMS[4], text, "no head ablated alone")]
    if ablation.get("natural", "none") is None:
        text = "untestable: the run measured no natural text (probes.natural_text)"
        fifth = [_claim(model, CLAIMS[5], text, "natural text: untestable, none measured")]
    else:
        fifth = _screen_claims(model, ablation, "natural", CLAIMS[5], (), ranked)
    return [*first, *held, *third, *fourth, *fifth]


def _picks_claim(model: str, ablation: _Ablation, k: int, none: dict) -> dict[str, Any]:
    """Claim 1 at one K: the top K's loss rise against their matched random heads' (mean of the draws)."""
    picks = ablation.get("synthetic", "spectral_top", k)
    item = f"{CLAIMS[0]}, K = {k}"
    if picks is None:
        return _claim(model, item, f"not in {ABLATION}: no K = {k} rows", f"top {k}: not run", k=k)
    random = ablation.random("synthetic", "spectral", k, picks)
    control = random.control
    if why := _no_control(control, f"the top {k}"):
        return _claim(model, item, f"untestable: {why}", f"top {k}: untestable, {why}", k=k)
    d_top, d_random = picks["loss"] - none["loss"], control["loss"] - none["loss"]
    caveat = ("", "")
    if d_random <= 0:
        verdict = "random heads did not raise the loss"
    elif d_top <= 0:
        verdict = "the picks did not raise the loss"
    else:
        verdict, caveat = f"{d_top / d_random:.2f}x the damage", _ratio_caveat(control, "loss")

    def study_ratio(loss: float) -> str | None:
        return f"{d_top / (loss - none['loss']):.2f}x" if d_top > 0 and loss - none["loss"] > 0 else None

    draw0 = random.draw0("loss", lambda loss: f"{loss - none['loss']:+.2f}", study_ratio)
    text = f"loss {d_top:+.2f} for the top {k} vs {d_random:+.2f} for matched random ({random.label}"
    text += f"{draw0}): {verdict}{caveat[0]}" + _shortfall(control)
    bounds = interval(picks, "loss", excess=True)
    short = f"top {k}: loss {d_top:+.2f} vs {d_random:+.2f} for matched random ({random.label}; {verdict}{caveat[1]})"
    return _claim(model, item, _with_interval(text, bounds, True), _with_interval(short, bounds, True), k=k,
                  value=d_top - d_random, **_interval_values(bounds))  # fmt: skip


def _held_claim(model: str, ablation: _Ablation, k: int, base: float, screen: pl.DataFrame) -> dict[str, Any]:
    """Claim 2 at one K: the screen heads among the top K, and what ablating the top K does to top-1."""
    picks = ablation.get("synthetic", "spectral_top", k)
    random = ablation.random("synthetic", "spectral", k, picks)
    inside = screen.filter(pl.col("rank") <= k).height
    outside = _names(screen.filter(pl.col("rank") > k))
    held = f"the top {k} {'holds' if k == 1 else 'hold'} {inside} of {_the_screen(screen.height)}"
    held += f" (missing {', '.join(outside)})" if outside and inside else ""
    text = held
    if picks is not None and picks["top1"] is not None:
        text += f"; ablating them moves top-1 {_percent(base)} -> {_percent(picks['top1'])}"
        if not _no_control(random.control, ""):
            text += f" (matched random, {random.label}: {_percent(random.control['top1'])})"
    return _claim(model, f"{CLAIMS[1]}, K = {k}", text, held[4:], f"{SPECTRAL}; {ABLATION}", k=k,
                  value=float(inside), count=inside, total=screen.height)  # fmt: skip


def _single_claim(model: str, label: str, conditions: list[str], row: dict, base: float) -> dict[str, Any]:
    """Claim 4 for one head ablated alone: its absolute top-1 drop (``value``, the unit of its interval), with
    the share of the baseline beside it; a rise says so."""
    item = f"4. {label} alone"
    if row["top1"] is None:
        return _claim(model, item, f"{label} alone: not scored", f"{label} alone not scored")
    drop = base - row["top1"]
    bounds = interval(row, "top1", excess=False)
    shown = _interval_text(bounds)
    way = "drop" if drop >= 0 else "rise"
    if drop < 0 and shown:
        shown = f"as a drop {drop:.3f}: {shown}"
    relative = f"{abs(drop) / base:.0%} of the baseline" if base else ""
    beside = "; ".join(filter(None, [relative, shown]))
    text = f"{label} alone ({', '.join(conditions)}): top-1 {_percent(base)} -> {_percent(row['top1'])}, "
    text += f"a top-1 {way} of {abs(drop):.3f}" + (f" ({beside})" if beside else "")
    short = f"{label} alone: top-1 {way} {abs(drop):.3f}" + (f" ({shown})" if shown else "")
    return _claim(model, item, text, short, value=drop, **_interval_values(bounds))


def _screen_claims(
    model: str, ablation: _Ablation, probe: str, item: str, tops: Sequence[TopK], ranked: pl.DataFrame
) -> list[dict[str, Any]]:
    """Claim 3 (synthetic; with ``tops``, against the spectral picks too) or claim 5 (natural text)."""
    none = ablation.get(probe, "none")
    screen = ablation.get(probe, "screen")
    random = ablation.random(probe, "screen", None, screen)
    control = random.control
    on = "" if probe == "synthetic" else "natural text: "
    if screen is None or not screen["n_ablated"] or screen["top1"] is None:
        text = f"untestable: empty screen (no head at the circuit threshold){_note(screen)}"
        short = f"{on}untestable, empty screen"
        rows = [_claim(model, item, text, short)]
        return rows + [_claim(model, f"{CLAIMS[3]}, K = {t.k}", text, short, k=t.k) for t in tops]
    base = none["top1"]
    drop = base - screen["top1"]
    moved = f"top-1 {_percent(base)} -> {_percent(screen['top1'])}"
    text = f"{on}ablating {_the_screen(screen['n_ablated'])} moves {moved} (drop {_pp(drop)})"
    short = f"{on}{_the_screen(screen['n_ablated'])} take{'s' if screen['n_ablated'] == 1 else ''} {moved}"
    bounds = interval(screen, "top1", excess=True)
    if why := _no_control(control, "the screen heads"):
        text += f"; untestable against random heads: {why}"
        short += "; no matched control" if control is not None else "; no matched random heads drawn"
        rows = [_claim(model, item, text, short)]
    else:
        random_drop = base - control["top1"]
        ratio = drop / random_drop if random_drop > 0 else None
        verdict = f"{ratio:.1f}x" if ratio is not None else "random heads did not lower top-1, no ratio"
        caveat = _ratio_caveat(control, "top1") if ratio is not None else ("", "")
        draw0 = random.draw0(
            "top1", _percent, lambda top1: f"{drop / (base - top1):.1f}x" if drop > 0 and base - top1 > 0 else None
        )
        text += f"; matched random ({random.label}) -> {_percent(control['top1'])} (drop {_pp(random_drop)}"
        text += f"{draw0}): {verdict}{caveat[0]}" + _shortfall(control)
        short += f", matched random ({random.label}) {_percent(control['top1'])}: {verdict}{caveat[1]}"
        text, short = _with_interval(text, bounds, True), _with_interval(short, bounds, True)
        rows = [_claim(model, item, text, short, value=ratio, **_interval_values(bounds))]
    for top in tops:
        picks = ablation.get(probe, "spectral_top", top.k)
        row_item = f"{CLAIMS[3]}, K = {top.k}"
        if picks is None or picks["top1"] is None:
            text = f"not in {ABLATION}: no K = {top.k} rows"
            rows.append(_claim(model, row_item, text, f"against the top {top.k}: not run", k=top.k))
            continue
        picks_drop = base - picks["top1"]
        held = ranked.filter(pl.col("screen") & (pl.col("rank") <= top.k)).height
        if screen["n_ablated"] < picks["n_ablated"] and drop >= picks_drop:
            verdict = "distribution wins, the screen does as much with fewer heads"
        elif drop > picks_drop:
            verdict = "the screen lowers it more"
        else:
            verdict = "the picks lower it more"
        text = f"the screen ({_plural(screen['n_ablated'], 'head')}) lowers top-1 by {_pp(drop)}, the top {top.k} "
        text += f"({_held_text(picks['n_ablated'], held)}) by {_pp(picks_drop)}: {verdict}"
        short = f"against the top {top.k} ({_pp(picks_drop)}): {verdict.split(',')[0]}"
        rows.append(_claim(model, row_item, text, short, k=top.k, value=drop - picks_drop))
    return rows


def _held_text(n: float, held: int) -> str:
    """``2 heads, 1 of them a screen head``; ``1 head, not a screen head``."""
    if held == 0:
        return _plural(n, "head") + (", not a screen head" if n == 1 else ", none of them a screen head")
    return _plural(n, "head") + (", 1 of them a screen head" if held == 1 else f", {held} of them screen heads")


def _note(row: dict | None) -> str:
    return f" ({row['note']})" if row and row.get("note") else ""


# --- across models ------------------------------------------------------------


def bos_layers(final: pl.DataFrame, column: str = "class") -> tuple[float, list[int], int | None]:
    """Whole-model BOS fraction, BOS heads per layer (layer 0 first) and the first layer holding one, of one
    model's heads at one revision (``column``: ``class``, or ``natural_class`` for natural text)."""
    n_layers = int(final["layer"].max()) + 1
    bos = final.filter(pl.col(column) == C.BOS_CLASS).group_by("layer").len()
    counts = dict(zip(bos["layer"].to_list(), bos["len"].to_list(), strict=True))
    per_layer = [int(counts.get(layer, 0)) for layer in range(n_layers)]
    first = next((layer for layer, count in enumerate(per_layer) if count), None)
    return sum(per_layer) / final.height, per_layer, first


def across_models(heads: pl.DataFrame, milestones: pl.DataFrame) -> pl.DataFrame:
    """One row per model (``ACROSS_MODELS_COLUMNS``) at the milestones table's final revision."""
    rows = []
    for row in milestones.iter_rows(named=True):
        final = heads.filter((pl.col("model") == row["model"]) & (pl.col("revision") == row["final_revision"]))
        if final.height == 0:
            raise DataError(f"{row['model']}: heads.parquet has no heads at its final revision {row['final_revision']}")
        fraction, per_layer, first = bos_layers(final)
        natural = None
        if "natural_class" in final.columns and final["natural_class"].null_count() == 0:
            natural = bos_layers(final, "natural_class")[0]
        rows.append(
            {
                "model": row["model"],
                "final_revision": row["final_revision"],
                "n_heads": final.height,
                "bos_fraction": fraction,
                "natural_bos_fraction": natural,
                "bos_per_layer": per_layer,
                "first_bos_layer": first,
                "layers_without_bos": row["layers_without_bos"],
                "screen_size": row["final_circuit_size"],
                "induction_onset_tokens": row["induction_onset_tokens"],
                "bos_t50_tokens": row["bos_t50_tokens"],
                "bos_to_induction_ratio": row["bos_to_induction_ratio"],
            }
        )
    return pl.DataFrame(rows, schema=_ACROSS_SCHEMA)


def _tokens_text(revision: str | None, tokens: int | None, fallback: str) -> str:
    return f"{revision} ({human_tokens(tokens)} tokens)" if revision else fallback


def across_rows(across: pl.DataFrame, milestones: pl.DataFrame) -> list[dict[str, Any]]:
    """The cross-model table as findings rows (``across models``), one group of rows per model."""
    rows = []
    facts = {row["model"]: row for row in milestones.iter_rows(named=True)}
    for row in across.iter_rows(named=True):
        model, fact = row["model"], facts[row["model"]]
        n = row["n_heads"]
        bos = round(row["bos_fraction"] * n)
        rows.append(
            _row(
                model,
                SECTION_ACROSS,
                "BOS fraction (synthetic)",
                f"{row['bos_fraction']:.1%} ({bos}/{n})",
                HEADS,
                value=row["bos_fraction"],
                count=bos,
                total=n,
            )
        )
        natural = row["natural_bos_fraction"]
        text = "not measured (probes.natural_text)" if natural is None else f"{natural:.1%} ({round(natural * n)}/{n})"
        rows.append(
            _row(
                model,
                SECTION_ACROSS,
                "BOS fraction (natural text)",
                text,
                HEADS,
                value=natural,
                count=None if natural is None else round(natural * n),
                total=n,
            )
        )
        per_layer = " ".join(map(str, row["bos_per_layer"]))
        rows.append(_row(model, SECTION_ACROSS, "BOS heads per layer", per_layer, HEADS))
        first = row["first_bos_layer"]
        text = "no BOS head" if first is None else f"L{first}"
        rows.append(
            _row(
                model,
                SECTION_ACROSS,
                "first layer with a BOS head",
                text,
                HEADS,
                value=None if first is None else float(first),
            )
        )
        never = row["layers_without_bos"] or []
        floor = {0, 1} <= set(never)
        text = ("layers " + ", ".join(map(str, never)) if never else "none") + (
            ": the layer-0/1 floor holds" if floor else ": no layer-0/1 floor"
        )
        rows.append(
            _row(
                model, SECTION_ACROSS, "layers without a BOS head at any revision", text, MILESTONES, value=float(floor)
            )
        )
        rows.append(
            _row(
                model,
                SECTION_ACROSS,
                "screen size",
                _plural(row["screen_size"], "head"),
                MILESTONES,
                value=float(row["screen_size"]),
            )
        )
        onset = _tokens_text(fact["induction_onset_revision"], fact["induction_onset_tokens"], "not reached")
        rows.append(
            _row(
                model,
                SECTION_ACROSS,
                "induction onset",
                onset,
                MILESTONES,
                value=_float(fact["induction_onset_tokens"]),
            )
        )
        t50 = bos_t50_text(fact)
        rows.append(_row(model, SECTION_ACROSS, "BOS t50", t50, MILESTONES, value=_float(fact["bos_t50_tokens"])))
        ratio = row["bos_to_induction_ratio"]
        text = f"{ratio:.3g}x" if ratio is not None else "undefined (a milestone not reached)"
        rows.append(_row(model, SECTION_ACROSS, "BOS t50 / induction onset", text, MILESTONES, value=ratio))
    return rows


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)


# --- one run ------------------------------------------------------------------


def model_rows(
    model: str,
    spectral: pl.DataFrame,
    heads: pl.DataFrame,
    final_ablation: pl.DataFrame | None,
    spectral_top_k: Sequence[int | float | str],
    thresholds: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every per-model section of one model (``spectral``: its rows of the spectral table; ``heads``: its
    classified heads, any revisions; ``final_ablation``: its rows of the final-ablation table or None;
    ``thresholds``: its classification thresholds, which name the screen's cut and join the selectivity levels)."""
    if spectral.height == 0:
        raise DataError(f"{model}: {SPECTRAL} has no rows for it")
    revision = spectral["final_revision"][0]
    final = heads.filter(pl.col("revision") == revision)
    if final.height == 0:
        raise DataError(f"{model}: heads.parquet has no heads at {revision}, the final revision of {SPECTRAL}")
    unranked = unranked_note(spectral)
    if unranked is not None:  # no integral: no precision, K or claim of the ranking, said once
        return [
            _row(model, SECTION_PRECISION, "not ranked", unranked, SPECTRAL),
            *selectivity_rows(model, final, thresholds),
        ]
    tops = resolve_top_k(spectral_top_k, spectral["integral"].to_list())
    return [
        *precision_rows(model, spectral),
        *k_rows(model, spectral, tops),
        *class_rows(model, spectral, tops),
        *selectivity_rows(model, final, thresholds),
        *screen_rows(model, spectral, tops, (thresholds or {}).get("induction_circuit")),
        *ablation_claims(model, final_ablation, spectral, tops),
    ]


def model_paragraph(model: str, rows: pl.DataFrame, spectral: pl.DataFrame, tops: Sequence[TopK]) -> str:
    """One short paragraph stating each of one model's findings with its number, from its ``rows`` (with the
    claims' ``short`` phrases)."""
    n = spectral.height
    revision = spectral["final_revision"][0]
    precision = rows.filter(pl.col("section") == SECTION_PRECISION)
    shown = precision.filter(pl.col("k").is_in([5, *(t.k for t in tops), n]))
    at = ", ".join(
        f"{value:.2f} at {'all ' + str(n) + ' heads' if k == n else f'K = {k}'}"
        for k, value in zip(shown["k"], shown["value"], strict=True)
    )
    parts = [f"{model}, final revision {revision} ({n} heads): precision of the spectral ranking {at}"]
    non_bos = rows.filter((pl.col("section") == SECTION_NON_BOS) & pl.col("k").is_in([t.k for t in tops]))
    if non_bos.height:
        at = ", ".join(f"{v:.2f} at K = {k}" for k, v in zip(non_bos["k"], non_bos["value"], strict=True))
        parts[-1] += f", without BOS heads {at}"
    elbow = values_of(rows, SECTION_K, "elbow")
    heuristic = rows.filter((pl.col("section") == SECTION_K) & (pl.col("item") == "17-19% heuristic"))
    if elbow is not None and heuristic.height:
        parts[-1] += f"; elbow K = {elbow:g} (17-19% heuristic: {_range(heuristic['count'][0], heuristic['total'][0])})"
    claims = rows.filter(pl.col("section") == SECTION_CLAIMS)
    if claims["short"].n_unique() == 1:
        parts.append(f"The five ablation claims: {claims['short'][0]}")
        return ". ".join(parts) + "."
    by_claim: dict[str, list[str]] = {}
    for item, short in zip(claims["item"], claims["short"], strict=True):
        shorts = by_claim.setdefault(item.split(".")[0], [])
        if short not in shorts:
            shorts.append(short)
    parts += [f"({number}) {'; '.join(shorts)}" for number, shorts in by_claim.items()]
    return ". ".join(parts) + "."


def values_of(rows: pl.DataFrame, section: str, item: str) -> float | None:
    """The value of one row of ``rows`` (None when absent)."""
    found = rows.filter((pl.col("section") == section) & (pl.col("item") == item))
    return found["value"][0] if found.height else None


def findings(
    spectral: pl.DataFrame,
    heads: pl.DataFrame,
    milestones: pl.DataFrame,
    final_ablation: pl.DataFrame | None,
    spectral_top_k: Sequence[int | float | str],
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
) -> Findings:
    """A run's :class:`Findings` from its spectral, heads, milestones and (optional) final-ablation tables.

    ``spectral_top_k``: the run's ``ablation.spectral_top_k`` (counts, shares, ``elbow``); ``thresholds``: per
    model its classification thresholds (``class_selectivity``, ``induction_circuit``: they name the screen's
    cut and join the study's selectivity levels).
    """
    rows: list[dict[str, Any]] = []
    paragraphs = {}
    models = spectral["model"].unique(maintain_order=True).to_list()
    for model in models:
        own = spectral.filter(pl.col("model") == model)
        table = None
        if final_ablation is not None:
            table = final_ablation.filter(pl.col("model") == model)
        own_thresholds = (thresholds or {}).get(model) or {}
        model_table = pl.DataFrame(
            model_rows(model, own, heads.filter(pl.col("model") == model), table, spectral_top_k, own_thresholds),
            schema={**_SCHEMA, "short": pl.String},
        )
        rows += model_table.drop("short").to_dicts()
        if (unranked := unranked_note(own)) is not None:
            paragraphs[model] = f"{model}, final revision {own['final_revision'][0]}: {unranked}."
            continue
        tops = resolve_top_k(spectral_top_k, own["integral"].to_list())
        paragraphs[model] = model_paragraph(model, model_table, own, tops)
    across = across_models(heads, milestones.filter(pl.col("model").is_in(models)))
    if len(models) > 1:
        rows += across_rows(across, milestones)
    frame = pl.DataFrame(rows, schema=_SCHEMA).select(C.FINDINGS_COLUMNS)
    return Findings(rows=frame, across_models=across.select(C.ACROSS_MODELS_COLUMNS), paragraphs=paragraphs)


# --- files ----------------------------------------------------------------------


def _across_cells(across: pl.DataFrame) -> list[dict[str, str]]:
    cells = []
    for row in across.iter_rows(named=True):
        natural = row["natural_bos_fraction"]
        ratio = row["bos_to_induction_ratio"]
        cells.append(
            {
                "model": row["model"],
                "final revision": row["final_revision"],
                "heads": str(row["n_heads"]),
                "BOS (synthetic)": f"{row['bos_fraction']:.1%}",
                "BOS (natural text)": "not measured" if natural is None else f"{natural:.1%}",
                "BOS heads per layer": " ".join(map(str, row["bos_per_layer"])),
                "first BOS layer": "none" if row["first_bos_layer"] is None else f"L{row['first_bos_layer']}",
                "layers never BOS": " ".join(map(str, row["layers_without_bos"] or [])) or "none",
                "screen": str(row["screen_size"]),
                "induction onset": human_tokens(row["induction_onset_tokens"])
                if row["induction_onset_tokens"] is not None
                else "not reached",
                "BOS t50": human_tokens(row["bos_t50_tokens"]) if row["bos_t50_tokens"] is not None else "not reached",
                "t50 / onset": "–" if ratio is None else f"{ratio:.3g}x",
            }
        )
    return cells


TITLE = "Findings: the study's summaries, per model and across models"
INTRO = (
    "Every number here is computed from this run's tables, named beside it (findings.csv holds each with its "
    "value); docs/methods.md says how. A claim the run cannot test says why."
)


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def findings_markdown(result: Findings, spectral_top_k: Sequence[int | float | str]) -> str:
    """``findings.md``: the cross-model table (more than one model), then per model its paragraph and sections."""
    lines = [f"# {TITLE}", "", INTRO, "", f"Spectral top K (ablation.spectral_top_k): {list(spectral_top_k)}.", ""]
    models = list(result.paragraphs)
    if len(models) > 1:
        cells = _across_cells(result.across_models)
        header = list(cells[0])
        lines += ["## Across models", "", f"From {HEADS} and {MILESTONES}.", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md_cell(cell[h]) for h in header) + " |" for cell in cells]
        lines.append("")
    for model in models:
        lines += [f"## {model}", "", result.paragraphs[model], ""]
        own = result.rows.filter(pl.col("model") == model)
        for section in C.FINDINGS_SECTIONS[:-1]:
            part = own.filter(pl.col("section") == section)
            if part.height == 0:
                continue
            lines += [f"### {section}", "", "| item | finding | from |", "|---|---|---|"]
            lines += [
                f"| {_md_cell(item)} | {_md_cell(text)} | {_md_cell(source)} |"
                for item, text, source in part.select("item", "text", "source").rows()
            ]
            lines.append("")
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; line-height: 1.45;
       margin: 0; padding: 1rem 1.5rem; color: #1f2937; max-width: 72rem; box-sizing: border-box; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.2rem; margin-top: 2rem; } h3 { font-size: 1rem; }
p { max-width: 60rem; overflow-wrap: anywhere; }
.table { width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.8rem; max-width: 100%; }
th, td { border: 1px solid #d1d5db; padding: 0.2rem 0.45rem; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
th { background: #f3f4f6; }
details { margin: 0.5rem 0 1rem; } summary { cursor: pointer; color: #374151; }
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], css_class: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    table = f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="table">{table}</div>'


def findings_html(result: Findings, spectral_top_k: Sequence[int | float | str]) -> str:
    """The report's Findings page: the cross-model table, one paragraph per model, then each model's sections."""
    parts = [f"<h1>{html.escape(TITLE)}</h1>", f"<p>{html.escape(INTRO)}</p>"]
    models = list(result.paragraphs)
    if len(models) > 1:
        cells = _across_cells(result.across_models)
        header = list(cells[0])
        parts += [
            "<h2>Across models</h2>",
            f"<p>From {HEADS} and {MILESTONES}.</p>",
            _html_table(header, [[cell[h] for h in header] for cell in cells], "across"),
        ]
    parts.append("<h2>Per model</h2>")
    parts += [f'<p class="paragraph">{html.escape(result.paragraphs[model])}</p>' for model in models]
    parts.append(f"<p>Spectral top K (ablation.spectral_top_k): {html.escape(str(list(spectral_top_k)))}.</p>")
    for model in models:
        parts.append(f"<h2>{html.escape(model)}: every finding</h2>")
        own = result.rows.filter(pl.col("model") == model)
        for section in C.FINDINGS_SECTIONS[:-1]:
            part = own.filter(pl.col("section") == section)
            if part.height:
                parts.append(f"<h3>{html.escape(section)}</h3>")
                parts.append(
                    _html_table(["item", "finding", "from"], part.select("item", "text", "source").rows(), "findings")
                )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Findings</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def read_findings(
    spectral_path: Path,
    heads_path: Path,
    milestones_path: Path,
    final_ablation_path: Path | None,
    spectral_top_k: Sequence[int | float | str],
) -> Findings:
    """:func:`findings` of a run's table files (thresholds from the heads table's metadata)."""
    spectral, _ = read_table(spectral_path)
    heads, metadata = read_table(heads_path)
    milestones, _ = read_table(milestones_path)
    final_ablation = read_table(final_ablation_path)[0] if final_ablation_path is not None else None
    thresholds = {model: (run or {}).get("thresholds") or {} for model, run in (metadata.get("models") or {}).items()}
    return findings(spectral, heads, milestones, final_ablation, spectral_top_k, thresholds)


def write_findings(
    result: Findings, spectral_top_k: Sequence[int | float | str], csv: Path, markdown: Path, page: Path
) -> None:
    """Write ``findings.csv``, ``findings.md`` and the report's ``findings.html`` atomically."""
    write_csv(result.rows, csv)
    atomic_write_text(markdown, findings_markdown(result, spectral_top_k))
    atomic_write_text(page, findings_html(result, spectral_top_k))
