"""benchmarks/default_run.py reads job seconds per rule from Snakemake's log, as Snakemake 9 writes it."""

from __future__ import annotations

from bench_scripts import load_script

LOG = """\
[Mon Dec  7 07:00:36 2026]
localrule train_toy_model:
    output: results/toy/toyhub/published/toy-gptneox.json
    jobid: 6
    reason: Missing output files
[Mon Dec  7 07:00:36 2026]
localrule train_toy_model:
    jobid: 36
[Mon Dec  7 07:03:20 2026]
Finished jobid: 36 (Rule: train_toy_model)
[Mon Dec  7 07:03:20 2026]
localrule fetch_snapshot:
    jobid: 5
[Mon Dec  7 07:03:21 2026]
Finished jobid: 5 (Rule: fetch_snapshot)
[Mon Dec  7 07:04:00 2026]
Finished jobid: 6 (Rule: train_toy_model)
"""


def test_job_seconds_pairs_each_finish_with_its_start_across_interleaved_jobs(tmp_path):
    """Two trainings overlap a fetch: each job is timed from its own start line to its own finish line."""
    log = tmp_path / "run.snakemake.log"
    log.write_text(LOG)
    jobs = load_script("default_run").job_seconds(log)
    assert jobs == {"train_toy_model": (2, 164.0 + 204.0), "fetch_snapshot": (1, 1.0)}


def test_copy_tracked_copies_what_git_tracks_and_nothing_it_ignores(tmp_path):
    """The copy holds the Snakefile and the config, not results/ or the virtual environment."""
    load_script("default_run").copy_tracked(tmp_path)
    assert (tmp_path / "workflow" / "Snakefile").is_file() and (tmp_path / "config" / "config.yaml").is_file()
    assert not (tmp_path / ".venv").exists() and not (tmp_path / "results").exists()
