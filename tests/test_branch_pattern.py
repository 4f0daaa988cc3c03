"""Branch names other than stepN / stepN-tokensX (source.branch_pattern), such as OLMo 2's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from hubserver import HubServer
from planted import FIRST_TOKEN, VOCAB, planted_checkpoint
from runenv import SNAKEFILE, job_env, job_logs

from circuitsweep.checkpoints import local_hub
from circuitsweep.config import load_config
from circuitsweep.errors import ConfigError
from circuitsweep.plan import plan_sweep
from circuitsweep.revisions import BranchPattern, parse_branches

REPO = Path(__file__).resolve().parents[1]
OLMO2 = "stage1-step{step}-tokens{tokens}B"


def test_pattern_reads_step_and_tokens_with_their_unit():
    """Step and tokens come from the name (tokens in the unit written after {tokens}); names that do not match
    (main, another stage) are not checkpoints; without {tokens}, tokens are step x tokens_per_step."""
    names = ["main", "stage1-step0-tokens0B", "stage1-step120000-tokens252B", "stage2-ingredient3-step6000-tokens13B"]
    revisions = parse_branches(names, pattern=OLMO2)
    assert [(r.name, r.step, r.tokens) for r in revisions] == [
        ("stage1-step0-tokens0B", 0, 0),
        ("stage1-step120000-tokens252B", 120000, 252 * 10**9),
    ]
    assert BranchPattern("ckpt-{step}-{tokens}M").parse("ckpt-5-2.5M", None).tokens == 2_500_000
    assert BranchPattern("ckpt_{step:06d}").parse("ckpt_000020", 10).tokens == 200
    with pytest.raises(ValueError, match="tokens_per_step"):
        BranchPattern("ckpt_{step}").parse("ckpt_20", None)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("stage1-tokens{tokens}B", "one {step} field"),
        ("s{step}-{stage}", "no other fields"),
        ("s{step}-{tokens:d}B", "no format spec"),
        ("s{step", "branch_pattern"),
    ],
)
def test_bad_patterns_are_named(pattern, message):
    """A pattern without {step}, with another field, a tokens spec, or a broken brace fails naming the key."""
    config = load_config(REPO / "config" / "suites" / "olmo2-1b.yaml")
    config["models"]["olmo2-1b"]["source"]["branch_pattern"] = pattern
    with pytest.raises(ConfigError, match=r"models\.olmo2-1b\.source\.branch_pattern: .*" + re.escape(message)):
        plan_sweep(config, REPO)


def test_olmo2_suite_plans_offline_with_tokens_from_the_names():
    """config/suites/olmo2-1b.yaml plans stage-1 and stage-2 (ingredient 3) branches with the names' tokens."""
    plan = plan_sweep(load_config(REPO / "config" / "suites" / "olmo2-1b.yaml"), REPO)
    assert plan.revision("olmo2-1b", "stage1-step1700000-tokens3566B").tokens == 3566 * 10**9
    assert [r.step for r in plan.revisions["olmo2-1b-stage2-ingredient3"]] == [6000, 12000]


def _publish(root: Path, repo_id: str, branches: dict[str, int], folder: Path) -> None:
    """Planted checkpoints (induction head from step 2000) published as ``branches`` (name -> step)."""
    for name, step in branches.items():
        saved = folder / name
        planted_checkpoint(step, onset=2000, causal=10**9).save_pretrained(saved, safe_serialization=True)
        local_hub.publish_revision(root, repo_id, name, {p.name: p for p in saved.iterdir()})


