"""The emergence figure: per model, the induction and BOS curves across training with every milestone marked and
bracketed, and a band per group of seeds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import TextToPath
from matplotlib.ticker import MaxNLocator

from circuitsweep.milestones.text import bos_peak_text
from circuitsweep.outputs.plots.axes import (
    model_colours,
    no_negative_ticks,
    save_figure,
    token_axis,
)


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


def _under_a_larger_mark(row: Mapping[str, Any], mark: MilestoneMark, tokens: int) -> bool:
    """Whether a larger filled mark of ``row``'s model sits at the same point as ``mark`` (the first BOS head at
    BOS t50 when both come at one revision)."""
    return any(
        other.curve == mark.curve and other.size > mark.size and not other.hollow
        and other.column in row and row[other.column] == tokens and _marked(row, other.column)
        for other in MILESTONE_MARKS
    )  # fmt: skip


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
    save_figure(emergence_figure(curves, milestones, bos_level, brackets=brackets, groups=groups), path)


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
    colours = model_colours(curves["model"].unique().to_list())
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
        shown = table.filter(pl.col("model").is_in(models))
        for mark in MILESTONE_MARKS:
            if mark.column not in table.columns:
                continue
            for row in shown.iter_rows(named=True):
                tokens = row.get(mark.column)
                if tokens is None or not _marked(row, mark.column):
                    continue
                style = _mark_style(mark, colours[row["model"]])
                if not mark.hollow and _under_a_larger_mark(row, mark, tokens):
                    style.update(markeredgecolor="white", markeredgewidth=1.6)  # else it vanishes in its colour
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
                    **style,
                )
                used.add(mark.label)
        _unreached_notes(axes, table.filter(pl.col("model").is_in(models)), colours, len(models) > 1)
        bos.axhline(bos_level, color="0.35", linestyle="--", linewidth=1.0)
        bos.set_ylim(-0.03 * top, top)
        induction.set_ylim(-0.05 * most, 1.1 * most)
        induction.yaxis.set_major_locator(MaxNLocator(integer=True))
        for axis in (bos, induction):
            token_axis(axis, rows["tokens"])
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
            no_negative_ticks(axis)
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
