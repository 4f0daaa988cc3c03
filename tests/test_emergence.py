"""Emergence curves and milestones (DESIGN.md 4) on hand-built classified heads."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from circuitsweep.config.load import study_defaults
from circuitsweep.errors import DataError
from circuitsweep.io import contracts as C
from circuitsweep.milestones.emergence import (
    MilestoneThresholds,
    curve_shape,
    emergence_curves,
    late_bos_counts,
    milestones,
)

THRESHOLDS = MilestoneThresholds.from_dict(study_defaults("thresholds"))
N_LAYERS, N_HEADS = 2, 4


def classified(
    model: str,
    revision: str,
    step: int,
    classes: dict[tuple[int, int], str],
    tokens: int | None = None,
    below_cut: frozenset[tuple[int, int]] = frozenset(),
    screened: frozenset[tuple[int, int]] = frozenset(),
) -> list[dict]:
    """Rows of one revision's classified heads; unnamed heads are ``none``.

    Induction heads, and the heads in ``screened`` whatever their class (as a
    BOS-class head with induction selectivity over the circuit cut), are
    induction-selective and circuit members, unless listed in ``below_cut``
    (selective, but under the circuit threshold).
    """
    rows = []
    for layer in range(N_LAYERS):
        for head in range(N_HEADS):
            cls = classes.get((layer, head), C.NO_CLASS)
            selective = cls == C.INDUCTION_CLASS or (layer, head) in screened
            member = selective and (layer, head) not in below_cut
            rows.append(
                {
                    "model": model,
                    "revision": revision,
                    "step": step,
                    "tokens": step * 1000 if tokens is None else tokens,
                    "layer": layer,
                    "head": head,
                    "class": cls,
                    "induction_selective": selective,
                    "induction_member": member,
                    "in_circuit": member,
                    "sink": cls == C.BOS_CLASS,
                }
            )
    return rows


def revision_row(model: str, revision: str, step: int, drop: float, weights: str, tokens: int | None = None) -> dict:
    return {
        "model": model,
        "revision": revision,
        "step": step,
        "tokens": step * 1000 if tokens is None else tokens,
        "n_layers": N_LAYERS,
        "in_context_loss_drop": drop,
        "weights_sha256": weights,
        "probe_protocol": "xu2026",
        "valid_sequences": 1990,
    }


def sweep_of(schedule: list[tuple]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Heads and revisions of model m from (revision, step, tokens, classes, weights[, below_cut[, screened]])."""
    heads, revisions = [], []
    for name, step, tokens, classes, weights, *rest in schedule:
        heads += classified("m", name, step, classes, tokens, *rest)
        revisions.append(revision_row("m", name, step, -1.0, weights, tokens))
    return pl.DataFrame(heads), pl.DataFrame(revisions)


THREE = {(1, 0): "induction", (1, 1): "induction", (1, 2): "induction"}


@pytest.fixture
def sweep() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A model whose BOS heads appear in layer 0 first, then three induction heads in layer 1."""
    schedule = [
        ("step0", 0, {}, 0.0, "w0"),
        ("step10", 10, {(0, 0): "first"}, 0.0, "w1"),
        ("step20", 20, {(0, 0): "first", (0, 1): "first", (1, 0): "induction"}, -0.5, "w2"),
        ("step30", 30, {(0, 0): "first", (0, 1): "first", (1, 0): "induction", (1, 1): "induction",
                        (1, 2): "induction"}, -2.0, "w3"),
        ("step40", 40, {(0, 0): "first", (0, 1): "first", (0, 2): "first", (1, 0): "induction",
                        (1, 1): "induction", (1, 2): "induction"}, -2.1, "w3"),
    ]  # fmt: skip
    heads = [row for name, step, classes, _, _ in schedule for row in classified("m", name, step, classes)]
    revisions = [revision_row("m", name, step, drop, weights) for name, step, _, drop, weights in schedule]
    return pl.DataFrame(heads), pl.DataFrame(revisions)


def test_curve_counts_classes_per_revision_and_layer(sweep):
    """BOS fraction, induction counts and per-layer counts follow the classes of each revision."""
    curves = emergence_curves(*sweep)
    assert curves.columns == list(C.EMERGENCE_COLUMNS)
    row = curves.filter(pl.col("revision") == "step30").row(0, named=True)
    assert row["bos_fraction"] == pytest.approx(2 / 8)
    assert row["n_induction_heads"] == row["induction_selective_heads"] == row["screen_heads"] == 3
    assert row["bos_per_layer"] == [2, 0]
    assert row["induction_per_layer"] == [0, 3]
    assert row["in_context_loss_drop"] == -2.0


def test_early_screen_recall_is_share_of_final_circuit(sweep):
    """Recall at a revision = share of the last revision's induction circuit already induction."""
    curves = emergence_curves(*sweep)
    recall = dict(zip(curves["revision"], curves["early_screen_recall"], strict=True))
    assert recall["step10"] == 0.0
    assert recall["step20"] == pytest.approx(1 / 3)
    assert recall["step30"] == 1.0


