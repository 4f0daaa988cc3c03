"""Job sizes, the fetch order that bounds snapshots on disk, and job blocks (no Snakemake)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from circuitsweep.config.load import study_defaults
from circuitsweep.errors import CacheError, ConfigError
from circuitsweep.plan import resources as R
from circuitsweep.plan import scheduling as S

REPO = Path(__file__).resolve().parents[1]


def test_fetch_waits_for_the_revision_k_places_earlier_across_models():
    slots = S.fetch_order({"a": ["r0", "r1", "r2"], "b": ["s0", "s1"]}, snapshots_on_disk=2, revisions_per_job=8)
    assert [S.fetch_after(slots, m, r, 2) for m, r in S.in_order(slots)] == [
        None, None, ("a", "r0"), ("a", "r1"), ("a", "r2"),
    ]  # fmt: skip


def test_blocks_stay_within_a_model_and_at_most_half_the_bound():
    # a block must never wait for its own snapshots: k // 2 revisions at most
    assert S.block_size(24, 12) == 12 and S.block_size(16, 12) == 8 and S.block_size(1, 8) == 1
    slots = S.fetch_order({"a": [f"r{i}" for i in range(5)], "b": ["s0"]}, snapshots_on_disk=4, revisions_per_job=8)
    assert S.blocks(slots) == {
        "a.r0": [("a", "r0"), ("a", "r1")],
        "a.r2": [("a", "r2"), ("a", "r3")],
        "a.r4": [("a", "r4")],
        "b.s0": [("b", "s0")],
    }
    # no block holds a revision whose fetch waits for another revision of the same block
    for pairs in S.blocks(slots).values():
        for model, revision in pairs:
            assert S.fetch_after(slots, model, revision, 4) not in pairs
    with pytest.raises(ValueError):
        S.block_size(0, 1)


def test_submission_count_of_a_full_scale_sweep():
    # 1,844 revisions (full.yaml with the complete OLMo manifest) in blocks of 12
    sizes = {"pythia": 154, "olmo": 1446, "olmoe": 244}
    slots = S.fetch_order(
        {model: [str(i) for i in range(n)] for model, n in sizes.items()}, snapshots_on_disk=24, revisions_per_job=12
    )
    counts = S.cluster_submissions(
        S.blocks(slots), models=3, toy_models=0, primitive_models=3, downloads="local", ablation=True
    )
    assert counts["groups"] == 13 + 121 + 21
    # per model: classify, heatmap, trajectories, spectral ranking and figure, final ablation; then
    # head_tables, plot_emergence, sweep_overhead, spectral_table, findings, table_pages, final_ablation_table
    # and the three primitive jobs
    assert counts["total"] == counts["groups"] + 18 + 10 and counts["total"] * 8 <= counts["revisions"]
    with_batch = S.cluster_submissions(S.blocks(slots), 3, 0, 3, "local", ablation=True, natural_batches=1)
    assert with_batch["total"] == counts["total"] + 1
    line = S.describe_submissions(counts, 24, 12)
    assert f"submits {counts['total']} jobs for 1844 revisions" in line


def test_block_record_and_dropping_unmeasured_snapshots(tmp_path):
    cache = tmp_path / "heads.parquet"
    cache.write_bytes(b"x" * 5)
    S.write_block_record("m.0", [cache], tmp_path / "m.0.json")
    assert json.loads((tmp_path / "m.0.json").read_text()) == {"block": "m.0", "files": {str(cache): 5}}
    with pytest.raises(CacheError, match="m.1: caches missing"):
        S.write_block_record("m.1", [tmp_path / "absent"], tmp_path / "m.1.json")
    failed, measured = tmp_path / "snap-failed", tmp_path / "snap-measured"
    for snapshot in (failed, measured):
        (snapshot / "sub").mkdir(parents=True)
    # a snapshot left by a failed run goes; one whose caches all exist is not touched
    pairs = [(failed, [cache, tmp_path / "absent"]), (measured, [cache]), (tmp_path / "never-fetched", [])]
    assert S.drop_unmeasured_snapshots(pairs) == [failed]
    assert not failed.exists() and measured.exists()


def test_measurement_sizes_follow_model_size_dtype_and_attempt():
    """Bigger models ask for more memory and time; a retry for twice both; a CPU run for no GPU."""
    full = yaml.safe_load((REPO / "config" / "full.yaml").read_text())["models"]
    probes = study_defaults("probes")
    from circuitsweep.plan import costs

    def size(entry: dict, dtype: str, device: str) -> R.JobSize:
        shape = R.planning_model_config(entry)
        return R.measure_size(shape, dtype, probes, device, costs.revision_work(probes, None, shape))

    pythia = size(full["pythia-1b"], "float32", "cuda")
    olmoe = size(full["olmoe-1b-7b"], "float16", "cuda")
    assert 5_000 < pythia.mem_mb < 10_000 and 14_000 < olmoe.mem_mb < 20_000
    assert pythia.gpu == olmoe.gpu == 1 and pythia.runtime <= olmoe.runtime  # both at least MIN_RUNTIME_MIN
    # a retry asks for twice the memory and time, the same GPUs
    assert olmoe.scaled(2) == R.JobSize(2 * olmoe.mem_mb, 2 * olmoe.runtime, 1)
    # toy models: sized from their own shape, small; on the CPU no GPU
    toy = size({"architecture": "GPTNeoXForCausalLM", "source": {"type": "toy"}}, "float32", "cpu")
    assert toy.gpu == 0 and toy.mem_mb < 3000
    # a Hub model without `shape` is sized as the study's largest before its snapshot exists
    assert size({"source": {"type": "hub"}}, "float16", "cuda") == olmoe
    assert R.small_size("classify_heads").as_resources() == {"mem_mb": 4000, "runtime": 30}


def test_prefetch_refuses_models_that_would_not_read_the_shared_cache(tmp_path):
    from circuitsweep.plan.prefetch import prefetch

    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n  m:\n    architecture: GPTNeoXForCausalLM\n"
        "    source: {type: hub, repo_id: EleutherAI/pythia-1b}\n    revisions: [step0]\n"
        "    tokens: {per_step: 2097152}\n    primitives: {enabled: false}\n"
    )
    with pytest.raises(ConfigError, match=r"models.m.source.cache must be 'shared'"):
        prefetch(config, tmp_path)
    with pytest.raises(ConfigError, match="no model named x"):
        prefetch(config, tmp_path, models=["x"])


def test_prefetch_names_a_model_that_is_not_on_the_hub(tmp_path):
    """`prefetch --models toy-gptneox` refuses the toy (trained here, nothing to download) by name; it used to
    print 'prefetched 0 revisions of 0 models' and exit 0."""
    from circuitsweep.plan.prefetch import prefetch

    with pytest.raises(ConfigError, match=r"only Hub models are prefetched, not toy-gptneox \(toy\)$"):
        prefetch(REPO / "config" / "config.yaml", REPO, models=["toy-gptneox"])


def test_input_set_trigger_is_recognised_from_snakemakes_enum():
    """The disk-bound order depends on whether Snakemake reruns a job for a changed set of inputs."""
    from snakemake.settings.enums import RerunTrigger

    assert S.input_set_triggers_reruns(RerunTrigger.all())
    assert not S.input_set_triggers_reruns({RerunTrigger.MTIME, RerunTrigger.PARAMS, RerunTrigger.CODE})
