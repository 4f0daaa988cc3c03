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
    token_ticks,
    trajectory_figure,
)
from circuitsweep.outputs.plots.axes import token_axis

CLASSIFY = Thresholds(class_selectivity=10, induction_circuit=20, previous_circuit=20, sink_alpha=0.3)
MILESTONES = MilestoneThresholds(
    induction_onset_heads=2, bos_fraction_milestone=0.15, early_screen_recall=0.3, phase_transition_factor=3
)
N_LAYERS, N_HEADS = 3, 4
STEPS = (0, 10, 100, 300, 1000)


def selectivities(step: int, layer: int, head: int) -> dict[str, float]:
    """Heads (0, 0-1) are BOS heads from step 10, head (1, 3) from step 1000, after the onset; heads (2, 0-2)
    become induction heads at steps 100, 300, 900."""
    sel = dict.fromkeys(C.SELECTIVITY_COLUMNS, 1.0)
    if (layer == 0 and head < 2 and step >= 10) or (layer, head, step) == (1, 3, 1000):
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


def with_causal(table: pl.DataFrame, tokens: int | None = 1_000_000) -> pl.DataFrame:
    """The planted milestones table with a causal revision (as a run with ablation has)."""
    return table.with_columns(pl.lit(tokens, dtype=pl.Int64).alias("causal_tokens"))


def marks(axis, marker: str) -> list[tuple[float, float]]:
    """(tokens, value) of each milestone mark ``marker`` on its curve (bracket ends excluded)."""
    return [
        (float(line.get_xdata()[0]), float(line.get_ydata()[0]))
        for line in axis.get_lines()
        if line.get_marker() == marker and line.get_linestyle() == "None" and line.get_gid() != "bracket"
    ]


def test_milestones_are_marked_on_their_curves(sweep):
    """BOS t50, induction onset, early screen and the causal revision are drawn at the revision that reached them;
    the first BOS head after the onset gets its own mark where the first BOS head came before the onset."""
    _, curves, table = sweep
    row = table.row(0, named=True)
    assert row["bos_t50_tokens"] == 10_000 and row["induction_onset_tokens"] == 300_000
    assert row["early_screen_tokens"] == 100_000
    figure = emergence_figure(curves, with_causal(table))
    bos, induction = figure.axes[:2]
    assert marks(bos, "*") == [(10_000.0, pytest.approx(2 / 12))]
    assert marks(induction, "P") == [(300_000.0, 2.0)]
    assert marks(induction, "D") == [(100_000.0, 1.0)]
    assert marks(induction, "s") == [(1_000_000.0, 3.0)]  # causal
    assert marks(bos, "^") == [(10_000.0, pytest.approx(2 / 12))]  # the first BOS head, here also t50
    assert row["first_late_bos_head_tokens"] == 1_000_000 and row["final_late_bos_heads"] == 1
    assert marks(bos, "v") == [(1_000_000.0, pytest.approx(3 / 12))]  # head (1, 3), a BOS head from step1000
    legend = figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "m", "first BOS head", "first new BOS head after onset", "BOS t50", "early screen", "induction onset", "causal",
        "bracket: swept revision before the milestone to its own",
    ]  # fmt: skip
    drawn = {line.get_marker() for axis in (bos, induction) for line in axis.get_lines()}
    assert [handle.get_marker() for handle in legend.legend_handles[1:7]] == ["^", "v", "*", "D", "P", "s"]
    assert {"^", "v", "*", "D", "P", "s"} <= drawn
    plt.close(figure)


def test_a_first_bos_head_after_the_onset_is_not_marked_twice(sweep):
    """Where the first BOS head comes at or after the onset it is itself the first new BOS head after the onset:
    one mark (the triangle), no second one and no bracket or note for the other."""
    _, curves, table = sweep
    same = table.with_columns(
        pl.lit(1_000_000).alias("first_bos_head_tokens"), pl.lit("step1000").alias("first_bos_head_revision"),
        pl.lit("step1000").alias("first_late_bos_head_revision"),
    )  # fmt: skip
    figure = emergence_figure(curves, same)
    bos = figure.axes[0]
    assert marks(bos, "v") == [] and len(marks(bos, "^")) == 1
    labels = [t.get_text() for axis in figure.axes for t in axis.texts]
    assert not [label for label in labels if "new BOS head" in label]
    plt.close(figure)


