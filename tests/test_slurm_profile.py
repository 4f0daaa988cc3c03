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
GPU_RULES = {"measure_heads", "measure_revision", "final_ablation"}
# the rules of the job group "revisions": one SLURM job per block of revisions
GROUPED_RULES = ("measure_heads", "measure_revision", "score_primitives", "revision_block")
# rules that need a model's tokenizer: the toy suite has none, so its sweep never runs them
TOKENIZER_RULES = {"natural_batch"}
# rules of the final-revision ablation: run with ablation.enabled, which the toy config here leaves off
ABLATION_RULES = {"fetch_final_snapshot", "final_ablation", "final_ablation_table"}


@pytest.fixture(scope="module")
def toy_config(tmp_path_factory) -> Path:
    return write_toy_config(tmp_path_factory.mktemp("config") / "toy.yaml", primitives=True)


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
    # a failed job shows its log, not its command line twice (printshellcmds adds a RuleException block)
    assert slurm_profile["show-failed-logs"] is True and "printshellcmds" not in slurm_profile
    assert isinstance(slurm_profile["jobs"], int) and slurm_profile["jobs"] >= 1
    assert isinstance(slurm_profile["latency-wait"], int) and slurm_profile["latency-wait"] >= 30
    # a preempted job goes back into the queue instead of leaving Snakemake waiting
    assert slurm_profile["slurm-requeue"] is True
    # measurements fail at once without a GPU instead of computing on the CPU for hours
    assert slurm_profile["config"]["device"] == "cuda"


def test_slurm_profile_groups_with_one_gpu_per_group(slurm_profile):
    # a job group holds one GPU and runs its measurements one after another; the scope
    # `local` keeps that limit from capping the number of groups in flight
    assert slurm_profile["resources"] == {"gpu": 1}
    assert slurm_profile["set-resource-scopes"] == {"gpu": "local"}
    config = slurm_profile["config"]
    # two blocks fit the disk bound: one measured while the next downloads
    assert config["snapshots_on_disk"] >= 2 * config["revisions_per_job"] >= 16


def test_workflow_rules_are_known(rules):
    # sanity of the rule discovery: `all` and the download rule run in the Snakemake process
    assert {"all", "fetch_snapshot"} <= rules.local
    assert {"train_toy_model", "measure_heads", "classify_heads", "head_tables"} <= rules.submitted
    assert not GPU_RULES & rules.local, "a GPU rule must be submitted to the cluster"


