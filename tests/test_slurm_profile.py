"""The Snakemake profiles: profiles/slurm and profiles/workstation.

Fast tests check what the YAML says against the real workflow (its rules, read from
the Snakefile) and that Snakemake applies it as meant (dry runs of the real workflow
on a toy config). The `slurm` test runs a tiny workflow through the real SLURM
executor on the single-node test cluster (.ci/slurm/setup.sh): `pytest -m slurm`,
with CIRCUITSWEEP_START_SLURM=1 to let it start the cluster. The whole workflow
through SLURM is tests/test_slurm_sweep.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from slurm_cluster import (
    GPU_RESOURCES,
    REPO_ROOT,
    SLURM_PROFILE,
    WORKFLOW_SNAKEFILE,
    SlurmCluster,
    WorkflowRules,
    adapt_profile,
    derive_profile,
    load_profile,
    require_cluster,
    run_snakemake,
    snakemake_env,
    workflow_rules,
    write_toy_config,
)

WORKSTATION_PROFILE = REPO_ROOT / "profiles" / "workstation" / "config.yaml"

# the rules that load a model and need a GPU
GPU_RULES = {"measure_heads", "measure_primitives"}
# local rules the profile sizes anyway, for clusters where they are submitted
SIZED_LOCAL_RULES = {"fetch_snapshot"}
# rules that need a model's tokenizer: the toy suite has none, so its sweep never runs them
TOKENIZER_RULES = {"natural_batch"}


@pytest.fixture(scope="module")
def toy_config(tmp_path_factory) -> Path:
    return write_toy_config(tmp_path_factory.mktemp("config") / "toy.yaml")


@pytest.fixture(scope="module")
def rules(toy_config, tmp_path_factory) -> WorkflowRules:
    """The real workflow's rules, and which of them are local."""
    return workflow_rules(toy_config, tmp_path_factory.mktemp("rules"))


@pytest.fixture(scope="module")
def slurm_profile() -> dict:
    return load_profile(SLURM_PROFILE)


@pytest.fixture(scope="module")
def workstation_profile() -> dict:
    return load_profile(WORKSTATION_PROFILE)


# --- profiles/slurm: what the YAML says -------------------------------------------------


def test_slurm_profile_general_settings(slurm_profile):
    assert slurm_profile["executor"] == "slurm"
    assert slurm_profile["retries"] == 2
    assert slurm_profile["rerun-incomplete"] is True
    assert slurm_profile["printshellcmds"] is True
    assert isinstance(slurm_profile["jobs"], int) and slurm_profile["jobs"] >= 1
    assert isinstance(slurm_profile["latency-wait"], int) and slurm_profile["latency-wait"] >= 30


def test_workflow_rules_are_known(rules):
    # sanity of the rule discovery: `all` and the download rule run in the Snakemake process
    assert {"all", "fetch_snapshot"} <= rules.local
    assert {"train_toy_model", "measure_heads", "classify_heads", "head_tables"} <= rules.submitted
    assert not GPU_RULES & rules.local, "a GPU rule must be submitted to the cluster"


def test_slurm_profile_sizes_exactly_the_workflow_rules(slurm_profile, rules):
    sized = set(slurm_profile["set-resources"])
    # every rule that becomes a SLURM job is sized ...
    assert rules.submitted <= sized, f"not sized in {SLURM_PROFILE}: {sorted(rules.submitted - sized)}"
    # ... and nothing else: no stale names of renamed or removed rules
    stale = sized - set(rules.names)
    assert not stale, f"{SLURM_PROFILE} sizes rules the workflow does not have: {sorted(stale)}"
    assert not (sized & rules.local) - SIZED_LOCAL_RULES, sorted(sized & rules.local)
    assert set(slurm_profile.get("set-threads", {})) <= sized
    for rule, res in slurm_profile["set-resources"].items():
        assert isinstance(res.get("mem_mb"), int) and res["mem_mb"] > 0, rule
        assert isinstance(res.get("runtime"), int) and res["runtime"] > 0, rule


