"""The sweep end to end from a Hub: discovery, verified download, measurement, duplicate marking.

A toy GPT-NeoX is trained and published as a Hub repository with branches,
served by the loopback Hub of ``hubserver.py`` (the real download code runs
unchanged against it). One branch re-publishes another's files, as some real
Hub branches do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from hubserver import HubServer
from runenv import SNAKEFILE, job_env, job_logs, run_results, toy_hub_settings

from circuitsweep.checkpoints import local_hub
from circuitsweep.toy.train import ToySpec, train_and_publish

REPO = Path(__file__).resolve().parents[1]
REPO_ID = "toy-org/toy-gptneox"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub_repo(tmp_path_factory) -> Path:
    """A hub folder with branches step0, step10, step20 and step30 (= step20's files)."""
    root = tmp_path_factory.mktemp("hub")
    spec = ToySpec.default("GPTNeoXForCausalLM", schedule=(0, 10, 20))
    train_and_publish(spec, root, REPO_ID, "step{step}", progress=False)
    snapshot = (
        local_hub.repo_folder(root, REPO_ID)
        / "snapshots"
        / ((local_hub.repo_folder(root, REPO_ID) / "refs" / "step20").read_text().strip())
    )
    files = {p.name: p.resolve() for p in snapshot.iterdir()}
    local_hub.publish_revision(root, REPO_ID, "step30", files)
    return root


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=900, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{args[:4]} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}\n{job_logs(cwd)}")
    return result


def test_sweep_from_a_hub_repository(hub_repo, tmp_path):
    """Branches are discovered into a manifest, downloaded, verified and measured; the duplicate is marked."""
    env = job_env({"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    with HubServer(hub_repo) as server:
        env["HF_ENDPOINT"] = server.endpoint
        manifest = tmp_path / "manifest.json"
        cli = [sys.executable, "-m", "circuitsweep"]
        run([*cli, "refresh-manifest", REPO_ID, str(manifest), "--tokens-per-step", "4096"], env, tmp_path)
        listed = json.loads(manifest.read_text())
        names = [r["name"] for r in listed["revisions"]]
        assert names == ["step0", "step10", "step20", "step30"]
        assert [r["tokens"] for r in listed["revisions"]] == [0, 40960, 81920, 122880]

        config = {
            **toy_hub_settings(),
            "primitives": {"enabled": False},
            "models": {
                "hub-toy": {
                    "architecture": "GPTNeoXForCausalLM",
                    "source": {"type": "hub", "repo_id": REPO_ID, "manifest": str(manifest)},
                    "revisions": "all",
                    "tokens": {"per_step": 4096},
                    "first_token": {"policy": "fixed", "token_id": 1},
                }
            },
        }
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        workdir = tmp_path / "work"
        workdir.mkdir()
        run(
            [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--configfile", str(config_file),
             "--cores", "2"],
            env,
            workdir,
        )  # fmt: skip
        assert server.count("cdn") > 0, "weights must come through the Hub's LFS redirect"

    results = run_results(workdir, config_file)
    emergence = pl.read_parquet(results / "tables" / "emergence.parquet")
    assert emergence["revision"].to_list() == names
    assert emergence["tokens"].to_list() == [0, 40960, 81920, 122880]
    assert emergence["duplicate_of"].to_list() == [None, None, None, "step20"]
    assert list((results / "snapshots").glob("*/*")) == [], "snapshots are temporary"