def test_every_marked_milestone_has_its_bracket_under_the_curves(sweep):
    """Each milestone gets a bar below 0 on its panel, from the swept revision before it to its own, ending in its
    marker; the y ticks stay at or above 0 (the strip holds brackets, not values)."""
    _, curves, table = sweep
    figure = emergence_figure(curves, with_causal(table))
    bos, induction = figure.axes[:2]

    def bars(axis):
        lines = [line for line in axis.get_lines() if line.get_gid() == "bracket" and len(line.get_xdata()) == 2]
        assert all(max(line.get_ydata()) < 0 for line in lines)
        return sorted(tuple(float(x) for x in line.get_xdata()) for line in lines)

    # first BOS head and BOS t50 at step10 (after step0), the first BOS head after the onset at step1000 (after
    # step300); early screen at step100, onset at step300, causal at step1000
    assert bars(bos) == [(0.0, 10_000.0), (0.0, 10_000.0), (300_000.0, 1_000_000.0)]
    assert bars(induction) == [(10_000.0, 100_000.0), (100_000.0, 300_000.0), (300_000.0, 1_000_000.0)]
    ends = {line.get_marker() for line in induction.get_lines() if line.get_gid() == "bracket"}
    assert {"D", "P", "s"} <= ends
    for axis in (bos, induction):
        assert min(axis.get_yticks()) == 0
    plt.close(figure)


def test_bracket_labels_clear_their_end_markers(sweep):
    """Each bracket's label is drawn beside the marker at its upper end, at least 3 points clear of the marker's box
    (the large hollow diamond and square included, whose edges stand 1.1 points outside it), so the name does not
    run into the mark; a label goes left of its bar only when, at its measured width, it would run past the
    panel's right edge. Every label stays inside its panel."""
    _, curves, table = sweep
    figure = emergence_figure(curves, with_causal(table))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    moved = 0
    for axis in figure.axes[:2]:
        ends = [line for line in axis.get_lines() if line.get_gid() == "bracket" and len(line.get_xdata()) == 1]
        bars = [line for line in axis.get_lines() if line.get_gid() == "bracket" and len(line.get_xdata()) == 2]
        labels = [text for text in axis.texts if text.get_gid() == "bracket"]
        assert ends and len(labels) == len(ends) == len(bars)
        panel = axis.get_window_extent(renderer)
        for end, bar, label in zip(ends, bars, labels, strict=True):
            mark, words = end.get_window_extent(renderer), label.get_window_extent(renderer)
            assert panel.x0 <= words.x0 and words.x1 <= panel.x1, label.get_text()
            if words.x0 >= mark.x0:
                margin = (words.x0 - mark.x1) * 72 / figure.dpi  # points between the marker's box and the label
                assert margin >= 3, (label.get_text(), margin)  # clear of a hollow marker's edge (1.1 pt outside)
            else:
                moved += 1
                assert words.x1 <= bar.get_window_extent(renderer).x0, label.get_text()  # left of its bar
                assert bar.get_window_extent(renderer).x1 + words.width > panel.x1, label.get_text()  # had to move
    assert moved >= 1  # the causal bracket ends at the last revision: its label goes left
    plt.close(figure)


#: Each marked milestone at its own revision of the planted sweep: milestones-table column -> (panel, tokens).
APART = {
    "first_bos_head_tokens": (0, 10_000),
    "first_late_bos_head_tokens": (0, 1_000_000),
    "bos_t50_tokens": (0, 100_000),
    "early_screen_tokens": (1, 100_000),
    "induction_onset_tokens": (1, 300_000),
    "causal_tokens": (1, 1_000_000),
}


def apart(table: pl.DataFrame, keep: tuple[str, ...] = tuple(APART)) -> pl.DataFrame:
    """The planted milestones table with the milestones of ``keep`` each at its :data:`APART` revision, the
    others not reached (null tokens and revision)."""
    return table.with_columns(
        *(pl.lit(APART[column][1] if column in keep else None, dtype=pl.Int64).alias(column) for column in APART),
        *(
            pl.lit(None, dtype=pl.String).alias(column.replace("_tokens", "_revision"))
            for column in APART
            if column not in keep and column.replace("_tokens", "_revision") in table.columns
        ),
    )


def curve_value(curves: pl.DataFrame, column: str, tokens: int) -> float:
    panel = ("bos_fraction", "induction_selective_heads")[APART[column][0]]
    return float(curves.filter(pl.col("tokens") == tokens)[panel][0])


