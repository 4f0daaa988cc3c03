"""Branch names other than stepN / stepN-tokensX (source.branch_pattern), such as OLMo 2's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from hubserver import HubServer
from planted import FIRST_TOKEN, planted_checkpoint, planted_sweep_settings
from runenv import SNAKEFILE, job_env, job_logs

from circuitsweep.checkpoints import local_hub
from circuitsweep.checkpoints.revisions import BranchPattern, parse_branches
from circuitsweep.config.load import load_config
from circuitsweep.errors import ConfigError
from circuitsweep.plan.sweep import plan_sweep

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
    """Planted checkpoints (induction head from step ``ONSET``) published as ``branches`` (name -> step)."""
    for name, step in branches.items():
        saved = folder / repo_id / name
        planted_checkpoint(step, onset=ONSET, causal=10**9).save_pretrained(saved, safe_serialization=True)
        local_hub.publish_revision(root, repo_id, name, {p.name: p for p in saved.iterdir()})


ONSET = 2000
#: Per naming scheme (the suite configs'): its branch_pattern, tokens setting, two checkpoint branches around the
#: onset, and branches that must not be taken for checkpoints.
SCHEMES = {
    "olmo2": (OLMO2, {"from_name": True}, {"stage1-step1000-tokens2B": 1000, "stage1-step3000-tokens6B": 3000},
              ["main", "stage2-ingredient1-step1000-tokens2B"]),
    "crfm-gpt2": ("checkpoint-{step}", {"per_step": 524288}, {"checkpoint-1000": 1000, "checkpoint-3000": 3000},
                  ["main"]),
    "smollm2": ("step-{step}", {"per_step": 2097152}, {"step-1000": 1000, "step-3000": 3000}, ["main"]),
    "amber": ("ckpt_{step:03d}", {"per_step": 1000}, {"ckpt_1000": 1000, "ckpt_3000": 3000}, ["main"]),
}  # fmt: skip


@pytest.mark.slow
def test_every_naming_scheme_is_listed_and_swept_through_the_hub(tmp_path):
    """For each suite's naming scheme, refresh_manifest with its branch_pattern lists only the matching branches of a
    Hub repository (with commits, not partial), and one sweep downloads and measures them all, each model's
    revisions ordered by their tokens, with the induction head found at the checkpoint after its onset."""
    from circuitsweep.checkpoints.hub import refresh_manifest

    models = {}
    with HubServer(tmp_path / "hub") as server:
        for scheme, (pattern, tokens, branches, others) in SCHEMES.items():
            repo_id = f"toy-org/{scheme}"
            _publish(tmp_path / "hub", repo_id, {**branches, **dict.fromkeys(others, 3000)}, tmp_path / "saved")
            manifest_file = tmp_path / f"{scheme}.json"
            manifest = refresh_manifest(
                repo_id,
                manifest_file,
                endpoint=server.endpoint,
                tokens_per_step=tokens.get("per_step"),
                pattern=pattern,
            )
            assert [r.name for r in manifest.revisions] == list(branches), scheme
            assert all(len(r.commit) == 40 for r in manifest.revisions) and not manifest.partial
            models[scheme] = {
                "architecture": "GPTNeoXForCausalLM",
                "source": {
                    "type": "hub",
                    "repo_id": repo_id,
                    "manifest": str(manifest_file),
                    "branch_pattern": pattern,
                },
                "revisions": "all",
                "tokens": tokens,
                "first_token": {"policy": "fixed", "token_id": FIRST_TOKEN},
            }
        config = {
            **planted_sweep_settings(),
            "models": models,
            "outdir": "results",
        }
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        workdir = tmp_path / "work"
        workdir.mkdir()
        env = job_env({"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
        env["HF_ENDPOINT"] = server.endpoint
        command = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--cores", "2"]
        command += ["results/tables/emergence.parquet", "--configfile", str(tmp_path / "config.yaml")]
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, timeout=600)
        assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}\n{job_logs(workdir)}"
    emergence = pl.read_parquet(workdir / "results" / "tables" / "emergence.parquet")
    for scheme, (_, _, branches, _) in SCHEMES.items():
        curve = emergence.filter(pl.col("model") == scheme)
        assert curve["revision"].to_list() == list(branches), scheme
        assert curve["n_induction_heads"].to_list() == [0, 1], scheme
    assert emergence.filter(pl.col("model") == "olmo2")["tokens"].to_list() == [2 * 10**9, 6 * 10**9]
    assert emergence.filter(pl.col("model") == "crfm-gpt2")["tokens"].to_list() == [1000 * 524288, 3000 * 524288]


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


def test_two_branch_names_for_one_step_are_refused_at_planning(tmp_path):
    """``stage1-step100-tokens1B`` and ``stage1-step0100-tokens1B`` are one checkpoint: planning refuses the
    sweep in one line naming both, instead of measuring both and failing after the last revision (issue 32, 8)."""
    from circuitsweep.checkpoints.revisions import Manifest, Revision, write_manifest
    from circuitsweep.errors import ConfigError
    from circuitsweep.plan.sweep import plan_sweep

    revisions = (
        Revision("stage1-step0-tokens0B", 0, 0),
        Revision("stage1-step100-tokens1B", 100, 10**9),
        Revision("stage1-step0100-tokens1B", 100, 10**9),
        Revision("stage1-step200-tokens2B", 200, 2 * 10**9),
    )
    write_manifest(tmp_path / "m.json", Manifest("org/olmo2", revisions, partial=False, source="test"))
    config = {
        "primitives": {"enabled": False},
        "models": {
            "olmo2": {
                "architecture": "Olmo2ForCausalLM",
                "source": {"type": "hub", "repo_id": "org/olmo2", "manifest": str(tmp_path / "m.json")},
                "revisions": "all",
                "tokens": {"from_name": True},
            }
        },
    }
    with pytest.raises(
        ConfigError, match="'stage1-step0100-tokens1B' and 'stage1-step100-tokens1B' are one checkpoint"
    ):
        plan_sweep(config, tmp_path)
    config["models"]["olmo2"]["revisions"] = ["stage1-step0-tokens0B", "stage1-step100-tokens1B"]
    assert len(plan_sweep(config, tmp_path).revisions["olmo2"]) == 2
