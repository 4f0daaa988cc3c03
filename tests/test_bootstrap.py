"""The bootstrap over probe sequences (docs/methods.md, Uncertainty): per-sequence statistics in the cache, the
point estimate reproduced exactly, intervals that cover a planted selectivity, milestone ranges from caches alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
import torch
from planted import FIRST_TOKEN, VOCAB, planted_checkpoint

from circuitsweep.config.probes import BootstrapSettings
from circuitsweep.config.thresholds import MilestoneThresholds
from circuitsweep.errors import CacheError, DataError
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.classify import Thresholds, head_classes
from circuitsweep.heads.measure import ProbeSettings, head_statistics
from circuitsweep.heads.scores import head_scores
from circuitsweep.heads.sequence_stats import grid_bits, resample_weights, selectivity, sequence_means
from circuitsweep.heads.stage import classify_heads
from circuitsweep.io import contracts as C
from circuitsweep.io.cache_check import CACHE_SCHEMA_VERSION, SCHEMA_KEY
from circuitsweep.io.stats import write_stats
from circuitsweep.io.tables import read_table, write_table
from circuitsweep.milestones.bootstrap import NO_CLASS_CODE, bootstrap_heads, class_codes, resampled_late_bos
from circuitsweep.milestones.tables import HeadTableOutputs, head_tables
from circuitsweep.milestones.uncertainty import bootstrap_summary

PROBES = ProbeSettings.from_dict(
    {
        "kind": "random_tokens",
        "token_range": [2, VOCAB],
        "batch_size": 32,
        "induction": {
            "n_sequences": 48,
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
STEPS = (0, 100, 200)
ONSET = 100


@pytest.fixture(scope="module")
def planted_stats() -> dict[int, dict[str, torch.Tensor]]:
    """Head statistics of the planted model before (step0) and after (step100, step200) its induction head forms."""
    torch.set_num_threads(1)
    return {
        step: head_statistics(
            planted_checkpoint(step, ONSET, 10**9, register()), PROBES, FIRST_TOKEN, torch.device("cpu"), False
        )
        for step in STEPS
    }


def test_cache_keeps_float32_per_sequence_statistics(planted_stats):
    """n x L x H x 7 float32 per sequence (6 targets, then the baseline mean) and each sequence's validity;
    the cached means are those rows averaged, induction and duplicate over the valid sequences only."""
    stats = planted_stats[200]
    rows = stats[C.STAT_PER_SEQUENCE]
    assert rows.dtype == torch.float32 and rows.shape == (48, 2, 4, len(C.TARGETS) + 1)
    valid = stats[C.STAT_SEQUENCE_VALID]
    assert valid.dtype == torch.bool and int(valid.sum()) == int(stats[C.STAT_VALID_SEQUENCES][0])
    scale = 2.0 ** grid_bits(48)
    assert torch.equal(torch.round(rows.double() * scale) / scale, rows.double())  # on the exact-sum grid
    induction = C.TARGETS.index("induction")
    by_hand = rows[valid][..., induction].double().mean(0).float()
    assert torch.equal(stats[C.STAT_TARGET_MEAN][..., induction], by_hand)
    assert torch.equal(stats[C.STAT_BASELINE_MEAN], rows[..., -1].double().mean(0).float())


def test_identity_resample_reproduces_the_point_estimate_exactly(planted_stats):
    """Weighing every sequence once, the bootstrap's arithmetic gives the cached selectivities bit for bit and
    the classifier's classes, at every revision."""
    names = [*C.CLASS_ORDER, C.NO_CLASS]
    for stats in planted_stats.values():
        scores = head_scores(stats)
        rows, valid = stats[C.STAT_PER_SEQUENCE].numpy(), stats[C.STAT_SEQUENCE_VALID].numpy()
        sel = selectivity(*sequence_means(rows, valid, np.ones((1, len(valid)), dtype=np.int32)))[0]
        for i, target in enumerate(C.TARGETS):
            assert np.array_equal(sel[..., i].astype(np.float64).ravel(), scores[f"sel_{target}"].to_numpy())
        classes = [names[c] for c in class_codes(sel.astype(np.float64), CLASSIFY).ravel()]
        assert classes == head_classes(scores, CLASSIFY)["class"].to_list()


