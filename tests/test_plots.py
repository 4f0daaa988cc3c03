"""The figures read as a paper needs: integer counts, a token axis from 0, milestones and classes marked."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pytest
from matplotlib.colors import to_rgba

from circuitsweep.heads.classify import Thresholds, head_classes
from circuitsweep.io import contracts as C
from circuitsweep.milestones.emergence import MilestoneThresholds, emergence_curves, milestones
from circuitsweep.outputs.plots import (
    CLASS_COLOURS,
    emergence_figure,
    heatmap_figure,
    primitive_gap_figure,
    primitive_scaling_figure,
    trajectory_figure,
)

CLASSIFY = Thresholds(class_selectivity=10, induction_circuit=20, previous_circuit=20, sink_alpha=0.3)
MILESTONES = MilestoneThresholds(
    induction_onset_heads=2, bos_fraction_milestone=0.15, early_screen_recall=0.3, phase_transition_factor=3
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
    assert marks(bos, "^") == [(10_000.0, pytest.approx(2 / 12))]  # the first BOS head, here also t50
    legend = figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "m", "first BOS head", "BOS t50", "early screen", "induction onset"
    ]  # fmt: skip
    drawn = {line.get_marker() for axis in (bos, induction) for line in axis.get_lines()}
    assert [handle.get_marker() for handle in legend.legend_handles[1:]] == ["^", "*", "D", "P"]
    assert {"^", "*", "D", "P"} <= drawn
    plt.close(figure)


def test_heatmap_counts_and_layers_are_integers(sweep):
    """Layer ticks and the colour bar's ticks are whole numbers; each count gets its own colour step."""
    _, curves, _ = sweep
    figure = heatmap_figure(curves, "m")
    figure.canvas.draw()
    panels = [axis for axis in figure.axes if axis.get_title()]
    bars = [axis for axis in figure.axes if not axis.get_title()]
    for axis in panels:
        low, high = sorted(axis.get_ylim())
        layers = [t for t in axis.get_yticks() if low <= t <= high]
        assert layers == [0.0, 1.0, 2.0]
    for bar in bars:
        ticks = bar.get_yticks()
        assert len(ticks) and all(float(t).is_integer() for t in ticks)
    induction = panels[1].collections[0]
    assert induction.norm(np.array([2.0]))[0] != induction.norm(np.array([3.0]))[0]
    plt.close(figure)


def test_heatmap_panels_share_one_colour_scale_on_a_token_axis(sweep):
    """Both panels use one colour scale (one colour bar); on the log token axis each revision is a cell around its
    tokens, bounded halfway to its neighbours; the model's milestones are drawn as lines at their tokens."""
    _, curves, table = sweep
    figure = heatmap_figure(curves, "m", table)
    figure.canvas.draw()
    bos, induction = (axis for axis in figure.axes if axis.get_title())
    assert bos.collections[0].norm is induction.collections[0].norm
    assert len([axis for axis in figure.axes if not axis.get_title()]) == 1  # one colour bar
    assert bos.get_xscale() == "symlog"
    transform = bos.xaxis.get_transform()
    edges = transform.transform(np.unique(bos.collections[0].get_coordinates()[0, :, 0]))
    revisions = transform.transform(np.array([s * 1000.0 for s in STEPS]))
    assert len(edges) == len(STEPS) + 1 and all(edges[:-1] < revisions) and all(revisions < edges[1:])
    assert list(edges[1:-1]) == pytest.approx(list((revisions[:-1] + revisions[1:]) / 2))
    lines = {float(line.get_xdata()[0]) for line in induction.get_lines()}
    assert lines == {300_000.0}  # induction onset
    assert {float(line.get_xdata()[0]) for line in bos.get_lines()} == {10_000.0}  # first BOS head = t50
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
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["none (7)", "first (2)", "induction (3)", "class threshold (10)"]
    plt.close(figure)


