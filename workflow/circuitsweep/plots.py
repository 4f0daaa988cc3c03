"""Figures of the emergence tables (matplotlib, written atomically as PNG or SVG by the path's suffix)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.colors import BoundaryNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from circuitsweep import contracts as C  # noqa: E402
from circuitsweep.atomic import atomic_path  # noqa: E402

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


def _token_axis(axis: plt.Axes, tokens: pl.Series) -> None:
    """Log token axis that still shows step 0: linear below the smallest positive count.

    The axis starts at 0 tokens, so no negative tick appears in the margin.
    """
    positive = tokens.filter(tokens > 0)
    threshold = float(positive.min()) if positive.len() else 1.0
    axis.set_xscale("symlog", linthresh=threshold)
    axis.set_xlim(left=0, right=max(float(tokens.max() or 0) * 1.5, threshold))
    axis.set_xlabel("training tokens (log; linear below the first checkpoint)")
    axis.grid(True, which="major", alpha=0.3)


#: Milestones marked on the emergence curves: (milestones column of the tokens, curve column, marker, label).
_MILESTONE_MARKS = (
    ("bos_t50_tokens", "bos_fraction", "*", "BOS t50"),
    ("induction_onset_tokens", "n_induction_heads", "P", "induction onset"),
    ("early_screen_tokens", "n_induction_heads", "D", "early screen"),
)


def emergence_plot(
    curves: pl.DataFrame,
    path: Path,
    milestones: pl.DataFrame | None = None,
    brackets: pl.DataFrame | None = None,
    groups: dict[str, str] | None = None,
) -> None:
    """Write :func:`emergence_figure` to ``path``, with :func:`draw_group_bands` for ``groups`` (model -> group)
    and :func:`draw_milestone_brackets` for ``brackets``."""
    figure = emergence_figure(curves, milestones)
    bos, induction = figure.axes[:2]
    panels = {"bos_fraction": bos, "n_induction_heads": induction}
    if groups:
        draw_group_bands(panels, curves, groups)
    if brackets is not None:
        draw_milestone_brackets(panels, curves, brackets)
    _save(figure, path)


def draw_group_bands(axes: dict[str, plt.Axes], curves: pl.DataFrame, groups: dict[str, str]) -> None:
    """Each group of models (``group:``) as a shaded band from the lowest to the highest of its curves.

    ``axes``: the emergence panels by curve column; ``groups``: model -> group.
    At each token count the band spans the group's models that have a revision there.
    """
    from circuitsweep.groups import group_bands

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


#: The panel each refined milestone's bracket is drawn on (``contracts.REFINE_MILESTONES``).
_BRACKET_PANELS = {
    "bos_t50": "bos_fraction",
    "induction_onset": "n_induction_heads",
    "early_screen": "n_induction_heads",
    "causal": "n_induction_heads",
}


def draw_milestone_brackets(axes: dict[str, plt.Axes], curves: pl.DataFrame, brackets: pl.DataFrame) -> None:
    """Each bracketed milestone as a horizontal bar from its lower to its upper revision's tokens.

    ``axes``: the emergence panels by curve column; ``brackets``: the bracket table
    (``contracts.BRACKET_COLUMNS``). Bars stack below the curves, one row per model
    and milestone, in the model's line colour, labelled with the milestone.
    """
    colours = {}
    for axis in axes.values():
        for line in axis.get_lines():
            if not line.get_label().startswith("_"):
                colours[line.get_label()] = line.get_color()
    limits = {panel: axis.get_ylim() for panel, axis in axes.items()}
    levels: dict[str, int] = {}
    for row in brackets.iter_rows(named=True):
        if row["upper_tokens"] is None or row["milestone"] not in _BRACKET_PANELS:
            continue
        panel = _BRACKET_PANELS[row["milestone"]]
        bottom, top = limits[panel]
        levels[panel] = levels.get(panel, 0) + 1
        y = bottom - 0.06 * levels[panel] * (top - bottom)
        lower = row["lower_tokens"] if row["lower_tokens"] is not None else 0
        colour = colours.get(row["model"], "black")
        axis = axes[panel]
        axis.plot([lower, row["upper_tokens"]], [y, y], color=colour, linewidth=2.5, marker="|", markersize=9)
        label = f"{row['milestone']} ({row['status']})"
        axis.annotate(label, (row["upper_tokens"], y), xytext=(4, -3), textcoords="offset points", fontsize=6)
        axis.set_ylim(bottom - 0.06 * (levels[panel] + 1) * (top - bottom), top)


def emergence_figure(curves: pl.DataFrame, milestones: pl.DataFrame | None = None) -> plt.Figure:
    """BOS-head fraction and induction-head count against training tokens, one line per model.

    ``milestones``: the milestones table; each model's BOS t50, induction onset and
    early screen are marked on its curve (star, plus, diamond), at the revision
    that reached them.
    """
    figure, (bos, induction) = plt.subplots(1, 2, figsize=(11, 4))
    colours: dict[str, str] = {}
    for (model,), curve in curves.sort("tokens").group_by("model", maintain_order=True):
        (line,) = bos.plot(curve["tokens"], curve["bos_fraction"], marker="o", markersize=4, label=model)
        induction.plot(curve["tokens"], curve["n_induction_heads"], marker="o", markersize=4, color=line.get_color())
        colours[model] = line.get_color()
    axes = {"bos_fraction": bos, "n_induction_heads": induction}
    used: dict[str, Line2D] = {}
    for row in (milestones if milestones is not None else pl.DataFrame()).iter_rows(named=True):
        curve = curves.filter(pl.col("model") == row["model"])
        for column, value, marker, label in _MILESTONE_MARKS:
            tokens = row.get(column)
            at = curve.filter(pl.col("tokens") == tokens) if tokens is not None else curve.clear()
            if at.height == 0:
                continue
            axes[value].plot(
                [tokens],
                [at[value][0]],
                marker=marker,
                markersize=16 if marker == "*" else 11,
                markerfacecolor=colours.get(row["model"], "black"),
                markeredgecolor="black",
                linestyle="none",
                zorder=5,
            )
            used[label] = Line2D([], [], marker=marker, color="black", markerfacecolor="white", linestyle="none")
    bos.set_ylabel("BOS-head fraction (class first)")
    bos.set_ylim(-0.02, 1.02)
    induction.set_ylabel("induction heads")
    most = max(int(curves["n_induction_heads"].max() or 0), 1)
    induction.set_ylim(-0.04 * most, 1.06 * most)
    induction.yaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in (bos, induction):
        _token_axis(axis, curves["tokens"])
    bos.legend(fontsize=8, loc="upper left")
    if used:
        induction.legend(list(used.values()), list(used), fontsize=8, loc="upper left", title="milestones")
    figure.suptitle("When do attention circuits form?")
    return figure


def _count_image(figure: plt.Figure, axis: plt.Axes, counts: np.ndarray) -> None:
    """A layer x revision image of head counts with integer colour steps and integer layer ticks."""
    top = max(int(counts.max()), 1)
    norm = BoundaryNorm(np.arange(-0.5, top + 1.5), plt.get_cmap("viridis").N)
    image = axis.imshow(counts, aspect="auto", origin="lower", cmap="viridis", norm=norm, interpolation="nearest")
    bar = figure.colorbar(image, ax=axis, label="heads")
    bar.set_ticks(MaxNLocator(integer=True, nbins=min(top + 1, 8)).tick_values(0, top))
    bar.ax.minorticks_off()
    axis.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(counts.shape[0], 12)))


def layer_heatmap(curves: pl.DataFrame, model: str, path: Path) -> None:
    """Write :func:`heatmap_figure` to ``path``."""
    _save(heatmap_figure(curves, model), path)


def heatmap_figure(curves: pl.DataFrame, model: str) -> plt.Figure:
    """Per-layer BOS and induction head counts, layer x revision, for one model."""
    curve = curves.filter(pl.col("model") == model).sort("tokens", "step")
    if curve.height == 0:
        raise ValueError(f"no emergence rows for model {model!r}")
    revisions = curve["revision"].to_list()
    figure, axes = plt.subplots(1, 2, figsize=(max(8, 0.5 * len(revisions) + 4), 4.5), sharey=True)
    for axis, column, title in zip(
        axes, ("bos_per_layer", "induction_per_layer"), ("BOS heads", "induction heads"), strict=True
    ):
        counts = np.array(curve[column].to_list(), dtype=np.int64).T  # [layers, revisions]
        _count_image(figure, axis, counts)
        axis.set_xticks(range(len(revisions)), revisions, rotation=70, fontsize=7)
        axis.set_xlabel("revision")
        axis.set_title(f"{model}: {title} per layer")
    axes[0].set_ylabel("layer")
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
    figure, axis = plt.subplots(figsize=(8, 5))
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
    axis.legend(handles, labels, title="final class (heads)", fontsize=8, loc="upper left")
    axis.set_title(f"{model}: every head's selectivity across training")
    return figure


def primitive_gap_plot(gaps: pl.DataFrame, path: Path) -> None:
    """Summary gap mean(0a) - mean(0b) against training tokens, one line per model and score kind.

    ``gaps``: the primitive gap table; the shaded band is the Welch 95% interval.
    """
    summary = gaps.filter(pl.col("layer") == "summary").sort("model", "score_kind", "tokens")
    if summary.height == 0:
        raise ValueError("the primitive gap table has no summary rows")
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    for (model, kind), rows in summary.group_by("model", "score_kind", maintain_order=True):
        style = "-" if kind == "representational" else "--"
        (line,) = axis.plot(rows["tokens"], rows["gap"], style, marker="o", label=f"{model} ({kind})")
        axis.fill_between(rows["tokens"], rows["ci_low"], rows["ci_high"], color=line.get_color(), alpha=0.15)
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_ylabel("gap: mean score 0a - mean score 0b")
    _token_axis(axis, summary["tokens"])
    axis.legend(fontsize=8)
    axis.set_title("Primitive gap across training (band: Welch 95% CI)")
    _save(figure, path)
