"""The shipped sweep configs (paper, primitive study, checkpoint suites) plan offline and dry-run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from runenv import job_env

from circuitsweep import revisions as R
from circuitsweep.config import load_config
from circuitsweep.plan import manifest_path, plan_sweep

ROOT = Path(__file__).resolve().parents[1]
STUDY_BRANCHES = ["step1", "step4", "step16", "step64", "step256", "step512", "step3000", "step10000"]
STUDY_BRANCHES += ["step38000", "step143000"]
SWEEP_CONFIGS = ["config/paper.yaml", "config/primitives-paper.yaml", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "config" / "suites").glob("*.yaml")
)]  # fmt: skip


def test_paper_config_has_pythia_160m_and_410m_at_the_1b_branches():
    """The study's two other models sweep the same ten branches as Pythia 1B, from bundled manifests."""
    plan = plan_sweep(load_config(ROOT / "config" / "paper.yaml"), ROOT)
    for name in ("pythia-160m", "pythia-410m", "pythia-1b"):
        assert [r.name for r in plan.revisions[name]] == STUDY_BRANCHES, name
        assert manifest_path(plan.models[name], ROOT).is_file(), name
    assert plan.revision("pythia-410m", "step3000").tokens == 3000 * 2_097_152


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
    assert plan.primitive_models() == list(plan.models)


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
    with_primitives = sum(len(plan.primitive_revisions(m)) for m in plan.primitive_models())
    assert int(counts.get("measure_revision", 0)) == with_primitives