@pytest.mark.parametrize("column", list(APART))
def test_each_milestone_mark_shows_on_the_image(sweep, column):
    """Every milestone mark is visible on the rendered image at its point (first BOS head, first new BOS head after
    the onset, BOS t50, early screen, induction onset and the causal revision, each at its own revision): the pixels
    around the point change when the mark is hidden (a figure that draws no mark there fails)."""
    _, curves, table = sweep
    panel, tokens = APART[column]
    figure = emergence_figure(curves, apart(table))
    axis = figure.axes[panel]
    name = column.removesuffix("_tokens")
    drawn = [line for line in axis.get_lines() if line.get_gid() == f"milestone:{name}"]
    images = []
    for visible in (True, False):
        for line in drawn:
            line.set_visible(visible)
        image = rendered(figure)
        x, y = axis.transData.transform((tokens, curve_value(curves, column, tokens)))
        row, col = int(image.shape[0] - y), int(x)
        images.append(image[row - 12 : row + 12, col - 12 : col + 12])
    plt.close(figure)
    changed = (np.abs(images[0].astype(int) - images[1].astype(int)).max(axis=-1) > 40).sum()
    assert changed > 30, changed


def test_a_first_bos_head_at_bos_t50_shows_inside_the_star(sweep):
    """Where the first BOS head comes at BOS t50's revision (a short sweep's first BOS heads can be half of all heads
    at once), its triangle sits inside the star in the same colour and vanished (a new user could not find it); it
    gets a white outline there, which shows on the image and goes when it is hidden."""
    _, curves, table = sweep
    tokens = APART["bos_t50_tokens"][1]
    figure = emergence_figure(curves, apart(table).with_columns(first_bos_head_tokens=pl.lit(tokens, pl.Int64)))
    axis = figure.axes[0]
    (triangle,) = [line for line in axis.get_lines() if line.get_gid() == "milestone:first_bos_head"]
    whites = []
    for visible in (True, False):
        triangle.set_visible(visible)
        image = rendered(figure)
        x, y = axis.transData.transform((tokens, curve_value(curves, "bos_t50_tokens", tokens)))
        row, col = int(image.shape[0] - y), int(x)
        whites.append(pixels_near(image[row - 8 : row + 8, col - 8 : col + 8], "white"))
    plt.close(figure)
    assert whites[0] - whites[1] > 15, whites


@pytest.mark.parametrize("column", list(APART))
def test_each_milestone_bracket_shows_under_the_curves(sweep, column):
    """A reached milestone's bracket is drawn on the image: under the curves (below 0) of its panel, midway between
    the swept revision before it and its own, the model's colour shows; with no milestone reached it does not."""
    _, curves, table = sweep
    panel, tokens = APART[column]
    swept = curves["tokens"].to_list()
    lower = swept[swept.index(tokens) - 1]
    counts = []
    late = column == "first_late_bos_head_tokens"  # a milestone apart only with an onset and an earlier first
    with_first = ("first_bos_head_tokens", "induction_onset_tokens") if late else ()
    for keep in ((column, *with_first), with_first):
        figure = emergence_figure(curves, apart(table, keep))
        image = rendered(figure)
        axis = figure.axes[panel]
        (x_low, zero), (x_high, _) = axis.transData.transform([(lower, 0), (tokens, 0)])
        bottom = axis.get_window_extent().y0
        middle = int((x_low + x_high) / 2)
        rows = slice(int(image.shape[0] - zero) + 6, int(image.shape[0] - bottom) - 2)
        counts.append(pixels_near(image[rows, middle - 2 : middle + 3], "tab:blue", 40))
        plt.close(figure)
    assert counts[0] >= 5 and counts[1] == 0, counts


def test_brackets_read_the_milestones_tables_previous_revision(sweep):
    """Where the milestones table records the swept revision before a milestone (``<milestone>_previous_tokens``),
    the bracket starts there; without that column, at the curves' revision before it."""
    _, curves, table = sweep
    recorded = apart(table, ("induction_onset_tokens",)).with_columns(
        pl.lit(10_000, dtype=pl.Int64).alias("induction_onset_previous_tokens")
    )
    for milestones_table, lower in ((recorded, 10_000), (apart(table, ("induction_onset_tokens",)), 100_000)):
        figure = emergence_figure(curves, milestones_table)
        bars = [
            line for line in figure.axes[1].get_lines() if line.get_gid() == "bracket" and len(line.get_xdata()) == 2
        ]
        assert [list(line.get_xdata()) for line in bars] == [[lower, 300_000]]
        plt.close(figure)