def test_identical_weights_are_marked_duplicates(sweep):
    """A revision whose weights equal an earlier one's names it in duplicate_of; others are null."""
    curves = emergence_curves(*sweep)
    duplicates = dict(zip(curves["revision"], curves["duplicate_of"], strict=True))
    assert duplicates == {"step0": None, "step10": None, "step20": None, "step30": None, "step40": "step30"}


def test_milestones_follow_design_definitions(sweep):
    """Onset = first revision with >= 3 induction heads; BOS t50 = first with BOS fraction >= 0.5 (none here)."""
    heads, revisions = sweep
    curves = emergence_curves(heads, revisions)
    table = milestones(curves, heads, {"m": THRESHOLDS})
    assert table.columns == list(C.MILESTONE_COLUMNS)
    row = table.row(0, named=True)
    assert row["induction_onset_revision"] == "step30"
    assert row["induction_onset_tokens"] == 30_000
    assert row["bos_t50_revision"] is None and row["bos_to_induction_ratio"] is None
    assert row["final_circuit_size"] == 3
    assert row["early_screen_revision"] == "step30"
    assert row["early_screen_token_share"] == pytest.approx(30 / 40)
    assert row["layers_without_bos"] == [1]
    # 0, 0, 1, 3, 3 heads: 80% of the rise needs step10 -> step30, a 3x window
    assert row["induction_shape"] == "phase transition"
    assert (row["induction_shape_ratio"], row["induction_shape_from"], row["induction_shape_to"]) == (
        pytest.approx(3.0),
        "step10",
        "step30",
    )


def test_first_bos_head_and_bos_peak(sweep):
    """First BOS head = first revision with any head of class first; the peak is the largest BOS fraction and the
    first revision reaching it (here step40: 3 of 8 heads), so an unreached t50 can say how far BOS got."""
    heads, revisions = sweep
    row = milestones(emergence_curves(heads, revisions), heads, {"m": THRESHOLDS}).row(0, named=True)
    assert (row["first_bos_head_revision"], row["first_bos_head_tokens"]) == ("step10", 10_000)
    assert row["bos_peak_fraction"] == pytest.approx(3 / 8)
    assert (row["bos_peak_revision"], row["bos_peak_tokens"]) == ("step40", 40_000)


def test_no_bos_head_leaves_the_first_bos_head_empty():
    """A model without any BOS head has no first-BOS-head revision and a peak of 0 at its first revision."""
    heads, revisions = sweep_of([("step0", 0, 0, {}, "w0"), ("step10", 10, 10_000, THREE, "w1")])
    row = milestones(emergence_curves(heads, revisions), heads, {"m": THRESHOLDS}).row(0, named=True)
    assert row["first_bos_head_revision"] is None and row["first_bos_head_tokens"] is None
    assert (row["bos_peak_fraction"], row["bos_peak_revision"]) == (0.0, "step0")


