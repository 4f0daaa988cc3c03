"""The shipped sweep configs (paper, primitive study, checkpoint suites) plan offline and dry-run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from runenv import job_env

from circuitsweep.checkpoints import revisions as R
from circuitsweep.config.load import load_config
from circuitsweep.errors import ConfigError
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.plan.sweep import manifest_path, plan_sweep
from circuitsweep.primitives import jobs as primitive_jobs

ROOT = Path(__file__).resolve().parents[1]
STUDY_BRANCHES = ["step1", "step4", "step16", "step64", "step256", "step512", "step3000", "step10000"]
STUDY_BRANCHES += ["step38000", "step143000"]
#: DESIGN.md 1: the study's Pythia 160M / 410M trajectories.
STUDY_17 = [f"step{n}" for n in (1, 8, 32, 128, 512, 1000, 2000, 3000, 4000, 5000, 7000, 10000, 15000, 25000)]
STUDY_17 += ["step40000", "step70000", "step143000"]
SWEEP_CONFIGS = ["config/paper.yaml", "config/primitives-paper.yaml", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "config" / "suites").glob("*.yaml")
)]  # fmt: skip


def test_paper_config_sweeps_the_studys_anchors():
    """DESIGN.md 1: Pythia 1B at the study's ten branches, Pythia 160M and 410M at its 17, OLMo and OLMoE at
    their ten branches and then `main` (the study's final checkpoint; OLMoE's is annealed: 5033B + 100B tokens),
    ordered last, which their spectral ranking leaves out as the study's did; one natural-text batch built with
    gpt-neox-20b's tokenizer (Pythia's) read by all five;
    no primitive job."""
    plan = plan_sweep(load_config(ROOT / "config" / "paper.yaml"), ROOT)
    assert [r.name for r in plan.revisions["pythia-1b"]] == STUDY_BRANCHES
    for name in ("pythia-160m", "pythia-410m", "pythia-1b"):
        assert manifest_path(plan.models[name], ROOT).is_file(), name
    for name in ("pythia-160m", "pythia-410m"):
        assert [r.name for r in plan.revisions[name]] == STUDY_17, name
    assert plan.revision("pythia-410m", "step3000").tokens == 3000 * 2_097_152
    for name, last_branch, main_tokens in [
        ("olmo-1b-0724", "step1454000-tokens3048B", 3_050_000_000_000),
        ("olmoe-1b-7b", "step1220000-tokens5117B", 5_133_000_000_000),
    ]:
        revisions = plan.revisions[name]
        assert len(revisions) == 11 and [r.name for r in revisions[-2:]] == [last_branch, "main"], name
        assert revisions[-1].tokens == main_tokens and revisions[-1].tokens > revisions[-2].tokens
        assert sorted(revisions, key=lambda r: (r.tokens, r.step))[-1].name == "main"  # the emergence order too
        assert plan.models[name].spectral_leave_out == ("main",), name  # ranked over the ten branches, as the study
    assert heads_jobs.natural_batches(plan) == {"gpt-neox-20b": ("pythia-1b", "step1")}
    assert {heads_jobs.natural_batch_of(plan, m) for m in plan.models} == {"gpt-neox-20b"}
    assert {m.probes.natural_text.special_tokens for m in plan.models.values()} == {"default"}
    assert primitive_jobs.primitive_models(plan) == [] and plan.ablation is not None


def test_check_config_shows_the_paper_plan():
    """`circuitsweep check-config config/paper.yaml` names main, the 17 revisions, the shared batch and no
    primitive job."""
    command = [sys.executable, "-m", "circuitsweep", "check-config", str(ROOT / "config" / "paper.yaml")]
    result = subprocess.run(
        [*command, "--root", str(ROOT)], capture_output=True, text=True, env=job_env(), timeout=120, check=True
    )
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines()}
    assert "17 revisions (step1 .. step143000" in lines["pythia-160m"] and "17 revisions" in lines["pythia-410m"]
    assert "11 revisions (step5000-tokens20B .. main; the last at 5,133,000,000,000 tokens)" in lines["olmoe-1b-7b"]
    assert ".. main; the last at 3,050,000,000,000 tokens" in lines["olmo-1b-0724"]
    for model in ("pythia-1b", "pythia-160m", "pythia-410m", "olmo-1b-0724", "olmoe-1b-7b"):
        assert "natural text: batch gpt-neox-20b (tokenizer of pythia-1b, special tokens default)" in lines[model]
        assert lines[model].endswith("no primitive jobs")


def test_stated_branch_tokens_place_a_branch_without_a_step(tmp_path):
    """tokens.branches gives `main` its step and tokens (replacing a manifest's entry of that name); a
    tokenizer_model that measures another batch, or is no model of the run, is a config error naming the key."""
    config = load_config(ROOT / "config" / "paper.yaml")
    olmoe = config["models"]["olmoe-1b-7b"]
    olmoe["tokens"]["branches"] = {"main": {"step": 1_223_842, "tokens": 5_133_000_000_000}}
    plan = plan_sweep(config, ROOT)
    main = plan.revision("olmoe-1b-7b", "main")
    assert (main.step, main.tokens) == (1_223_842, 5_133_000_000_000)
    config["probes"]["natural_text"]["tokenizer_model"] = "pythia-12b"
    with pytest.raises(ConfigError, match=r"tokenizer_model: 'pythia-12b' is no model of this run"):
        plan_sweep(config, ROOT)


def test_pythia_suite_configs_cover_every_size_with_a_bundled_manifest():
    """Every Pythia repository (standard and deduplicated) is in a suite config and has its 154-branch manifest."""
    configured = {
        model.source["repo_id"]: model
        for path in ("pythia.yaml", "pythia-deduped.yaml")
        for model in plan_sweep(load_config(ROOT / "config" / "suites" / path), ROOT).models.values()
    }
    assert sorted(configured) == sorted(R.pythia_repos())
    for repo, model in configured.items():
        manifest = R.read_manifest(manifest_path(model, ROOT))
        assert manifest.repo_id == repo and len(manifest.revisions) == 154 and not manifest.partial


def test_primitive_study_config_names_its_gated_repositories():
    """The four chat models are the released revisions of Llama-, Qwen2- and Gemma3-class repositories;
    the gated ones say so, so that their fetch can ask for HF_TOKEN by name."""
    plan = plan_sweep(load_config(ROOT / "config" / "primitives-paper.yaml"), ROOT)
    assert {m.architecture for m in plan.models.values()} == {
        "LlamaForCausalLM",
        "Qwen2ForCausalLM",
        "Gemma3ForCausalLM",
    }
    assert {m.source["repo_id"] for m in plan.models.values() if m.source.get("gated")} == {
        "google/gemma-3-1b-it",
        "meta-llama/Llama-3.2-1B-Instruct",
    }
    assert all([(r.name, r.step, r.tokens) for r in revs] == [("main", 0, 0)] for revs in plan.revisions.values())
    assert primitive_jobs.primitive_models(plan) == list(plan.models)
    assert primitive_jobs.demonstration_models(plan) == []  # real tokenizers: their primitive figures mean something


def test_the_default_toy_models_primitive_figures_are_demonstrations():
    """The default config's toy models have no tokenizer: their primitive figures are labelled demonstrations."""
    plan = plan_sweep(load_config(ROOT / "config" / "config.yaml"), ROOT)
    toys = [name for name, model in plan.models.items() if model.source["type"] == "toy"]
    assert toys and primitive_jobs.demonstration_models(plan) == [
        name for name in primitive_jobs.primitive_models(plan) if name in toys
    ]


def test_the_default_toys_train_in_the_order_their_revisions_are_fetched(tmp_path):
    """The fetch chain that bounds snapshots on disk starts with the config's first model, so the toys train in the
    config's order (a higher priority first): with three toys on two cores, the first model must not be the one left
    waiting for a core, or no revision is measured until it is trained (a default run took 399 s, not 337 s)."""
    config = ROOT / "config" / "config.yaml"
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(tmp_path)]
    command += ["--configfile", str(config), "-n", "--cores", "2", "--nocolor"]
    result = subprocess.run(command, capture_output=True, text=True, env=job_env(), timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    priorities = {}
    for block in re.split(r"\n\s*\n|(?=\n\[)", result.stdout):
        if re.search(r"rule train_toy_model:", block):
            model = re.search(r"wildcards: model=([\w-]+)", block).group(1)
            priorities[model] = int(re.search(r"priority: (\d+)", block).group(1))
    models = list(load_config(config)["models"])
    assert sorted(priorities, key=priorities.get, reverse=True) == models, priorities


@pytest.mark.parametrize("config", SWEEP_CONFIGS)
def test_sweep_config_dry_runs(config, tmp_path):
    """Snakemake plans every job of the config offline: one measurement job (one load) per model and revision."""
    plan = plan_sweep(load_config(ROOT / config), ROOT)
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(tmp_path)]
    command += ["--configfile", str(ROOT / config), "-n", "--cores", "2", "--quiet", "rules"]
    result = subprocess.run(command, capture_output=True, text=True, env=job_env(), timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.M))
    measured = int(counts.get("measure_heads", 0)) + int(counts.get("measure_revision", 0))
    assert measured == sum(len(r) for r in plan.revisions.values())
    with_primitives = sum(
        len(primitive_jobs.primitive_revisions(plan, m)) for m in primitive_jobs.primitive_models(plan)
    )
    assert int(counts.get("measure_revision", 0)) == with_primitives