def test_slurm_profile_gpu_only_for_measurements(slurm_profile):
    assert set(slurm_profile["set-resources"]) >= GPU_RULES
    for rule, res in slurm_profile["set-resources"].items():
        if rule in GPU_RULES:
            # the plugin turns gpu: N into --gpus=N; gres would ask a second time
            assert res.get("gpu") == 1, rule
            assert "gres" not in res, rule
        else:
            assert not set(res) & set(GPU_RESOURCES), rule


def test_slurm_profile_leaves_site_settings_to_the_user(slurm_profile):
    # no default-resources: a user's --default-resources slurm_account=... (command line
    # or global profile) would otherwise replace the whole key, or be ignored.
    assert "default-resources" not in slurm_profile
    for rule, res in slurm_profile["set-resources"].items():
        assert not {"slurm_account", "slurm_partition", "constraint", "qos"} & set(res), rule


def test_no_default_workflow_profile():
    # profiles/default/ would be applied whenever no --workflow-profile is given
    assert not (REPO_ROOT / "profiles" / "default").exists()


# --- profiles/workstation ---------------------------------------------------------------


def test_workstation_profile(workstation_profile):
    assert workstation_profile.get("executor", "local") == "local"
    assert workstation_profile["cores"] == "all"
    assert workstation_profile["resources"] == {"gpu": 1, "snapshot_slots": 2}
    assert workstation_profile["set-resources"] == {rule: {"gpu": 1} for rule in GPU_RULES}


# --- the test-cluster adaptation (tests/slurm_cluster.py) -------------------------------

NO_GPU_NODE = SlurmCluster(node="n", partition="debug", cpus=2, mem_mb=8000, gpus=0)
GPU_NODE = SlurmCluster(node="n", partition="debug", cpus=64, mem_mb=512000, gpus=2)


def test_adapted_profile_drops_gpus_and_fits_the_node(slurm_profile):
    adapted = adapt_profile(slurm_profile, NO_GPU_NODE)
    for rule, res in adapted["set-resources"].items():
        assert not set(res) & set(GPU_RESOURCES), rule
        assert res["mem_mb"] <= NO_GPU_NODE.mem_mb, rule
        assert res["runtime"] == slurm_profile["set-resources"][rule]["runtime"]
    assert all(t <= NO_GPU_NODE.cpus for t in adapted["set-threads"].values())
    assert adapted["slurm-status-command"] == "squeue"
    # the real profile is untouched
    assert load_profile(SLURM_PROFILE) == slurm_profile


def test_adapted_profile_keeps_gpus_where_the_node_has_them(slurm_profile):
    adapted = adapt_profile(slurm_profile, GPU_NODE, extra={"jobs": 3, "keep-going": None})
    for rule in GPU_RULES:
        assert adapted["set-resources"][rule] == slurm_profile["set-resources"][rule]
    assert adapted["set-threads"] == slurm_profile["set-threads"]
    assert adapted["jobs"] == 3 and "keep-going" not in adapted


# --- Snakemake applies the profiles to the real workflow (dry runs, no cluster needed) ---


def _dry_run(tmp_path: Path, profile: Path, config: Path) -> dict[str, list[dict[str, str]]]:
    """rule name -> per job of the dry run, its resources (and threads) as Snakemake prints them."""
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--nocolor", "-s", str(WORKFLOW_SNAKEFILE),
         "-d", str(tmp_path / "w"), "--configfile", str(config), "--workflow-profile", str(profile),
         "--cores", "8"],
        capture_output=True, text=True, timeout=300, check=False, env=snakemake_env(),
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    found: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"\n\s*\n", out):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        resources = re.search(r"^\s*resources: (.*)$", block, re.M)
        if not (rule and resources):
            continue
        job = dict(item.split("=", 1) for item in resources.group(1).split(", ") if "=" in item)
        threads = re.search(r"^\s*threads: (\d+)", block, re.M)
        job["threads"] = threads.group(1) if threads else "1"
        found.setdefault(rule.group(1), []).append(job)
    return found


