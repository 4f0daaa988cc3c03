"""Figures of the emergence tables (matplotlib, written atomically as PNG or SVG by the path's suffix)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.colors import BoundaryNorm  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.textpath import TextToPath  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)

from circuitsweep.errors import DataError  # noqa: E402
from circuitsweep.io import contracts as C  # noqa: E402
from circuitsweep.io.atomic import atomic_path  # noqa: E402
from circuitsweep.milestones.text import bos_peak_text, human_tokens  # noqa: E402

#: Colour of each head class in the trajectory figure (``none``: grey, drawn first).
CLASS_COLOURS: dict[str, str] = {
    "first": "tab:blue",
    "induction": "tab:red",
    "duplicate": "tab:purple",
    "previous": "tab:orange",
    "self": "tab:brown",
    "local": "tab:green",
    C.NO_CLASS: "0.75",
}


def _save(figure: plt.Figure, path: Path) -> None:
    """Write ``figure`` atomically; the format follows the suffix (``.png`` or ``.svg``)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=130, bbox_inches="tight")
    plt.close(figure)


def _token_ticks(value: float, _position: object = None) -> str:
    return "" if value < 0 else human_tokens(value)


#: Mantissas of the token ticks, densest first: the densest that gives at most ``_MAX_TICKS`` positive ticks is used.
_TICK_MANTISSAS: tuple[tuple[float, ...], ...] = ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,))
_MAX_TICKS = 6


def token_ticks(low: float, high: float, last: float | None = None) -> list[float]:
    """Readable tick positions for a token axis from ``low`` (> 0) to ``high``: 0, then 1-2-5 (or 1-3, or powers of
    ten, whichever gives at most six) times powers of ten inside the range; never fewer than two positive ticks.
    Where too few round values fall inside, ``low`` and ``last`` (the last swept revision; default ``high``) are
    ticked too, so that every tick but 0 names a swept count or a round one, never just the axis' end."""
    last = float(high if last is None else last)
    if high <= low:
        return [0.0, float(low)]
    ticks: list[float] = []
    for mantissas in _TICK_MANTISSAS:
        ticks = [
            m * 10.0**k
            for k in range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
            for m in mantissas
            if low <= m * 10.0**k <= high
        ]
        if len(ticks) <= _MAX_TICKS:
            break
    if len(ticks) < 2:
        ticks = sorted({float(low), *ticks, last})
    return [0.0, *ticks]


def _token_axis(axis: plt.Axes, tokens: pl.Series | np.ndarray, start: float = 0.0) -> None:
    """Log token axis fitted to the swept tokens that still shows step 0; ticks in human units.

    Below the smallest positive count the axis is linear and compressed (a quarter
    decade wide), so the swept revisions fill the axis; it ends just past the last
    revision. The axis starts at ``start`` tokens (0: no negative tick in the margin).
    """
    tokens = np.asarray(tokens, dtype=float)
    positive = tokens[tokens > 0]
    threshold = float(positive.min()) if positive.size else 1.0
    right = max(float(tokens.max(initial=0)) * 1.15, threshold * 1.15)
    axis.set_xscale("symlog", linthresh=threshold, linscale=0.25)
    axis.set_xlim(left=start, right=right)
    axis.xaxis.set_major_locator(FixedLocator(token_ticks(threshold, right, float(tokens.max(initial=0)))))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.xaxis.set_major_formatter(FuncFormatter(_token_ticks))
    axis.set_xlabel("training tokens (log; step 0 at the left)")
    axis.grid(True, which="major", alpha=0.3)


@dataclass(frozen=True)
class MilestoneMark:
    """How one milestone is marked: the milestones column of its tokens, the curve it sits on, its marker style.

    ``hollow``: drawn as an outline in the model's colour, under the filled marks,
    so a filled mark at the same revision stays visible inside it.
    """

    column: str
    curve: str
    marker: str
    size: float
    label: str
    hollow: bool = False


#: Milestones marked on the emergence curves: hollow marks under filled ones, and among those the smaller on top,
#: so marks of milestones at one revision (a first BOS head that is also BOS t50) all stay visible.
MILESTONE_MARKS: tuple[MilestoneMark, ...] = (
    MilestoneMark("first_bos_head_tokens", "bos_fraction", "^", 10, "first BOS head"),
    MilestoneMark("first_late_bos_head_tokens", "bos_fraction", "v", 10, "first new BOS head after onset"),
    MilestoneMark("bos_t50_tokens", "bos_fraction", "*", 17, "BOS t50"),
    MilestoneMark("early_screen_tokens", "induction_selective_heads", "D", 17, "early screen", hollow=True),
    MilestoneMark("induction_onset_tokens", "induction_selective_heads", "P", 11, "induction onset"),
    MilestoneMark("causal_tokens", "induction_selective_heads", "s", 19, "causal", hollow=True),
    MilestoneMark(
        "causal_full_control_tokens", "induction_selective_heads", "s", 8, "first causal with a full control"
    ),
)

#: The milestones-table name of each marked milestone (as ``contracts.REFINE_MILESTONES`` and the bracket table).
_MARK_MILESTONES: dict[str, str] = {
    "first_bos_head_tokens": "first_bos_head",
    "first_late_bos_head_tokens": "first_late_bos_head",
    "bos_t50_tokens": "bos_t50",
    "early_screen_tokens": "early_screen",
    "induction_onset_tokens": "induction_onset",
    "causal_tokens": "causal",
    "causal_full_control_tokens": "causal_full_control",
}


def _marked(row: Mapping[str, Any], column: str) -> bool:
    """Whether ``column`` of a milestones row gets its own mark: the first new BOS head after the onset only where
    it is a milestone apart from the first BOS head (:func:`text.late_bos_apart`)."""
    from circuitsweep.milestones.text import late_bos_apart

    return column != "first_late_bos_head_tokens" or late_bos_apart(row)


