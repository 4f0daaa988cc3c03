"""One Hub repository per checkpoint (source type hub_repos), as TinyLlama publishes its intermediate checkpoints."""

from __future__ import annotations

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
from circuitsweep.config.load import load_config
from circuitsweep.errors import ConfigError
from circuitsweep.plan.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]


def test_tinyllama_suite_plans_one_revision_per_repository():
    """Each repository is a revision named after it, with the step and tokens its entry states, fetched at main."""
    plan = plan_sweep(load_config(REPO / "config" / "suites" / "tinyllama.yaml"), REPO)
    revisions = plan.revisions["tinyllama-1.1b"]
    assert [(r.step, r.tokens) for r in revisions][-1] == (1431000, 3 * 10**12)
    settings = plan.fetch_settings("tinyllama-1.1b", "TinyLlama-1.1B-intermediate-step-1431k-3T")
    assert settings["source"]["repo_id"] == "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T"
    assert (settings["source"]["type"], settings["hub_revision"]) == ("hub", "main")


def test_hub_repos_keys_are_checked():
    """repos belongs to hub_repos only and a hub_repos source takes no repo_id; each fails naming the key."""
    config = load_config(REPO / "config" / "suites" / "tinyllama.yaml")
    config["models"]["tinyllama-1.1b"]["source"]["repo_id"] = "TinyLlama/x"
    with pytest.raises(ConfigError, match=r"source\.repo_id: a hub_repos source names its repositories in repos"):
        plan_sweep(config, REPO)
    config["models"]["tinyllama-1.1b"]["source"] = {
        "type": "hub",
        "repo_id": "a/b",
        "repos": [{"repo_id": "a/c", "step": 1}],
    }
    with pytest.raises(ConfigError, match=r"the repos key is required for, and only with, type hub_repos"):
        plan_sweep(config, REPO)


@pytest.mark.slow
def test_a_checkpoint_per_repository_is_swept_through_the_hub(tmp_path):
    """Two repositories, each holding one checkpoint at main, are downloaded through the Hub and measured as two
    revisions ordered by their tokens."""
    repos = {"toy-org/ckpt-step-1k-2B": (1000, 2 * 10**9), "toy-org/ckpt-step-3k-6B": (3000, 6 * 10**9)}
    for repo_id, (step, _) in repos.items():
        saved = tmp_path / "saved" / repo_id.split("/")[1]
        planted_checkpoint(step, onset=2000, causal=10**9).save_pretrained(saved, safe_serialization=True)
        local_hub.publish_revision(tmp_path / "hub", repo_id, "main", {p.name: p for p in saved.iterdir()})
    config = {
        **planted_sweep_settings(),
        "outdir": "results",
        "models": {
            "per-repo": {
                "architecture": "GPTNeoXForCausalLM",
                "source": {
                    "type": "hub_repos",
                    "repos": [{"repo_id": r, "step": s, "tokens": t} for r, (s, t) in repos.items()],
                },
                "revisions": "all",
                "first_token": {"policy": "fixed", "token_id": FIRST_TOKEN},
            }
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = job_env({"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    with HubServer(tmp_path / "hub") as server:
        env["HF_ENDPOINT"] = server.endpoint
        command = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--cores", "2"]
        command += ["--configfile", str(tmp_path / "config.yaml")]
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, timeout=600)
        assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}\n{job_logs(workdir)}"
        assert server.count("cdn") > 0, "weights must come through the Hub's LFS redirect"
    emergence = pl.read_parquet(workdir / "results" / "tables" / "emergence.parquet")
    assert emergence["revision"].to_list() == ["ckpt-step-1k-2B", "ckpt-step-3k-6B"]
    assert emergence["tokens"].to_list() == [2 * 10**9, 6 * 10**9]
    assert emergence["n_induction_heads"].to_list() == [0, 1]


@pytest.mark.parametrize(
    ("repos", "named"),
    [
        (
            [{"repo_id": "org/ck-step-0k", "step": 0}, {"repo_id": "alt/ck-step-0k", "step": 10}],
            "org/ck-step-0k and alt/",
        ),
        (
            [{"repo_id": "org/ck-step-0k", "step": 0}, {"repo_id": "org/ck-step-0k", "step": 10}],
            "org/ck-step-0k and org/",
        ),
        ([{"repo_id": "org/a", "step": 5}, {"repo_id": "org/b", "step": 5}], "'a' and 'b' are one checkpoint"),
    ],
    ids=["two owners", "one repository twice", "two repositories at one step"],
)
def test_two_checkpoints_of_one_name_or_step_are_refused_at_planning(repos, named):
    """Repositories that would share a revision name, or two at one step and token count, are refused when the
    sweep is planned, in one line naming both: no longer measured into one cache twice, then refused with advice
    that cannot help (issue 32, case 8)."""
    config = load_config(REPO / "config" / "suites" / "tinyllama.yaml")
    model = config["models"]["tinyllama-1.1b"]
    model["source"]["repos"] = repos
    model["revisions"] = "all"
    model["tokens"] = {"per_step": 100}
    with pytest.raises(ConfigError, match=named) as refused:
        plan_sweep(config, REPO)
    assert len([line for line in str(refused.value).splitlines() if line.strip().startswith("-")]) == 1


def test_a_checkpoint_with_fewer_tokens_than_an_earlier_one_is_refused_at_planning():
    """An entry whose tokens have an extra zero (9T at step 715k, before 2T at 955k) is refused naming both
    revisions under source.repos, instead of putting the checkpoints out of order on every token axis."""
    config = load_config(REPO / "config" / "suites" / "tinyllama.yaml")
    repos = config["models"]["tinyllama-1.1b"]["source"]["repos"]
    assert (repos[0]["step"], repos[1]["step"]) == (715000, 955000)
    repos[0]["tokens"] = 9 * 10**12
    with pytest.raises(ConfigError) as refused:
        plan_sweep(config, REPO)
    problems = [line for line in str(refused.value).splitlines() if line.strip().startswith("-")]
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "  - models.tinyllama-1.1b.source.repos: revision 'TinyLlama-1.1B-intermediate-step-955k-token-2T' (step "
        "955,000) has 2,000,000,000,000 tokens, fewer than 'TinyLlama-1.1B-intermediate-step-715k-1.5T' at the "
        "earlier step 715,000 (9,000,000,000,000 tokens)"
    ), problems[0]