def test_snakemake_applies_slurm_profile(tmp_path, slurm_profile, rules, toy_config):
    found = _dry_run(tmp_path, SLURM_PROFILE.parent, toy_config)
    # the toy sweep runs every rule of the workflow but those that need a tokenizer
    assert set(found) == set(rules.names) - TOKENIZER_RULES
    assert {"train_toy_model", "measure_heads"} <= set(found)
    for rule, jobs in found.items():
        sizes = slurm_profile["set-resources"].get(rule)
        if sizes is None:
            assert rule in rules.local, rule
            continue
        threads = str(slurm_profile.get("set-threads", {}).get(rule, 1))
        for job in jobs:
            assert job["mem_mb"] == str(sizes["mem_mb"]), (rule, job)
            assert job["runtime"] == str(sizes["runtime"]), (rule, job)
            assert ("gpu" in job) == (rule in GPU_RULES), (rule, job)
            assert job.get("gpu", "1") == "1", (rule, job)
            assert job["threads"] == threads, (rule, job)


def test_snakemake_applies_workstation_profile(tmp_path, rules, toy_config):
    found = _dry_run(tmp_path, WORKSTATION_PROFILE.parent, toy_config)
    assert set(found) == set(rules.names) - TOKENIZER_RULES
    for rule, jobs in found.items():
        for job in jobs:
            assert job.get("gpu") == ("1" if rule in GPU_RULES else None), (rule, job)


# --- a real SLURM submission ------------------------------------------------------------

# Two of the workflow's rule names, so that the real profile's sizes apply; every job
# records where it ran. train_toy_model runs twice (in parallel with --jobs 2 when the
# node has the CPUs).
SLURM_SNAKEFILE = """
import json, os, socket

def record(path, rule):
    keys = ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "CUDA_VISIBLE_DEVICES")
    with open(path, "w") as fh:
        json.dump({"rule": rule, "host": socket.gethostname(), **{k: os.environ.get(k) for k in keys}}, fh)

rule all:
    input: "measured.json"
    localrule: True

rule train_toy_model:
    output: "trained/{seed}.json"
    threads: 1
    run:
        record(output[0], "train_toy_model")

rule measure_heads:
    input: expand("trained/{seed}.json", seed=["a", "b"])
    output: "measured.json"
    run:
        record(output[0], "measure_heads")
"""


def _job_info(job_id: str) -> dict[str, str]:
    """scontrol's record of a job (finished jobs stay visible for MinJobAge)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=True)
    return dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)


@pytest.mark.slurm
def test_toy_workflow_runs_as_slurm_jobs(tmp_path):
    cluster = require_cluster()
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(textwrap.dedent(SLURM_SNAKEFILE))
    profile_dir = derive_profile(tmp_path / "profile", cluster)
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    workdir = tmp_path / "work"

    run = run_snakemake(snakefile, workdir, profile_dir, jobs=2, timeout=600)
    assert run.returncode == 0, run.report()

    records = [json.loads(p.read_text()) for p in sorted(workdir.rglob("*.json"))]
    assert sorted(r["rule"] for r in records) == ["measure_heads", "train_toy_model", "train_toy_model"]
    job_ids = [r["SLURM_JOB_ID"] for r in records]
    assert all(j and j.isdigit() for j in job_ids), run.report()
    assert len(set(job_ids)) == 3, "each Snakemake job must be its own SLURM job"

    for record in records:
        info = _job_info(record["SLURM_JOB_ID"])
        sizes = profile["set-resources"][record["rule"]]
        assert info["JobState"] == "COMPLETED", info
        assert info["Partition"] == cluster.partition
        assert info["MinMemoryNode"] == f"{sizes['mem_mb']}M", info
        assert info["TimeLimit"] == f"{sizes['runtime'] // 60:02d}:{sizes['runtime'] % 60:02d}:00", info
        threads = profile.get("set-threads", {}).get(record["rule"], 1)
        assert info["NumCPUs"] == str(threads), info
        assert record["SLURM_CPUS_PER_TASK"] == str(threads)
        wants_gpu = "gpu" in sizes
        assert wants_gpu == (cluster.gpus > 0 and record["rule"] in GPU_RULES)
        asked_gpu = "gpu" in info.get("TresPerJob", "") + info.get("TresPerNode", "")
        assert asked_gpu == wants_gpu, info
        if wants_gpu:  # SLURM handed the job its (fake) GPU
            assert record["CUDA_VISIBLE_DEVICES"], record