def test_validity_rule_in_resamples():
    """Induction and duplicate are means over the valid sequences a resample holds; the rest over all. A
    resample holding no valid sequence has 0 there (the point estimate refuses such a probe)."""
    rows = np.zeros((4, 1, 1, len(C.TARGETS) + 1), dtype=np.float32)
    rows[:, 0, 0, C.TARGETS.index("induction")] = [0.5, 0.25, 1.0, 1.0]  # invalid sequences 2, 3 attend fully
    rows[:, 0, 0, C.TARGETS.index("first")] = [0.5, 0.25, 1.0, 1.0]
    rows[..., -1] = 0.125
    valid = np.array([True, True, False, False])
    weights = np.array([[1, 1, 1, 1], [2, 0, 1, 1], [0, 0, 2, 2]])
    targets, baseline = sequence_means(rows, valid, weights)
    induction = targets[:, 0, 0, C.TARGETS.index("induction")]
    assert induction.tolist() == [0.375, 0.5, 0.0]
    assert targets[:, 0, 0, C.TARGETS.index("first")].tolist() == [0.6875, 0.75, 1.0]
    assert baseline[:, 0, 0].tolist() == [0.125] * 3


def test_resamples_are_seeded_draws_with_replacement():
    """Each resample draws n sequences with replacement; the seed fixes them (the same for every revision)."""
    weights = resample_weights(50, 200, seed=0)
    assert weights.shape == (200, 50) and (weights.sum(axis=1) == 50).all()
    assert np.array_equal(weights, resample_weights(50, 200, seed=0))
    assert not np.array_equal(weights, resample_weights(50, 200, seed=1))
    assert 0.33 < (weights == 0).mean() < 0.40  # about (1 - 1/n)^n = 0.364 of the sequences miss a resample


def test_interval_covers_a_planted_selectivity():
    """A planted head attends to its target with a known mean (0.3) and to the baseline with another (0.01):
    its selectivity is 30. Over 200 planted probes of 300 sequences, the 95% bootstrap interval of 200
    resamples covers 30 in 88-99% of them, and its width shrinks with more sequences."""
    rng = np.random.default_rng(7)
    true_target, true_baseline = 0.3, 0.01
    covered, widths = 0, {}
    for trial in range(200):
        n = 300 if trial else 1200
        rows = np.zeros((n, 1, 1, len(C.TARGETS) + 1), dtype=np.float32)
        rows[:, 0, 0, C.TARGETS.index("previous")] = rng.beta(3, 7, size=n)  # mean 0.3
        rows[:, 0, 0, -1] = rng.gamma(2.0, true_baseline / 2.0, size=n)  # mean 0.01
        weights = resample_weights(n, 200, seed=trial)
        sel = selectivity(*sequence_means(rows, np.ones(n, dtype=bool), weights))[:, 0, 0, C.TARGETS.index("previous")]
        low, high = np.percentile(sel.astype(np.float64), [2.5, 97.5])
        if trial:
            covered += low <= true_target / true_baseline <= high
        widths[n] = high - low
    assert 0.88 <= covered / 199 <= 0.99, covered
    assert widths[1200] < widths[300]


def _revision(tmp_path, step: int, stats: dict[str, torch.Tensor]):
    """Write one planted revision's head cache as the measuring job does (statistics and scores)."""
    valid, total = (int(v) for v in stats[C.STAT_VALID_SEQUENCES])
    metadata = {
        "model": "planted",
        "revision": f"step{step}",
        "step": step,
        "tokens": step * 1000,
        "n_layers": 2,
        "n_heads": 4,
        "loss_first_half": None,
        "loss_second_half": None,
        "in_context_loss_drop": None,
        "first_token_policy": "fixed",
        "first_token_id": FIRST_TOKEN,
        "probe": "random_tokens",
        "probes": PROBES.to_dict(),
        "dtype": "float32",
        "probe_protocol": "xu2026",
        "valid_sequences": valid,
        "weights_sha256": f"w{step}",
        "commit": None,
        SCHEMA_KEY: CACHE_SCHEMA_VERSION,
    }
    shard, scores = tmp_path / f"step{step}.safetensors", tmp_path / f"step{step}.parquet"
    write_stats(shard, stats, metadata)
    write_table(scores, head_scores(stats), metadata)
    return shard, scores


