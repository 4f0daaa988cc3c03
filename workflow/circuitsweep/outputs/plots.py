"""Figures of the emergence tables (matplotlib, written atomically as PNG or SVG by the path's suffix)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.colors import BoundaryNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from circuitsweep.errors import DataError  # noqa: E402
from circuitsweep.io import contracts as C  # noqa: E402
from circuitsweep.io.atomic import atomic_path  # noqa: E402
from circuitsweep.milestones.text import human_tokens  # noqa: E402

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


def _token_axis(axis: plt.Axes, tokens: pl.Series | np.ndarray, start: float = 0.0) -> None:
    """Log token axis that still shows step 0: linear below the smallest positive count; ticks in human units.

    The axis starts at ``start`` tokens (0: no negative tick in the margin).
    """
    tokens = np.asarray(tokens, dtype=float)
    positive = tokens[tokens > 0]
    threshold = float(positive.min()) if positive.size else 1.0
    axis.set_xscale("symlog", linthresh=threshold)
    axis.set_xlim(left=start, right=max(float(tokens.max(initial=0)) * 1.5, threshold))
    axis.xaxis.set_major_formatter(FuncFormatter(_token_ticks))
    axis.set_xlabel("training tokens (log; linear below the first checkpoint)")
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


#: Milestones marked on the emergence curves, drawn in this order (later on top).
MILESTONE_MARKS: tuple[MilestoneMark, ...] = (
    MilestoneMark("first_bos_head_tokens", "bos_fraction", "^", 10, "first BOS head"),
    MilestoneMark("bos_t50_tokens", "bos_fraction", "*", 17, "BOS t50"),
    MilestoneMark("early_screen_tokens", "induction_selective_heads", "D", 17, "early screen", hollow=True),
    MilestoneMark("induction_onset_tokens", "induction_selective_heads", "P", 11, "induction onset"),
)


def _mark_style(mark: MilestoneMark, colour: str) -> dict:
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
    """Write :func:`emergence_figure` to ``path``, with :func:`draw_group_bands` for ``groups`` (model -> group)
    and :func:`draw_milestone_brackets` for ``brackets``."""
    figure = emergence_figure(curves, milestones, bos_level)
    bos, induction = figure.axes[:2]
    panels = {"bos_fraction": bos, "induction_selective_heads": induction}
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


#: The panel each refined milestone's bracket is drawn on (``contracts.REFINE_MILESTONES``).
_BRACKET_PANELS = {
    "bos_t50": "bos_fraction",
    "induction_onset": "induction_selective_heads",
    "early_screen": "induction_selective_heads",
    "causal": "induction_selective_heads",
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


def emergence_figure(
    curves: pl.DataFrame, milestones: pl.DataFrame | None = None, bos_level: float = 0.5
) -> plt.Figure:
    """BOS-head fraction and induction-selective head count against training tokens, one line per model.

    ``milestones``: the milestones table; each model's first BOS head, BOS t50,
    early screen and induction onset are marked on its curve (:data:`MILESTONE_MARKS`)
    at the revision that reached them. ``bos_level``: the BOS t50 level, drawn as
    a dashed line; the BOS axis fits the data and that line.
    """
    figure, (bos, induction) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    colours: dict[str, str] = {}
    handles: list[Line2D] = []
    for (model,), curve in curves.sort("tokens").group_by("model", maintain_order=True):
        (line,) = bos.plot(curve["tokens"], curve["bos_fraction"], marker="o", markersize=3.5, label=model)
        selective = curve["induction_selective_heads"]
        induction.plot(curve["tokens"], selective, marker="o", markersize=3.5, color=line.get_color())
        colours[model] = line.get_color()
        handles.append(line)
    axes = {"bos_fraction": bos, "induction_selective_heads": induction}
    used: set[str] = set()
    rows = list((milestones if milestones is not None else pl.DataFrame()).iter_rows(named=True))
    for mark in MILESTONE_MARKS:
        for row in rows:
            curve = curves.filter(pl.col("model") == row["model"])
            tokens = row.get(mark.column)
            at = curve.filter(pl.col("tokens") == tokens) if tokens is not None else curve.clear()
            if at.height == 0:
                continue
            axes[mark.curve].plot(
                [tokens],
                [at[mark.curve][0]],
                marker=mark.marker,
                markersize=mark.size,
                linestyle="none",
                zorder=4 if mark.hollow else 5,
                **_mark_style(mark, colours.get(row["model"], "black")),
            )
            used.add(mark.label)
    bos.axhline(bos_level, color="0.35", linestyle="--", linewidth=1.0)
    bos.annotate(
        f"BOS t50 level ({bos_level:g})", (0.99, bos_level), xycoords=("axes fraction", "data"),
        xytext=(0, 3), textcoords="offset points", ha="right", fontsize=8, color="0.35",
    )  # fmt: skip
    top = max(float(curves["bos_fraction"].max() or 0.0), bos_level) * 1.12
    bos.set_ylim(-0.03 * top, top)
    bos.set_ylabel("BOS-head fraction (class first)")
    induction.set_ylabel("induction-selective heads (any class)")
    most = max(int(curves["induction_selective_heads"].max() or 0), 1)
    induction.set_ylim(-0.05 * most, 1.1 * most)
    induction.yaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in (bos, induction):
        _token_axis(axis, curves["tokens"])
    for mark in MILESTONE_MARKS:
        if mark.label in used:
            style = _mark_style(mark, "0.3")
            handles.append(
                Line2D(
                    [], [], marker=mark.marker, markersize=mark.size * 0.75, linestyle="none", label=mark.label, **style
                )
            )
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
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
    "induction_per_layer": (("induction_onset_tokens", "induction onset", "--"),),
}


def heatmap_figure(curves: pl.DataFrame, model: str, milestones: pl.DataFrame | None = None) -> plt.Figure:
    """Per-layer BOS and induction head counts of one model, layer x training tokens, on one colour scale.

    Each revision is a cell on the token axis; ``milestones`` (the milestones
    table) adds the model's first BOS head, BOS t50 and induction onset as lines.
    """
    curve = curves.filter(pl.col("model") == model).sort("tokens", "step")
    if curve.height == 0:
        raise ValueError(f"no emergence rows for model {model!r}")
    columns = ("bos_per_layer", "induction_per_layer")
    counts = {column: np.array(curve[column].to_list(), dtype=np.int64).T for column in columns}  # [layers, revisions]
    top = max(max(int(c.max()) for c in counts.values()), 1)
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
                axis.axvline(row[milestone], color="white", linestyle=style, linewidth=2.0)
                axis.axvline(row[milestone], color="black", linestyle=style, linewidth=1.0)
                handles[label] = Line2D([], [], color="black", linestyle=style, label=label)
    axes[0].set_ylabel("layer")
    bar = figure.colorbar(mesh, ax=list(axes), label="heads (both panels)")
    bar.set_ticks(MaxNLocator(integer=True, nbins=min(top + 1, 8)).tick_values(0, top))
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


def spectral_plot(heads: pl.DataFrame, spectral: pl.DataFrame, model: str, path: Path) -> None:
    """Write :func:`spectral_figure` to ``path``."""
    _save(spectral_figure(heads, spectral, model), path)


def spectral_figure(heads: pl.DataFrame, spectral: pl.DataFrame, model: str) -> plt.Figure:
    """Mean participation ratio (+- 1 SD) of the heads of each final class against training tokens (the study's
    tier-1 figure), with each head of the induction screen drawn alone (dotted).

    ``heads``: one model's classified heads (``layer``, ``head``, ``step``, ``tokens``, ``pr``);
    ``spectral``: its ranking (``SPECTRAL_COLUMNS``: final class and screen membership).
    """
    facts = spectral.filter(pl.col("model") == model).select("layer", "head", "final_class", "screen")
    rows = heads.select("layer", "head", "step", "tokens", "pr").join(facts, on=["layer", "head"], how="inner")
    if rows.height == 0:
        raise ValueError(f"no participation ratios for model {model!r}")
    rows = rows.sort("tokens", "step")
    figure, axis = plt.subplots(figsize=(8, 5))
    handles, labels = [], []
    for name in [*C.TARGETS, C.NO_CLASS]:
        of_class = rows.filter(pl.col("final_class") == name)
        if of_class.height == 0:
            continue
        curve = of_class.group_by("step", "tokens", maintain_order=True).agg(
            pl.col("pr").mean().alias("mean"), pl.col("pr").std(ddof=0).alias("sd")
        )
        colour = CLASS_COLOURS[name]
        axis.plot(curve["tokens"], curve["mean"], color=colour, marker="o", markersize=3, linewidth=1.5)
        axis.fill_between(
            curve["tokens"], curve["mean"] - curve["sd"], curve["mean"] + curve["sd"], color=colour, alpha=0.15
        )
        handles.append(Line2D([], [], color=colour, marker="o", markersize=3))
        labels.append(f"{name} ({of_class.select('layer', 'head').n_unique()})")
    screen = rows.filter(pl.col("screen"))
    for _, one in screen.group_by("layer", "head", maintain_order=True):
        axis.plot(one["tokens"], one["pr"], color="black", linestyle=":", linewidth=1.0)
    if screen.height:
        handles.append(Line2D([], [], color="black", linestyle=":", linewidth=1.0))
        labels.append(f"screen heads ({screen.select('layer', 'head').n_unique()}), each")
    axis.set_ylabel("participation ratio at the query (mean +- 1 SD)")
    _token_axis(axis, rows["tokens"])
    axis.legend(handles, labels, title="final class (heads)", fontsize=8, loc="best")
    axis.set_title(f"{model}: participation ratio across training, by final class")
    return figure


def _kind_order(kinds: list[str]) -> list[str]:
    """Score kinds with the primary (representational) first, then its variants, then the rest, alphabetically."""
    return sorted(kinds, key=lambda kind: (kind != "representational", not kind.startswith("representational"), kind))


def _model_colours(models: list[str]) -> dict[str, tuple]:
    """One colour per model, the same in every panel (tab10, then tab20 beyond ten models)."""
    palette = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    return {model: palette(i % palette.N) for i, model in enumerate(models)}


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


def primitive_gap_plot(gaps: pl.DataFrame, path: Path) -> None:
    """Write :func:`primitive_gap_figure` to ``path``."""
    _save(primitive_gap_figure(gaps), path)


def primitive_gap_figure(gaps: pl.DataFrame) -> plt.Figure:
    """Summary gap mean(0a) - mean(0b) against training tokens: one panel per score kind, one line per model.

    ``gaps``: the primitive gap table; the band is the Welch 95% interval. The
    models' legend sits outside the panels, one colour per model throughout.
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
        axis.set_xlabel("training tokens")
        axis.set_title(kind.replace("_", " "), fontsize=10)
        axis.set_ylabel("gap: mean 0a - mean 0b")
    handles = [Line2D([], [], color=colour, marker="o", markersize=4, label=model) for model, colour in colours.items()]
    figure.legend(handles=handles, title="model", loc="outside right upper", fontsize=8)
    figure.suptitle("Primitive gap across training, per score kind (band: Welch 95% CI)")
    return figure


#: Markers of the models in the scaling figure, in order (a colour and a shape per model).
_MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p")


def primitive_scaling_plot(table: pl.DataFrame, path: Path, kinds: tuple[str, ...] | None = None) -> None:
    """Write :func:`primitive_scaling_figure` to ``path``."""
    _save(primitive_scaling_figure(table, kinds), path)


def primitive_scaling_figure(table: pl.DataFrame, kinds: tuple[str, ...] | None = None) -> plt.Figure:
    """The summary gap of each model's last revision against its parameters: one point per model, a panel per kind.

    ``table``: the primitive scaling table; ``kinds``: the score kinds drawn (default:
    every kind in the table). Models are separate points (a colour and a marker
    each), never joined: they differ in more than size. Error bars: the item +
    lexicon 95% interval where the table has it (representational kinds), else Welch's.
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
    return figure