def rendered(figure: plt.Figure) -> np.ndarray:
    """The figure as drawn: RGB pixels [height, width, 3] (uint8)."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def pixels_near(image: np.ndarray, colour: str, tolerance: int = 30) -> int:
    """How many pixels of ``image`` lie within ``tolerance`` of ``colour`` in every channel."""
    target = np.array(to_rgba(colour)[:3]) * 255
    return int((np.abs(image.astype(int) - target).max(axis=-1) <= tolerance).sum())


def test_onset_stays_visible_on_the_early_screen_diamond(sweep):
    """Where the induction onset and the early screen fall on the same revision, the onset's plus still shows: the
    pixels around the point change when the onset is drawn (it is not hidden under the diamond)."""
    _, curves, table = sweep
    same = table.with_columns(
        pl.col("induction_onset_tokens").alias("early_screen_tokens"),
        pl.col("induction_onset_revision").alias("early_screen_revision"),
    )
    without = same.with_columns(pl.lit(None, dtype=pl.Int64).alias("induction_onset_tokens"))
    images = []
    for milestones_table in (same, without):
        figure = emergence_figure(curves, milestones_table)
        image = rendered(figure)
        induction = figure.axes[1]
        x, y = induction.transData.transform((300_000, 2.0))
        row, column = int(image.shape[0] - y), int(x)
        images.append(image[row - 12 : row + 12, column - 12 : column + 12])
        plt.close(figure)
    changed = (np.abs(images[0].astype(int) - images[1].astype(int)).max(axis=-1) > 40).sum()
    assert changed > 30, changed
    assert pixels_near(images[0], "black", 60) > 20  # the plus's black outline


def test_bos_axis_fits_the_data_and_shows_the_t50_level(sweep):
    """The BOS axis ends a little above the larger of the data and the BOS t50 level, whose dashed line is drawn;
    the model's curve is drawn in its colour (a figure that draws nothing fails)."""
    _, curves, table = sweep
    figure = emergence_figure(curves, table, bos_level=0.5)
    image = rendered(figure)
    bos = figure.axes[0]
    low, high = bos.get_ylim()
    assert 0.5 < high <= 0.5 * 1.15 and -0.05 < low < 0
    levels = [line for line in bos.get_lines() if list(line.get_ydata()) == [0.5, 0.5]]
    assert len(levels) == 1 and levels[0].get_linestyle() == "--"
    assert pixels_near(image, "tab:blue") > 500
    plt.close(figure)


def primitive_gaps(models: list[str], kinds: list[str]) -> pl.DataFrame:
    """Summary rows of a primitive gap table: each model and kind at three revisions."""
    rows = []
    for index, model in enumerate(models):
        for kind in kinds:
            for step in (0, 100, 1000):
                gap = 0.1 * index + step / 10_000
                at = {"revision": f"step{step}", "tokens": step * 1000}
                interval = {"gap": gap, "ci_low": gap - 0.05, "ci_high": gap + 0.05}
                rows.append({"model": model, "score_kind": kind, "layer": "summary", **at, **interval})
    return pl.DataFrame(rows)


def test_primitive_gap_has_a_panel_per_kind_and_its_legend_outside():
    """One panel per score kind, representational first, one colour per model in every panel; the legend lies outside
    every panel, so it covers no data."""
    figure = primitive_gap_figure(primitive_gaps(["a", "b", "c"], ["next_word", "representational", "behavioural"]))
    figure.canvas.draw()
    panels = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_title() for axis in panels] == ["representational", "behavioural", "next word"]
    for axis in panels:
        assert [line.get_label() for line in axis.get_lines() if line.get_label() in "abc"] == ["a", "b", "c"]
        assert [to_rgba(line.get_color()) for line in axis.get_lines()][:3] == [
            to_rgba(line.get_color()) for line in panels[0].get_lines()
        ][:3]
    legend = figure.legends[0].get_window_extent()
    assert not any(legend.overlaps(axis.get_window_extent()) for axis in panels)
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["a", "b", "c"]
    plt.close(figure)


def test_primitive_scaling_draws_one_point_per_model_never_joined():
    """Each model is one point (its own marker) per kind panel; no line joins different models."""
    gaps = primitive_gaps(["small", "large"], ["representational"]).filter(pl.col("revision") == "step1000")
    table = gaps.with_columns(
        pl.Series("parameters", [1_000_000, 100_000_000]),
        pl.lit(None, dtype=pl.Float64).alias("ci_total_low"),
        pl.lit(None, dtype=pl.Float64).alias("ci_total_high"),
    )
    figure = primitive_scaling_figure(table)
    image = rendered(figure)
    (axis,) = [axis for axis in figure.axes if axis.get_visible()]
    points = [line for line in axis.get_lines() if line.get_marker() not in ("None", "", "_")]
    assert sorted(len(line.get_xdata()) for line in points) == [1, 1]
    assert all(line.get_linestyle() == "None" for line in points)
    assert len({line.get_marker() for line in points}) == 2
    assert pixels_near(image, "tab:blue") > 30 and pixels_near(image, "tab:orange") > 30


def test_spectral_figure_draws_one_curve_per_final_class_and_each_screen_head(sweep):
    """The spectral figure has a mean curve (and SD band) per final class and one dotted line per screen head."""
    from circuitsweep.heads.spectral import model_spectral
    from circuitsweep.outputs.plots import spectral_figure

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