def test_bootstrap_job_and_tables_from_caches_alone(tmp_path, planted_stats):
    """The bootstrap job reads the shards and classes of one model (no model), and the final tables gain each
    head's interval and class stability and each milestone's bracket and range. The planted induction head
    (L1H1) forms at step100 far above the cut: its class and the onset are stable across resamples."""
    caches = [_revision(tmp_path, step, stats) for step, stats in planted_stats.items()]
    classes, revisions = tmp_path / "heads.parquet", tmp_path / "revisions.parquet"
    classify_heads("planted", [s for _, s in caches], CLASSIFY, classes, revisions, stats_paths=[s for s, _ in caches])
    boot_heads, boot_curves = tmp_path / "boot_heads.parquet", tmp_path / "boot_curves.parquet"
    settings = BootstrapSettings(resamples=50, seed=0)
    bootstrap_heads(
        "planted",
        [s for s, _ in caches],
        classes,
        revisions,
        CLASSIFY,
        settings,
        boot_heads,
        boot_curves,
        onset_heads=MILESTONES.induction_onset_heads,
    )
    out = HeadTableOutputs(
        *(tmp_path / name for name in ("h.parquet", "e.parquet", "e.csv", "m.parquet", "m.csv", "m.md"))
    )
    head_tables(
        [classes],
        [revisions],
        {"planted": MILESTONES},
        out,
        bootstrap_heads=[boot_heads],
        bootstrap_curves=[boot_curves],
    )
    heads = read_table(out.heads)[0]
    assert set(C.BOOTSTRAP_HEAD_COLUMNS) <= set(heads.columns) and heads["class_stability"].null_count() == 0
    induction = heads.filter((pl.col("revision") == "step200") & (pl.col("layer") == 1) & (pl.col("head") == 1)).row(
        0, named=True
    )
    assert induction["class"] == "induction" and induction["class_stability"] == 1.0
    assert induction["sel_induction_low"] <= induction["sel_induction"] <= induction["sel_induction_high"]
    assert induction["sel_induction_low"] > CLASSIFY.induction_circuit
    table = read_table(out.milestones_parquet)[0].row(0, named=True)
    assert table["induction_onset_revision"] == "step100"
    assert (table["induction_onset_previous_revision"], table["induction_onset_previous_tokens"]) == ("step0", 0)
    assert (table["induction_onset_boot_earliest"], table["induction_onset_boot_latest"]) == ("step100", "step100")
    assert (table["induction_onset_boot_agreement"], table["induction_onset_boot_fragile"]) == (1.0, False)
    assert read_table(out.milestones_parquet)[1]["models"]["planted"]["bootstrap"] == {"resamples": 50, "seed": 0}
    text = out.milestones_md.read_text()
    assert "## How sure" in text and "| planted | induction onset | step100 | after step0: 0 - 100K tokens |" in text
    point = read_table(boot_curves)[0].filter(pl.col("resample") == 0).sort("tokens")
    assert point["late_bos_heads"][-1] == table["final_late_bos_heads"]
    other_onset = {"planted": dataclasses.replace(MILESTONES, induction_onset_heads=2)}
    with pytest.raises(
        CacheError, match=r"boot_curves.parquet does not belong.*induction_onset_heads is 1, expected 2"
    ):
        head_tables(
            [classes], [revisions], other_onset, out, bootstrap_heads=[boot_heads], bootstrap_curves=[boot_curves]
        )