def test_unreached_milestones_are_written_on_their_panel(sweep):
    """A milestone the model did not reach has no mark, so its panel says so: BOS t50 with the peak, causal with
    its state (the run's causal_state), the others as not reached."""
    _, curves, table = sweep
    none = apart(table, ()).with_columns(
        pl.lit("untestable").alias("causal_state"),
        pl.lit(0.31).alias("bos_peak_fraction"),
        pl.lit("step300").alias("bos_peak_revision"),
    )
    figure = emergence_figure(curves, none)
    notes = [[t.get_text() for t in axis.texts if t.get_gid() == "unreached"] for axis in figure.axes[:2]]
    assert notes == [
        ["first BOS head: not reached", "BOS t50 not reached (peak 0.31 at step300)"],
        ["early screen: not reached", "induction onset: not reached", "causal: untestable"],
    ]
    plt.close(figure)
    figure = emergence_figure(curves, apart(table))
    assert not [t for axis in figure.axes for t in axis.texts if t.get_gid() == "unreached"]
    plt.close(figure)


def test_a_later_causal_revision_with_a_full_control_is_marked_too(sweep):
    """Where the causal revision's control was smaller than its circuit, the first revision causal with a control as
    large (``causal_full_control_tokens``) gets its own mark on the induction curve, visible on the image, and a
    legend entry; where no such revision exists, the panel says so."""
    _, curves, table = sweep
    both = apart(table, ("causal_tokens",)).with_columns(
        pl.lit(300_000, dtype=pl.Int64).alias("causal_tokens"),
        pl.lit(1_000_000, dtype=pl.Int64).alias("causal_full_control_tokens"),
    )
    figure = emergence_figure(curves, both)
    induction = figure.axes[1]
    full = [line for line in induction.get_lines() if line.get_gid() == "milestone:causal_full_control"]
    assert [(float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in full] == [(1_000_000.0, 3.0)]
    assert "first causal with a full control" in [t.get_text() for t in figure.legends[0].get_texts()]
    images = []
    for visible in (True, False):
        for line in full:
            line.set_visible(visible)
        image = rendered(figure)
        x, y = induction.transData.transform((1_000_000, 3.0))
        row, col = int(image.shape[0] - y), int(x)
        images.append(image[row - 8 : row + 8, col - 8 : col + 8])
    plt.close(figure)
    assert (np.abs(images[0].astype(int) - images[1].astype(int)).max(axis=-1) > 40).sum() > 20
    short = both.with_columns(pl.lit(None, dtype=pl.Int64).alias("causal_full_control_tokens"))
    figure = emergence_figure(curves, short)
    notes = [t.get_text() for t in figure.axes[1].texts if t.get_gid() == "unreached"]
    assert notes == ["early screen: not reached", "induction onset: not reached",
                     "causal with a full control: not reached"]  # fmt: skip
    plt.close(figure)


def test_token_axis_fits_the_swept_tokens_with_readable_ticks():
    """The token axis ends just past the last revision, step 0 takes a narrow strip at the left, and the labelled
    ticks are round numbers (0 and 1-2-5 x a power of ten), at least four of them over two decades."""
    steps = [0, 25, 50, 100, 200, 400, 800, 1600, 2500]
    curves = pl.DataFrame(
        {
            "model": "m",
            "tokens": [s * 2048 for s in steps],
            "bos_fraction": np.linspace(0, 0.6, len(steps)),
            "induction_selective_heads": list(range(len(steps))),
        }
    )
    figure = emergence_figure(curves)
    figure.canvas.draw()
    axis = figure.axes[0]
    low, high = axis.get_xlim()
    assert low == 0 and 2500 * 2048 < high <= 1.2 * 2500 * 2048
    left, right = (axis.transData.transform((x, 0))[0] for x in (0, high))
    first = axis.transData.transform((25 * 2048, 0))[0]
    assert (first - left) / (right - left) < 0.12  # step 0 .. the first checkpoint: a narrow strip
    ticks = [t for t in axis.get_xticks() if low <= t <= high]
    labels = [label.get_text() for label in axis.get_xticklabels() if label.get_text()]
    assert len(ticks) >= 5 and ticks[0] == 0
    assert all(float(f"{t:.0e}".split("e")[0]) in (1.0, 2.0, 5.0) for t in ticks[1:])
    assert labels[:3] == ["0", "100K", "200K"] and labels[-1] == "5M"
    plt.close(figure)


def test_heatmap_counts_and_layers_are_integers(sweep):
    """Layer ticks and the colour bar's ticks are whole numbers; each count gets its own colour step, and a run with
    no head counted has one step, 0."""
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
    empty = curves.with_columns(
        pl.col("bos_per_layer").list.eval(pl.element() * 0), pl.col("induction_per_layer").list.eval(pl.element() * 0)
    )
    figure = heatmap_figure(empty, "m")  # a run in which no head of any layer was ever counted
    figure.canvas.draw()
    (bar,) = [axis for axis in figure.axes if not axis.get_title()]
    assert [label.get_text() for label in bar.get_yticklabels()] == ["0"]  # no colour step for a count no cell has
    plt.close(figure)


def test_heatmap_panels_share_one_colour_scale_on_a_token_axis(sweep):
    """Both panels use one colour scale (one colour bar); on the log token axis each revision is a cell around its
    tokens, bounded halfway to its neighbours; the model's milestones are drawn as lines, each in its own style, at
    the left edge of their revision's cell (no cell left of a line is at the milestone)."""
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
    cells = dict(zip(STEPS, transform.inverted().transform(edges[:-1]), strict=True))  # each revision's left edge
    lines = sorted({float(line.get_xdata()[0]) for line in induction.get_lines()})
    assert lines == [pytest.approx(cells[300])]  # induction onset, at its cell's left edge
    lines = sorted({float(line.get_xdata()[0]) for line in bos.get_lines()})
    assert lines == [pytest.approx(cells[10])]  # first BOS head = BOS t50
    styles = {handle.get_label(): handle.get_linestyle() for handle in figure.legends[0].legend_handles}
    assert len(set(styles.values())) == len(styles) == 3, styles  # first BOS head, BOS t50, onset: told apart
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
    assert colours.count(to_rgba(CLASS_COLOURS["first"])) == 3
    assert colours.count(to_rgba(CLASS_COLOURS[C.NO_CLASS])) == 6
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["none (6)", "first (3)", "induction (3)", "class threshold (10)"]
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


def test_first_bos_head_stays_visible_on_the_bos_t50_star(sweep):
    """Where the first BOS head is also BOS t50 (the demo run's checkpoint-200), its triangle was drawn under the
    larger star and hidden: at one point, the smaller filled mark is drawn above the larger one."""
    _, curves, table = sweep
    same = table.with_columns(
        pl.col("bos_t50_tokens").alias("first_bos_head_tokens"),
        pl.col("bos_t50_revision").alias("first_bos_head_revision"),
    )
    figure = emergence_figure(curves, same)
    bos = figure.axes[0]
    (triangle,) = [line for line in bos.get_lines() if line.get_gid() == "milestone:first_bos_head"]
    (star,) = [line for line in bos.get_lines() if line.get_gid() == "milestone:bos_t50"]
    assert list(triangle.get_xydata()[0]) == list(star.get_xydata()[0])
    assert triangle.get_markersize() < star.get_markersize() and triangle.get_zorder() > star.get_zorder()
    plt.close(figure)


def test_bos_axis_fits_the_data_and_shows_the_t50_level(sweep):
    """The BOS axis ends a little above the larger of the data and the BOS t50 level, whose dashed line is drawn,
    and starts below 0 only for the brackets' strip (no tick there); the model's curve is drawn in its colour (a
    figure that draws nothing fails)."""
    _, curves, table = sweep
    figure = emergence_figure(curves, table, bos_level=0.5)
    image = rendered(figure)
    bos = figure.axes[0]
    low, high = bos.get_ylim()
    assert 0.5 < high <= 0.5 * 1.15 and low < 0 and min(bos.get_yticks()) == 0
    levels = [line for line in bos.get_lines() if list(line.get_ydata()) == [0.5, 0.5]]
    assert len(levels) == 1 and levels[0].get_linestyle() == "--"
    assert pixels_near(image, "tab:blue") > 500
    plt.close(figure)


def test_bos_level_label_leaves_a_late_rising_curve_readable(sweep):
    """The BOS t50 level's label moves to the left end when the curve reaches the level at the right, as BOS heads
    do in the study's order (the default toy's curve ran through "BOS t50 level (0.5)" at its last revisions); a
    curve that stays low at the right keeps the label there."""
    _, curves, _ = sweep
    for rising, side in ((True, "left"), (False, "right")):
        shares = [0.0, 0.05, 0.3, 0.45, 0.52] if rising else [0.0, 0.2, 0.3, 0.25, 0.2]
        figure = emergence_figure(
            curves.with_columns(bos_fraction=pl.Series(shares).gather(pl.int_range(pl.len()) % len(STEPS))),
            bos_level=0.5,
        )
        rendered(figure)
        bos = figure.axes[0]
        (label,) = [text for text in bos.texts if text.get_gid() == "bos-level"]
        box = label.get_window_extent(figure.canvas.get_renderer()).expanded(1.0, 1.0).padded(3)
        (line,) = [line for line in bos.get_lines() if line.get_label() == "m"]
        points = bos.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float))
        assert not any(box.contains(x, y) for x, y in points), (side, box, points)
        assert label.get_horizontalalignment() == side
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
    every panel, so it covers no data; the token axis says it is logarithmic, as in the other figures."""
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
    assert {axis.get_xlabel() for axis in panels} == {"training tokens (log; step 0 at the left)"}  # as it is drawn
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


def test_spectral_figure_ranks_heads_rings_the_screen_and_draws_the_top_k_cuts(sweep):
    """Left: one point per head at (rank, integral) in its final class's colour, a black ring on each screen head and
    a dashed cut after each K below the head count (a share of the heads or the elbow resolved as the ablation does),
    saying how many screen heads the top K hold, and a K at or above the head count said to cut nothing; right: a
    small panel per final class with every head's PR trajectory, screen heads in black."""
    from circuitsweep.heads.spectral import elbow_k, model_spectral
    from circuitsweep.outputs.plots import spectral_figure

    heads = sweep[0]
    spectral = model_spectral(heads, "m", CLASSIFY.induction_circuit)
    figure = spectral_figure(heads, spectral, "m", top_k=(0.25, 6, 45))
    image = rendered(figure)
    ranking, *panels = figure.axes
    points = {tuple(offset) for collection in ranking.collections[:-1] for offset in collection.get_offsets()}
    assert points == {(row["rank"], row["integral"]) for row in spectral.iter_rows(named=True)}
    ring = ranking.collections[-1]
    screen = spectral.filter(pl.col("screen"))
    assert screen.height == 3 and len(ring.get_offsets()) == 3
    assert to_rgba(ring.get_edgecolor()[0]) == to_rgba("black")
    cuts = [line.get_xdata()[0] for line in ranking.get_lines() if line.get_gid() == "top_k"]
    assert cuts == [3.5, 6.5]  # 0.25 of the 12 heads is K = 3; K = 45 exceeds the 12 heads: no cut
    held = [t.get_text() for t in ranking.texts if t.get_text().startswith("top 3")]
    top3 = screen.filter(pl.col("rank") <= 3).height
    assert held == [f"top 3: {top3} of 3 screen heads (25% of 12 heads)"]
    assert ranking.get_xlabel() == "rank by PR integral (1 = largest); top 45: all 12 heads, no cut"
    classes = [name for name in (*C.TARGETS, C.NO_CLASS) if name in set(spectral["final_class"])]
    assert [axis.get_title().split(":")[0] for axis in panels] == classes
    induction = panels[classes.index("induction")]
    assert sum(to_rgba(line.get_color()) == to_rgba("black") for line in induction.get_lines()) == 3
    assert pixels_near(image, CLASS_COLOURS["induction"]) > 20 and pixels_near(image, CLASS_COLOURS["first"]) > 20
    plt.close(figure)
    figure = spectral_figure(heads, spectral, "m", top_k=("elbow",))
    cuts = [line.get_xdata()[0] for line in figure.axes[0].get_lines() if line.get_gid() == "top_k"]
    assert cuts == [elbow_k(spectral["integral"].to_list()) + 0.5]
    plt.close(figure)


