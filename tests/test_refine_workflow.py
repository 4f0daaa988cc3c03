"""Adaptive refinement end to end: a sparse sweep refined by `circuitsweep refine` finds the dense sweep's milestones.

The training run is planted (tests/planted.py): checkpoint folders every 25
steps whose induction head appears at step ONSET and starts to predict B (so
ablating it costs top-1 accuracy) at step CAUSAL, far cheaper than training.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from planted import FIRST_TOKEN, planted_sweep_settings, save_planted_run
from runenv import SNAKEFILE, job_env, job_logs

from circuitsweep.io import contracts as C
from circuitsweep.io.contracts import Paths
from circuitsweep.io.tables import read_table

REPO = Path(__file__).resolve().parents[1]
#: The rerun triggers a run from the repository root gets (Snakemake finds the profile there only).
PROFILE = ["--workflow-profile", str(REPO / "profiles" / "default")]
STEPS = range(0, 401, 25)
ONSET, CAUSAL = 275, 350


def _config(run: Path, revisions, refine: dict | None) -> dict:
    config = {
        **planted_sweep_settings(),
        "ablation": {"enabled": True, "random_draws": 2, "max_single_heads": 1, "n_sequences": 32},
        "outdir": "results",
        "models": {
            "planted": {
                "architecture": "GPTNeoXForCausalLM",
                "source": {"type": "run_dir", "path": str(run)},
                "revisions": revisions,
                "tokens": {"per_step": 1000},
                "first_token": {"policy": "fixed", "token_id": FIRST_TOKEN},
            }
        },
    }
    if refine is not None:
        config["refine"] = refine
    return config


def _run(command: list[str], workdir: Path) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=job_env(), cwd=workdir, timeout=600)
    if result.returncode != 0:
        raise AssertionError(
            f"{command[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}\n{job_logs(workdir)}"
        )
    return result.stdout + result.stderr


def _measured(out: str) -> list[str]:
    """The revisions of every measurement job a run's output shows (each job's line), one entry per job."""
    return re.findall(r"^measured planted (\S+): ", out, re.M)


def _milestones(workdir: Path) -> dict:
    table, _ = read_table(workdir / Paths().milestones_table("parquet"))
    return table.row(0, named=True)


@pytest.mark.slow
def test_sparse_sweep_refined_finds_the_dense_onset_and_causal_revisions(tmp_path):
    """`circuitsweep refine` on a 5-revision log-spaced sweep of 17 published checkpoints adds revisions round by
    round until the onset and causal milestones are bracketed by adjacent checkpoints; they then equal those of the
    dense sweep of all 17, with far fewer revisions measured. Each revision is measured exactly once: neither a later
    round nor the dense sweep afterwards measures one again (the final-revision ablation's reruns included)."""
    run = tmp_path / "run"
    save_planted_run(run, STEPS, onset=ONSET, causal=CAUSAL)
    workdir = tmp_path / "work"
    workdir.mkdir()
    sparse = tmp_path / "sparse.yaml"
    refine = {"milestones": ["induction_onset", "causal"], "max_rounds": 6}
    sparse.write_text(yaml.safe_dump(_config(run, {"log_count": 5}, refine)))
    brackets_csv = str(Paths().milestone_brackets("csv"))
    refine_command = [sys.executable, "-m", "circuitsweep", "refine", "--root", str(REPO), "--configfile", str(sparse)]
    out = _run([*refine_command, "--targets", brackets_csv, "--", "--cores", "2", *PROFILE], workdir)
    assert "planted: " in out and "of 17 available" in out
    added = len(pl.read_parquet(workdir / Paths().emergence_table("parquet"))) - 5
    assert f"revisions measured (5 planned, {added} added by refinement) of 17 available" in out  # a new run

    brackets = pl.read_csv(workdir / brackets_csv).rows_by_key("milestone", named=True, unique=True)
    refined = _milestones(workdir)
    refined_count = refined["n_revisions"]
    refined_revisions = set(pl.read_parquet(workdir / Paths().emergence_table("parquet"))["revision"])
    assert sorted(_measured(out)) == sorted(refined_revisions), "each refined revision is measured exactly once"
    assert brackets["induction_onset"]["status"] == brackets["causal"]["status"] == "adjacent"
    assert brackets["induction_onset"]["upper_revision"] == refined["induction_onset_revision"]
    assert brackets["causal"]["upper_revision"] == refined["causal_revision"]
    assert brackets["induction_onset"]["rounds_used"] >= 1 and (workdir / Paths().milestone_brackets("md")).exists()

    # the run folder gains checkpoints inside the finished onset bracket (it kept training, or was backfilled):
    # the next round's bracket table is remade from what the source publishes now, where it used to be "Nothing
    # to be done" with the bracket still adjacent (issue 32, case 1)
    lower, upper = brackets["induction_onset"]["lower_revision"], brackets["induction_onset"]["upper_revision"]
    inside = [int(lower.split("-")[1]) + 10, int(upper.split("-")[1]) - 5]
    backfilled = save_planted_run(run, inside, onset=ONSET, causal=CAUSAL)
    planned = _run([*refine_command, "--dry-run", "--", "--cores", "2", *PROFILE], workdir)
    assert "rule milestone_brackets:" in planned and "Nothing to be done" not in planned, planned[-3000:]
    for folder in backfilled:  # the dense sweep below is of the original 17 folders
        shutil.rmtree(folder)

    dense = sparse  # the same config, edited: a run folder belongs to one config file
    dense.write_text(yaml.safe_dump(_config(run, "all", None)))
    target = str(Paths().milestones_table("parquet"))
    out = _run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            SNAKEFILE,
            target,
            "--cores",
            "2",
            *PROFILE,
            "--configfile",
            str(dense),
        ],
        workdir,
    )
    measured_now = _measured(out)
    truth = _milestones(workdir)
    print(f"refined sweep: {refined_count} revisions measured; dense sweep: {truth['n_revisions']}")
    assert truth["n_revisions"] == len(STEPS)
    assert len(measured_now) == len(set(measured_now)) == len(STEPS) - refined_count
    assert not set(measured_now) & refined_revisions
    assert refined["induction_onset_revision"] == truth["induction_onset_revision"] == f"checkpoint-{ONSET}"
    assert refined["causal_revision"] == truth["causal_revision"] == f"checkpoint-{CAUSAL}"
    assert refined_count <= len(STEPS) // 2 + 1
    assert set(C.REFINE_MILESTONES) >= set(brackets)
