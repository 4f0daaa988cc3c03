"""Dry runs and check-config that inform: download size, peak disk, hours, partial manifests (issue 21)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from runenv import job_env
from safetensors.numpy import save_file

import circuitsweep as cs
from circuitsweep.config.load import load_config
from circuitsweep.plan import costs
from circuitsweep.plan.costs import GB, Pending, describe_cost, published_bytes, sweep_cost
from circuitsweep.plan.resources import planning_model_config
from circuitsweep.plan.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
FULL = yaml.safe_load((REPO / "config" / "full.yaml").read_text())

#: One revision's weight files as the Hub publishes them (docs/costs.md; Pythia 1B's
#: intermediate branches hold a 2.0 GB fp16 pytorch_model.bin).
PUBLISHED_GB = {"pythia-1b": 2.0, "olmo-1b-0724": 4.7, "olmoe-1b-7b": 13.8}


def check_config(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "circuitsweep", "check-config", str(path), "--root", str(REPO), *args],
                          capture_output=True, text=True, env=job_env(), timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("model", sorted(PUBLISHED_GB))
def test_a_revision_is_sized_as_its_published_weights(model):
    """The declared shape and published dtype give the size of the weight files a revision downloads (within 5%)."""
    entry = FULL["models"][model]
    assert published_bytes(planning_model_config(entry), entry["dtype"]) / GB == pytest.approx(
        PUBLISHED_GB[model], rel=0.05
    )


def test_cost_counts_only_hub_revisions_still_to_measure():
    """Download sums the pending Hub revisions; peak disk is the snapshots_on_disk largest; a toy downloads nothing."""
    plan = plan_sweep(FULL, REPO)
    pending = Pending({"pythia-1b": ["step1", "step2"], "olmoe-1b-7b": ["step5000-tokens20B"]})
    cost = sweep_cost(plan, pending, snapshots_on_disk=2, gpu_present=True)
    pythia = published_bytes(planning_model_config(FULL["models"]["pythia-1b"]), "float32")
    olmoe = published_bytes(planning_model_config(FULL["models"]["olmoe-1b-7b"]), "float16")
    assert cost.revisions == 3 and cost.download_bytes == 2 * pythia + olmoe
    assert cost.peak_disk_bytes == olmoe + pythia
    toy = load_config(REPO / "config" / "config.yaml")
    toy_cost = sweep_cost(plan_sweep(toy, REPO), Pending({"toy-gptneox": ["step0"]}), 2, gpu_present=True)
    assert toy_cost.download_bytes == 0 and toy_cost.peak_disk_bytes == 0 and toy_cost.total_hours > 0


def test_without_a_gpu_the_line_gives_the_hours_here_and_on_a_gpu():
    """device: auto on a machine without a GPU: the CPU-hours here and the GPU-hours a machine with one prints,
    with the same breakdown by pass; device: cuda gives only GPU-hours, device: cpu only CPU-hours."""
    config = {**FULL, "models": {"pythia-1b": FULL["models"]["pythia-1b"]}}
    pending = Pending({"pythia-1b": ["step1"] * 10})
    on_gpu = describe_cost(sweep_cost(plan_sweep(config, REPO), pending, 2, gpu_present=True)).splitlines()
    auto = describe_cost(sweep_cost(plan_sweep(config, REPO), pending, 2, gpu_present=False)).splitlines()
    hours = on_gpu[0].rsplit(" about ", 1)[1]
    assert on_gpu[0].endswith(" GPU-hours") and auto[0].endswith(f" CPU-hours here (no GPU; on one: about {hours})")
    assert auto[1] == on_gpu[1] and on_gpu[1].startswith("circuitsweep: GPU-hours by pass: load ")
    cuda = describe_cost(sweep_cost(plan_sweep({**config, "device": "cuda"}, REPO), pending, 2, gpu_present=False))
    assert cuda.splitlines() == on_gpu and "CPU" not in cuda
    cpu = describe_cost(sweep_cost(plan_sweep({**config, "device": "cpu"}, REPO), pending, 2, gpu_present=True))
    assert "CPU-hours" in cpu and "GPU" not in cpu


def test_without_a_gpu_the_per_revision_line_says_its_minutes_are_on_a_gpu(tmp_path):
    """check-config's per-revision line under device: auto on a machine without a GPU keeps the GPU minutes the jobs
    are sized by and says there is no GPU here, as the cost line does; with a GPU, or device: cuda, it is unchanged."""
    from circuitsweep.cli.plan_summary import measurement_job
    from circuitsweep.io.contracts import Paths

    config = load_config(REPO / "config" / "config.yaml")
    plan = plan_sweep(config, REPO, Paths(tmp_path))
    model = next(iter(plan.models))
    on_gpu = measurement_job(plan, model, gpu_present=True)
    auto = measurement_job(plan, model, gpu_present=False)
    assert " min on a GPU (runtime request " in on_gpu
    assert auto == on_gpu.replace(" on a GPU (runtime request ", " on a GPU (no GPU here; runtime request ")
    cuda = plan_sweep({**config, "device": "cuda"}, REPO, Paths(tmp_path))
    assert measurement_job(cuda, model, gpu_present=False) == on_gpu
    cpu = measurement_job(plan_sweep({**config, "device": "cpu"}, REPO, Paths(tmp_path)), model, gpu_present=False)
    assert " min on the CPU (runtime request " in cpu and "GPU" not in cpu


def test_a_model_sized_by_the_stand_in_says_so_on_its_own_line(tmp_path, monkeypatch):
    """A Hub model with no ``shape`` and no config.json on disk is sized as OLMoE 1B-7B: its per-revision line says
    so and names the key that sizes it, instead of stating the stand-in's download and memory as its own."""
    from circuitsweep.cli.plan_summary import measurement_job
    from circuitsweep.io.contracts import Paths

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no config.json of the model in any cache
    config = {"models": {"qwen": {"architecture": "Qwen2ForCausalLM", "revisions": ["step100", "step200"],
                                  "source": {"type": "hub", "repo_id": "Qwen/Qwen2.5-0.5B"},
                                  "tokens": {"per_step": 1000}}}}  # fmt: skip
    line = measurement_job(plan_sweep(config, REPO, Paths(tmp_path)), "qwen")
    assert line.endswith("; sized as OLMoE 1B-7B: give models.qwen.shape to size it by its own)"), line
    config["models"]["qwen"]["shape"] = {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
                                         "vocab_size": 151936}  # fmt: skip
    assert "sized as" not in measurement_job(plan_sweep(config, REPO, Paths(tmp_path)), "qwen")


