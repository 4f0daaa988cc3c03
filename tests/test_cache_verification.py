"""Every cache reader checks the cache's metadata against what the plan expects (issue 12, case 3).

Copying step0's heads.parquet over step10's used to give exit 0 and an
emergence table with step0 twice; a cache made with other probe settings was
mixed in silently; a truncated heads.safetensors was never read at all.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import polars as pl
import pytest
import torch

from circuitsweep.config.load import load_config
from circuitsweep.errors import CacheError
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.heads.stage import classify_heads
from circuitsweep.io import contracts as C
from circuitsweep.io.cache_check import CACHE_SCHEMA_VERSION, SCHEMA_KEY, verify_metadata
from circuitsweep.io.stats import write_stats
from circuitsweep.io.tables import write_table
from circuitsweep.plan.sweep import plan_sweep
from circuitsweep.primitives import jobs as primitive_jobs
from circuitsweep.primitives.stage import score_revision_primitives

REPO = Path(__file__).resolve().parents[1]
PLAN = plan_sweep(load_config(REPO / "config" / "config.yaml"), REPO)
MODEL = next(iter(PLAN.models))
REVISIONS = [r.name for r in PLAN.revisions[MODEL][:3]]


def write_head_cache(root: Path, revision: str, **changes) -> tuple[Path, Path]:
    """A revision's head cache as measure_heads writes it, with ``changes`` to its metadata."""
    metadata = {
        **heads_jobs.head_cache_expectation(PLAN, MODEL, revision),
        "n_layers": 1,
        "n_heads": 2,
        "loss_first_half": 4.0,
        "loss_second_half": 3.0,
        "in_context_loss_drop": -1.0,
        "valid_sequences": 500,
        "weights_sha256": f"weights-of-{revision}",
        "commit": f"commit-of-{revision}",
        **changes,
    }
    stats, scores = root / revision / "heads.safetensors", root / revision / "heads.parquet"
    write_stats(stats, {C.STAT_TARGET_MEAN: torch.rand(1, 2, len(C.TARGETS))}, metadata)
    rows = [{"layer": 0, "head": h, **{c: 2.0 for c in C.HEAD_SCORE_COLUMNS}} for h in range(2)]
    write_table(scores, pl.DataFrame(rows), metadata)
    return stats, scores


@pytest.fixture
def caches(tmp_path) -> tuple[list[Path], list[Path]]:
    paths = [write_head_cache(tmp_path / "cache", revision) for revision in REVISIONS]
    return [s for s, _ in paths], [p for _, p in paths]


def classify(stats: list[Path], scores: list[Path], tmp_path: Path) -> None:
    expected = [heads_jobs.head_cache_expectation(PLAN, MODEL, revision) for revision in REVISIONS]
    classify_heads(
        MODEL, scores, PLAN.models[MODEL].thresholds, tmp_path / "h.parquet", tmp_path / "r.parquet",
        stats_paths=stats, expected=expected,
    )  # fmt: skip


def test_matching_caches_classify(caches, tmp_path):
    """Caches made by this plan pass and every revision appears once."""
    classify(*caches, tmp_path)
    assert pl.read_parquet(tmp_path / "r.parquet")["revision"].to_list() == REVISIONS


def test_copied_score_table_is_refused(caches, tmp_path):
    """step0's scores copied over step10's: an error naming step10's file, not step0 twice."""
    stats, scores = caches
    shutil.copy(scores[0], scores[1])
    with pytest.raises(CacheError, match=rf"{scores[1]} does not belong.*revision is .*delete it and rerun"):
        classify(stats, scores, tmp_path)


def test_copied_cache_is_refused_even_without_expectations(caches, tmp_path):
    """Without the plan's expectations, two files holding one revision are still refused."""
    _, scores = caches
    shutil.copy(scores[0], scores[1])
    with pytest.raises(CacheError, match="both hold revision"):
        classify_heads(MODEL, scores, PLAN.models[MODEL].thresholds, tmp_path / "h.parquet", tmp_path / "r.parquet")


def test_other_probe_settings_are_refused(caches, tmp_path):
    """A cache measured with other probe settings names the file and the probes key."""
    stats, scores = caches
    probes = copy.deepcopy(PLAN.models[MODEL].probes.to_dict())
    probes["induction"]["n_sequences"] += 1
    write_head_cache(tmp_path / "cache", REVISIONS[2], probes=probes)
    with pytest.raises(CacheError, match=r"probes is .*delete it and rerun"):
        classify(stats, scores, tmp_path)