def test_bos_t50_and_ratio_when_reached():
    """The ratio BOS t50 / induction onset uses training tokens of both milestones."""
    rows, revisions = [], []
    for i, step in enumerate([0, 10, 20, 40]):
        classes = {(layer, head): "first" for layer in range(N_LAYERS) for head in range(N_HEADS) if head < i}
        if step >= 10:
            classes.update({(1, 3): "induction", (0, 3): "induction", (1, 2): "induction"})
        rows += classified("m", f"step{step}", step, classes)
        revisions.append(revision_row("m", f"step{step}", step, -1.0, f"w{step}"))
    heads = pl.DataFrame(rows)
    table = milestones(emergence_curves(heads, pl.DataFrame(revisions)), heads, {"m": THRESHOLDS})
    row = table.row(0, named=True)
    assert row["induction_onset_tokens"] == 10_000
    assert row["bos_t50_revision"] == "step20"
    assert row["bos_to_induction_ratio"] == pytest.approx(2.0)


#: Tokens of the shape cases below: each revision doubles the tokens of the one before.
DOUBLING = [1000 * 2**i for i in range(8)]


@pytest.mark.parametrize(
    ("values", "label", "ratio", "window"),
    [
        ([0, 0, 0, 8, 8], "phase transition", 2.0, (2, 3)),
        ([0, 2, 4, 6, 8], "gradual ramp", 16.0, (0, 4)),  # 80% of the rise needs 4 doublings
        ([0, 0, 0, 0], "flat", None, None),
        ([5, 3, 1], "flat", None, None),
        ([0, 6, 3, 6], "phase transition", 2.0, (0, 1)),
        ([0, 1, 2], "gradual ramp", 4.0, (0, 2)),  # 80% of 2 is more than either step
        ([0, 0, 4, 4, 3], "phase transition", 2.0, (1, 2)),
        ([0, 0.3, 0.3, 0.0], "rise and fall", 2.0, (0, 1)),
        ([0.1, 0.5, 0.2], "rise and fall", 2.0, (0, 1)),
        ([0, 1, 4, 5, 5], "gradual ramp", 4.0, (0, 2)),  # 3 of 5 in one doubling is not 80%; ties: the earliest
        # a peak before the rise: the end is measured against the curve's rise (2), not the peak's own (none)
        ([3, 0, 0, 2, 2], "phase transition", 2.0, (2, 3)),  # 1 below the peak: exactly half the rise
        ([3, 0, 0, 2, 1.9], "rise and fall", 2.0, (2, 3)),  # 1.1 below it: more than half
    ],
)
def test_curve_shape_narrowest_token_window(values, label, ratio, window):
    """The narrowest token window holding 80% of the rise, as a ratio: a phase transition at <= 3x, else a
    gradual ramp; a curve ending below its peak by more than half its rise is a rise and fall."""
    names = [f"r{i}" for i in range(len(values))]
    shape = curve_shape([float(v) for v in values], DOUBLING[: len(values)], names, 3.0)
    assert shape.label == label
    assert shape.ratio == (pytest.approx(ratio) if ratio is not None else None)
    assert shape.window == (None if window is None else (names[window[0]], names[window[1]]))


def _heads_formed(tokens: list[int], start: float, end: float, top: int = 8) -> list[float]:
    """A count of heads rising from 0 to ``top`` linearly in log tokens between ``start`` and ``end`` tokens."""
    import math

    def share(t: int) -> float:
        return min(1.0, max(0.0, (math.log(t) - math.log(start)) / (math.log(end) - math.log(start)))) if t else 0.0

    return [float(round(top * share(t))) for t in tokens]


#: A dense toy schedule (through step280-295: the 64-id toy GPT-NeoX's phase change) and a sparse one,
#: 4096 tokens per step.
TOY_DENSE = [s * 4096 for s in (0, 25, 50, 100, 150, 200, 250, 280, 285, 290, 295, 300, 350, 400, 450, 500, 600)]
TOY_SPARSE = [s * 4096 for s in (0, 100, 200, 300, 400, 500, 600)]
#: Four revisions per decade and one per decade, over 1e3 .. 1e9 tokens.
LOG_DENSE = [round(10 ** (3 + k / 4)) for k in range(25)]
LOG_SPARSE = [10**k for k in range(3, 10)]