def _gpu_hours(config: dict, **changes) -> float:
    """The GPU-hours of every revision and final ablation of ``config`` (a machine with a GPU)."""
    from circuitsweep import revision_stage

    config = {**config, **changes}
    plan = plan_sweep(config, REPO)
    pending = Pending({m: [r.name for r in revisions] for m, revisions in plan.revisions.items()},
                      final_ablations=tuple(plan.models) if plan.ablation is not None else ())  # fmt: skip
    assert pending.revisions == revision_stage.pending(plan).revisions  # nothing measured (no results here)
    return sweep_cost(plan, pending, 2, gpu_present=True).total_hours


def test_the_estimate_counts_the_ablation_its_draws_and_the_natural_text():
    """The study's sweep: its per-revision ablation (every condition, each matched draw one more pass) and its
    final ablation, and the natural-text probe, are hours of the estimate; without them it is smaller."""
    paper = load_config(REPO / "config" / "paper.yaml")
    full = _gpu_hours(paper)
    without_ablation = _gpu_hours(paper, ablation={"enabled": False})
    fewer_draws = _gpu_hours(paper, ablation={"enabled": True, "random_draws": 1})
    more_draws = _gpu_hours(paper, ablation={"enabled": True, "random_draws": 20})
    without_natural = _gpu_hours(paper, probes={})
    assert without_ablation < fewer_draws < full < more_draws
    assert full > 3 * without_ablation  # 15 passes over two probes per revision, and the final ablation
    assert without_natural < full
    plan = plan_sweep(paper, REPO)
    parts = sweep_cost(plan, Pending({"pythia-1b": ["step1"]}, final_ablations=("pythia-1b",)), 2, True).hours
    assert {"load", "head probes", "natural text", "ablation", "final ablation"} <= set(parts)


