"""A Llama-class model swept end to end through the Hub path (loopback server): the class most current models use.

The demo training run's checkpoints (a 2-layer LlamaForCausalLM) are published
as branches step0 and step4 of a Hub repository served by ``hubserver.py``;
the workflow discovers, downloads, verifies, measures and tabulates them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from hubserver import HubServer
from runenv import SNAKEFILE, job_env, job_logs, run_results

from circuitsweep.checkpoints import local_hub
from circuitsweep.toy.demo_run import save_demo_run

REPO = Path(__file__).resolve().parents[1]
REPO_ID = "demo-org/tiny-llama"

pytestmark = pytest.mark.slow


def _run(args: list[str], env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=900, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{args[:4]} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}\n{job_logs(cwd)}")


def test_llama_sweep_from_a_hub_repository(tmp_path):
    """Branches of a LlamaForCausalLM repository are listed, fetched through the Hub protocol, verified,
    measured and classified, with the class recorded per revision."""
    hub_root = tmp_path / "hub"
    for folder in save_demo_run(tmp_path / "run", [0, 4]):
        files = {name: folder / name for name in ("config.json", "generation_config.json", "model.safetensors")}
        local_hub.publish_revision(hub_root, REPO_ID, "step" + folder.name.split("-")[1], files)
    env = job_env({"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    with HubServer(hub_root) as server:
        env["HF_ENDPOINT"] = server.endpoint
        manifest = tmp_path / "manifest.json"
        _run([sys.executable, "-m", "circuitsweep", "refresh-manifest", REPO_ID, str(manifest), "--tokens-per-step",
              "4096"], env, tmp_path)  # fmt: skip
        config = {
            "probes": {
                "token_range": [2, 28],
                "batch_size": 16,
                "induction": {"n_sequences": 16, "seq_len": 48, "n_baseline": 10},
                "repeated": {"n_sequences": 8, "seq_len": 32},
                "random": {"n_sequences": 8, "seq_len": 16},
            },
            "primitives": {"enabled": False},
            "models": {
                "tiny-llama": {
                    "architecture": "LlamaForCausalLM",
                    "source": {"type": "hub", "repo_id": REPO_ID, "manifest": str(manifest)},
                    "revisions": "all",
                    "tokens": {"per_step": 4096},
                    "first_token": {"policy": "bos"},
                }
            },
        }
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        workdir = tmp_path / "work"
        workdir.mkdir()
        _run([sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--configfile", str(config_file),
              "--cores", "2"], env, workdir)  # fmt: skip
        assert server.count("cdn") > 0, "weights must come through the Hub's LFS redirect"
    results = run_results(workdir, config_file)
    emergence = pl.read_parquet(results / "tables" / "emergence.parquet")
    assert emergence["revision"].to_list() == ["step0", "step4"]
    assert emergence["tokens"].to_list() == [0, 4 * 4096]
    revisions = pl.read_parquet(results / "classes" / "tiny-llama" / "revisions.parquet")
    assert revisions["first_token_policy"].to_list() == ["bos:1", "bos:1"]
    assert revisions["in_context_loss_drop"].is_not_null().all()
