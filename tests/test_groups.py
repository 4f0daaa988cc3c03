"""Seed groups: the spread of each milestone over a family's models, measured on planted seeds."""

from __future__ import annotations

import math
import statistics

import polars as pl
import pytest
import torch
from planted import FIRST_TOKEN, VOCAB, planted_checkpoint

from circuitsweep.config.load import load_config
from circuitsweep.errors import DataError
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.classify import Thresholds, head_classes
from circuitsweep.heads.measure import ProbeSettings, head_statistics
from circuitsweep.heads.scores import head_scores
from circuitsweep.io import contracts as C
from circuitsweep.milestones.emergence import MilestoneThresholds, emergence_curves, milestones
from circuitsweep.milestones.groups import group_bands, group_milestones
from circuitsweep.plan.sweep import plan_sweep

PER_STEP = 1000
STEPS = (0, 100, 150, 200)
#: Three seeds of one planted architecture whose induction head forms at different steps, and two that agree.
ONSETS = {"seed-a": 100, "seed-b": 150, "seed-c": 200, "twin-a": 150, "twin-b": 150}
GROUPS = {"seed-a": "seeds", "seed-b": "seeds", "seed-c": "seeds", "twin-a": "twins", "twin-b": "twins"}
PROBES = ProbeSettings.from_dict(
    {
        "kind": "random_tokens",
        "token_range": [2, VOCAB],
        "batch_size": 32,
        "induction": {
            "n_sequences": 32,
            "seq_len": 64,
            "seed": 42,
            "min_first_position": 20,
            "n_baseline": 10,
            "baseline_seed": 0,
        },
        "repeated": {"n_sequences": 8, "seq_len": 32, "seed": 1},
        "random": {"n_sequences": 8, "seq_len": 32, "seed": 2},
    }
)
CLASSIFY = Thresholds(class_selectivity=8, induction_circuit=12, previous_circuit=100, sink_alpha=0.3)
MILESTONES = MilestoneThresholds(
    induction_onset_heads=1, bos_fraction_milestone=0.5, early_screen_recall=2 / 3, phase_transition_factor=3
)


@pytest.fixture(scope="module")
def measured() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Emergence curves and milestones of the planted seeds, measured from their checkpoints' attention."""
    frames, revisions = [], []
    torch.set_num_threads(1)
    for model, onset in ONSETS.items():
        for step in STEPS:
            stats = head_statistics(
                planted_checkpoint(step, onset, 10**9, register()),
                PROBES,
                FIRST_TOKEN,
                torch.device("cpu"),
                progress=False,
            )
            keys = {"model": model, "revision": f"step{step}", "step": step, "tokens": step * PER_STEP}
            frames.append(head_scores(stats).with_columns(*[pl.lit(v).alias(k) for k, v in keys.items()]))
            revisions.append({**keys, "n_layers": 2, "in_context_loss_drop": None})
    heads = head_classes(pl.concat(frames, how="vertical_relaxed"), CLASSIFY)
    curves = emergence_curves(heads, pl.DataFrame(revisions, schema_overrides={"in_context_loss_drop": pl.Float64}))
    return curves, milestones(curves, heads, dict.fromkeys(ONSETS, MILESTONES))


def test_seeds_that_differ_have_a_nonzero_spread(measured):
    """Each seed's measured onset is the step its induction head formed; the group's mean, SD, min and max are
    those of the measured onsets (SD > 0 for seeds that differ, 0 for seeds that agree); BOS t50, never reached
    (one BOS head of eight), counts no model."""
    curves, table = measured
    onsets = dict(zip(table["model"], table["induction_onset_tokens"], strict=True))
    assert onsets == {model: onset * PER_STEP for model, onset in ONSETS.items()}
    spread = group_milestones(table, GROUPS)
    assert spread.columns == list(C.GROUP_MILESTONE_COLUMNS)
    rows = {(r["group"], r["milestone"]): r for r in spread.iter_rows(named=True)}
    seeds = rows[("seeds", "induction_onset")]
    measured_onsets = [onsets[m] for m in ("seed-a", "seed-b", "seed-c")]
    assert (seeds["n_models"], seeds["n_reached"], seeds["models"]) == (3, 3, "seed-a,seed-b,seed-c")
    assert seeds["mean_tokens"] == pytest.approx(sum(measured_onsets) / 3)
    assert seeds["sd_tokens"] > 0 and seeds["sd_tokens"] == pytest.approx(50_000)
    assert (seeds["min_tokens"], seeds["max_tokens"]) == (min(measured_onsets), max(measured_onsets))
    assert rows[("twins", "induction_onset")]["sd_tokens"] == 0
    bos = rows[("seeds", "bos_t50")]
    assert (bos["n_reached"], bos["mean_tokens"], bos["sd_tokens"]) == (0, None, None)
    band = group_bands(curves, GROUPS, "induction_selective_heads").filter(pl.col("group") == "seeds")
    assert band.filter(pl.col("tokens") == 150_000).select("low", "high", "n_models").row(0) == (0.0, 1.0, 3)


def test_group_table_edge_cases():
    """One reached model has no SD; a grouped model missing from the milestones table is a DataError naming it;
    causal_tokens is summarised when the table has it."""
    table = pl.DataFrame(
        {
            "model": ["a", "b"],
            "induction_onset_tokens": [10, None],
            "bos_t50_tokens": [None, None],
            "early_screen_tokens": [10, 30],
            "causal_tokens": [20, 40],
        },
        schema_overrides={"bos_t50_tokens": pl.Int64},
    )
    rows = {r["milestone"]: r for r in group_milestones(table, {"a": "g", "b": "g"}).iter_rows(named=True)}
    assert (rows["induction_onset"]["n_reached"], rows["induction_onset"]["sd_tokens"]) == (1, None)
    assert rows["causal"]["sd_tokens"] == pytest.approx(math.sqrt(200))
    with pytest.raises(DataError, match=r"grouped models \['c'\]"):
        group_milestones(table, {"a": "g", "c": "g"})