def test_spectral_figure_draws_only_its_models_trajectories(sweep):
    """Given a run's heads table of several models (as the CLI may be), each class panel draws one line per head of
    the asked model, not the other models' revisions folded into it."""
    from circuitsweep.heads.spectral import model_spectral
    from circuitsweep.outputs.plots import spectral_figure

    heads = sweep[0]
    spectral = model_spectral(heads, "m", CLASSIFY.induction_circuit)
    assert set(heads["model"]) == {"m"}
    both = pl.concat([heads, heads.with_columns(pl.lit("other").alias("model"), (pl.col("pr") * 3 + 7).alias("pr"))])
    figure = spectral_figure(both, spectral, "m")
    per_class = spectral.group_by("final_class").len()
    for axis in figure.axes[1:]:
        name = axis.get_title().split(":")[0]
        expected = per_class.filter(pl.col("final_class") == name)["len"][0]
        assert len(axis.get_lines()) == expected, name
        top = max(max(line.get_ydata()) for line in axis.get_lines())
        assert top <= heads["pr"].max() + 1e-9, name
    plt.close(figure)


def test_top_k_cut_labels_leave_the_ringed_heads_names_readable(sweep):
    """Cuts among the top ranks sit where the ringed picks are named (top left, the largest integrals); their
    labels go to the empty bottom of the panel, so no label covers a head's name on the rendered image (they
    once printed "top 1.H5 of 5 screen heads" over L1H5)."""
    from circuitsweep.heads.spectral import model_spectral
    from circuitsweep.outputs.plots import spectral_figure

    heads = sweep[0]
    spectral = model_spectral(heads, "m", CLASSIFY.induction_circuit).sort("rank")
    # toy-gptneox's ranking of 2026-12-05: the two largest integrals close together, both screen heads
    integrals = [33.8, 32.5, 27.3, 25.8, 23.8, 23.7, 20.1, 16.7, 16.2, 15.9, 14.5, 13.7][: spectral.height]
    spectral = spectral.with_columns(integral=pl.Series(integrals), screen=pl.col("rank") <= 3)
    for top_k in ((1, 2), (2, 3), (0.25,)):
        figure = spectral_figure(heads, spectral, "m", top_k=top_k)
        rendered(figure)
        renderer = figure.canvas.get_renderer()
        texts = figure.axes[0].texts
        names = [t.get_window_extent(renderer) for t in texts if t.get_text().startswith("L")]
        labels = [t.get_window_extent(renderer) for t in texts if t.get_text().startswith("top ")]
        assert names and len(labels) == len(top_k), top_k
        assert not any(label.overlaps(name) for label in labels for name in names), top_k
        plt.close(figure)


