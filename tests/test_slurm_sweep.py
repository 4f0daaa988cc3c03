"""The real workflow through SLURM: a toy sweep on the single-node test cluster.

Runs the Snakefile of this repository with the real `profiles/slurm` profile (adapted to
the test node by tests/slurm_cluster.py) on a one-model toy config, then the same config
with the local executor, and checks that

- the run succeeds, every job of a non-local rule ran as its own, COMPLETED SLURM job
  (train_toy_model and measure_heads among them) and the local rules (fetch_snapshot)
  did not;
- every submitted rule is sized by the profile;
- the final head tables are the same as those of the local run.

    sudo .ci/slurm/setup.sh && pytest -m slurm -q       (or CIRCUITSWEEP_START_SLURM=1)

By default both runs build the head tables (results/toy/tables/heads.parquet and
emergence.parquet: train_toy_model, fetch_snapshot, measure_heads, classify_heads,
head_tables), about 4 minutes on a 2-core node. Every SLURM job costs two workflow
start-ups (sbatch runs Snakemake, which runs the job through srun in a second one),
about 10-20 s each on 2 cores, so the whole default target (18 SLURM jobs with the
primitives stage) takes about twice as long: set CIRCUITSWEEP_SLURM_FULL_SWEEP=1 to run
it instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from slurm_cluster import (
    WORKFLOW_SNAKEFILE,
    SlurmCluster,
    SnakemakeRun,
    derive_profile,
    load_profile,
    require_cluster,
    run_command,
    run_snakemake,
    write_toy_config,
)

from circuitsweep.io.contracts import Paths
from circuitsweep.io.run_folder import run_root

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(1800)]

# the config file both runs sweep, and the paths of its run
CONFIG_NAME = "toy.yaml"
PATHS = Paths(run_root({}, [CONFIG_NAME]))
# tables both runs must produce, compared frame by frame
COMPARED_TABLES = (str(PATHS.heads_table()), str(PATHS.emergence_table()))
# what both runs build: the head tables, or (CIRCUITSWEEP_SLURM_FULL_SWEEP=1) the default target
FULL_SWEEP = os.environ.get("CIRCUITSWEEP_SLURM_FULL_SWEEP", "") == "1"
TARGETS = () if FULL_SWEEP else COMPARED_TABLES
# rules whose jobs must have gone through SLURM
MUST_BE_SLURM_JOBS = {"train_toy_model", "measure_heads"}


def _jobs_by_rule(run: SnakemakeRun) -> tuple[dict[str, str], dict[str, str]]:
    """(Snakemake jobid -> rule) for the jobs it submitted ("rule X:"), and for those it ran
    itself ("localrule X:"), from the job blocks Snakemake prints."""
    submitted: dict[str, str] = {}
    local: dict[str, str] = {}
    for block in re.split(r"\n\s*\n", run.stdout + "\n\n" + run.stderr):
        rule = re.search(r"^\s*(local)?rule (\w+):", block, re.M)
        jobid = re.search(r"^\s*jobid: (\d+)", block, re.M)
        if rule and jobid:
            (local if rule.group(1) else submitted)[jobid.group(1)] = rule.group(2)
    return submitted, local


def _job_stats(run: SnakemakeRun) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints before it starts: rule -> number of jobs."""
    text = run.stdout + run.stderr
    table = text[text.index("Job stats:") :].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def _slurm_job(job_id: str) -> dict[str, str]:
    """scontrol's record of a job: finished jobs stay visible for MinJobAge (600 s on the test
    cluster; it has no accounting database, so sacct cannot be asked)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"scontrol show job {job_id}: {out.stderr}"
    return dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)


# the rules of the job group "revisions" (one SLURM job per block of revisions)
GROUPED_RULES = ("measure_heads", "measure_revision", "score_primitives", "revision_block")


def _test_cluster_extras(cluster: SlurmCluster) -> dict:
    """Profile extras for the 2-core test node: one thread per job, the three revisions
    in one job group, and that group on the GPU partition when the cluster has one.

    The toy jobs need a fraction of a CPU's work; what a SLURM job costs here is mostly
    fixed overhead (two Snakemake start-ups per job, sbatch, squeue polling that backs off
    by 10 s per idle check). Jobs at 1 thread overlap that overhead.
    """
    profile = load_profile()
    extras: dict = {
        "set-threads": {rule: 1 for rule in profile.get("set-threads") or {}},
        "config": {"snapshots_on_disk": 6, "revisions_per_job": 3},
    }
    if cluster.gpu_partition:
        extras["set-resources"] = {rule: {"slurm_partition": cluster.gpu_partition} for rule in GROUPED_RULES}
    return extras


def _small_mem(rule: str) -> str:
    from circuitsweep.plan.resources import small_size

    return f"{small_size(rule).mem_mb}M"


def test_toy_sweep_through_slurm_matches_local_run(tmp_path):
    cluster = require_cluster()
    config = write_toy_config(tmp_path / CONFIG_NAME)
    profile_dir = derive_profile(tmp_path / "profile", cluster, extra=_test_cluster_extras(cluster))
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())

    # --- through SLURM ------------------------------------------------------------------
    slurm = run_snakemake(
        WORKFLOW_SNAKEFILE,
        tmp_path / "slurm",
        profile_dir,
        *TARGETS,  # before the options: --configfile takes several values
        "--configfile",
        str(config),
        timeout=1200 if FULL_SWEEP else 480,
    )
    assert slurm.returncode == 0, slurm.report()

    # ask SLURM about the jobs right away, well within MinJobAge
    submissions = re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", slurm.stdout + slurm.stderr)
    slurm_jobs = {slurm_id: _slurm_job(slurm_id) for _jobid, slurm_id in submissions}

    submitted, local = _jobs_by_rule(slurm)
    stats = _job_stats(slurm)
    assert "fetch_snapshot" in local.values() and "fetch_snapshot" not in submitted.values()
    assert stats["measure_heads"] == 3, stats

    # the last attempt of each submission COMPLETED (the profile allows retries)
    last_attempt = {jobid: slurm_jobs[slurm_id] for jobid, slurm_id in submissions}
    assert all(info["JobState"] == "COMPLETED" for info in last_attempt.values()), last_attempt
    by_kind: dict[str, list[dict[str, str]]] = {}
    for info in last_attempt.values():
        by_kind.setdefault(info.get("Comment", "").split("_wildcards_")[0], []).append(info)
    # the three measurements went in ONE job group: train, group, classify, bootstrap, tables
    assert {kind: len(jobs) for kind, jobs in by_kind.items()} == {
        "rule_train_toy_model": 1,
        "rule_revisions_measure_heads_revision_block": 1,  # the group "revisions" and its rules
        "rule_classify_heads": 1,
        "rule_bootstrap_heads": 1,  # the bootstrap over probe sequences, read by the head tables
        "rule_head_tables": 1,
    }, (by_kind, slurm.report())
    (group,) = by_kind["rule_revisions_measure_heads_revision_block"]
    if cluster.gpu_partition:
        assert group["Partition"] == cluster.gpu_partition, group
        # one GPU for the group: its measurements ran one after another
        assert re.search(r"gpu[:=]1$", group.get("TresPerJob", "") + group.get("TresPerNode", "")), group
    # the group's time is the sum of its jobs' (3 measurements, 10 min each, and the record)
    assert group["TimeLimit"] == "00:35:00", group
    for kind in ("classify_heads", "bootstrap_heads", "head_tables"):
        (info,) = by_kind[f"rule_{kind}"]
        assert info["Partition"] == cluster.partition and info["MinMemoryNode"] == _small_mem(kind), info

    # --- the same config with the local executor ---------------------------------------
    # the same thread counts as the SLURM jobs, so that both runs compute the same way
    threads = [f"{rule}={n}" for rule, n in (profile.get("set-threads") or {}).items()]
    local_cmd = [
        sys.executable, "-m", "snakemake", *TARGETS, "--snakefile", str(WORKFLOW_SNAKEFILE), "--directory",
        str(tmp_path / "local"), "--configfile", str(config), "--cores", "2", "--nocolor",
        *(["--set-threads", *threads] if threads else []),
    ]  # fmt: skip
    local_run = run_command(local_cmd, tmp_path / "local", timeout=300)
    assert local_run.returncode == 0, local_run.report()

    # --- same results ------------------------------------------------------------------
    def tables(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in (root / PATHS.heads_table().parent).rglob("*") if p.is_file()}

    assert tables(tmp_path / "slurm") == tables(tmp_path / "local")
    for name in COMPARED_TABLES:
        from_slurm = pl.read_parquet(tmp_path / "slurm" / name)
        from_local = pl.read_parquet(tmp_path / "local" / name)
        assert from_slurm.height > 0, name
        # Exact: both runs use the same code, seeds and thread counts on the same CPU, and
        # the head measurements are deterministic there.
        try:
            assert_frame_equal(from_slurm, from_local)
        except AssertionError as exc:
            raise AssertionError(f"{name} differs between the SLURM and the local run: {exc}") from None
