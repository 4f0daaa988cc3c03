"""The figures read as a paper needs: integer counts, a token axis from 0, milestones and classes marked."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pytest
from matplotlib.colors import to_rgba

from circuitsweep import contracts as C
from circuitsweep.heads.classify import Thresholds, head_classes
from circuitsweep.heads.emergence import MilestoneThresholds, emergence_curves, milestones
from circuitsweep.plots import CLASS_COLOURS, emergence_figure, heatmap_figure, trajectory_figure

CLASSIFY = Thresholds(class_selectivity=10, induction_circuit=20, previous_circuit=20, sink_alpha=0.3)
MILESTONES = MilestoneThresholds(
    induction_onset_heads=2, bos_fraction_milestone=0.15, early_screen_recall=0.3, phase_transition_share=0.5
)
N_LAYERS, N_HEADS = 3, 4
STEPS = (0, 10, 100, 300, 1000)


def selectivities(step: int, layer: int, head: int) -> dict[str, float]:
    """Heads (0, 0-1) are BOS heads from step 10; heads (2, 0-2) become induction heads at steps 100, 300, 900."""
    sel = dict.fromkeys(C.SELECTIVITY_COLUMNS, 1.0)
    if layer == 0 and head < 2 and step >= 10:
        sel["sel_first"] = 50.0
    if layer == 2 and head < 3 and step >= 100 * 3**head:
        sel["sel_induction"] = 15.0 * (1 + np.log10(step))
    return sel


@pytest.fixture(scope="module")
def sweep() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Classified heads, emergence curves and milestones of one planted model."""
    rows = []
    for step in STEPS:
        for layer in range(N_LAYERS):
            for head in range(N_HEADS):
                rows.append(
                    {
                        "model": "m",
                        "revision": f"step{step}",
                        "step": step,
                        "tokens": step * 1000,
                        "layer": layer,
                        "head": head,
                        **selectivities(step, layer, head),
                        "baseline_attention": 0.01,
                        "sink_alpha": 0.1,
                        "prefix_matching": 0.0,
                        "previous_token": 0.0,
                        "duplicate_token": 0.0,
                        "pr": 1.0 + head + layer * step / STEPS[-1],
                    }
                )
    heads = head_classes(pl.DataFrame(rows), CLASSIFY)
    revisions = pl.DataFrame(
        [{"model": "m", "revision": f"step{s}", "step": s, "tokens": s * 1000, "n_layers": N_LAYERS} for s in STEPS]
    ).with_columns(pl.lit(None, dtype=pl.Float64).alias("in_context_loss_drop"))
    curves = emergence_curves(heads, revisions)
    return heads, curves, milestones(curves, heads, {"m": MILESTONES})


def test_token_axis_has_no_negative_ticks(sweep):
    """The log token axis starts at 0 tokens: no tick of the emergence figure lies below it."""
    _, curves, table = sweep
    figure = emergence_figure(curves, table)
    figure.canvas.draw()
    for axis in figure.axes:
        ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
        assert min(ticks) == 0 and all(t >= 0 for t in ticks)
    assert figure.axes[1].get_yticks().tolist() == [round(t) for t in figure.axes[1].get_yticks()]
    plt.close(figure)


def test_milestones_are_marked_on_their_curves(sweep):
    """BOS t50, induction onset and early screen are drawn at the revision that reached them."""
    _, curves, table = sweep
    row = table.row(0, named=True)
    assert row["bos_t50_tokens"] == 10_000 and row["induction_onset_tokens"] == 300_000
    assert row["early_screen_tokens"] == 100_000
    figure = emergence_figure(curves, table)
    bos, induction = figure.axes[:2]

    def marks(axis, marker):
        return [
            (float(line.get_xdata()[0]), float(line.get_ydata()[0]))
            for line in axis.get_lines()
            if line.get_marker() == marker and line.get_linestyle() == "None"
        ]

    assert marks(bos, "*") == [(10_000.0, pytest.approx(2 / 12))]
    assert marks(induction, "P") == [(300_000.0, 2.0)]
    assert marks(induction, "D") == [(100_000.0, 1.0)]
    assert [t.get_text() for t in induction.get_legend().get_texts()] == ["BOS t50", "induction onset", "early screen"]
    plt.close(figure)


def test_heatmap_counts_and_layers_are_integers(sweep):
    """Layer ticks and the colour bar's ticks are whole numbers; each count gets its own colour step."""
    _, curves, _ = sweep
    figure = heatmap_figure(curves, "m")
    figure.canvas.draw()
    image_axes = [axis for axis in figure.axes if axis.get_images()]
    bars = [axis for axis in figure.axes if not axis.get_images()]
    for axis in image_axes:
        low, high = sorted(axis.get_ylim())
        layers = [t for t in axis.get_yticks() if low <= t <= high]
        assert layers == [0.0, 1.0, 2.0]
    for bar in bars:
        ticks = bar.get_yticks()
        assert len(ticks) and all(float(t).is_integer() for t in ticks)
    induction = image_axes[1].get_images()[0]
    assert induction.norm(np.array([2.0]))[0] != induction.norm(np.array([3.0]))[0]
    plt.close(figure)


def test_trajectories_draw_every_head_in_its_final_class_colour(sweep):
    """One line per head across all revisions, coloured by the class it holds at the last revision."""
    heads, _, _ = sweep
    figure = trajectory_figure(heads, "m", class_selectivity=CLASSIFY.class_selectivity)
    axis = figure.axes[0]
    lines = [line for line in axis.get_lines() if len(line.get_xdata()) == len(STEPS)]
    assert len(lines) == N_LAYERS * N_HEADS
    colours = [to_rgba(line.get_color()) for line in lines]
    assert colours.count(to_rgba(CLASS_COLOURS["induction"])) == 3
    assert colours.count(to_rgba(CLASS_COLOURS["first"])) == 2
    assert colours.count(to_rgba(CLASS_COLOURS[C.NO_CLASS])) == 7
    labels = [t.get_text() for t in axis.get_legend().get_texts()]
    assert labels == ["none (7)", "first (2)", "induction (3)", "class threshold (10)"]
    plt.close(figure)


def test_spectral_figure_draws_one_curve_per_final_class_and_each_screen_head(sweep):
    """The spectral figure has a mean curve (and SD band) per final class and one dotted line per screen head."""
    from circuitsweep.heads.spectral import model_spectral
    from circuitsweep.plots import spectral_figure

    heads = sweep[0]
    spectral = model_spectral(heads, "m", CLASSIFY.induction_circuit)
    figure = spectral_figure(heads, spectral, "m")
    lines = figure.axes[0].get_lines()
    n_classes = spectral["final_class"].n_unique()
    n_screen = int(spectral["screen"].sum())
    assert n_screen >= 1
    assert len(lines) == n_classes + n_screen
    assert sum(line.get_linestyle() == ":" for line in lines) == n_screen
    plt.close(figure)
