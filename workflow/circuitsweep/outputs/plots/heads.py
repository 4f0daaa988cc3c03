"""Per-head figures of one model: the per-layer class heatmap across training and every head's selectivity
trajectories."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.colors import BoundaryNorm
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from circuitsweep.io import contracts as C
from circuitsweep.outputs.plots.axes import (
    CLASS_COLOURS,
    save_figure,
    token_axis,
)


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
    save_figure(heatmap_figure(curves, model, milestones), path)


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
        token_axis(axis, tokens)
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
    save_figure(trajectory_figure(heads, model, class_selectivity), path)


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
    token_axis(axis, rows["tokens"])
    figure.legend(handles, labels, title="final class (heads)", fontsize=8, loc="outside right upper")
    axis.set_title(f"{model}: every head's selectivity across training")
    return figure
