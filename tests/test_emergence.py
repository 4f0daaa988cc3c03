"""Emergence curves and milestones (DESIGN.md 4) on hand-built classified heads."""

from __future__ import annotations

import polars as pl
import pytest

from circuitsweep import contracts as C
from circuitsweep.config import study_defaults
from circuitsweep.heads.emergence import MilestoneThresholds, curve_shape, emergence_curves, milestones

THRESHOLDS = MilestoneThresholds.from_dict(study_defaults("thresholds"))
N_LAYERS, N_HEADS = 2, 4


def classified(model: str, revision: str, step: int, classes: dict[tuple[int, int], str]) -> list[dict]:
    """Rows of one revision's classified heads; unnamed heads are ``none``."""
    rows = []
    for layer in range(N_LAYERS):
        for head in range(N_HEADS):
            cls = classes.get((layer, head), C.NO_CLASS)
            rows.append(
                {
                    "model": model,
                    "revision": revision,
                    "step": step,
                    "tokens": step * 1000,
                    "layer": layer,
                    "head": head,
                    "class": cls,
                    "induction_member": cls == C.INDUCTION_CLASS,
                    "in_circuit": cls == C.INDUCTION_CLASS,
                    "sink": cls == C.BOS_CLASS,
                }
            )
    return rows


def revision_row(model: str, revision: str, step: int, drop: float, weights: str) -> dict:
    return {
        "model": model,
        "revision": revision,
        "step": step,
        "tokens": step * 1000,
        "n_layers": N_LAYERS,
        "in_context_loss_drop": drop,
        "weights_sha256": weights,
    }


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
    assert row["n_induction_heads"] == 3
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
    assert row["induction_shape"] == "phase transition"  # rises 1 then 2: the largest holds 2/3
    assert row["induction_largest_rise_share"] == pytest.approx(2 / 3)


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


@pytest.mark.parametrize(
    ("values", "label", "share"),
    [
        ([0, 0, 0, 8, 8], "phase transition", 1.0),
        ([0, 2, 4, 6, 8], "gradual ramp", 0.25),
        ([0, 0, 0, 0], "flat", None),
        ([5, 3, 1], "flat", None),
        ([0, 6, 3, 6], "phase transition", 6 / 9),
    ],
)
def test_curve_shape_share_of_rise(values, label, share):
    """One interval holding >= half of all increases is a phase transition; shares never exceed 1."""
    shape = curve_shape([float(v) for v in values], [f"r{i}" for i in range(len(values))], 0.5)
    assert shape.label == label
    assert shape.largest_rise_share == (pytest.approx(share) if share is not None else None)


def test_revision_without_heads_is_an_error(sweep):
    """A revision listed in the revisions table but absent from the heads is reported, not skipped."""
    heads, revisions = sweep
    with pytest.raises(Exception, match="step40 has no classified heads"):
        emergence_curves(heads.filter(pl.col("revision") != "step40"), revisions)