def test_every_bundled_config_sizes_its_own_models():
    """Every bundled suite (and study) config declares each model's shape: none is sized as OLMoE by default,
    and its line says so nowhere."""
    configs = [*sorted((REPO / "config" / "suites").glob("*.yaml")), REPO / "config" / "paper.yaml",
               REPO / "config" / "full.yaml", REPO / "config" / "primitives-paper.yaml"]  # fmt: skip
    for path in configs:
        plan = plan_sweep(load_config(path), REPO)
        sources = {model: costs.model_shape(plan, model).source for model in plan.models}
        assert set(sources.values()) == {"shape"}, (path, sources)
        pending = Pending({m: [r.name for r in revisions] for m, revisions in plan.revisions.items()})
        assert "sized as" not in describe_cost(sweep_cost(plan, pending, 2, True)), path


#: Parameters of each bundled shape as the models' cards and config.json publish them (Pythia: the
#: GPT-NeoX parameter counts of the Hub checkpoints; the others: their model cards).
PUBLISHED_PARAMETERS = {
    "pythia-14m": 14_067_712, "pythia-31m": 30_494_720, "pythia-70m": 70_426_624, "pythia-160m": 162_322_944,
    "pythia-410m": 405_334_016, "pythia-1b": 1_011_781_632, "pythia-1.4b": 1_414_647_808,
    "pythia-2.8b": 2_775_208_960, "pythia-6.9b": 6_857_302_016, "pythia-12b": 11_846_072_320,
    "crfm-gpt2-small-alias": 124_439_808, "olmo2-1b": 1_484_916_736, "tinyllama-1.1b": 1_100_048_384,
    "smollm2-1.7b": 1_711_376_384, "amber-7b": 6_738_415_616, "qwen2.5-0.5b-instruct": 494_032_768,
    "gemma-3-1b-it": 999_885_952, "llama-3.2-1b-instruct": 1_235_814_400, "smollm2-360m-instruct": 361_821_120,
}  # fmt: skip


@pytest.mark.parametrize("model", sorted(PUBLISHED_PARAMETERS))
def test_a_bundled_shape_has_the_published_parameter_count(model):
    """Each bundled shape counts its model's published parameters to within 1% (the downloads and hours scale
    with it)."""
    from circuitsweep.plan.sizing import model_params

    entries = {}
    for path in [*(REPO / "config" / "suites").glob("*.yaml"), REPO / "config" / "primitives-paper.yaml"]:
        entries.update(yaml.safe_load(path.read_text())["models"])
    assert model_params(entries[model]["shape"]) == pytest.approx(PUBLISHED_PARAMETERS[model], rel=0.01)


def test_a_run_dir_is_sized_by_the_config_json_on_disk(tmp_path):
    """A training run's checkpoint folders hold their config.json: check-config sizes the sweep from it (not as
    OLMoE), as the workflow's job requests do."""
    folder = tmp_path / "run" / "checkpoint-10"
    folder.mkdir(parents=True)
    shape = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 50304,
             "intermediate_size": 128, "model_type": "llama", "architectures": ["LlamaForCausalLM"]}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(shape))
    save_file({"w": np.zeros(4, dtype=np.float32)}, folder / "model.safetensors")  # planning reads its header
    config = {"primitives": {"enabled": False},
              "models": {"mine": {"architecture": "LlamaForCausalLM", "revisions": "all", "tokens": {"per_step": 8},
                                  "source": {"type": "run_dir", "path": str(tmp_path / "run")}}}}  # fmt: skip
    plan = plan_sweep(config, tmp_path)
    found = costs.model_shape(plan, "mine")
    assert found.source == "config.json" and found.config["hidden_size"] == 64
    line = describe_cost(sweep_cost(plan, Pending({"mine": ["checkpoint-10"]}), 2, gpu_present=False))
    # a run_dir is read in place: no download, no snapshot on disk to bound
    assert "sized as" not in line and "nothing to download (local checkpoints)" in line
    assert "snapshots at once" not in line and "GB" not in line.splitlines()[0]
    assert line.startswith("circuitsweep: 1 revision to measure:")  # all of the plan's one revision