@pytest.mark.parametrize(
    ("dense", "sparse", "start", "end", "label"),
    [
        (TOY_DENSE, TOY_SPARSE, 280 * 4096, 296 * 4096, "phase transition"),  # 0 -> 8 heads over step280-296
        (LOG_DENSE, LOG_SPARSE, 1e5, 1e8, "gradual ramp"),  # 0 -> 8 heads over 1000x the tokens
    ],
)
def test_curve_shape_does_not_depend_on_sampling_density(dense, sparse, start, end, label):
    """The same curve swept densely and sparsely gets the same label. The 64-id toy GPT-NeoX went from 0 to 8
    induction-selective heads between step280 and step295 of 600; its dense sweep splits the rise over
    several intervals, which the old rule (the largest rise between adjacent revisions) called a ramp."""
    labels = {
        name: curve_shape(_heads_formed(tokens, start, end), tokens, [str(t) for t in tokens], 3.0).label
        for name, tokens in (("dense", dense), ("sparse", sparse))
    }
    assert labels == {"dense": label, "sparse": label}


def test_curve_shape_rise_from_zero_tokens_is_unresolved():
    """A rise that only a window starting at 0 tokens holds has no finite ratio: unresolved, not a ramp."""
    shape = curve_shape([0.0, 8.0, 8.0], [0, 1000, 2000], ["step0", "step1", "step2"], 3.0)
    assert (shape.label, shape.ratio, shape.window) == ("unresolved", None, ("step0", "step1"))


def test_revision_without_heads_is_an_error(sweep):
    """A revision listed in the revisions table but absent from the heads is reported, not skipped."""
    heads, revisions = sweep
    with pytest.raises(Exception, match="step40 has no classified heads"):
        emergence_curves(heads.filter(pl.col("revision") != "step40"), revisions)


def test_final_circuit_is_one_revision_not_a_union():
    """Two revisions with the largest token count: the final circuit is the later step's alone."""
    heads, revisions = sweep_of(
        [
            ("a", 10, 5000, {}, "w0"),
            ("b", 20, 9000, {**THREE, (0, 3): "induction"}, "w1"),
            ("c", 30, 9000, THREE, "w2"),
        ]
    )
    curves = emergence_curves(heads, revisions)
    row = milestones(curves, heads, {"m": THRESHOLDS}).row(0, named=True)
    assert row["final_revision"] == "c"
    assert row["final_circuit_size"] == 3
    assert curves["early_screen_recall"].to_list() == [0.0, 1.0, 1.0]


def test_skip_duplicates_takes_the_last_kept_revision_as_final():
    """Under duplicates: skip the final revision is the last kept one, and token shares are against it."""
    heads, revisions = sweep_of(
        [
            ("a", 10, 10_000, {(1, 0): "induction", (1, 1): "induction"}, "w0"),
            ("b", 20, 20_000, THREE, "w1"),
            ("c", 30, 30_000, {**THREE, (0, 3): "induction"}, "w1"),  # same weights as b
        ]
    )
    curves = emergence_curves(heads, revisions, skip_duplicates={"m"})
    assert curves["revision"].to_list() == ["a", "b"]
    row = milestones(curves, heads, {"m": THRESHOLDS}).row(0, named=True)
    assert row["final_revision"] == "b" and row["final_tokens"] == 20_000
    assert row["final_circuit_size"] == 3
    assert row["early_screen_revision"] == "a"  # 2 of 3
    assert row["early_screen_token_share"] == pytest.approx(10_000 / 20_000)
    marked = milestones(emergence_curves(heads, revisions), heads, {"m": THRESHOLDS}).row(0, named=True)
    assert marked["final_revision"] == "c" and marked["final_circuit_size"] == 4


def test_early_screen_at_two_of_three_heads():
    """The study's 67% is 2/3: two of a three-head circuit is enough, one is not."""
    heads, revisions = sweep_of(
        [
            ("a", 10, None, {(1, 0): "induction"}, "w0"),
            ("b", 20, None, {(1, 0): "induction", (1, 2): "induction"}, "w1"),
            ("c", 30, None, THREE, "w2"),
        ]
    )
    curves = emergence_curves(heads, revisions)
    assert curves["early_screen_recovered"].to_list() == [1, 2, 3]
    row = milestones(curves, heads, {"m": THRESHOLDS}).row(0, named=True)
    assert row["early_screen_revision"] == "b"
    strict = MilestoneThresholds.from_dict({**study_defaults("thresholds"), "early_screen_recall": 0.67})
    assert milestones(curves, heads, {"m": strict})["early_screen_revision"].item() == "c"


