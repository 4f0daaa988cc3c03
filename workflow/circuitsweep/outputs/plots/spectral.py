"""The spectral figure of one model: each head's participation-ratio integral against its rank, with the top-K cuts,
beside its trajectories as small multiples by final class."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.ticker import MaxNLocator

from circuitsweep.errors import DataError
from circuitsweep.io import contracts as C
from circuitsweep.outputs.plots.axes import (
    CLASS_COLOURS,
    save_figure,
    token_axis,
)


def spectral_plot(
    heads: pl.DataFrame, spectral: pl.DataFrame, model: str, path: Path, top_k: Sequence[int | float | str] = ()
) -> None:
    """Write :func:`spectral_figure` to ``path``."""
    save_figure(spectral_figure(heads, spectral, model, top_k), path)


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
        token_axis(axis, rows["tokens"])
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
        how = cut.how_chosen(n_heads)
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
