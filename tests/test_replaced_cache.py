"""A head cache replaced on disk is never used, and a new one reclassifies (issue 22).

One copied from another revision's folder is found at planning and measured again; one that disagrees with
the plan otherwise is refused by the run that reads it.

The rerun used to rebuild the revision's block record from a replaced cache unchecked and exit 0,
without reclassifying (even under --forcerun classify_heads: Snakemake skips its own rerun checks
for a job downstream of one that reruns); only the run after refused the cache. Block records are
planned for a cluster executor only (``--jobs``); a local run's classification checks the caches.
Both are run here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runenv import job_env, job_logs

from circuitsweep.io.tables import read_table, write_table

REPO = Path(__file__).resolve().parents[1]
CONFIG = """\
primitives: {enabled: false}
outdir: results
probes:
  token_range: [2, 64]
  batch_size: 8
  induction: {n_sequences: 8, seq_len: 64}
  repeated: {n_sequences: 8, seq_len: 64}
  random: {n_sequences: 8, seq_len: 64}
models:
  toy-gptneox:
    architecture: GPTNeoXForCausalLM
    source: {type: toy, repo_id: toy/gptneox}
    revisions: all
    tokens: {per_step: 4096}
    first_token: {policy: fixed, token_id: 1}
    toy: {schedule: [0, 25, 50], branch_format: "step{step}"}
"""
CLASSES = "results/classes/toy-gptneox/heads.parquet"


def _snakemake(workdir: Path, executor: tuple[str, ...], *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "-d", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *executor, "--nocolor", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=job_env(), check=False)


LOCAL = ("--cores", "2")
CLUSTER_PLAN = ("--cores", "2", "--jobs", "2")  # plans the job groups and their block records, runs them here


@pytest.mark.slow
@pytest.mark.parametrize(
    ("executor", "refusing_log"),
    [(LOCAL, "classify_heads/toy-gptneox.log"), (CLUSTER_PLAN, "revision_block/toy-gptneox.step50.log")],
    ids=["local", "cluster-plan"],
)
def test_a_new_cache_reclassifies_and_a_replaced_one_is_never_used(tmp_path, executor, refusing_log):
    """step50 measured again: the next run reclassifies (through its rebuilt block record where one is planned).
    step25's caches copied over step50's: they record another revision, so the next run deletes them when it
    starts, measures step50 again and reclassifies from that. A cache of step50 that disagrees with the plan in
    another way (its step edited): the next run fails at the first job that reads it (its block record, or the
    classification), naming the cache, and writes no classification from it."""
    (tmp_path / "config.yaml").write_text(CONFIG)
    first = _snakemake(tmp_path, executor, CLASSES)
    assert first.returncode == 0, first.stderr[-3000:] + job_logs(tmp_path)
    classes = tmp_path / CLASSES
    classified = classes.stat().st_mtime_ns

    step50 = "results/cache/toy-gptneox/step50/heads.parquet"
    remeasured = _snakemake(tmp_path, executor, step50, "--forcerun", "measure_heads")
    assert remeasured.returncode == 0, remeasured.stderr[-3000:] + job_logs(tmp_path)
    again = _snakemake(tmp_path, executor, CLASSES)
    assert again.returncode == 0, again.stderr[-3000:] + job_logs(tmp_path)
    # the console shows the project's lines; Snakemake's log file keeps every job's block
    log_file = max((tmp_path / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime_ns)
    assert "rule classify_heads" in log_file.read_text(), again.stdout[-3000:]
    assert classes.stat().st_mtime_ns > classified
    classified = classes.stat().st_mtime_ns

    cache = tmp_path / "results" / "cache" / "toy-gptneox"
    for name in ("heads.parquet", "heads.safetensors"):
        shutil.copy(cache / "step25" / name, cache / "step50" / name)
    copied = _snakemake(tmp_path, executor)  # the user's plain rerun (a named existing file would not be remade)
    assert copied.returncode == 0, copied.stderr[-3000:] + job_logs(tmp_path)
    assert "step50/heads.parquet, damaged (it records toy-gptneox step25, not toy-gptneox step50)" in copied.stderr
    assert read_table(cache / "step50" / "heads.parquet")[1]["revision"] == "step50"
    assert classes.stat().st_mtime_ns > classified
    classified = classes.stat().st_mtime_ns

    frame, metadata = read_table(cache / "step50" / "heads.parquet")
    write_table(cache / "step50" / "heads.parquet", frame, {**metadata, "step": 999})
    replaced = _snakemake(tmp_path, executor, CLASSES, "--forcerun", "classify_heads")
    log = (tmp_path / "results" / "logs" / refusing_log).read_text()
    assert replaced.returncode != 0, replaced.stderr[-3000:]
    assert "step50/heads.parquet does not belong to this run" in log and "Traceback" not in log, log
    # a failed job's outputs are deleted by Snakemake: the refusing classification leaves none, never one
    # made from the replaced cache; a refusing block record leaves the previous classification in place
    if executor == LOCAL:
        assert not classes.exists()
    else:
        assert classes.stat().st_mtime_ns == classified