def test_recall_counts_members_by_the_circuit_rule():
    """A head of the final circuit that is class induction but under the circuit cut is not yet recovered."""
    heads, revisions = sweep_of(
        [
            ("a", 10, None, THREE, "w0", frozenset({(1, 0), (1, 1)})),
            ("b", 20, None, {(1, 0): "first", (1, 1): "induction", (1, 2): "induction"}, "w1"),
            ("c", 30, None, THREE, "w2"),
        ]
    )
    curves = emergence_curves(heads, revisions)
    assert curves["early_screen_recovered"].to_list() == [1, 2, 3]
    assert curves["early_screen_recall"].to_list() == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_onset_reports_whether_it_is_sustained(sweep):
    """A transient spike of >= 3 induction heads is the onset, flagged as not sustained; a lasting one is."""
    heads, revisions = sweep
    assert milestones(emergence_curves(heads, revisions), heads, {"m": THRESHOLDS})["induction_onset_sustained"].item()
    heads, revisions = sweep_of(
        [
            ("a", 10, None, {}, "w0"),
            ("b", 20, None, THREE, "w1"),
            ("c", 30, None, {(1, 0): "induction"}, "w2"),
            ("d", 40, None, THREE, "w3"),
        ]
    )
    row = milestones(emergence_curves(heads, revisions), heads, {"m": THRESHOLDS}).row(0, named=True)
    assert row["induction_onset_revision"] == "b"
    assert row["induction_onset_sustained"] is False


def test_first_bos_head_reports_whether_it_is_sustained():
    """A sink that forms and goes again (a toy's plateau sink) is the first BOS head, flagged as not sustained;
    one that stays at every later revision is sustained; with no BOS head the flag is null."""
    sink = {(0, 1): "first"}
    cases = [
        ([sink, THREE, {**THREE, **sink}], False),
        ([{}, sink, {**THREE, **sink}], True),
        ([{}, THREE, THREE], None),
    ]
    for classes, sustained in cases:
        heads, revisions = sweep_of(
            [(name, 10 * (i + 1), None, c, f"w{i}") for i, (name, c) in enumerate(zip("abc", classes, strict=True))]
        )
        row = milestones(emergence_curves(heads, revisions), heads, {"m": THRESHOLDS}).row(0, named=True)
        assert row["first_bos_head_sustained"] is sustained, classes
        assert (row["first_bos_head_revision"] is None) == (sustained is None)


def test_late_bos_heads_are_sinks_that_were_none_before_the_onset():
    """A late BOS head is of class first at or after the induction onset and at no revision before it: a plateau
    sink that stays, or leaves and comes back, is not late; one that forms after the onset is, from its revision
    on. Without an onset no head is late; with the onset at the first revision every BOS head is."""
    bos = np.zeros((5, 3, 3), dtype=bool)  # [revision, classification, head]
    for b in range(3):
        bos[:, b, 0] = True  # a plateau sink that stays
        bos[[1, 3], b, 1] = True  # a plateau sink that comes back after the onset
        bos[3:, b, 2] = True  # a head that parks after the onset
    counts = late_bos_counts(bos, np.array([2, -1, 0]))
    assert counts[:, 0].tolist() == [0, 0, 0, 1, 1]
    assert counts[:, 1].tolist() == [0] * 5
    assert counts[:, 2].tolist() == [1, 2, 1, 3, 2]