def test_older_cache_schema_is_refused(caches, tmp_path):
    """A cache without the current schema version (an older layout) is refused."""
    stats, scores = caches
    write_head_cache(tmp_path / "cache", REVISIONS[1], **{SCHEMA_KEY: 0})
    with pytest.raises(CacheError, match=rf"{SCHEMA_KEY} is 0, expected {CACHE_SCHEMA_VERSION}"):
        classify(stats, scores, tmp_path)


@pytest.mark.parametrize("cut", [-1, -100, 20])
def test_truncated_statistics_shard_is_refused(caches, tmp_path, cut):
    """A heads.safetensors cut short is noticed by the reader of the head cache."""
    stats, scores = caches
    data = stats[1].read_bytes()
    stats[1].write_bytes(data[:cut])
    with pytest.raises(CacheError, match=rf"{stats[1]} is truncated.*delete it and rerun"):
        classify(stats, scores, tmp_path)


def test_statistics_from_other_weights_are_refused(caches, tmp_path):
    """A statistics shard from another job than its score table (other weights) is refused."""
    stats, scores = caches
    other_stats, _ = write_head_cache(tmp_path / "other", REVISIONS[1], weights_sha256="different")
    shutil.copy(other_stats, stats[1])
    with pytest.raises(CacheError, match=r"weights_sha256 is \"different\""):
        classify(stats, scores, tmp_path)


def test_verify_metadata_names_each_difference():
    """The message lists every differing or missing key."""
    with pytest.raises(CacheError, match=r"x\.parquet .*a is 1, expected 2; b is missing, expected 3"):
        verify_metadata("x.parquet", {"a": 1}, {"a": 2, "b": 3})


def test_primitive_shard_of_other_revision_is_refused(tmp_path):
    """score-primitives refuses a shard whose metadata is not the planned revision's, before scoring."""
    revision = primitive_jobs.primitive_revisions(PLAN, MODEL)[-1].name
    expected = primitive_jobs.primitive_cache_expectation(PLAN, MODEL, revision)
    shard = tmp_path / "primitives.safetensors"
    write_stats(shard, {"x": torch.zeros(1)}, {**expected, "revision": "step0"})
    with pytest.raises(CacheError, match=r"revision is \"step0\".*delete it and rerun"):
        score_revision_primitives(
            shard,
            primitive_jobs.stimuli_file(PLAN, MODEL),
            primitive_jobs.primitive_scoring(PLAN, MODEL),
            tmp_path / "out",
            expected,
        )


def test_head_tables_refuse_tables_of_two_classifications(caches, tmp_path):
    """A revisions table classified with other thresholds than its heads table is refused by head_tables, naming it."""
    from dataclasses import replace

    from circuitsweep.io.tables import read_table, write_table
    from circuitsweep.milestones.tables import HeadTableOutputs, head_tables

    classify(*caches, tmp_path)
    milestones = {MODEL: PLAN.models[MODEL].milestones}
    out = HeadTableOutputs(*(tmp_path / n for n in ("h2.parquet", "e.parquet", "e.csv", "m.parquet", "m.csv", "m.md")))
    head_tables([tmp_path / "h.parquet"], [tmp_path / "r.parquet"], milestones, out)
    frame, metadata = read_table(tmp_path / "r.parquet")
    planned = PLAN.models[MODEL].thresholds
    other = replace(planned, class_selectivity=planned.class_selectivity + 1)
    write_table(tmp_path / "r.parquet", frame, {**metadata, "thresholds": dict(other.__dict__)})
    with pytest.raises(CacheError, match=r"r\.parquet does not belong to this run \(thresholds is"):
        head_tables([tmp_path / "h.parquet"], [tmp_path / "r.parquet"], milestones, out)


def test_a_block_record_verifies_its_head_caches(caches, tmp_path):
    """Issue 22: a head cache replaced on disk (step0's copied over step1's) made the rerun rebuild its block
    record from it unchecked and exit 0; only the run after refused it. The block record now verifies each
    head cache as classification does, so the run that sees the replaced cache fails, naming it."""
    from circuitsweep.plan.scheduling import write_block_record

    stats, scores = caches
    head_caches = [
        {"scores": str(p), "stats": str(s), "expected": heads_jobs.head_cache_expectation(PLAN, MODEL, revision)}
        for s, p, revision in zip(stats, scores, REVISIONS, strict=True)
    ]
    record = tmp_path / "blocks" / "b.json"
    write_block_record("b", [*stats, *scores], record, head_caches)
    assert record.is_file()
    record.unlink()
    shutil.copy(stats[0], stats[1])
    shutil.copy(scores[0], scores[1])
    with pytest.raises(CacheError, match=rf"{scores[1]} does not belong to this run .*revision"):
        write_block_record("b", [*stats, *scores], record, head_caches)
    assert not record.exists()