def test_config_readme_counts_the_default_toys_checkpoints():
    """config/README.md's line for config.yaml gives the toys' checkpoint counts as the schedules hold them
    ("N-M checkpoints each"; it once said 12-13 after the schedules had grown to 17)."""
    readme = (ROOT / "config" / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("| `config.yaml` |"))
    low, high = map(int, re.search(r"(\d+)-(\d+) checkpoints each", line).groups())
    models = load_config(ROOT / "config" / "config.yaml")["models"].values()
    counts = [len(model["toy"]["schedule"]) for model in models]
    assert (low, high) == (min(counts), max(counts)), counts


def test_check_config_names_a_released_model_as_such():
    """A released model swept alone (``revisions: [main]`` with no manifest and no stated tokens, as the
    primitives configs sweep it) reads as the released model in check-config, not as a model at 0 tokens
    (which would be an untrained one); a stated ``main`` keeps its tokens."""
    from circuitsweep.cli.plan_summary import describe_plan

    config = load_config(ROOT / "config" / "primitives-paper.yaml")
    lines = {line.split(":")[0]: line for line in describe_plan(plan_sweep(config, ROOT))}
    assert "1 revision (main, the released model; no step or tokens stated)" in lines["qwen2.5-0.5b-instruct"]
    model = config["models"]["qwen2.5-0.5b-instruct"]
    model["tokens"] = {"per_step": 2048, "branches": {"main": {"step": 0, "tokens": 0}}}
    lines = {line.split(":")[0]: line for line in describe_plan(plan_sweep(config, ROOT))}
    assert "1 revision (main; at 0 tokens)" in lines["qwen2.5-0.5b-instruct"]
