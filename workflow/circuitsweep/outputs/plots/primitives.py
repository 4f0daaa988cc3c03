"""The primitive figures: each gap across training per score kind, and each model's last gap against its size;
toy models carry a demonstration note on the image itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from circuitsweep.errors import DataError
from circuitsweep.outputs.plots.axes import (
    model_colours,
    save_figure,
    token_axis,
    token_tick_label,
)


def _kind_order(kinds: list[str]) -> list[str]:
    """Score kinds with the primary (representational) first, then its variants, then the rest, alphabetically."""
    return sorted(kinds, key=lambda kind: (kind != "representational", not kind.startswith("representational"), kind))


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
    save_figure(primitive_gap_figure(gaps, demonstration), path)


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
    colours = model_colours(summary["model"].unique(maintain_order=True).to_list())
    figure, axes = _panels(len(kinds))
    for axis, kind in zip(axes, kinds, strict=True):
        for (model,), rows in summary.filter(pl.col("score_kind") == kind).group_by("model", maintain_order=True):
            axis.plot(rows["tokens"], rows["gap"], marker="o", markersize=3.5, color=colours[model], label=model)
            axis.fill_between(rows["tokens"], rows["ci_low"], rows["ci_high"], color=colours[model], alpha=0.15)
        axis.axhline(0.0, color="black", linewidth=0.8)
        token_axis(axis, summary["tokens"])
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
    save_figure(primitive_scaling_figure(table, kinds, demonstration), path)


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
    colours = model_colours(models)
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
        axis.xaxis.set_major_formatter(FuncFormatter(token_tick_label))
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
