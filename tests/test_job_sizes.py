"""One memory estimate per measurement job: what a rule requests is what its job checks (issue 14).

``circuitsweep.plan.resources`` (the rules' ``mem_mb``) and ``circuitsweep.plan.sizing``
(the job's check before loading) used to be two estimates: the rule asked for
``parameters x (4 + dtype bytes) x 1.25 + 2 GB`` (about 50 GB for OLMoE) while the job
checked a shape-based estimate (about 16 GiB). Now the request is the job's estimate times
the attempt, from the same model config.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from runenv import run_paths

from circuitsweep.checkpoints.hub import Snapshot
from circuitsweep.config.load import resolve_config, study_defaults
from circuitsweep.config.probes import ProbeSettings
from circuitsweep.heads.stage import RevisionJob, check_job_size
from circuitsweep.plan import costs, sizing
from circuitsweep.plan import resources as R

REPO = Path(__file__).resolve().parents[1]
TOY_SUITE = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
FULL = yaml.safe_load((REPO / "config" / "full.yaml").read_text())

# config.json of the published models (the keys sizing reads, and a few it ignores)
PUBLISHED = {
    "pythia-1b": {
        "architectures": ["GPTNeoXForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 8, "intermediate_size": 8192, "vocab_size": 50304, "hidden_act": "gelu",
        "max_position_embeddings": 2048, "tie_word_embeddings": False, "rotary_pct": 0.25,
    },
    "olmo-1b-0724": {
        "architectures": ["OlmoForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 8192, "vocab_size": 50304,
        "hidden_act": "silu", "max_position_embeddings": 4096, "tie_word_embeddings": True,
    },
    "olmoe-1b-7b": {
        "architectures": ["OlmoeForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 1024, "num_experts": 64,
        "num_experts_per_tok": 8, "vocab_size": 50304, "hidden_act": "silu", "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    },
}  # fmt: skip
PUBLISHED_PARAMETERS = {"pythia-1b": 1_011_781_632, "olmo-1b-0724": 1_176_764_416, "olmoe-1b-7b": 6_919_161_856}


def size(entry: dict, dtype: str, probes: dict, device: str, snapshot_config: dict | None = None) -> R.JobSize:
    """A measurement job's request: from the fetched snapshot's config.json when given, else the planning shape."""
    shape = snapshot_config if snapshot_config is not None else R.planning_model_config(entry)
    return R.measure_size(shape, dtype, probes, device, costs.revision_work(probes, None, shape))


def job_for(model: str, dtype: str, probes: dict) -> RevisionJob:
    return RevisionJob(
        model, "step1", 1, 1, "GPTNeoXForCausalLM", dtype, {"policy": "none"}, ProbeSettings.from_dict(probes), "cpu"
    )


def assert_request_is_the_check(model: str, dtype: str, probes: dict, model_config: dict, requested: int) -> None:
    """The job accepts exactly the mem_mb its rule requested, and refuses one MB less."""
    job = job_for(model, dtype, probes)
    check_job_size(job, model_config, "cpu", requested)
    with pytest.raises(sizing.InsufficientMemoryError, match=f"mem_mb of {requested - 1}"):
        check_job_size(job, model_config, "cpu", requested - 1)


@pytest.fixture(autouse=True)
def no_machine_limit(monkeypatch):
    """The job also checks this machine's free RAM; that is not what these tests are about."""
    monkeypatch.setattr(sizing, "machine_memory_bytes", lambda: None)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_declared_shape_sizes_the_dry_run_as_the_snapshot_sizes_the_job(name):
    """full.yaml's `shape` gives the published parameter count; the dry run's request (declared shape) equals
    the request once the snapshot's config.json is known, and the job checks exactly that request."""
    entry = FULL["models"][name]
    probes = study_defaults("probes")
    shape = R.planning_model_config(entry)
    assert sizing.model_params(shape) == pytest.approx(PUBLISHED_PARAMETERS[name], rel=0.001)
    planned = size(entry, entry["dtype"], probes, "cuda")
    fetched = size(entry, entry["dtype"], probes, "cuda", snapshot_config=PUBLISHED[name])
    assert planned == fetched
    estimate = sizing.estimate_heads_memory(probes, PUBLISHED[name], entry["dtype"])
    assert fetched.mem_mb == sizing.request_mem_mb(estimate) == estimate.mem_mb
    assert fetched.scaled(3).mem_mb == sizing.request_mem_mb(estimate, attempt=3) == 3 * estimate.mem_mb
    assert_request_is_the_check(name, entry["dtype"], probes, PUBLISHED[name], fetched.mem_mb)