def test_top_k_cut_shows_on_the_image(sweep):
    """The top-K cut is visible on the image: the pixel column just after rank K in the ranking panel is mostly
    dark (the dashed line) with the cut, and hardly without it."""
    from circuitsweep.heads.spectral import model_spectral
    from circuitsweep.outputs.plots import spectral_figure

    heads = sweep[0]
    spectral = model_spectral(heads, "m", CLASSIFY.induction_circuit)
    shares = []
    for top_k in ((3,), ()):
        figure = spectral_figure(heads, spectral, "m", top_k=top_k)
        image = rendered(figure)
        ranking = figure.axes[0]
        x = int(round(ranking.transData.transform((3.5, 0))[0]))
        box = ranking.get_window_extent()
        rows = slice(int(image.shape[0] - box.y1) + 2, int(image.shape[0] - box.y0) - 2)
        dark = pixels_near(image[rows, x - 1 : x + 2], "0.25", 40)
        shares.append(dark / (3 * (rows.stop - rows.start)))
        plt.close(figure)
    assert shares[0] > 0.3 and shares[1] < 0.05, shares


def test_an_unranked_model_gets_the_tables_note_in_place_of_the_ranking(sweep):
    """A model with too few revisions to rank has no points and no cuts; the ranking panel shows the table's note."""
    from circuitsweep.heads.spectral import model_spectral
    from circuitsweep.outputs.plots import spectral_figure

    heads = sweep[0].filter(pl.col("step") <= 10)
    spectral = model_spectral(heads, "m", CLASSIFY.induction_circuit)
    assert spectral["rank"].null_count() == spectral.height
    figure = spectral_figure(heads, spectral, "m", top_k=(3,))
    ranking = figure.axes[0]
    assert not ranking.collections and not ranking.get_lines()
    assert [" ".join(t.get_text().split()) for t in ranking.texts] == [spectral["note"][0]]
    plt.close(figure)