def test_first_late_bos_head_comes_after_the_plateau_sinks():
    """The study's first BOS head counts a sink that parks before the onset; the first late BOS head is the first
    revision with a head that became a sink after it, and the final revision's late BOS heads are counted; one
    that parks for a single revision is flagged as not sustained."""
    sink, late = {(0, 1): "first"}, {(1, 3): "first"}
    heads, revisions = sweep_of(
        [
            ("a", 10, None, sink, "w0"),
            ("b", 20, None, {**THREE, **sink}, "w1"),
            ("c", 30, None, {**THREE, **sink, **late}, "w2"),
            ("d", 40, None, {**THREE, **late}, "w3"),
        ]
    )
    row = milestones(emergence_curves(heads, revisions), heads, {"m": THRESHOLDS}).row(0, named=True)
    assert (row["first_bos_head_revision"], row["induction_onset_revision"]) == ("a", "b")
    assert (row["first_late_bos_head_revision"], row["first_late_bos_head_tokens"]) == ("c", 30_000)
    assert row["final_late_bos_heads"] == 1 and row["first_late_bos_head_sustained"] is True
    brief = {(0, 2): "first"}  # parks for one revision after the onset, then leaves
    heads, revisions = sweep_of(
        [
            ("a", 10, None, sink, "w0"),
            ("b", 20, None, {**THREE, **brief}, "w1"),
            ("c", 30, None, THREE, "w2"),
            ("d", 40, None, {**THREE, **late}, "w3"),
        ]
    )
    row = milestones(emergence_curves(heads, revisions), heads, {"m": THRESHOLDS}).row(0, named=True)
    assert row["first_late_bos_head_revision"] == "b" and row["first_late_bos_head_sustained"] is False
    assert row["final_late_bos_heads"] == 1
    heads, revisions = sweep_of([("a", 10, None, sink, "w0"), ("b", 20, None, {**THREE, **sink}, "w1")])
    row = milestones(emergence_curves(heads, revisions), heads, {"m": THRESHOLDS}).row(0, named=True)
    assert row["first_late_bos_head_revision"] is None and row["final_late_bos_heads"] == 0


def test_a_revision_missing_a_head_is_an_error_not_a_misaligned_count():
    """New BOS heads are matched head by head across revisions, so a revision that lacks a head (or lists one
    twice) is a DataError naming the model, never a count of the wrong heads."""
    heads, revisions = sweep_of([("a", 10, None, {(0, 1): "first"}, "w0"), ("b", 20, None, THREE, "w1")])
    short = heads.filter(~((pl.col("revision") == "b") & (pl.col("layer") == 0) & (pl.col("head") == 0)))
    with pytest.raises(DataError, match="model m: its revisions do not all hold the same heads"):
        milestones(emergence_curves(short, revisions), short, {"m": THRESHOLDS})


def test_protocol_travels_to_curves_and_milestones(sweep):
    """The probe protocol and valid-sequence count of each revision reach the emergence rows and milestones."""
    heads, revisions = sweep
    curves = emergence_curves(heads, revisions)
    assert set(curves["probe_protocol"]) == {"xu2026"} and set(curves["valid_sequences"]) == {1990}
    assert milestones(curves, heads, {"m": THRESHOLDS})["probe_protocol"].item() == "xu2026"


def test_screen_keeps_heads_whose_best_class_turned_first():
    """Induction heads that BOS takes over (best class first, induction selectivity still over the cut) stay
    induction-selective and in the circuit: the onset is sustained and recall counts them (DESIGN.md 4)."""
    sunk = {(1, 0): "first", (1, 1): "first", (1, 2): "first"}
    heads, revisions = sweep_of(
        [
            ("a", 10, None, {}, "w0"),
            ("b", 20, None, THREE, "w1"),
            ("c", 30, None, sunk, "w2", frozenset(), frozenset(THREE)),
            ("d", 40, None, sunk, "w3", frozenset({(1, 2)}), frozenset(THREE)),
        ]
    )
    curves = emergence_curves(heads, revisions)
    assert curves["n_induction_heads"].to_list() == [0, 3, 0, 0]
    assert curves["induction_selective_heads"].to_list() == [0, 3, 3, 3]
    assert curves["screen_heads"].to_list() == [0, 3, 3, 2]
    row = milestones(curves, heads, {"m": THRESHOLDS}).row(0, named=True)
    assert row["induction_onset_revision"] == "b" and row["induction_onset_sustained"] is True
    assert row["final_circuit_size"] == 2
    assert row["final_induction_heads"] == 0
    assert curves["early_screen_recovered"].to_list() == [0, 2, 2, 2]
