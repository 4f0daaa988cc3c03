"""A head cache replaced on disk is checked by the run that sees it, and a new one reclassifies (issue 22).

The rerun used to rebuild the revision's block record from a replaced cache unchecked and exit 0,
without reclassifying (even under --forcerun classify_heads: Snakemake skips its own rerun checks
for a job downstream of one that reruns); only the run after refused the cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runenv import job_env, job_logs

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


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "-d", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", "--nocolor", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=job_env(), check=False)


@pytest.mark.slow
def test_a_new_cache_reclassifies_and_a_replaced_one_fails_the_run_that_sees_it(tmp_path):
    """step50 measured again (its block record still there): the next run rebuilds the block and reclassifies.
    step25's caches copied over step50's: the next run fails at step50's block record, naming the cache, and
    leaves the classification alone."""
    (tmp_path / "config.yaml").write_text(CONFIG)
    first = _snakemake(tmp_path, CLASSES)
    assert first.returncode == 0, first.stderr[-3000:] + job_logs(tmp_path)
    classes = tmp_path / CLASSES
    classified = classes.stat().st_mtime_ns

    remeasured = _snakemake(tmp_path, "results/cache/toy-gptneox/step50/heads.parquet", "--forcerun", "measure_heads")
    assert remeasured.returncode == 0, remeasured.stderr[-3000:] + job_logs(tmp_path)
    again = _snakemake(tmp_path, CLASSES)
    assert again.returncode == 0, again.stderr[-3000:] + job_logs(tmp_path)
    # the console shows the project's lines; Snakemake's log file keeps every job's block
    log_file = max((tmp_path / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime_ns)
    assert "rule classify_heads" in log_file.read_text(), again.stdout[-3000:]
    assert classes.stat().st_mtime_ns > classified
    classified = classes.stat().st_mtime_ns

    cache = tmp_path / "results" / "cache" / "toy-gptneox"
    for name in ("heads.parquet", "heads.safetensors"):
        shutil.copy(cache / "step25" / name, cache / "step50" / name)
    replaced = _snakemake(tmp_path, CLASSES, "--forcerun", "classify_heads")
    log = (tmp_path / "results" / "logs" / "revision_block" / "toy-gptneox.step50.log").read_text()
    assert replaced.returncode != 0, replaced.stderr[-3000:]
    assert "step50/heads.parquet does not belong to this run" in log and "Traceback" not in log, log
    assert classes.stat().st_mtime_ns == classified
