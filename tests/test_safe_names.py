"""Model and revision names that are not one safe path component are refused where they enter (issue 12, case 1).

A manifest revision named ``..`` used to be planned; when its fetch failed,
Snakemake removed the job's output ``results/snapshots/<model>/..``, that is,
every other model's snapshots.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from runenv import SNAKEFILE, job_env, run_paths

from circuitsweep.checkpoints.revisions import MANIFEST_FORMAT, Revision
from circuitsweep.errors import ConfigError
from circuitsweep.io.names import SAFE_NAME_PATTERN, check_name, is_safe_name
from circuitsweep.plan.retry import EXIT_DETERMINISTIC
from circuitsweep.plan.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
UNSAFE = ["..", ".", "a/b", "a\\b", "step1\n", "step\x001", "-step1", ""]


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused(name):
    """Each unsafe name is refused by the check, the Revision type and the Snakemake wildcard pattern."""
    import re

    assert not is_safe_name(name)
    with pytest.raises(ValueError, match="not a safe file name"):
        check_name(name, "here")
    with pytest.raises(ValueError, match="not a safe file name"):
        Revision(name, 1, 1)
    assert re.fullmatch(SAFE_NAME_PATTERN, name) is None


@pytest.mark.parametrize("name", ["step1", "step1000-tokens2B", "main", "pythia-1b", ".hidden", "a..b"])
def test_safe_names_pass(name):
    """Ordinary branch and model names are accepted everywhere."""
    import re

    assert check_name(name, "here") == name
    assert re.fullmatch(SAFE_NAME_PATTERN, name)


def hub_config(manifest: Path, model: str = "m") -> dict:
    return {
        "models": {
            model: {
                "architecture": "GPTNeoXForCausalLM",
                "source": {
                    "type": "hub",
                    "repo_id": "org/m",
                    "manifest": str(manifest),
                    "endpoint": "http://127.0.0.1:9",
                },
                "revisions": "all",
                "tokens": {"per_step": 10},
            }
        },
        "primitives": {"enabled": False},
    }


def write_manifest(path: Path, names: list[str]) -> None:
    entries = [{"name": n, "step": i, "tokens": 10 * i} for i, n in enumerate(names)]
    path.write_text(json.dumps({"format": MANIFEST_FORMAT, "repo_id": "org/m", "revisions": entries}))


def test_manifest_revision_dotdot_is_refused(tmp_path):
    """A manifest listing ``..`` is a config error naming the name, not a planned revision."""
    write_manifest(tmp_path / "manifest.json", ["step0", ".."])
    with pytest.raises(ConfigError, match=r"'\.\.' is not a safe file name"):
        plan_sweep(hub_config(tmp_path / "manifest.json"), tmp_path)


@pytest.mark.parametrize("model", ["..", "a/b", "-m"])
def test_unsafe_model_key_is_refused(tmp_path, model):
    """A model key that is not a safe folder name is a config error naming it in plain words, not the schema's
    key pattern."""
    write_manifest(tmp_path / "manifest.json", ["step0"])
    with pytest.raises(ConfigError) as info:
        plan_sweep(hub_config(tmp_path / "manifest.json", model), tmp_path)
    assert f"models: the key {model!r} is not one safe path component: letters, digits, '_', '.', '-'" in str(
        info.value
    )
    assert "matching" not in str(info.value)


def test_other_models_snapshots_survive_a_dotdot_revision(tmp_path):
    """The workflow and the fetch job both refuse ``..``; another model's snapshot sentinel stays on disk."""
    write_manifest(tmp_path / "manifest.json", ["step0", ".."])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(hub_config(tmp_path / "manifest.json")))
    sentinel = tmp_path / run_paths(tmp_path, tmp_path / "config.yaml").snapshot("other-model", "step0") / "sentinel"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("keep me")
    env = job_env()
    snakemake = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--configfile", "config.yaml"]
    result = subprocess.run([*snakemake, "--cores", "1"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, check=False)  # fmt: skip
    assert result.returncode != 0
    assert "not a safe file name" in result.stdout + result.stderr
    settings = {"model": "m", "revision": "..", "source": hub_config(tmp_path)["models"]["m"]["source"]}
    output = tmp_path / run_paths(tmp_path, tmp_path / "config.yaml").root / "snapshots" / "m" / ".."
    result = subprocess.run([sys.executable, "-m", "circuitsweep", "fetch-snapshot", "--settings", json.dumps(settings),
                             "--output", str(output)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == EXIT_DETERMINISTIC
    assert "Traceback" not in result.stderr and "not a safe file name" in result.stderr
    assert sentinel.read_text() == "keep me"
