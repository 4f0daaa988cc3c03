"""Figures of the emergence tables (matplotlib, written atomically as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from circuitsweep.atomic import atomic_path  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    plt.close(figure)


def _token_axis(axis: plt.Axes, tokens: pl.Series) -> None:
    """Log token axis that still shows step 0: linear below the smallest positive count."""
    positive = tokens.filter(tokens > 0)
    threshold = float(positive.min()) if positive.len() else 1.0
    axis.set_xscale("symlog", linthresh=threshold)
    axis.set_xlabel("training tokens (log; linear below the first checkpoint)")
    axis.grid(True, which="major", alpha=0.3)


def emergence_plot(curves: pl.DataFrame, path: Path) -> None:
    """BOS-head fraction and induction-head count against training tokens, one line per model."""
    figure, (bos, induction) = plt.subplots(1, 2, figsize=(11, 4))
    for (model,), curve in curves.sort("tokens").group_by("model", maintain_order=True):
        bos.plot(curve["tokens"], curve["bos_fraction"], marker="o", label=model)
        induction.plot(curve["tokens"], curve["n_induction_heads"], marker="o", label=model)
    bos.set_ylabel("BOS-head fraction (class first)")
    bos.set_ylim(-0.02, 1.02)
    induction.set_ylabel("induction heads")
    for axis in (bos, induction):
        _token_axis(axis, curves["tokens"])
    bos.legend(fontsize=8)
    figure.suptitle("When do attention circuits form?")
    _save(figure, path)


def layer_heatmap(curves: pl.DataFrame, model: str, path: Path) -> None:
    """Per-layer BOS and induction head counts, layer x revision, for one model."""
    curve = curves.filter(pl.col("model") == model).sort("tokens", "step")
    if curve.height == 0:
        raise ValueError(f"no emergence rows for model {model!r}")
    revisions = curve["revision"].to_list()
    figure, axes = plt.subplots(1, 2, figsize=(max(8, 0.5 * len(revisions) + 4), 4.5), sharey=True)
    for axis, column, title in zip(
        axes, ("bos_per_layer", "induction_per_layer"), ("BOS heads", "induction heads"), strict=True
    ):
        counts = np.array(curve[column].to_list(), dtype=float).T  # [layers, revisions]
        image = axis.imshow(counts, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
        axis.set_xticks(range(len(revisions)), revisions, rotation=70, fontsize=7)
        axis.set_xlabel("revision")
        axis.set_title(f"{model}: {title} per layer")
        figure.colorbar(image, ax=axis, label="heads")
    axes[0].set_ylabel("layer")
    _save(figure, path)


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