def test_damage_names_a_cache_that_cannot_be_read_and_only_such_a_cache(caches, tmp_path):
    """``damage`` (what the workflow deletes and measures again when a run starts) is None for a missing or a
    readable cache, stale or not, and the reason for a shard cut short or a Parquet table overwritten."""
    from circuitsweep.io.cache_check import damage

    stats, scores = caches
    assert damage(tmp_path / "missing.safetensors") is None
    assert damage(stats[0]) is None and damage(scores[0]) is None
    stale, _ = write_head_cache(tmp_path / "stale", REVISIONS[0], probes={"other": True})
    assert damage(stale) is None
    stats[1].write_bytes(stats[1].read_bytes()[:-10])
    assert "bytes on disk, the header describes" in damage(stats[1])
    scores[2].write_bytes(b"not a table")
    assert damage(scores[2])


def test_a_run_deletes_damaged_caches_and_plans_them_again(tmp_path):
    """A cache that cannot be read counts as not measured (check-config and the dry run's cost say so), and
    remove_damaged_caches deletes it (not in a dry run), each with a line naming the file, so that Snakemake,
    which would not remake a file it sees, measures the revision again."""
    import dataclasses

    from circuitsweep import revision_stage

    plan = dataclasses.replace(PLAN, paths=C.Paths(tmp_path / "results"))
    for revision in REVISIONS:
        for path in revision_stage.revision_cache_files(plan, MODEL, revision):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    damaged = {(m, r, p) for m, r, p, _ in revision_stage.damaged_caches(plan)}
    files = {(MODEL, r, p) for r in REVISIONS for p in revision_stage.revision_cache_files(plan, MODEL, r)}
    assert damaged == files
    assert not any(revision_stage.is_measured(plan, MODEL, r) for r in REVISIONS)
    lines = revision_stage.remove_damaged_caches(plan, dry_run=True)
    assert len(lines) == len(files) and all(path.exists() for _, _, path in files)
    assert f"{plan.paths.head_scores(MODEL, REVISIONS[0])} is damaged (" in lines[1]
    assert lines[1].endswith("again (the job list below leaves that out: Snakemake sees the file)")
    lines = revision_stage.remove_damaged_caches(plan, dry_run=False)
    assert len(lines) == len(files) and not any(path.exists() for _, _, path in files)
    assert lines[0].startswith(f"circuitsweep: deleted {plan.paths.head_stats(MODEL, REVISIONS[0])}, damaged (")
    assert revision_stage.damaged_caches(plan) == []


def test_a_cache_copied_from_another_revision_is_deleted_and_measured_again(tmp_path):
    """A readable head cache copied into another revision's folder (a user's cp) passed planning and failed only
    in classify_heads, inside Snakemake's error dump. Planning reads the identity it records: a file of another
    revision counts as damaged, so a dry run names it and a run deletes it and measures the revision again."""
    import dataclasses

    import polars as pl

    from circuitsweep import revision_stage
    from circuitsweep.io.tables import write_table

    plan = dataclasses.replace(PLAN, paths=C.Paths(tmp_path / "results"))
    scores = [plan.paths.head_scores(MODEL, r) for r in REVISIONS]
    for revision, path in zip(REVISIONS, scores, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table(path, pl.DataFrame({"layer": [0]}), {"model": MODEL, "revision": revision})
    assert revision_stage.damaged_caches(plan) == []
    write_table(scores[1], pl.DataFrame({"layer": [0]}), {"model": MODEL, "revision": REVISIONS[0]})
    ((model, revision, path, why),) = revision_stage.damaged_caches(plan)
    assert (model, revision, path) == (MODEL, REVISIONS[1], scores[1])
    assert why == f"it records {MODEL} {REVISIONS[0]}, not {MODEL} {REVISIONS[1]}"
    (line,) = revision_stage.remove_damaged_caches(plan, dry_run=False)
    assert not scores[1].exists() and scores[0].exists() and f"{MODEL} {REVISIONS[1]} is measured again" in line