def test_the_cost_line_says_how_many_of_the_planned_revisions_remain():
    """A rerun that measures part of the sweep says "N of M revisions", so the count is not read as the sweep's size."""
    cost = costs.SweepCost(revisions=29, download_bytes=0, peak_disk_bytes=0, snapshots_on_disk=2, device="CPU",
                           hours={"load": 0.1}, planned=46)  # fmt: skip
    assert describe_cost(cost).startswith("circuitsweep: 29 of 46 revisions to measure: nothing to download")
    assert describe_cost(dataclasses.replace(cost, revisions=46)).startswith("circuitsweep: 46 revisions to measure")


def test_gpu_hours_above_the_cpu_hours_here_are_said_to_be_start_ups():
    """Without a GPU, small models can cost more GPU-hours than CPU-hours here (a GPU job starts cold, a CPU job
    forks from the warm worker): the line says the GPU-hours are mostly start-up, and only then."""
    cost = costs.SweepCost(revisions=46, download_bytes=0, peak_disk_bytes=0, snapshots_on_disk=2, device="GPU",
                           hours={"load": 0.38, "ablation": 0.01}, here_hours=0.05)  # fmt: skip
    assert "(no GPU; on one: about 0.4 GPU-hours, most of it the jobs' start-up)" in describe_cost(cost)
    heavy = dataclasses.replace(cost, hours={"load": 1.0, "head probes": 8.7}, here_hours=90.0)
    assert "(no GPU; on one: about 9.7 GPU-hours)" in describe_cost(heavy)


def test_check_config_of_full_prints_download_disk_and_the_partial_manifest():
    """check-config config/full.yaml gives the download and peak disk in GB, and says the OLMo manifest lacks about
    1,417 of its branches, with the command that lists them all."""
    result = check_config(REPO / "config" / "full.yaml")
    assert result.returncode == 0, result.stderr
    cost = next(line for line in result.stdout.splitlines() if "to measure" in line)
    assert "427 revisions to measure: download 3,8" in cost and "GB, peak disk 27.7 GB" in cost
    assert "lacks about 1,417 of about 1,446 branches" in result.stdout
    assert (
        "circuitsweep refresh-manifest allenai/OLMo-1B-0724-hf config/revisions/olmo-1b-0724-hf.json" in result.stdout
    )


def test_check_config_names_a_stimuli_file_as_one():
    """check-config of the primitives' stimuli file says what it is in one line, not schema errors about its words."""
    result = check_config(REPO / "config" / "primitives.yaml")
    assert result.returncode == 3
    assert "is a stimuli file" in result.stderr and "ANGER" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_dir_lists_the_notebook_api():
    """dir(cs) offers the notebook API for tab completion, though it is loaded only on first use."""
    assert set(cs.__all__) <= set(dir(cs))
    assert "read_results" in dir(cs) and "measure_heads" in dir(cs)


def test_check_config_says_each_toy_is_trained_here_outside_the_estimate(tmp_path):
    """The toy suite's largest cost is training its models, which the cost line does not estimate: each toy's line
    says how many steps it trains, so a newcomer does not read the estimate as the whole run."""
    from circuitsweep.cli.plan_summary import describe_plan
    from circuitsweep.io.contracts import Paths
    from circuitsweep.toy.spec import ToySpec

    config = load_config(REPO / "config" / "config.yaml")
    lines = describe_plan(plan_sweep(config, REPO, Paths(tmp_path)))
    for name, entry in config["models"].items():
        spec = ToySpec.of_model(entry["architecture"], entry["toy"])
        line = next(line for line in lines if line.startswith(f"{name}: "))
        assert f"a toy trained here ({spec.schedule[-1]:,} steps of {spec.tokens_per_step:,} tokens" in line, line
        assert line.endswith("the estimate below leaves its training out)"), line