@pytest.mark.slow
def test_olmo2_named_branches_are_listed_and_swept_through_the_hub(tmp_path):
    """refresh-manifest --branch-pattern lists only the matching branches of a Hub repository (with commits, not
    partial); a sweep of that manifest downloads, measures and orders them by the tokens in their names."""
    repo_id = "toy-org/olmo2-named"
    branches = {"stage1-step0-tokens0B": 0, "stage1-step1000-tokens2B": 1000, "stage1-step3000-tokens6B": 3000}
    other = {"main": 3000, "stage2-ingredient1-step1000-tokens2B": 3000}
    _publish(tmp_path / "hub", repo_id, {**branches, **other}, tmp_path / "saved")
    env = job_env({"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    manifest = tmp_path / "manifest.json"
    config = {
        "primitives": {"enabled": False},
        "probes": {
            "token_range": [2, VOCAB],
            "batch_size": 32,
            "induction": {"n_sequences": 32, "seq_len": 64},
            "repeated": {"n_sequences": 16, "seq_len": 64},
            "random": {"n_sequences": 16, "seq_len": 64},
        },
        "thresholds": {"class_selectivity": 8, "induction_circuit": 12, "induction_onset_heads": 1},
        "models": {
            "olmo2-named": {
                "architecture": "GPTNeoXForCausalLM",
                "source": {"type": "hub", "repo_id": repo_id, "manifest": str(manifest), "branch_pattern": OLMO2},
                "revisions": "all",
                "tokens": {"from_name": True},
                "first_token": {"policy": "fixed", "token_id": FIRST_TOKEN},
            }
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()
    with HubServer(tmp_path / "hub") as server:
        env["HF_ENDPOINT"] = server.endpoint
        commands = [
            [
                sys.executable,
                "-m",
                "circuitsweep",
                "refresh-manifest",
                repo_id,
                str(manifest),
                "--branch-pattern",
                OLMO2,
            ],
            [
                sys.executable,
                "-m",
                "snakemake",
                "-s",
                SNAKEFILE,
                "--cores",
                "2",
                "--configfile",
                str(tmp_path / "config.yaml"),
            ],
        ]
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, timeout=600)
            assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}\n{job_logs(workdir)}"
            if command[2] == "circuitsweep":
                listed = json.loads(manifest.read_text())
                assert [r["name"] for r in listed["revisions"]] == list(branches)
                assert all(len(r["commit"]) == 40 for r in listed["revisions"]) and listed["partial"] is False
    emergence = pl.read_parquet(workdir / "results" / "tables" / "emergence.parquet")
    assert emergence["revision"].to_list() == list(branches)
    assert emergence["tokens"].to_list() == [0, 2 * 10**9, 6 * 10**9]
    assert emergence["n_induction_heads"].to_list() == [0, 0, 1]


@pytest.mark.parametrize("suite", ["olmo2-1b", "crfm-gpt2", "smollm2", "amber"])
def test_each_suite_naming_scheme_is_listed_through_the_hub(suite, tmp_path):
    """A Hub repository whose branches are a suite config's revisions (plus main) is listed by refresh_manifest with
    the config's branch_pattern into exactly those revisions, with the steps and tokens the config plans."""
    from circuitsweep.checkpoints.hub import refresh_manifest

    plan = plan_sweep(load_config(REPO / "config" / "suites" / f"{suite}.yaml"), REPO)
    model = next(iter(plan.models.values()))
    config_json = tmp_path / "config.json"
    config_json.write_text("{}")
    repo_id = "suite-org/" + suite
    for name in ["main", *(r.name for r in plan.revisions[model.name])]:
        local_hub.publish_revision(tmp_path / "hub", repo_id, name, {"config.json": config_json})
    with HubServer(tmp_path / "hub") as server:
        manifest = refresh_manifest(
            repo_id,
            tmp_path / "manifest.json",
            endpoint=server.endpoint,
            tokens_per_step=model.tokens.get("per_step"),
            pattern=model.source["branch_pattern"],
        )
    assert [(r.name, r.step, r.tokens) for r in manifest.revisions] == [
        (r.name, r.step, r.tokens) for r in plan.revisions[model.name]
    ]
    assert not manifest.partial and manifest.source.startswith("list_repo_refs")
