"""The snapshot bound holds on disk: the real rules, a slow measurement and a failing one.

Runs the Snakefile with the local executor on a six-revision toy model with
snapshots_on_disk=2, while a thread counts the snapshot folders every 20 ms. The
measurement is replaced by a stand-in (tests/slowmeasure/sitecustomize.py) that sleeps
and fails for one revision, so that fast fetches would pile snapshots up if only running
jobs were counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from runenv import job_env, job_logs, run_paths

REPO = Path(__file__).resolve().parents[1]
REVISIONS = [f"step{i}" for i in range(6)]
CONFIG = """\
snapshots_on_disk: 2
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
    toy: {schedule: [0, 1, 2, 3, 4, 5], branch_format: "step{step}"}
    primitives: {enabled: false}
"""


def test_at_most_snapshots_on_disk_exist_and_a_failed_measurement_deletes_its_snapshot(tmp_path):
    """The bound holds with a failing measurement; its retry finds its snapshot; none is left when the run ends."""
    (tmp_path / "config.yaml").write_text(CONFIG)
    paths = run_paths(tmp_path, tmp_path / "config.yaml")
    snapshots = tmp_path / paths.root / "snapshots" / "toy-gptneox"
    targets = [str(paths.head_scores("toy-gptneox", r)) for r in REVISIONS]
    env = job_env(
        {
            "CIRCUITSWEEP_TEST_MEASURE": json.dumps({"sleep": 1.5, "fail": "step2"}),
            "PYTHONPATH": os.pathsep.join(
                [str(REPO / "tests" / "slowmeasure"), str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]
            ),
        }
    )
    seen: list[int] = []
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            seen.append(len([p for p in snapshots.glob("*") if p.is_dir()]) if snapshots.exists() else 0)
            time.sleep(0.02)

    watcher = threading.Thread(target=count)
    watcher.start()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "workflow/Snakefile"), "-d", str(tmp_path),
             "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", "--keep-going", "--retries", "1",
             "--nocolor"],
            capture_output=True, text=True, timeout=400, env=env, check=False,
        )  # fmt: skip
    finally:
        done.set()
        watcher.join()
    report = run.stdout[-2000:] + run.stderr[-4000:] + job_logs(tmp_path)

    assert run.returncode != 0, report  # step2's measurement failed
    # the bound held, and was reached (the count does see snapshots)
    assert max(seen) == 2, (max(seen), report)
    measured = {r for r in REVISIONS if (tmp_path / paths.head_scores("toy-gptneox", r)).exists()}
    # step4 (two places after step2) waits for step2's caches; the other lane went on
    assert measured == {"step0", "step1", "step3", "step5"}, report
    # the retry ran the measurement again on its snapshot (the stand-in failed again, as bad data would)
    assert "Missing files" not in run.stderr, report
    log = (tmp_path / paths.log("measure_heads/toy-gptneox/step2")).read_text()
    assert "test: measuring step2 fails" in log and "repeated from the previous attempt" in log, log
    # the snapshot of the failed measurement was deleted when the run failed; none is left at all
    assert not [p for p in snapshots.glob("*") if p.is_dir()], sorted(snapshots.glob("*"))
    assert f"deleted the snapshot {paths.snapshot('toy-gptneox', 'step2')}" in run.stderr, report