def _mark_style(mark: MilestoneMark, colour: str | tuple) -> dict:
    if mark.hollow:
        return {"markerfacecolor": "none", "markeredgecolor": colour, "markeredgewidth": 2.2}
    return {"markerfacecolor": colour, "markeredgecolor": "black", "markeredgewidth": 1.0}


def emergence_plot(
    curves: pl.DataFrame,
    path: Path,
    milestones: pl.DataFrame | None = None,
    bos_level: float = 0.5,
    brackets: pl.DataFrame | None = None,
    groups: dict[str, str] | None = None,
) -> None:
    """Write :func:`emergence_figure` to ``path`` (``groups``: model -> group, one row and one band per group;
    ``brackets``: a refinement's bracket table, whose statuses label the milestones' brackets)."""
    _save(emergence_figure(curves, milestones, bos_level, brackets=brackets, groups=groups), path)


def draw_group_bands(axes: dict[str, plt.Axes], curves: pl.DataFrame, groups: dict[str, str]) -> None:
    """Each group of models (``group:``) as a shaded band from the lowest to the highest of its curves.

    ``axes``: the emergence panels by curve column; ``groups``: model -> group.
    At each token count the band spans the group's models that have a revision there.
    """
    from circuitsweep.milestones.groups import group_bands

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for column, axis in axes.items():
        bands = group_bands(curves, groups, column)
        for i, ((group,), band) in enumerate(bands.group_by("group", maintain_order=True)):
            colour = colours[i % len(colours)]
            axis.fill_between(
                band["tokens"],
                band["low"],
                band["high"],
                color=colour,
                alpha=0.2,
                linewidth=0,
                label=f"{group} (min-max)" if column == "bos_fraction" else None,
            )
    axes["bos_fraction"].legend(fontsize=8, loc="upper left")


#: The panel each milestone's bracket is drawn on.
_BRACKET_PANELS = {
    "first_bos_head": "bos_fraction",
    "first_late_bos_head": "bos_fraction",
    "bos_t50": "bos_fraction",
    "induction_onset": "induction_selective_heads",
    "early_screen": "induction_selective_heads",
    "causal": "induction_selective_heads",
}