def test_each_resample_counts_new_bos_heads_from_its_own_onset():
    """A resample whose induction onset comes a revision later counts a head that parks between the two onsets as
    a plateau sink, not as a new BOS head after the onset; a resample without an onset counts none."""
    bos = np.zeros((4, 3, 2), dtype=bool)  # [revision, resample, head]
    bos[2:, :, 0] = True  # head 0 parks at revision 2
    selective = np.array([[0, 0, 0], [3, 0, 0], [3, 3, 0], [3, 3, 0]])  # onsets: 1, 2, none
    late = resampled_late_bos(bos, selective, onset_heads=3)
    assert late[:, 0].tolist() == [0, 0, 1, 1]
    assert late[:, 1].tolist() == [0, 0, 1, 1]  # parks at its onset: at or after it counts
    assert late[:, 2].tolist() == [0, 0, 0, 0]
    bos[1, 1, 0] = True  # resample 1: a sink at revision 1, before its onset
    assert resampled_late_bos(bos, selective, onset_heads=3)[:, 1].tolist() == [0, 0, 0, 0]


def _curves(counts: list[list[int]], names: list[str]) -> pl.DataFrame:
    """Bootstrap curves of one model: ``counts[b][r]`` induction-selective heads at revision r in resample b."""
    rows = [
        {
            "model": "m",
            "resample": b,
            "revision": name,
            "step": r,
            "tokens": 1000 * (r + 1),
            "n_heads": 8,
            "induction_selective_heads": count,
            "bos_heads": 0,
            "late_bos_heads": 0,
            "screen_heads": count,
            "early_screen_recovered": count,
            "final_circuit_size": row[-1],
        }
        for b, row in enumerate(counts)
        for r, (name, count) in enumerate(zip(names, row, strict=True))
    ]
    return pl.DataFrame(rows).select(C.BOOTSTRAP_CURVE_COLUMNS)


def test_milestone_range_and_fragility():
    """The onset of 3 heads is reached at r1 by the point estimate; 10 of 100 resamples land on r2 and 5
    never reach it: the range is r1 - r2, 85% agree, and it is fragile (more than 5% land elsewhere)."""
    names = ["r0", "r1", "r2"]
    counts = [[0, 3, 4]] + [[0, 3, 4]] * 85 + [[0, 2, 3]] * 10 + [[0, 2, 2]] * 5
    thresholds = MilestoneThresholds(3, 0.5, 2 / 3, 3.0)
    point = pl.DataFrame(
        {
            "model": ["m"],
            "induction_onset_revision": ["r1"],
            "first_bos_head_revision": [None],
            "first_late_bos_head_revision": [None],
            "bos_t50_revision": [None],
            "early_screen_revision": ["r1"],  # 3 of 4 final heads: 2/3 reached
        },
        schema_overrides={
            "first_bos_head_revision": pl.String,
            "first_late_bos_head_revision": pl.String,
            "bos_t50_revision": pl.String,
        },
    )
    row = bootstrap_summary(_curves(counts, names), point, {"m": thresholds}).row(0, named=True)
    assert (row["induction_onset_boot_earliest"], row["induction_onset_boot_latest"]) == ("r1", "r2")
    assert row["induction_onset_boot_agreement"] == pytest.approx(0.85)
    assert row["induction_onset_boot_not_reached"] == pytest.approx(0.05)
    assert row["induction_onset_boot_fragile"] is True
    assert row["first_bos_head_boot_agreement"] == 1.0 and row["first_bos_head_boot_earliest"] is None
    stable = bootstrap_summary(_curves([[0, 3, 4]] * 101, names), point, {"m": thresholds}).row(0, named=True)
    assert stable["induction_onset_boot_fragile"] is False
    with pytest.raises(DataError, match="point estimate of induction_onset is r1, the milestones table says r2"):
        bootstrap_summary(
            _curves(counts, names),
            point.with_columns(pl.lit("r2").alias("induction_onset_revision")),
            {"m": thresholds},
        )


def test_class_codes_follow_the_classifier_order():
    """Ties go to the earlier class of the study's order; below the threshold a head has none."""
    sel = np.zeros((3, len(C.TARGETS)))
    sel[0, [C.TARGETS.index("previous"), C.TARGETS.index("first")]] = 40.0  # tie: previous before first
    sel[1, C.TARGETS.index("induction")] = 7.9
    sel[2, C.TARGETS.index("first")] = 8.0
    codes = class_codes(sel, CLASSIFY).tolist()
    assert codes == [C.CLASS_ORDER.index("previous"), NO_CLASS_CODE, C.CLASS_ORDER.index("first")]