def test_toy_primitive_figures_say_on_the_image_that_they_are_a_demonstration():
    """A primitive figure that draws a toy model carries the demonstration note on the image itself, across every
    panel (its colour shows in each panel's pixels); one without toys has none."""
    from circuitsweep.outputs.plots import DEMONSTRATION_COLOUR, demonstration_note

    gaps = primitive_gaps(["toy-a", "real"], ["representational", "behavioural"])
    scaling = gaps.filter(pl.col("revision") == "step1000").with_columns(
        pl.Series("parameters", [1_000_000, 1_000_000, 100_000_000, 100_000_000]),
        pl.lit(None, dtype=pl.Float64).alias("ci_total_low"),
        pl.lit(None, dtype=pl.Float64).alias("ci_total_high"),
    )
    cases = (
        (lambda toys: primitive_gap_figure(gaps, toys), ["toy-a"], demonstration_note(["toy-a"], ["toy-a", "real"])),
        (lambda toys: primitive_scaling_figure(scaling, demonstration=toys), ["toy-a", "real"], None),
    )
    for draw, toys, expected in cases:
        for demonstration in (toys, []):
            figure = draw(demonstration)
            image = rendered(figure)
            panels = [axis for axis in figure.axes if axis.get_visible()]
            assert len(panels) == 2
            notes = [t.get_text() for axis in panels for t in axis.texts if t.get_gid() == "demonstration"]
            shown = []
            for axis in panels:
                box = axis.get_window_extent()
                rows = slice(int(image.shape[0] - box.y1), int(image.shape[0] - box.y0))
                shown.append(pixels_near(image[rows, int(box.x0) : int(box.x1)], DEMONSTRATION_COLOUR, 20))
            if demonstration:
                assert len(notes) == 2 and notes[0].startswith("DEMONSTRATION ONLY")
                assert notes[0] == (expected or demonstration_note(toys, toys))
                assert min(shown) > 300, shown
            else:
                assert notes == [] and max(shown) == 0, shown
            plt.close(figure)
    assert "toy models, no tokenizer" in demonstration_note(["toy-a", "toy-b"], ["toy-a", "toy-b"])