def test_study_model_requests_are_model_sized():
    """Weights dominate: OLMoE (6.9 B, float16) asks for about 16 GiB, Pythia-1B (float32) about 7 GiB."""
    probes = study_defaults("probes")
    mem = {name: size(FULL["models"][name], FULL["models"][name]["dtype"], probes, "cuda").mem_mb
           for name in PUBLISHED}  # fmt: skip
    assert 15_000 < mem["olmoe-1b-7b"] < 19_000
    assert 6_000 < mem["pythia-1b"] < 8_500
    assert 4_500 < mem["olmo-1b-0724"] < mem["pythia-1b"]  # float16, tied embeddings


@pytest.mark.parametrize("name", list(TOY_SUITE["models"]))
def test_toy_request_is_what_the_toy_job_checks(name):
    """A toy model is sized from its toy settings before training; its trained config.json gives the same."""
    from circuitsweep.toy.spec import ToySpec
    from circuitsweep.toy.train import build_config

    resolved = resolve_config(TOY_SUITE)[name]
    entry = TOY_SUITE["models"][name]
    probes = resolved.probes.to_dict()
    trained = build_config(ToySpec.of_model(entry["architecture"], entry.get("toy")))
    planned = size(entry, resolved.dtype, probes, "cpu")
    fetched = size(entry, resolved.dtype, probes, "cpu", snapshot_config=trained.to_dict())
    assert planned == fetched
    assert_request_is_the_check(name, resolved.dtype, probes, trained.to_dict(), fetched.mem_mb)


