"""Runs apart: each config's outputs in a folder of its own, a folder of another config refused (issue 21)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from runenv import SNAKEFILE, job_env

from circuitsweep.errors import ConfigError
from circuitsweep.io.run_folder import IDENTITY_FILE, check_run_folder, claim_run_folder, run_name, run_root

REPO = Path(__file__).resolve().parents[1]


def test_the_run_is_named_by_its_key_else_by_its_config_file():
    """``run:`` names the folder; without it the first config file's stem does; ``outdir`` replaces both."""
    assert run_root({}, ["config/paper.yaml"]) == Path("results/paper")
    assert run_root({"run": "mine"}, ["config/paper.yaml"]) == Path("results/mine")
    assert run_root({"run": "mine", "outdir": "/scratch/sweep"}, ["c.yaml"]) == Path("/scratch/sweep")
    assert run_name(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), ["config/config.yaml"]) == "toy"


@pytest.mark.parametrize(("config", "files", "named"), [({"run": ".."}, [], "run"), ({}, ["-x.yaml"], "-x.yaml")])
def test_a_name_that_is_no_folder_is_refused(config, files, named):
    """A run name that is not one safe folder name is refused naming where it came from."""
    with pytest.raises(ConfigError, match=named):
        run_root(config, files)


def test_a_folder_of_another_config_is_refused_naming_both(tmp_path, monkeypatch):
    """The first run records its config; the same config (however its path is written) may run again, another
    config is refused with one line naming both and the folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yaml").write_text("{}")
    claim_run_folder(Path("results/a"), ["a.yaml"])
    assert (tmp_path / "results" / "a" / IDENTITY_FILE).is_file()
    check_run_folder(Path("results/a"), [str(tmp_path / "a.yaml")])
    with pytest.raises(ConfigError) as refused:
        check_run_folder(Path("results/a"), ["sub/a.yaml"])
    message = str(refused.value)
    assert "\n" not in message and "results/a" in message and "a.yaml" in message and "sub/a.yaml" in message


def test_the_workflow_writes_each_config_to_its_folder_and_refuses_a_taken_one(tmp_path, monkeypatch):
    """A dry run plans the outputs of config/config.yaml under results/toy and those of another config under
    results/<its stem>; a config whose run folder another config made stops before any job, in one line."""
    toy = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({key: value for key, value in toy.items() if key != "run"}))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**toy, "run": "mine"}))

    def dry(config: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "-d", str(tmp_path / "w"), "-n", "-p"]
        command += ["--cores", "1"]
        return subprocess.run([*command, "--configfile", str(config), "--", "all"], capture_output=True, text=True,
                              env=job_env(), timeout=300, check=False)  # fmt: skip

    planned = dry(mine)
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "results/mine/tables/heads.parquet" in planned.stdout and "results/toy/" not in planned.stdout
    # every revision's expected cache settings go to classify_heads in a file, not on its command line
    (classify,) = [line for line in planned.stdout.splitlines() if "classify-heads" in line][:1]
    assert "--expected @results/mine/settings/classify_heads-toy-gptneox-" in classify and '"revision"' not in classify
    monkeypatch.chdir(tmp_path / "w")  # as the workflow claims it: from its working directory
    claim_run_folder(Path("results/mine"), [mine])
    refused = dry(other)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    line = next((line for line in output.splitlines() if "holds the run of" in line), output)
    assert str(mine) in line and str(other) in line


def test_settings_may_come_from_a_file(tmp_path):
    """A CLI settings argument ``@PATH`` reads the JSON from that file; a missing file is named in one line."""
    from circuitsweep.cli import _json

    (tmp_path / "s.json").write_text('{"a": [1, 2]}')
    assert _json(f"@{tmp_path / 's.json'}") == {"a": [1, 2]} == _json('{"a": [1, 2]}')
    with pytest.raises(argparse.ArgumentTypeError, match="cannot read the settings file .*missing.json"):
        _json(f"@{tmp_path / 'missing.json'}")


def test_a_config_error_through_snakemake_is_the_one_message_of_check_config(tmp_path, monkeypatch):
    """A misspelled key run through snakemake prints check-config's message, exits 3 and shows no traceback; a
    config copied from one whose run folder exists reports its own typo first, and once fixed the refusal of the
    other config's folder says how to name the new run."""
    toy = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    original = tmp_path / "original.yaml"
    original.write_text(yaml.safe_dump(toy))
    copy = tmp_path / "copy.yaml"
    copy.write_text(yaml.safe_dump({**toy, "thresholds": {**toy["thresholds"], "class_selectivty": 9}}))

    def dry(config: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "-d", str(tmp_path / "w"), "-n", "--cores", "1"]
        return subprocess.run([*command, "--configfile", str(config)], capture_output=True, text=True,
                              env=job_env(), timeout=300, check=False)  # fmt: skip

    (tmp_path / "w").mkdir()
    monkeypatch.chdir(tmp_path / "w")
    claim_run_folder(Path("results/toy"), [original])  # the original's run, as the workflow claims it
    typo = dry(copy)
    checked = subprocess.run([sys.executable, "-m", "circuitsweep", "check-config", str(copy), "--root", str(REPO)],
                             capture_output=True, text=True, env=job_env(), timeout=120, check=False)  # fmt: skip
    assert typo.returncode == checked.returncode == 3
    message = checked.stderr.strip().split("error: ", 1)[1]
    assert "class_selectivty" in message and f"circuitsweep: error: {message}" in typo.stderr
    assert "Traceback" not in typo.stderr and 'File "' not in typo.stderr and "holds the run of" not in typo.stderr
    copy.write_text(yaml.safe_dump(toy))
    refused = dry(copy)
    assert refused.returncode == 3 and "Traceback" not in refused.stderr
    line = next(line for line in refused.stderr.splitlines() if "holds the run of" in line)
    assert line.startswith("circuitsweep: error: results/toy holds the run of") and "`run: my-run`" in line
    assert "`outdir: " in line and not (tmp_path / "w" / "results" / "toy" / "cache").exists()