def curve_brackets(curves: pl.DataFrame, milestones: pl.DataFrame) -> pl.DataFrame:
    """Each reached milestone's checkpoint bracket: the swept revision before it and its own (docs/methods.md).

    Columns ``model``, ``milestone``, ``status`` (``first`` when it is the first swept revision, else
    ``swept``), ``lower_tokens`` (null for ``first``) and ``upper_tokens``. The lower end is the milestones
    table's ``<milestone>_previous_tokens`` where it has that column (``milestones.uncertainty``), else the
    model's swept revision before the milestone's in ``curves``; so every run has them, refined or not.
    """
    rows = []
    for row in milestones.iter_rows(named=True):
        tokens = curves.filter(pl.col("model") == row["model"]).sort("tokens")["tokens"].to_list()
        for column, milestone in _MARK_MILESTONES.items():
            upper = row.get(column)
            if upper is None or upper not in tokens or milestone not in _BRACKET_PANELS or not _marked(row, column):
                continue
            previous = f"{milestone}_previous_tokens"
            if previous in row:
                lower = row[previous]
            else:
                index = tokens.index(upper)
                lower = tokens[index - 1] if index else None
            status = "first" if lower is None else "swept"
            rows.append({"model": row["model"], "milestone": milestone, "status": status, "lower_tokens": lower,
                         "upper_tokens": upper})  # fmt: skip
    schema = {"model": pl.String, "milestone": pl.String, "status": pl.String, "lower_tokens": pl.Int64,
              "upper_tokens": pl.Int64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def draw_milestone_brackets(axes: dict[str, plt.Axes], curves: pl.DataFrame, brackets: pl.DataFrame) -> None:
    """Each bracketed milestone as a horizontal bar from its lower to its upper revision's tokens.

    ``axes``: the emergence panels by curve column; ``brackets``: rows of ``model``,
    ``milestone``, ``status``, ``lower_tokens`` and ``upper_tokens`` (a refinement's
    bracket table, ``contracts.BRACKET_COLUMNS``, or :func:`curve_brackets`). Bars stack
    below the curves, one row per model and milestone, in the model's line colour,
    labelled with the milestone, its marker at the upper end.
    """
    colours = {}
    for axis in axes.values():
        for line in axis.get_lines():
            if not line.get_label().startswith("_"):
                colours[line.get_label()] = line.get_color()
    markers = {_MARK_MILESTONES[mark.column]: mark for mark in MILESTONE_MARKS}
    limits = {panel: axis.get_ylim() for panel, axis in axes.items()}
    levels: dict[str, int] = {}
    for row in brackets.iter_rows(named=True):
        panel = _BRACKET_PANELS.get(row["milestone"])
        if row["upper_tokens"] is None or panel not in axes:
            continue
        bottom, top = limits[panel]
        levels[panel] = levels.get(panel, 0) + 1
        y = bottom - 0.07 * levels[panel] * (top - bottom)
        lower = row["lower_tokens"] if row["lower_tokens"] is not None else 0
        colour = colours.get(row["model"], "black")
        axis = axes[panel]
        axis.plot(
            [lower, row["upper_tokens"]], [y, y], color=colour, linewidth=2.5, marker="|", markersize=8, gid="bracket"
        )
        mark = markers.get(row["milestone"])
        if mark is not None:
            style = _mark_style(mark, colour)
            size = mark.size * 0.6
            axis.plot([row["upper_tokens"]], [y], marker=mark.marker, markersize=size, linestyle="none", zorder=5,
                      gid="bracket", **style)  # fmt: skip
        name = mark.label if mark is not None else row["milestone"].replace("_", " ")
        label = name + ("" if row["status"] == "swept" else f" ({row['status']})")
        gap = (mark.size * 0.6 / 2 if mark is not None else 0) + 4  # half the end marker, and a margin
        anchor, offset, side = row["upper_tokens"], gap, "left"
        if not _label_fits_right(axis, row["upper_tokens"], label, 6.5, gap):
            anchor, offset, side = lower, -4, "right"  # left of the bar, so it stays inside the panel
        axis.annotate(
            label, (anchor, y), xytext=(offset, 0), textcoords="offset points", fontsize=6.5, va="center", ha=side,
            gid="bracket",
        )  # fmt: skip
        axis.set_ylim(bottom - 0.07 * (levels[panel] + 0.8) * (top - bottom), top)


def _label_fits_right(axis: plt.Axes, x: float, label: str, fontsize: float, gap: float) -> bool:
    """Whether ``label`` written ``gap`` points right of data ``x`` ends inside ``axis``, its width measured in
    the default font at ``fontsize`` points."""
    figure = axis.get_figure()
    start = axis.transData.transform((x, 0))[0] + gap * figure.dpi / 72
    width_points, _, _ = TextToPath().get_text_width_height_descent(label, FontProperties(size=fontsize), False)
    return start + width_points * figure.dpi / 72 <= axis.get_window_extent().x1


def _no_negative_ticks(axis: plt.Axes) -> None:
    """Keep the y ticks at or above 0: the strip below 0 holds the brackets, not values."""
    ticks = [tick for tick in axis.get_yticks() if 0 <= tick <= axis.get_ylim()[1]]
    axis.yaxis.set_major_locator(FixedLocator(ticks))


def _emergence_rows(curves: pl.DataFrame, groups: dict[str, str] | None) -> list[tuple[str, list[str]]]:
    """The figure's rows: one per model, or per group for grouped models (``groups``: model -> group)."""
    rows: dict[str, list[str]] = {}
    for model in curves.sort("tokens")["model"].unique(maintain_order=True).to_list():
        rows.setdefault((groups or {}).get(model, model), []).append(model)
    return list(rows.items())


def unreached_milestones(row: Mapping[str, Any]) -> dict[str, list[str]]:
    """The milestones one row of the milestones table did not reach, in words, by the emergence panel they belong
    on: ``BOS t50 not reached (peak 0.31 at step250)``, ``causal: untestable``. Milestones the table has no
    column for (a run without ablation has no causal one) are left out."""
    notes: dict[str, list[str]] = {"bos_fraction": [], "induction_selective_heads": []}
    for mark in MILESTONE_MARKS:
        if mark.column not in row or row[mark.column] is not None:
            continue
        if not _marked(row, mark.column):
            continue
        if mark.column == "causal_tokens":
            state = row.get("causal_state") or "not reached"
            notes[mark.curve].append(f"causal: {state}")
        elif mark.column == "causal_full_control_tokens":
            if row.get("causal_tokens") is not None:
                notes[mark.curve].append("causal with a full control: not reached")
        elif mark.column == "bos_t50_tokens" and row.get("bos_peak_fraction") is not None:
            notes[mark.curve].append(f"BOS t50 not reached ({bos_peak_text(row)})")
        else:
            notes[mark.curve].append(f"{mark.label}: not reached")
    return notes


def _unreached_notes(axes: dict[str, plt.Axes], table: pl.DataFrame, colours: dict[str, tuple], named: bool) -> None:
    """Write :func:`unreached_milestones` of each model of ``table`` in the top left of its panel (in the model's
    colour, prefixed by its name when ``named``), so a milestone without a mark is still on the figure."""
    lines: dict[str, list[tuple[str, str]]] = {panel: [] for panel in axes}
    for row in table.iter_rows(named=True):
        for panel, notes in unreached_milestones(row).items():
            lines[panel] += [(f"{row['model']}: " * named + note, colours[row["model"]]) for note in notes]
    for panel, notes in lines.items():
        for index, (note, colour) in enumerate(notes):
            axes[panel].annotate(
                note, (0.01, 0.98), xycoords="axes fraction", xytext=(2, -2 - 10 * index), textcoords="offset points",
                va="top", fontsize=7.5, color=colour, gid="unreached",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )  # fmt: skip


def _level_label_side(bos: plt.Axes, rows: pl.DataFrame, level: float, top: float) -> str:
    """The end of the BOS panel (``"right"``, the default, or ``"left"``) where the label of the BOS t50 level,
    written just above its line, covers fewer of the panel's curve points; the left is taken only when it is clear
    of them and of the notes of unreached milestones in the top left. A curve that reaches the level late (BOS
    t50 in the study's order) passes under a right-hand label."""
    if rows.height == 0:
        return "right"
    points = np.column_stack([rows["tokens"].to_numpy(), rows["bos_fraction"].to_numpy()]).astype(float)
    x = bos.transAxes.inverted().transform(bos.transData.transform(points))[:, 0]
    y = points[:, 1]
    near = (y >= level - 0.03 * top) & (y <= level + 0.12 * top)
    right, left = int((near & (x > 0.55)).sum()), int((near & (x < 0.45)).sum())
    notes = any(text.get_gid() == "unreached" for text in bos.texts)
    return "left" if right > 0 and left == 0 and not notes else "right"


def emergence_figure(
    curves: pl.DataFrame,
    milestones: pl.DataFrame | None = None,
    bos_level: float = 0.5,
    brackets: pl.DataFrame | None = None,
    groups: dict[str, str] | None = None,
) -> plt.Figure:
    """BOS-head fraction and induction-selective head count against training tokens: a row per model (or per group
    of ``groups``, model -> group, with the group's min-max band), the two panels side by side.

    ``milestones``: the milestones table; each model's first BOS head, BOS t50, early
    screen, induction onset and causal revision are marked on its curve
    (:data:`MILESTONE_MARKS`) at the revision that reached them, and each one's
    checkpoint bracket (the swept revision before it to its own) is drawn as a bar
    under the curves (:func:`curve_brackets`; ``brackets``, a refinement's bracket
    table, replaces the rows it holds). ``bos_level``: the BOS t50 level, drawn as a
    dashed line; the BOS axis fits the data and that line. Each row's token axis
    fits its own revisions. ``figure.axes`` lists the BOS and induction panel of each row in turn.
    """
    layout = _emergence_rows(curves, groups)
    figure, grid = plt.subplots(
        len(layout), 2, figsize=(11, 1.0 + 3.1 * len(layout)), squeeze=False, layout="constrained"
    )
    handles: list[Line2D] = []
    colours = _model_colours(curves["model"].unique().to_list())
    table = milestones if milestones is not None else pl.DataFrame({"model": []}, schema={"model": pl.String})
    drawn = (
        curve_brackets(curves, table)
        if {mark.column for mark in MILESTONE_MARKS} & set(table.columns)
        else pl.DataFrame()
    )
    if brackets is not None and drawn.height:
        refined = brackets.select("model", "milestone").unique()
        drawn = pl.concat(
            [
                drawn.join(refined, on=["model", "milestone"], how="anti"),
                brackets.join(drawn.select("model", "milestone"), on=["model", "milestone"], how="semi")
                .select(drawn.columns)
                .cast(drawn.schema),
            ],  # fmt: skip
            how="vertical",
        )
    used: set[str] = set()
    top = max(float(curves["bos_fraction"].max() or 0.0), bos_level) * 1.12
    most = max(int(curves["induction_selective_heads"].max() or 0), 1)
    for (name, models), (bos, induction) in zip(layout, grid, strict=True):
        axes = {"bos_fraction": bos, "induction_selective_heads": induction}
        rows = curves.filter(pl.col("model").is_in(models)).sort("tokens")
        for model in models:
            curve = rows.filter(pl.col("model") == model)
            colour = colours[model]
            (line,) = bos.plot(curve["tokens"], curve["bos_fraction"], marker="o", markersize=3.5, label=model,
                               color=colour)  # fmt: skip
            induction.plot(curve["tokens"], curve["induction_selective_heads"], marker="o", markersize=3.5,
                           color=colour, label=model)  # fmt: skip
            handles.append(line)
        if groups and any(model in groups for model in models):
            draw_group_bands(axes, rows, {model: groups[model] for model in models if model in groups})
        for mark in MILESTONE_MARKS:
            if mark.column not in table.columns:
                continue
            for row in table.filter(pl.col("model").is_in(models)).iter_rows(named=True):
                tokens = row.get(mark.column)
                if tokens is None or not _marked(row, mark.column):
                    continue
                at = rows.filter((pl.col("model") == row["model"]) & (pl.col("tokens") == tokens))
                if at.height == 0:
                    continue
                axes[mark.curve].plot(
                    [tokens],
                    [at[mark.curve][0]],
                    marker=mark.marker,
                    markersize=mark.size,
                    linestyle="none",
                    zorder=(4 if mark.hollow else 5) + 1 / mark.size,  # smaller marks on top: both show
                    gid=f"milestone:{_MARK_MILESTONES[mark.column]}",
                    **_mark_style(mark, colours[row["model"]]),
                )
                used.add(mark.label)
        _unreached_notes(axes, table.filter(pl.col("model").is_in(models)), colours, len(models) > 1)
        bos.axhline(bos_level, color="0.35", linestyle="--", linewidth=1.0)
        bos.set_ylim(-0.03 * top, top)
        induction.set_ylim(-0.05 * most, 1.1 * most)
        induction.yaxis.set_major_locator(MaxNLocator(integer=True))
        for axis in (bos, induction):
            _token_axis(axis, rows["tokens"])
        side = _level_label_side(bos, rows, bos_level, top)
        bos.annotate(
            f"BOS t50 level ({bos_level:g})", (0.99 if side == "right" else 0.01, bos_level),
            xycoords=("axes fraction", "data"), xytext=(0, 3), textcoords="offset points", ha=side, fontsize=8,
            color="0.35", gid="bos-level",
        )  # fmt: skip
        bos.set_ylabel("BOS-head fraction\n(class first)")
        induction.set_ylabel("induction-selective heads\n(any class)")
        bos.set_title(name, loc="left", fontsize=10, fontweight="bold")
        if drawn.height:
            draw_milestone_brackets(axes, rows, drawn.filter(pl.col("model").is_in(models)))
        for axis in (bos, induction):
            _no_negative_ticks(axis)
    for axis in grid[:-1].ravel():
        axis.set_xlabel("")
    for mark in MILESTONE_MARKS:
        if mark.label in used:
            style = _mark_style(mark, "0.3")
            handles.append(
                Line2D(
                    [], [], marker=mark.marker, markersize=mark.size * 0.75, linestyle="none", label=mark.label, **style
                )
            )
    if drawn.height:
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                linewidth=2.5,
                marker="|",
                markersize=8,
                label="bracket: swept revision before the milestone to its own",
            )  # fmt: skip
        )
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    figure.suptitle("When do attention circuits form?")
    return figure