def test_the_fetched_snapshot_config_sizes_the_job(tmp_path):
    """Once fetched, the snapshot's own config.json sizes the job, whatever shape the config declared."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "config.json").write_text(json.dumps(PUBLISHED["pythia-1b"]))
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    record = Snapshot("EleutherAI/pythia-1b", "step1", "0" * 40, files, {"config.json": "0" * 64}, "local")
    (snapshot / "snapshot.json").write_text(json.dumps(record.to_json()))
    assert R.snapshot_model_config(snapshot) == PUBLISHED["pythia-1b"]
    assert R.snapshot_model_config(tmp_path / "not-fetched") is None
    # declared as OLMoE (the default): the dry run asks for OLMoE's size, the job for Pythia's
    entry = {"source": {"type": "hub"}}
    probes = study_defaults("probes")
    fetched = size(entry, "float32", probes, "cuda", R.snapshot_model_config(snapshot))
    assert fetched.mem_mb == sizing.estimate_heads_memory(probes, PUBLISHED["pythia-1b"], "float32").mem_mb
    assert fetched.mem_mb != size(entry, "float32", probes, "cuda").mem_mb


def test_a_shape_in_the_config_is_validated():
    """`shape` takes config.json keys only; a typo is refused at planning, naming the key."""
    from circuitsweep.errors import ConfigError
    from circuitsweep.plan.sweep import plan_sweep

    config = {"models": {"m": dict(FULL["models"]["pythia-1b"], revisions=["step1"])}}
    config["models"]["m"]["shape"] = {**config["models"]["m"]["shape"], "hidden_sise": 2048}
    with pytest.raises(ConfigError, match="hidden_sise"):
        plan_sweep(config, REPO)


def test_workflow_sizes_a_measurement_from_its_fetched_snapshot(tmp_path):
    """The real workflow (a dry run of the toy sweep): a revision whose snapshot is on disk is sized from the
    snapshot's config.json, the others from the toy's shape; each request is sizing's estimate of that config."""
    import re
    import subprocess
    import sys

    from slurm_cluster import WORKFLOW_SNAKEFILE, snakemake_env, write_toy_config

    config = write_toy_config(tmp_path / "toy.yaml")
    raw = yaml.safe_load(config.read_text())
    (name,) = raw["models"]
    resolved = resolve_config(raw)[name]
    probes = resolved.probes.to_dict()
    bigger = {**R.planning_model_config(raw["models"][name]), "hidden_size": 512, "num_attention_heads": 16}
    files = tmp_path / "files"
    files.mkdir()
    (files / "config.json").write_text(json.dumps(bigger))
    snapshot = tmp_path / "w" / run_paths(tmp_path / "w", config).snapshot(name, "step10")
    snapshot.mkdir(parents=True)
    record = Snapshot("toy/gptneox", "step10", "0" * 40, files, {"config.json": "0" * 64}, "local")
    (snapshot / "snapshot.json").write_text(json.dumps(record.to_json()))

    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--nocolor", "-s", str(WORKFLOW_SNAKEFILE), "-d", str(tmp_path / "w"),
         "--configfile", str(config), "--cores", "1"],
        capture_output=True, text=True, timeout=300, check=False, env=snakemake_env(),
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    requested = {}
    for block in re.split(r"(?m)^(?=\s*(?:local)?rule \w+:)", out):  # one block per job
        if re.search(r"^\s*rule measure_heads:", block, re.M):
            revision = re.search(r"wildcards: .*revision=(\w+)", block).group(1)
            requested[revision] = int(re.search(r"mem_mb=(\d+)", block).group(1))
    planned = sizing.estimate_heads_memory(probes, R.planning_model_config(raw["models"][name]), resolved.dtype)
    fetched = sizing.estimate_heads_memory(probes, bigger, resolved.dtype)
    assert requested["step10"] == fetched.mem_mb != planned.mem_mb, out[-4000:]
    assert {r: m for r, m in requested.items() if r != "step10"} == {"step0": planned.mem_mb, "step20": planned.mem_mb}


def test_a_declared_shape_refuses_a_probe_beyond_its_context_at_planning():
    """With `shape`, a probe longer than max_position_embeddings stops the plan, not the job after a download."""
    from circuitsweep.errors import ConfigError
    from circuitsweep.plan.sweep import plan_sweep

    model = dict(FULL["models"]["pythia-1b"], revisions=["step1"])
    config = {"models": {"pythia-1b": model}, "probes": {"random": {"seq_len": 4096}}}
    with pytest.raises(ConfigError, match=r"- probes\.random\.seq_len: 4096 exceeds .* 2048"):
        plan_sweep(config, REPO)
    del model["shape"]
    plan_sweep(config, REPO)  # without a shape the job refuses it, once the snapshot's config.json is known


def test_a_declared_shape_refuses_probe_ids_past_its_vocabulary_at_planning():
    """With `shape`, probe ids or a fixed first token past its vocab_size stop the plan, naming the key, instead
    of each measurement job refusing them after its download."""
    from circuitsweep.errors import ConfigError
    from circuitsweep.plan.sweep import plan_sweep

    model = dict(FULL["models"]["pythia-1b"], revisions=["step1"])
    vocab = model["shape"]["vocab_size"]
    config = {"models": {"pythia-1b": model}, "probes": {"token_range": [0, vocab + 1]}}
    with pytest.raises(ConfigError, match=rf"- probes\.token_range: \[0, {vocab + 1}\) exceeds the "
                       rf"vocabulary of {vocab} tokens \(models\.pythia-1b\.shape\)"):  # fmt: skip
        plan_sweep(config, REPO)
    config["probes"]["token_range"] = [10, 1000]
    model["first_token"] = {"policy": "fixed", "token_id": vocab}
    with pytest.raises(ConfigError, match=rf"models\.pythia-1b\.first_token: token {vocab} exceeds the vocabulary"):
        plan_sweep(config, REPO)
    model["first_token"] = {"policy": "fixed", "token_id": 0}
    plan_sweep(config, REPO)