def test_a_short_sweeps_token_ticks_name_its_revisions_not_the_axis_end():
    """A sweep of three checkpoints (0, 15.4K and 30.7K tokens) has one round count (20K) inside its axis; its other
    ticks are its first and last revisions, never the axis' right end (35.3K, no revision), as a new user of the
    run_dir demo saw. A longer sweep keeps round 1-2-5 ticks only."""
    figure, axis = plt.subplots()
    tokens = np.array([0, 15_360, 30_720])
    axis.plot(tokens, [0, 1, 2])
    token_axis(axis, tokens)
    figure.canvas.draw()
    assert [label.get_text() for label in axis.get_xticklabels()] == ["0", "15.4K", "20K", "30.7K"]
    plt.close(figure)
    assert token_ticks(409_600, 1_638_400 * 1.15, 1_638_400) == [0.0, 500_000.0, 1_000_000.0]


def legend_colours(figure: plt.Figure) -> dict[str, tuple]:
    """Model -> RGBA of the figure's (first) legend."""
    legend = figure.legends[0]
    return {
        text.get_text(): to_rgba(handle.get_color())
        for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True)
    }


def test_a_model_keeps_its_colour_across_the_emergence_gap_and_scaling_figures(sweep):
    """A reviewer reads one figure with another's legend: a model drawn blue in emergence.png was orange in
    primitive_scaling.png, which orders models by size. Each figure now colours a model by its name's place
    among the run's models, so the three agree (checked on the drawn artists and on the scaling image)."""
    _, curves, _ = sweep
    two = pl.concat([curves.with_columns(pl.lit(name).alias("model")) for name in ("zeta", "alpha")])
    emergence = emergence_figure(two, None)
    drawn = {line.get_label(): to_rgba(line.get_color()) for axis in emergence.axes for line in axis.get_lines()}
    plt.close(emergence)
    gaps = primitive_gaps(["zeta", "alpha"], ["representational"])
    gap_figure = primitive_gap_figure(gaps)
    in_gap = legend_colours(gap_figure)
    plt.close(gap_figure)
    scaling = gaps.filter(pl.col("revision") == "step1000").with_columns(
        pl.Series("parameters", [1_000_000, 100_000_000]),  # zeta is the smaller: drawn first
        pl.lit(None, dtype=pl.Float64).alias("ci_total_low"),
        pl.lit(None, dtype=pl.Float64).alias("ci_total_high"),
    )
    scaling_figure = primitive_scaling_figure(scaling)
    in_scaling = legend_colours(scaling_figure)
    image = rendered(scaling_figure)
    assert drawn["alpha"] == in_gap["alpha"] == in_scaling["alpha"] == to_rgba("tab:blue")
    assert drawn["zeta"] == in_gap["zeta"] == in_scaling["zeta"] == to_rgba("tab:orange")
    assert pixels_near(image, "tab:blue") > 30 and pixels_near(image, "tab:orange") > 30