def _rules_asking_for(resource: str) -> set[str]:
    """The rules of workflow/rules/*.smk whose `resources:` declare ``resource``."""
    found = set()
    for smk in (REPO_ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            if re.search(rf"^\s+{resource}=", block, flags=re.M):
                found.add(name)
    return found


@pytest.mark.parametrize("doc", ["README.md", "docs/cluster.md", "profiles/slurm/config.yaml"])
def test_documented_command_sends_every_gpu_rule_to_the_gpu_partition(doc):
    # A GPU rule left out of the command asks the CPU partition for --gpus=1 (the final ablation once did).
    assert _rules_asking_for("gpu") == GPU_RULES
    named = set(re.findall(r"(\w+):slurm_partition=<gpu partition>", (REPO_ROOT / doc).read_text()))
    assert named == GPU_RULES | set(GROUPED_RULES), doc


def test_slurm_profile_leaves_sizes_to_the_rules_and_site_settings_to_the_user(slurm_profile):
    # Sizes live in the rules: a profile's set-resources (or default-resources) would be
    # replaced as a whole by a command-line --set-resources (--default-resources).
    assert "set-resources" not in slurm_profile
    assert "default-resources" not in slurm_profile
    assert set(slurm_profile.get("set-threads", {})) <= {"train_toy_model", *GPU_RULES}


def test_default_workflow_profile_only_sets_rerun_behaviour_and_failed_logs():
    """profiles/default is read whenever no --workflow-profile is given: it must not choose an executor or sizes;
    it reruns what an aborted run left incomplete (a half-fetched snapshot) instead of refusing it;
    and it shows a failed job's log."""
    default = yaml.safe_load((REPO_ROOT / "profiles" / "default" / "config.yaml").read_text())
    assert default == {"rerun-triggers": ["mtime", "params", "software-env", "code"], "rerun-incomplete": True,
                       "show-failed-logs": True}  # fmt: skip


@pytest.mark.parametrize("profile", ["default", "workstation", "slurm"])
def test_every_profile_reruns_incomplete_outputs(profile):
    """An aborted run's incomplete snapshot is fetched again under every profile, not refused."""
    settings = yaml.safe_load((REPO_ROOT / "profiles" / profile / "config.yaml").read_text())
    assert settings["rerun-incomplete"] is True


def test_partition_template_sends_gpu_jobs_to_a_gpu_partition():
    from snakemake_executor_plugin_slurm.partitions import read_partition_file

    partitions = {p.name: p.limits for p in read_partition_file(REPO_ROOT / "profiles" / "slurm" / "partitions.yaml")}
    assert partitions["gpu"].max_gpu > 0 and partitions["cpu"].max_gpu == 0


# --- profiles/workstation ---------------------------------------------------------------


def test_workstation_profile(workstation_profile):
    assert workstation_profile.get("executor", "local") == "local"
    assert workstation_profile["cores"] == "all"
    # one measurement on the GPU at a time; the rules ask for gpu=1 themselves
    assert workstation_profile["resources"] == {"gpu": 1}
    assert "set-resources" not in workstation_profile


# --- the test-cluster adaptation (tests/slurm_cluster.py) -------------------------------

NO_GPU_NODE = SlurmCluster(node="n", partition="debug", cpus=2, mem_mb=8000, gpus=0)
GPU_NODE = SlurmCluster(node="n", partition="debug", cpus=64, mem_mb=512000, gpus=2)


def test_adapted_profile_drops_gpus_and_fits_the_node(slurm_profile):
    adapted = adapt_profile(slurm_profile, NO_GPU_NODE)
    for rule in GPU_RULES:
        assert adapted["set-resources"][rule] == {"gpu": 0}
    assert all(t <= NO_GPU_NODE.cpus for t in adapted["set-threads"].values())
    assert adapted["slurm-status-command"] == "squeue"
    assert adapted["config"]["device"] == "auto"
    # the real profile is untouched
    assert load_profile(SLURM_PROFILE) == slurm_profile


def test_adapted_profile_keeps_gpus_where_the_node_has_them(slurm_profile):
    adapted = adapt_profile(slurm_profile, GPU_NODE, extra={"jobs": 3, "keep-going": None})
    assert "set-resources" not in adapted
    assert adapted["set-threads"] == slurm_profile["set-threads"]
    assert adapted["jobs"] == 3 and "keep-going" not in adapted


# --- Snakemake applies the profiles to the real workflow (dry runs, no cluster needed) ---


def _dry_run(tmp_path: Path, profile: Path, config: Path, *args: str) -> tuple[dict[str, list[dict[str, str]]], str]:
    """(rule name -> per job of the dry run, its resources (and threads) as Snakemake prints them; the output)."""
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--nocolor", "-s", str(WORKFLOW_SNAKEFILE),
         "-d", str(tmp_path / "w"), "--configfile", str(config), "--workflow-profile", str(profile),
         "--cores", "8", *args],
        capture_output=True, text=True, timeout=300, check=False, env=snakemake_env(),
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    found: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"(?m)^(?=\s*(?:local)?rule \w+:)", out):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        resources = re.search(r"^\s*resources: (.*)$", block, re.M)
        if not (rule and resources):
            continue
        job = dict(item.split("=", 1) for item in resources.group(1).split(", ") if "=" in item)
        threads = re.search(r"^\s*threads: (\d+)", block, re.M)
        job["threads"] = threads.group(1) if threads else "1"
        found.setdefault(rule.group(1), []).append(job)
    return found, out


