"""The study's five ablation claims for one model, measured from its rows of the final-revision ablation table."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from circuitsweep.errors import DataError
from circuitsweep.heads.spectral import TopK
from circuitsweep.milestones.findings.rows import (
    ABLATION,
    SECTION_CLAIMS,
    SPECTRAL,
    by_rank,
    finding_row,
    head_names,
    plural,
    the_screen,
)


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _pp(value: float) -> str:
    return f"{100 * value:.2f} pp"


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
        return f"; draw 0, the study's, {show(value)}" + (f", a ratio of {study} against it" if study else "")


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
    return f"; the matched draw is {plural(row['shortfall'], 'head')} short" if row and row["shortfall"] else ""


def _claim(model: str, item: str, text: str, short: str, source: str = ABLATION, **values: Any) -> dict[str, Any]:
    """A claim's row; ``short`` is its phrase in the model's paragraph (not a column of findings.csv)."""
    return {**finding_row(model, SECTION_CLAIMS, item, text, source, **values), "short": short}


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
    ranked = by_rank(spectral)
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
    outside = head_names(screen.filter(pl.col("rank") > k))
    held = f"the top {k} {'holds' if k == 1 else 'hold'} {inside} of {the_screen(screen.height)}"
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
    text = f"{on}ablating {the_screen(screen['n_ablated'])} moves {moved} (drop {_pp(drop)})"
    short = f"{on}{the_screen(screen['n_ablated'])} take{'s' if screen['n_ablated'] == 1 else ''} {moved}"
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
        draw0 = random.draw0("top1", _percent, lambda top1: f"{drop / (base - top1):.1f}x" if base - top1 > 0 else None)
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
        text = f"the screen ({plural(screen['n_ablated'], 'head')}) lowers top-1 by {_pp(drop)}, the top {top.k} "
        text += f"({_held_text(picks['n_ablated'], held)}) by {_pp(picks_drop)}: {verdict}"
        short = f"against the top {top.k} ({_pp(picks_drop)}): {verdict.split(',')[0]}"
        rows.append(_claim(model, row_item, text, short, k=top.k, value=drop - picks_drop))
    return rows


def _held_text(n: float, held: int) -> str:
    """``2 heads, 1 of them a screen head``; ``1 head, not a screen head``."""
    if held == 0:
        return plural(n, "head") + (", not a screen head" if n == 1 else ", none of them a screen head")
    return plural(n, "head") + (", 1 of them a screen head" if held == 1 else f", {held} of them screen heads")


def _note(row: dict | None) -> str:
    return f" ({row['note']})" if row and row.get("note") else ""