def _cell_edges(axis: plt.Axes, tokens: np.ndarray) -> np.ndarray:
    """Edges of one cell per revision on ``axis``'s token scale: halfway between neighbours as the axis draws them."""
    transform = axis.xaxis.get_transform()
    at = transform.transform(tokens.astype(float))
    if at.size == 1:
        edges = np.array([at[0] - 0.5, at[0] + 0.5])
    else:
        middle = (at[:-1] + at[1:]) / 2
        edges = np.concatenate([[2 * at[0] - middle[0]], middle, [2 * at[-1] - middle[-1]]])
    return transform.inverted().transform(edges)


def layer_heatmap(curves: pl.DataFrame, model: str, path: Path, milestones: pl.DataFrame | None = None) -> None:
    """Write :func:`heatmap_figure` to ``path``."""
    _save(heatmap_figure(curves, model, milestones), path)


#: Milestones drawn as vertical lines on each heatmap panel: (milestones column, label, line style).
_HEATMAP_MARKS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "bos_per_layer": (("first_bos_head_tokens", "first BOS head", ":"), ("bos_t50_tokens", "BOS t50", "--")),
    "induction_per_layer": (("induction_onset_tokens", "induction onset", "-."),),
}


def heatmap_figure(curves: pl.DataFrame, model: str, milestones: pl.DataFrame | None = None) -> plt.Figure:
    """Per-layer BOS and induction head counts of one model, layer x training tokens, on one colour scale.

    Each revision is a cell on the token axis; ``milestones`` (the milestones
    table) adds the model's first BOS head, BOS t50 and induction onset as lines, each at the left edge of its
    revision's cell, so that every cell right of a line is at or after the milestone. Each has its own line style.
    """
    curve = curves.filter(pl.col("model") == model).sort("tokens", "step")
    if curve.height == 0:
        raise ValueError(f"no emergence rows for model {model!r}")
    columns = ("bos_per_layer", "induction_per_layer")
    counts = {column: np.array(curve[column].to_list(), dtype=np.int64).T for column in columns}  # [layers, revisions]
    top = max(int(c.max()) for c in counts.values())
    norm = BoundaryNorm(np.arange(-0.5, top + 1.5), plt.get_cmap("viridis").N)
    row = {}
    if milestones is not None:
        found = milestones.filter(pl.col("model") == model)
        row = found.row(0, named=True) if found.height else {}
    tokens = curve["tokens"].to_numpy()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True, layout="constrained")
    handles: dict[str, Line2D] = {}
    for axis, column, title in zip(axes, columns, ("BOS heads", "induction heads"), strict=True):
        _token_axis(axis, tokens)
        edges = _cell_edges(axis, tokens)
        layers = counts[column].shape[0]
        mesh = axis.pcolormesh(edges, np.arange(layers + 1) - 0.5, counts[column], cmap="viridis", norm=norm)
        axis.set_xlim(edges[0], edges[-1])
        axis.grid(False)
        axis.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(layers, 12)))
        axis.set_title(f"{model}: {title} per layer")
        for milestone, label, style in _HEATMAP_MARKS[column]:
            if row.get(milestone) is not None:
                cell = np.flatnonzero(tokens == row[milestone])
                at = edges[cell[0]] if cell.size else row[milestone]
                axis.axvline(at, color="white", linestyle=style, linewidth=2.0)
                axis.axvline(at, color="black", linestyle=style, linewidth=1.0)
                handles[label] = Line2D([], [], color="black", linestyle=style, label=label)
    axes[0].set_ylabel("layer")
    bar = figure.colorbar(mesh, ax=list(axes), label="heads (both panels)")
    bar.set_ticks(MaxNLocator(integer=True, nbins=min(top + 1, 8)).tick_values(0, top) if top else [0])
    bar.ax.minorticks_off()
    if handles:
        figure.legend(handles=list(handles.values()), loc="outside lower center", ncol=len(handles), fontsize=8)
    return figure