def _expected_sizes(config: Path, rule: str, attempt: int = 1, device: str = "cuda") -> dict[str, str]:
    """What circuitsweep.plan.resources asks for a toy job of ``rule`` (toy models only)."""
    from circuitsweep.config.load import load_config
    from circuitsweep.plan import costs
    from circuitsweep.plan.resources import measure_size, small_size
    from circuitsweep.plan.sweep import plan_sweep

    if rule not in GPU_RULES:
        size = small_size(rule)
    else:
        plan = plan_sweep(load_config(config), REPO_ROOT)
        name, model = next(iter(plan.models.items()))
        shape = costs.model_shape(plan, name).config
        work = costs.revision_job_work(plan, name, plan.revisions[name][0].name, shape, rule == "measure_revision")
        size = measure_size(shape, model.dtype, model.probes.to_dict(), device, work)
    return {k: str(v) for k, v in size.scaled(attempt).as_resources().items()}


def test_snakemake_applies_slurm_profile(tmp_path, rules, toy_config):
    found, out = _dry_run(tmp_path, SLURM_PROFILE.parent, toy_config)
    # the toy sweep runs every rule of the workflow but those that need a tokenizer
    assert set(found) == set(rules.names) - TOKENIZER_RULES - ABLATION_RULES
    for rule, jobs in found.items():
        if rule == "all":
            continue
        for job in jobs:
            # every job is sized by its rule, from the plan
            assert {k: job.get(k) for k in ("mem_mb", "runtime", "gpu")} == {
                "gpu": None,
                **_expected_sizes(toy_config, rule),
            }, (rule, job)
            assert ("gpu" in job) == (rule in GPU_RULES), (rule, job)
    # the dry run says how many cluster jobs the run submits, and what the sweep costs
    assert re.search(r"on a cluster this run submits \d+ jobs for 3 revisions", out), out[-3000:]
    assert "circuitsweep: 3 revisions to measure: nothing to download" in out, out[-3000:]


def test_job_groups_are_planned_for_a_cluster_only(tmp_path, toy_config):
    """The measurement group is planned where a cluster executor submits it (--jobs, which the SLURM profile
    sets) and not for a local run, which runs no groups: Snakemake checks each group by walking every job
    upstream of it, which in config/full.yaml's 1,844 revisions took minutes and overflowed Python's recursion
    limit (benchmarks/dag_speed.py)."""
    _, clustered = _dry_run(tmp_path / "cluster", SLURM_PROFILE.parent, toy_config)
    assert "Group job revisions" in clustered, clustered[-3000:]
    _, local = _dry_run(tmp_path / "local", REPO_ROOT / "profiles" / "default", toy_config)
    assert "Group job" not in local, local[-3000:]


def test_command_line_override_changes_one_key(tmp_path, toy_config):
    # the README's way: a GPU partition for the rules of the measurement group
    found, _ = _dry_run(
        tmp_path, SLURM_PROFILE.parent, toy_config, "--set-resources",
        *[f"{rule}:slurm_partition=gpu" for rule in GROUPED_RULES],
    )  # fmt: skip
    for job in found["measure_heads"]:
        assert job["slurm_partition"] == "gpu"
        assert job["gpu"] == "1" and job["mem_mb"] == _expected_sizes(toy_config, "measure_heads")["mem_mb"]
    for job in found["classify_heads"]:
        assert "slurm_partition" not in job and job["mem_mb"] == _expected_sizes(toy_config, "classify_heads")["mem_mb"]