def test_an_untestable_causal_milestone_is_left_out_not_censored():
    """DESIGN's three causal states are never confused: a model whose circuit had no matched control at any
    revision did not "never become causal", so the group's causal row counts only the testable models (the
    untestable ones named apart) and its median is theirs; tested and not reached stays censored."""
    table = pl.DataFrame(
        {
            "model": ["a", "b", "c", "d"],
            "induction_onset_tokens": [10, 10, 10, 10],
            "bos_t50_tokens": [None, None, None, None],
            "early_screen_tokens": [10, 10, 10, 10],
            "causal_state": ["causal", "untestable", "untestable", "not reached"],
            "causal_tokens": [20, None, None, None],
        },
        schema_overrides={"bos_t50_tokens": pl.Int64, "causal_tokens": pl.Int64},
    )
    rows = {r["milestone"]: r for r in group_milestones(table, dict.fromkeys("abcd", "g")).iter_rows(named=True)}
    causal = rows["causal"]
    assert causal["reached"] == "1 of 2 testable (2 untestable, left out)"
    assert (causal["n_models"], causal["n_reached"], causal["min_tokens"]) == (2, 1, 20)
    assert causal["median_tokens"] is None  # a and d: the later of the two is not reached
    assert causal["models"] == "a,d (untestable: b,c)"
    assert rows["induction_onset"]["reached"] == "4 of 4"
    only_a = group_milestones(table.filter(pl.col("model") != "d"), dict.fromkeys("abc", "g"))
    causal = only_a.filter(pl.col("milestone") == "causal").row(0, named=True)
    assert (causal["reached"], causal["median_tokens"], causal["mean_tokens"]) == (
        "1 of 1 testable (2 untestable, left out)",
        20.0,
        20.0,
    )


def test_a_member_that_never_reaches_a_milestone_is_censored():
    """Two seeds, one never reaching induction: no mean or SD over the one that did (the old table said
    "mean 400,000"), but "1 of 2", its tokens as the earliest, no median (the later seed's onset is unknown)
    and no latest. With 3 of 4 reached the median is defined (the middle two reached), the mean is not."""
    table = pl.DataFrame(
        {
            "model": ["a", "b", "c", "d", "e", "f"],
            "induction_onset_tokens": [400_000, None, 100, 300, 200, None],
            "bos_t50_tokens": [None, None, None, None, None, None],
            "early_screen_tokens": [10, 30, 10, 20, 40, 70],
        },
        schema_overrides={"bos_t50_tokens": pl.Int64, "induction_onset_tokens": pl.Int64},
    )
    groups = {"a": "pair", "b": "pair", "c": "four", "d": "four", "e": "four", "f": "four"}
    rows = {(r["group"], r["milestone"]): r for r in group_milestones(table, groups).iter_rows(named=True)}
    pair = rows[("pair", "induction_onset")]
    assert (pair["reached"], pair["n_reached"], pair["n_models"]) == ("1 of 2", 1, 2)
    assert (pair["mean_tokens"], pair["sd_tokens"], pair["median_tokens"], pair["max_tokens"]) == (None,) * 4
    assert pair["min_tokens"] == 400_000
    four = rows[("four", "induction_onset")]
    assert (four["reached"], four["mean_tokens"], four["sd_tokens"], four["max_tokens"]) == ("3 of 4", None, None, None)
    assert (four["min_tokens"], four["median_tokens"]) == (100, 250.0)  # 100, 200, 300, never: middle 200 and 300
    complete = rows[("four", "early_screen")]
    assert (complete["reached"], complete["mean_tokens"], complete["median_tokens"]) == ("4 of 4", 35.0, 30.0)
    assert (complete["min_tokens"], complete["max_tokens"]) == (10, 70)
    assert complete["sd_tokens"] == pytest.approx(statistics.stdev([10, 20, 40, 70]))
    none = rows[("pair", "bos_t50")]
    assert (none["reached"], none["min_tokens"], none["median_tokens"]) == ("0 of 2", None, None)


def test_emergence_figure_draws_a_band_per_group(measured, tmp_path):
    """The figure gains one shaded band per group on each panel."""
    from circuitsweep.outputs.plots import draw_group_bands, emergence_figure, emergence_plot

    curves, _ = measured
    figure = emergence_figure(curves)
    bos, induction = figure.axes[:2]
    draw_group_bands({"bos_fraction": bos, "induction_selective_heads": induction}, curves, GROUPS)
    assert len(bos.collections) == len(induction.collections) == 2
    emergence_plot(curves, tmp_path / "e.png", groups=GROUPS)
    assert (tmp_path / "e.png").stat().st_size > 0


def test_polypythia_suite_is_one_group_of_ten_seeds():
    """config/suites/polypythia-160m.yaml plans pythia-160m and its 9 seeds as one group at the same branches."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    plan = plan_sweep(load_config(root / "config" / "suites" / "polypythia-160m.yaml"), root)
    assert sorted(plan.groups()) == sorted(["pythia-160m", *(f"pythia-160m-seed{i}" for i in range(1, 10))])
    assert set(plan.groups().values()) == {"pythia-160m-seeds"}
    assert {tuple(r.name for r in revisions) for revisions in plan.revisions.values()} == {
        tuple(r.name for r in plan.revisions["pythia-160m"])
    }
    assert plan.models["pythia-160m-seed9"].source["repo_id"] == "EleutherAI/pythia-160m-seed9"