def head_trajectories(heads: pl.DataFrame, model: str, path: Path, class_selectivity: float | None = None) -> None:
    """Write :func:`trajectory_figure` to ``path``."""
    _save(trajectory_figure(heads, model, class_selectivity), path)


def trajectory_figure(heads: pl.DataFrame, model: str, class_selectivity: float | None = None) -> plt.Figure:
    """Every head's best selectivity (max over targets) against training tokens, coloured by its final class.

    ``heads``: the classified heads table; ``class_selectivity``: drawn as a dashed
    line (the class threshold) when given. Selectivity is a ratio, on a log axis.
    """
    rows = heads.filter(pl.col("model") == model).sort("tokens", "step")
    if rows.height == 0:
        raise ValueError(f"no classified heads for model {model!r}")
    rows = rows.with_columns(pl.max_horizontal(C.SELECTIVITY_COLUMNS).clip(lower_bound=1e-3).alias("best"))
    last = rows.filter(pl.col("tokens") == rows["tokens"].max())
    final = last.select("layer", "head", pl.col("class").alias("final"))
    rows = rows.join(final, on=["layer", "head"], how="left").with_columns(pl.col("final").fill_null(C.NO_CLASS))
    figure, axis = plt.subplots(figsize=(9, 5), layout="constrained")
    order = [C.NO_CLASS, *C.TARGETS]
    counts: dict[str, int] = {}
    for name in order:
        of_class = rows.filter(pl.col("final") == name)
        for _, head in of_class.group_by("layer", "head", maintain_order=True):
            axis.plot(
                head["tokens"],
                head["best"],
                color=CLASS_COLOURS[name],
                linewidth=0.8 if name == C.NO_CLASS else 1.2,
                alpha=0.5 if name == C.NO_CLASS else 0.85,
            )
            counts[name] = counts.get(name, 0) + 1
    handles = [Line2D([], [], color=CLASS_COLOURS[n]) for n in order if n in counts]
    labels = [f"{n} ({counts[n]})" for n in order if n in counts]
    if class_selectivity is not None:
        axis.axhline(class_selectivity, color="black", linestyle="--", linewidth=0.8)
        handles.append(Line2D([], [], color="black", linestyle="--", linewidth=0.8))
        labels.append(f"class threshold ({class_selectivity:g})")
    axis.set_yscale("log")
    axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_ylabel("best selectivity (max over targets)")
    _token_axis(axis, rows["tokens"])
    figure.legend(handles, labels, title="final class (heads)", fontsize=8, loc="outside right upper")
    axis.set_title(f"{model}: every head's selectivity across training")
    return figure