def test_snakemake_applies_workstation_profile(tmp_path, rules, toy_config):
    found, out = _dry_run(tmp_path, WORKSTATION_PROFILE.parent, toy_config)
    # a local run plans no job-block records: they exist for a cluster's job groups
    assert set(found) == set(rules.names) - TOKENIZER_RULES - ABLATION_RULES - {"revision_block"}
    # the cost of the sweep, in a workstation's words: no submissions, no job groups
    assert "circuitsweep: 3 revisions to measure: nothing to download (local checkpoints)" in out, out[-3000:]
    assert "submi" not in out and "groups of" not in out, out[-3000:]
    for rule, jobs in found.items():
        for job in jobs:
            assert job.get("gpu") == ("1" if rule in GPU_RULES else None), (rule, job)


# --- a real SLURM submission ------------------------------------------------------------

# Two of the workflow's rule names, sized as the workflow sizes them (from
# circuitsweep.plan.resources, times the attempt); every job records where it ran.
# measure_heads asks for a GPU and fails on its first attempt, so SLURM sees it twice.
# check_config fails deterministically (a bad config: exit 3), sized as common.smk sizes
# jobs after such a failure (circuitsweep.plan.retry), so SLURM sees three attempts of one size.
SLURM_SNAKEFILE = """
import json, os, socket
from circuitsweep.plan.resources import JobSize
from circuitsweep.plan.retry import attempt_resource, job_log, sizing_attempt

SIZE = JobSize(mem_mb=300, runtime=2, gpu=1)

def retry_mem(wildcards, attempt, rulename):
    log = job_log(getattr(rules, rulename).log, dict(wildcards.items()))
    return SIZE.scaled(sizing_attempt(log, attempt)).mem_mb

def record(path, rule):
    keys = ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_CPUS_PER_TASK", "CUDA_VISIBLE_DEVICES")
    with open(path, "w") as fh:
        json.dump({"rule": rule, "host": socket.gethostname(), **{k: os.environ.get(k) for k in keys}}, fh)

rule all:
    input: "measured.json", "checked.ok"
    localrule: True

rule check_config:
    input: "bad.yaml"
    output: "checked.ok"
    log: "logs/check_config.log"
    resources:
        mem_mb=retry_mem,
        runtime=2,
        attempt=attempt_resource,
    shell: "python -m circuitsweep --attempt {resources.attempt} check-config {input} > {log} 2>&1"
        " && touch {output}"

rule train_toy_model:
    output: "trained/{seed}.json"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 200 * attempt,
        runtime=lambda wildcards, attempt: 3 * attempt,
    run:
        record(output[0], "train_toy_model")

rule measure_heads:
    input: expand("trained/{seed}.json", seed=["a", "b"])
    output: "measured.json"
    resources:
        mem_mb=lambda wildcards, attempt: SIZE.scaled(attempt).mem_mb,
        runtime=lambda wildcards, attempt: SIZE.scaled(attempt).runtime,
        gpu=lambda wildcards, attempt: SIZE.scaled(attempt).gpu,
    run:
        if not os.path.exists("failed-once"):
            open("failed-once", "w").close()
            raise RuntimeError("first attempt fails, as an OUT_OF_MEMORY job would")
        record(output[0], "measure_heads")
"""


