"""Hub faults against a whole sweep: the final tables equal a clean run's (issue 12).

The loopback Hub of ``hubserver.py`` serves a toy GPT-NeoX (the fixture of
``test_workflow_hub.py``) with a branch that is not a checkpoint name. One
clean sweep, then one under every kind of fault at once: a stalled model-info
request (timed out, retried), a 500, a connection hung up with no reply on
the tree listing, a weight body cut mid-file and a corrupted weight file. The
sweep must finish and its heads, emergence and milestone tables must equal
the clean run's, value for value.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from hubserver import HubServer
from runenv import SNAKEFILE, job_env, run_paths, toy_hub_settings
from test_workflow_hub import REPO, REPO_ID, hub_repo, run  # noqa: F401 - hub_repo is a fixture

from circuitsweep.checkpoints import local_hub

pytestmark = pytest.mark.slow
REVISIONS = ["step0", "step20"]


def sweep(server: HubServer, tmp_path: Path, name: str) -> Path:
    """Refresh the manifest and run the sweep of ``REVISIONS`` in ``tmp_path / name``; returns its results."""
    env = job_env(
        {
            "HF_HOME": str(tmp_path / name / "hf-home"),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_ENDPOINT": server.endpoint,
            "CIRCUITSWEEP_HUB_TIMEOUT": "2",
        }
    )
    workdir = tmp_path / name
    workdir.mkdir()
    manifest = workdir / "manifest.json"
    cli = [
        sys.executable,
        "-m",
        "circuitsweep",
        "refresh-manifest",
        REPO_ID,
        str(manifest),
        "--tokens-per-step",
        "4096",
    ]
    listed = run(cli, env, workdir)
    assert "skipped 1 branches" in listed.stdout and "'step5/evil'" in listed.stdout
    config = {
        **toy_hub_settings(),
        "primitives": {"enabled": False},
        "models": {
            "hub-toy": {
                "architecture": "GPTNeoXForCausalLM",
                "source": {"type": "hub", "repo_id": REPO_ID, "manifest": str(manifest)},
                "revisions": REVISIONS,
                "tokens": {"per_step": 4096},
                "first_token": {"policy": "fixed", "token_id": 1},
            }
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--configfile", "config.yaml"]
    paths = run_paths(workdir, workdir / "config.yaml")
    tables = [str(paths.heads_table()), str(paths.emergence_table()), str(paths.milestones_table("csv"))]
    run([*snakemake, "--cores", "2", *tables], env, workdir)  # the tables only: plots add time, not coverage
    return workdir / paths.heads_table().parent


def test_sweep_under_hub_faults_equals_a_clean_sweep(hub_repo, tmp_path):  # noqa: F811 - the fixture
    """Stall, 500, hang-up, dropped body and corruption are all survived; the final tables are unchanged."""
    folder = local_hub.repo_folder(hub_repo, REPO_ID)
    step0 = folder / "snapshots" / (folder / "refs" / "step0").read_text().strip()
    local_hub.publish_revision(hub_repo, REPO_ID, "step5/evil", {"config.json": (step0 / "config.json").resolve()})
    with HubServer(hub_repo) as server:
        clean = sweep(server, tmp_path, "clean")
        server.log.clear()
        server.stall("info", seconds=60, times=1)
        server.fail("info", status=500, times=1)
        server.hang_up("tree", times=1)
        server.drop("model.safetensors", times=1)
        server.corrupt("model.safetensors", times=1)
        faulted = sweep(server, tmp_path, "faulted")
        assert server.count(status=500) >= 1 and server.count(status=0) >= 1, "the faults must have fired"
        assert server.errors == []
    for table in ("heads.parquet", "emergence.parquet"):
        assert pl.read_parquet(faulted / table).equals(pl.read_parquet(clean / table)), table
    assert (faulted / "milestones.csv").read_text() == (clean / "milestones.csv").read_text()
    assert pl.read_parquet(clean / "emergence.parquet")["revision"].to_list() == REVISIONS