def spectral_plot(
    heads: pl.DataFrame, spectral: pl.DataFrame, model: str, path: Path, top_k: Sequence[int | float | str] = ()
) -> None:
    """Write :func:`spectral_figure` to ``path``."""
    _save(spectral_figure(heads, spectral, model, top_k), path)


#: Final classes in the spectral figure's order (its small multiples and legend).
_SPECTRAL_CLASSES: tuple[str, ...] = (*C.TARGETS, C.NO_CLASS)


def spectral_figure(
    heads: pl.DataFrame, spectral: pl.DataFrame, model: str, top_k: Sequence[int | float | str] = ()
) -> plt.Figure:
    """The spectral phase's ranking story: each head's participation-ratio integral against its rank, coloured by
    its final class, screen heads ringed, the top-K cut of each ``top_k`` drawn (left); every head's PR trajectory,
    a small panel per final class, screen heads in black (right).

    ``heads``: one model's classified heads (``layer``, ``head``, ``step``, ``tokens``, ``pr``);
    ``spectral``: its ranking (``SPECTRAL_COLUMNS``: integral, rank, final class, screen membership);
    ``top_k``: the final ablation's ``ablation.spectral_top_k`` (counts, shares of the heads or ``elbow``,
    resolved as the ablation does, :func:`circuitsweep.heads.spectral.resolve_top_k`); a K at or above the
    head count cuts nothing and is not drawn. An unranked model (too few revisions) gets the table's note in
    place of the ranking. ``figure.axes[0]`` is the ranking panel, then one panel per class present.
    """
    facts = spectral.filter(pl.col("model") == model).sort("rank", "layer", "head")
    if "model" in heads.columns:
        heads = heads.filter(pl.col("model") == model)
    rows = heads.select("layer", "head", "step", "tokens", "pr").join(
        facts.select("layer", "head", "final_class", "screen"), on=["layer", "head"], how="inner"
    )
    if rows.height == 0 or facts.height == 0:
        raise DataError(f"no participation ratios for model {model!r}")
    rows = rows.sort("tokens", "step")
    classes = [name for name in _SPECTRAL_CLASSES if name in set(facts["final_class"])]
    columns = 2 if len(classes) > 1 else 1
    grid_rows = -(-len(classes) // columns)
    figure = plt.figure(figsize=(13, max(4.8, 2.3 * grid_rows + 0.8)), layout="constrained")
    outer = figure.add_gridspec(1, 2, width_ratios=(1.15, 1.0))
    ranking = figure.add_subplot(outer[0])
    inner = outer[1].subgridspec(grid_rows, columns)
    _ranking_panel(ranking, facts, classes, top_k)
    ranking.set_title(f"{model}: heads ranked by their PR integral", fontsize=10)
    top = float(rows["pr"].max() or 1.0) * 1.05
    for index, name in enumerate(classes):
        axis = figure.add_subplot(inner[index // columns, index % columns])
        of_class = rows.filter(pl.col("final_class") == name)
        for (_, _, member), one in of_class.group_by("layer", "head", "screen", maintain_order=True):
            colour, width = ("black", 1.6) if member else (CLASS_COLOURS[name], 1.0)
            style = {"alpha": 0.9, "zorder": 3} if member else {"alpha": 0.6, "zorder": 2}
            axis.plot(one["tokens"], one["pr"], color=colour, linewidth=width, **style)
        count = of_class.select("layer", "head").n_unique()
        in_screen = of_class.filter(pl.col("screen")).select("layer", "head").n_unique()
        title = f"{name}: {count} head{'s' if count != 1 else ''}" + (
            f", {in_screen} in the screen (black)" if in_screen else ""
        )
        axis.set_title(title, fontsize=9, color=CLASS_COLOURS[name] if name != C.NO_CLASS else "0.3")
        axis.set_ylim(0, top)
        _token_axis(axis, rows["tokens"])
        axis.tick_params(labelsize=7)
        axis.xaxis.label.set_fontsize(7)
        if index % columns == 0:
            axis.set_ylabel("PR at the query", fontsize=8)
    figure.suptitle(f"{model}: the spectral phase (participation ratio of each head's output)", fontsize=11)
    return figure


def _ranking_panel(
    ranking: plt.Axes, facts: pl.DataFrame, classes: list[str], top_k: Sequence[int | float | str]
) -> None:
    """The left panel of :func:`spectral_figure`: integral against rank, screen heads ringed, top-K cuts dashed."""
    from circuitsweep.heads.spectral import resolve_top_k

    ranked = facts.filter(pl.col("rank").is_not_null())
    if ranked.height == 0:
        note = facts["note"][0] if "note" in facts.columns else None
        ranking.text(
            0.5, 0.5, "\n".join(textwrap.wrap(str(note or "not ranked"), 48)), transform=ranking.transAxes,
            ha="center", va="center", fontsize=9, color="0.3",
        )  # fmt: skip
        ranking.set_axis_off()
        return
    n_heads = ranked.height
    for name in classes:
        of_class = ranked.filter(pl.col("final_class") == name)
        ranking.scatter(
            of_class["rank"], of_class["integral"], s=28, color=CLASS_COLOURS[name], edgecolors="none", zorder=3,
            label=f"{name} ({of_class.height})",
        )  # fmt: skip
    screen = ranked.filter(pl.col("screen"))
    if screen.height:
        ranking.scatter(
            screen["rank"], screen["integral"], s=110, facecolors="none", edgecolors="black", linewidths=1.6,
            zorder=4, label=f"screen heads ({screen.height})",
        )  # fmt: skip
        for row in screen.iter_rows(named=True):
            ranking.annotate(
                f"L{row['layer']}H{row['head']}", (row["rank"], row["integral"]), xytext=(5, 4),
                textcoords="offset points", fontsize=7,
            )  # fmt: skip
    high = float(ranked["integral"].max() or 0.0)
    cuts = sorted(resolve_top_k(list(top_k), ranked["integral"].to_list()), key=lambda cut: cut.k)
    for level, cut in enumerate(cut for cut in cuts if cut.k < n_heads):
        ranking.axvline(cut.k + 0.5, color="0.25", linestyle="--", linewidth=1.2, gid="top_k", zorder=1.2)
        held = screen.filter(pl.col("rank") <= cut.k).height
        how = cut.describe(n_heads)
        # Integrals fall with rank, so the panel is empty below the top ranks and above the last ones: a cut
        # among the top half is labelled at the bottom on its right, one further down at the top on its left,
        # clear of the ringed picks' names.
        right = cut.k > n_heads / 2
        ranking.annotate(
            f"top {cut.k}: {held} of {screen.height} screen heads" + (f" ({how})" if how else ""),
            (cut.k + 0.5, high if right else 0.0), xycoords="data" if right else ranking.get_xaxis_transform(),
            xytext=(-3, -2 - 11 * level) if right else (3, 3 + 11 * level), textcoords="offset points",
            fontsize=7.5, va="top" if right else "bottom", ha="right" if right else "left", color="0.25",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0}, zorder=2,
        )  # fmt: skip
    uncut = "".join(f"; top {cut.k}: all {n_heads} heads, no cut" for cut in cuts if cut.k >= n_heads)
    ranking.set_xlim(0, n_heads + 1)
    ranking.xaxis.set_major_locator(MaxNLocator(integer=True))
    ranking.set_xlabel(f"rank by PR integral (1 = largest){uncut}")
    ranking.set_ylabel("integral of max(PR - 1, 0) over ln(tokens)")
    ranking.grid(True, alpha=0.3)
    ranking.legend(
        title="final class (heads)", fontsize=8, title_fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1),
        ncol=4, frameon=False,
    )  # fmt: skip


def _kind_order(kinds: list[str]) -> list[str]:
    """Score kinds with the primary (representational) first, then its variants, then the rest, alphabetically."""
    return sorted(kinds, key=lambda kind: (kind != "representational", not kind.startswith("representational"), kind))


def _model_colours(models: list[str]) -> dict[str, tuple]:
    """One colour per model, by its name's place among ``models`` sorted, so that the emergence, gap and scaling
    figures of one run give a model the same colour (tab10, then tab20 beyond ten models)."""
    palette = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    return {model: palette(i % palette.N) for i, model in enumerate(sorted(models))}


def _panels(count: int, width: float = 4.2, height: float = 3.2) -> tuple[plt.Figure, list[plt.Axes]]:
    """A grid of ``count`` panels, at most three per row; unused cells are hidden."""
    columns = min(count, 3)
    rows = -(-count // columns)
    figure, grid = plt.subplots(
        rows, columns, figsize=(width * columns + 1.8, height * rows), squeeze=False, layout="constrained"
    )
    axes = list(grid.ravel())
    for axis in axes[count:]:
        axis.set_visible(False)
    return figure, axes[:count]


#: Colour of the demonstration note: a light red, drawn under the data so it hides none of it.
DEMONSTRATION_COLOUR = "#d98c8c"


def demonstration_note(toys: Sequence[str], drawn: Sequence[str]) -> str:
    """The note on each panel of a primitive figure that draws toy models ``toys`` among ``drawn``: toy models
    have no tokenizer (their words are hashed to token ids), so their gaps exercise the pipeline and mean nothing."""
    if len(toys) == len(drawn):
        who = "toy models" if len(toys) > 1 else f"{toys[0]}: a toy model"
        return f"DEMONSTRATION ONLY\n{who}, no tokenizer:\nthese gaps carry no meaning"
    what = "a toy model" if len(toys) == 1 else "toy models"
    return f"DEMONSTRATION ONLY for\n{', '.join(toys)}:\n{what}, no tokenizer:\ntheir gaps carry no meaning"


def _demonstration_note(axes: Sequence[plt.Axes], drawn: list[str], demonstration: Sequence[str]) -> None:
    """When any drawn model is one of ``demonstration``, write :func:`demonstration_note` across every panel of
    ``axes`` (large, in :data:`DEMONSTRATION_COLOUR`, under the data, ``gid`` ``demonstration``): on the image
    itself, in every panel, so no crop or caption can lose it."""
    toys = [model for model in drawn if model in set(demonstration)]
    if not toys:
        return
    note = demonstration_note(toys, drawn)
    for axis in axes:
        axis.text(
            0.5, 0.5, note, transform=axis.transAxes, ha="center", va="center", fontsize=13, fontweight="bold",
            color=DEMONSTRATION_COLOUR, zorder=0.5, gid="demonstration", linespacing=1.3,
        )  # fmt: skip


def primitive_gap_plot(gaps: pl.DataFrame, path: Path, demonstration: Sequence[str] = ()) -> None:
    """Write :func:`primitive_gap_figure` to ``path``."""
    _save(primitive_gap_figure(gaps, demonstration), path)


def primitive_gap_figure(gaps: pl.DataFrame, demonstration: Sequence[str] = ()) -> plt.Figure:
    """Summary gap mean(0a) - mean(0b) against training tokens: one panel per score kind, one line per model.

    ``gaps``: the primitive gap table; the band is the Welch 95% interval. The
    models' legend sits outside the panels, one colour per model throughout.
    ``demonstration``: models whose gap means nothing (toys); drawing one puts
    :func:`demonstration_note` on the image.
    """
    missing = [
        c for c in ("layer", "model", "score_kind", "tokens", "gap", "ci_low", "ci_high") if c not in gaps.columns
    ]
    if missing:
        raise DataError(f"the primitive gap table has no column {', '.join(missing)}; give primitive_gaps.csv")
    summary = gaps.filter(pl.col("layer") == "summary").sort("model", "score_kind", "tokens")
    if summary.height == 0:
        raise DataError("the primitive gap table has no summary rows")
    kinds = _kind_order(summary["score_kind"].unique().to_list())
    colours = _model_colours(summary["model"].unique(maintain_order=True).to_list())
    figure, axes = _panels(len(kinds))
    for axis, kind in zip(axes, kinds, strict=True):
        for (model,), rows in summary.filter(pl.col("score_kind") == kind).group_by("model", maintain_order=True):
            axis.plot(rows["tokens"], rows["gap"], marker="o", markersize=3.5, color=colours[model], label=model)
            axis.fill_between(rows["tokens"], rows["ci_low"], rows["ci_high"], color=colours[model], alpha=0.15)
        axis.axhline(0.0, color="black", linewidth=0.8)
        _token_axis(axis, summary["tokens"])
        axis.set_title(kind.replace("_", " "), fontsize=10)
        axis.set_ylabel("gap: mean 0a - mean 0b")
    handles = [Line2D([], [], color=colour, marker="o", markersize=4, label=model) for model, colour in colours.items()]
    figure.legend(handles=handles, title="model", loc="outside right upper", fontsize=8)
    figure.suptitle("Primitive gap across training, per score kind (band: Welch 95% CI)")
    _demonstration_note(axes, list(colours), demonstration)
    return figure


#: Markers of the models in the scaling figure, in order (a colour and a shape per model).
_MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p")


def primitive_scaling_plot(
    table: pl.DataFrame, path: Path, kinds: tuple[str, ...] | None = None, demonstration: Sequence[str] = ()
) -> None:
    """Write :func:`primitive_scaling_figure` to ``path``."""
    _save(primitive_scaling_figure(table, kinds, demonstration), path)


def primitive_scaling_figure(
    table: pl.DataFrame, kinds: tuple[str, ...] | None = None, demonstration: Sequence[str] = ()
) -> plt.Figure:
    """The summary gap of each model's last revision against its parameters: one point per model, a panel per kind.

    ``table``: the primitive scaling table; ``kinds``: the score kinds drawn (default:
    every kind in the table). Models are separate points (a colour and a marker
    each), never joined: they differ in more than size. Error bars: the item +
    lexicon 95% interval where the table has it (representational kinds), else Welch's.
    ``demonstration``: as :func:`primitive_gap_figure`.
    """
    drawn = table.filter(pl.col("parameters").is_not_null() & pl.col("gap").is_not_nan())
    present = drawn["score_kind"].unique().to_list()
    kinds = tuple(kind for kind in (kinds or _kind_order(present)) if kind in present)
    if not kinds:
        raise ValueError("the primitive scaling table has no gap with a parameter count")
    models = drawn.sort("parameters", "model")["model"].unique(maintain_order=True).to_list()
    colours = _model_colours(models)
    figure, axes = _panels(len(kinds), width=3.8, height=3.6)
    for axis, kind in zip(axes, kinds, strict=True):
        rows = drawn.filter(pl.col("score_kind") == kind)
        for index, model in enumerate(models):
            point = rows.filter(pl.col("model") == model)
            if point.height == 0:
                continue
            gap = point["gap"].to_numpy()
            low = point.select(pl.coalesce("ci_total_low", "ci_low")).to_series().to_numpy()
            high = point.select(pl.coalesce("ci_total_high", "ci_high")).to_series().to_numpy()
            marker = _MODEL_MARKERS[index % len(_MODEL_MARKERS)]
            axis.errorbar(
                point["parameters"], gap, yerr=[gap - low, high - gap], marker=marker, markersize=7,
                linestyle="none", capsize=3, color=colours[model],
            )  # fmt: skip
        axis.axhline(0.0, color="black", linewidth=0.8)
        axis.set_xscale("log")
        parameters = drawn["parameters"].to_numpy().astype(float)
        axis.set_xlim(parameters.min() / 2, parameters.max() * 2)
        axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(_token_ticks))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("parameters (log)")
        axis.set_ylabel("summary gap (mean 0a - mean 0b)")
        axis.set_title(kind.replace("_", " "), fontsize=10)
    handles = [
        Line2D([], [], color=colours[m], marker=_MODEL_MARKERS[i % len(_MODEL_MARKERS)], linestyle="none", label=m)
        for i, m in enumerate(models)
    ]
    figure.legend(handles=handles, title="model (last revision)", loc="outside lower center", ncol=min(len(models), 5))
    figure.suptitle("Primitive gap against model size (bars: 95% CI, items + lexicon where computed)", fontsize=10)
    _demonstration_note(axes, models, demonstration)
    return figure