def _job_info(job_id: str) -> dict[str, str]:
    """scontrol's record of a job (finished jobs stay visible for MinJobAge)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=True)
    return dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)


@pytest.mark.slurm
def test_gpu_job_lands_on_gpu_partition_and_retries_larger(tmp_path):
    """GPU job on the GPU partition with a GPU; an OOM-like failure retried larger; a deterministic failure
    retried at the same size, replaying its error (exit 3 on SLURM)."""
    cluster = require_cluster()
    if not (cluster.gpus and cluster.gpu_partition):
        pytest.skip("the test cluster has no GPU partition (run .ci/slurm/setup.sh with its defaults)")
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(textwrap.dedent(SLURM_SNAKEFILE))
    profile_dir = derive_profile(tmp_path / "profile", cluster)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "bad.yaml").write_text("models: {m: {architecture: GPTNeoXForCausalLM}}\n")

    # the README's way: one key on the command line, every other size kept
    run = run_snakemake(
        snakefile, workdir, profile_dir, "--set-resources", f"measure_heads:slurm_partition={cluster.gpu_partition}",
        jobs=3, timeout=600,
    )  # fmt: skip
    # only check_config failed (keep-going): every other job completed
    assert run.returncode != 0 and (workdir / "measured.json").is_file(), run.report()
    assert not (workdir / "checked.ok").exists()

    records = [json.loads(p.read_text()) for p in sorted((workdir / "trained").glob("*.json"))]
    records.append(json.loads((workdir / "measured.json").read_text()))
    assert sorted(r["rule"] for r in records) == ["measure_heads", "train_toy_model", "train_toy_model"]
    for record in records:
        info = _job_info(record["SLURM_JOB_ID"])
        assert info["JobState"] == "COMPLETED", info
        asked_gpu = "gpu" in info.get("TresPerJob", "") + info.get("TresPerNode", "")
        if record["rule"] == "measure_heads":
            assert info["Partition"] == cluster.gpu_partition, info
            assert asked_gpu and record["CUDA_VISIBLE_DEVICES"], (info, record)
        else:
            assert info["Partition"] == cluster.partition and not asked_gpu, info
            assert info["MinMemoryNode"] == "200M" and info["TimeLimit"] == "00:03:00", info

    # measure_heads ran twice: the retry asked for twice the memory and time
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", run.stdout + run.stderr)
    measure = [_job_info(slurm_id) for _jobid, slurm_id in submitted]
    measure = [info for info in measure if info.get("Comment", "").startswith("rule_measure_heads")]
    assert [(i["JobState"], i["MinMemoryNode"], i["TimeLimit"]) for i in measure] == [
        ("FAILED", "300M", "00:02:00"),
        ("COMPLETED", "600M", "00:04:00"),
    ], run.report()

    # check_config failed deterministically three times (retries: 2), each time at the first size;
    # the retries replayed the recorded error instead of running again
    checks = [_job_info(slurm_id) for _jobid, slurm_id in submitted]
    checks = [info for info in checks if info.get("Comment", "").startswith("rule_check_config")]
    assert [(i["JobState"], i["MinMemoryNode"]) for i in checks] == [("FAILED", "300M")] * 3, run.report()
    # SLURM records the exit code of Snakemake's job step (1); the command's own is in the job's SLURM log
    slurm_logs = [p.read_text() for p in sorted((workdir / "logs" / "slurm" / "rule_check_config").glob("*.log"))]
    assert ["returned non-zero exit status 3" in text for text in slurm_logs] == [True] * 3, run.report()
    assert "repeated from the previous attempt of this job" in (workdir / "logs" / "check_config.log").read_text()


@pytest.mark.slurm
def test_status_polling_on_a_cluster_without_accounting():
    """The CI cluster has no accounting database. The plugin's default status command is nevertheless sacct
    (it checks only that the command exists), under which Snakemake never sees a job finish (a one-job run
    waited past 150 s for a job done in 1 s). MinJobAge keeps finished jobs in squeue long enough, so the
    plugin keeps squeue when asked for it: the test profile (and docs/cluster.md, on such clusters) name it."""
    from snakemake_executor_plugin_slurm import _get_status_command_default
    from snakemake_executor_plugin_slurm.job_status_query import get_min_job_age

    cluster = require_cluster()
    sacct = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, timeout=30, check=False)
    if sacct.returncode == 0:
        pytest.skip("this cluster has job accounting: the plugin's default (sacct) works")
    assert "accounting storage is disabled" in sacct.stdout + sacct.stderr
    assert _get_status_command_default() == "sacct"
    # the plugin switches squeue back to sacct below 3 x its first polling interval (40 s)
    assert (get_min_job_age() or 0) >= 120
    assert adapt_profile(load_profile(), cluster)["slurm-status-command"] == "squeue"
    assert "slurm-status-command" not in load_profile()  # the real profile leaves sacct to clusters with slurmdbd
