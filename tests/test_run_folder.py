"""Runs apart: each config's outputs in a folder of its own, a folder of another config refused (issue 21)."""

from __future__ import annotations

import argparse
import os
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


@pytest.mark.parametrize(
    ("config", "files", "named"),
    [({"run": ".."}, [], "run"), ({}, ["-x.yaml"], "-x.yaml"), ({}, ["my sweep.yaml"], "the name of my sweep.yaml")],
)
def test_a_name_that_is_no_folder_is_refused(config, files, named):
    """A run name that is not one safe folder name is refused naming where it came from; a name taken from the
    config file follows the rule of the `run` key (a file 'my sweep.yaml' used to write results/my sweep/)."""
    with pytest.raises(ConfigError, match=named):
        run_root(config, files)


def test_a_name_from_a_config_file_follows_the_schemas_rule_for_run():
    """The stem rule and the schema's `run` rule are one rule written twice (Python, JSON Schema): they agree."""
    from circuitsweep.io.run_folder import RUN_NAME_PATTERN

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["safe_name"]["pattern"] == f"^{RUN_NAME_PATTERN}$"
    assert schema["properties"]["run"]["$ref"] == "#/$defs/safe_name"


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
    from circuitsweep.cli.json_arguments import Json

    read_json = Json()
    (tmp_path / "s.json").write_text('{"a": [1, 2]}')
    assert read_json(f"@{tmp_path / 's.json'}") == {"a": [1, 2]} == read_json('{"a": [1, 2]}')
    with pytest.raises(argparse.ArgumentTypeError, match="cannot read the settings file .*missing.json"):
        read_json(f"@{tmp_path / 'missing.json'}")


# --- round four (issue 32): resolved paths, one run at a time, settings files that hold what they say ---------


def test_a_folder_reached_through_a_missing_folder_is_the_same_folder(tmp_path, monkeypatch):
    """``results/y/../shared1`` is ``results/shared1`` once Snakemake creates ``results/y``: another config's run
    there is refused, where the guard used to look through the missing folder, find nothing, and let the run
    write into the other run's folder (issue 32, case 2)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text("{}")
    (tmp_path / "b.yaml").write_text("{}")
    claim_run_folder(Path("results/shared1"), ["a.yaml"])
    with pytest.raises(ConfigError, match=r"holds the run of a\.yaml, not of b\.yaml"):
        check_run_folder(Path("results/y/../shared1"), ["b.yaml"])
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "results" / "link").symlink_to(tmp_path / "results" / "shared1")
    with pytest.raises(ConfigError, match="holds the run of"):
        check_run_folder(Path("results/link"), ["b.yaml"])
    check_run_folder(Path("results/y/../shared1"), ["a.yaml"])


def test_one_config_from_two_working_directories_is_one_run_and_another_is_named_truly(tmp_path, monkeypatch):
    """With an absolute outdir, the same config run from another working directory is the same run; another
    config is refused naming the first config as it is found from here (absolute), not as a path relative to
    the first working directory, which names another file or none (issue 32, case 9); this config is then named
    in full too, so that the two names cannot look alike ("sweep.yaml" and ".../first/sweep.yaml")."""
    first, second, outdir = tmp_path / "first", tmp_path / "second", tmp_path / "scratch" / "run"
    for folder in (first, second):
        folder.mkdir()
        (folder / "sweep.yaml").write_text("{}")
    monkeypatch.chdir(first)
    claim_run_folder(outdir, ["sweep.yaml"])
    monkeypatch.chdir(second)
    check_run_folder(outdir, [first / "sweep.yaml"])
    with pytest.raises(ConfigError) as refused:
        check_run_folder(outdir, ["sweep.yaml"])
    assert f"holds the run of {first / 'sweep.yaml'}, not of {second / 'sweep.yaml'}:" in str(refused.value)


def test_a_run_folder_is_held_by_one_run_at_a_time(tmp_path):
    """The second run of one folder (one config started from two working directories, whose Snakemake locks
    differ) is refused in one line naming the first run, before it runs or deletes anything; the lock goes with
    the process that held it (issue 32, case 6)."""
    from circuitsweep.io.run_folder import LOCK_FILE, lock_run_folder, release_run_folder

    root = tmp_path / "run"
    assert lock_run_folder(root) == root.resolve() / LOCK_FILE
    assert lock_run_folder(root) == root.resolve() / LOCK_FILE  # this process holds it already
    second = [
        sys.executable,
        "-c",
        f"from circuitsweep.io.run_folder import lock_run_folder; lock_run_folder({str(root)!r})",
    ]
    refused = subprocess.run(second, capture_output=True, text=True, env=job_env(), timeout=120, cwd=tmp_path)
    assert refused.returncode != 0
    assert f"{root} is in use by another run (pid {os.getpid()} on" in refused.stderr
    release_run_folder(root)
    taken = subprocess.run(second, capture_output=True, text=True, env=job_env(), timeout=120, cwd=tmp_path)
    assert taken.returncode == 0, taken.stderr


def test_a_run_of_a_held_folder_stops_in_one_line_before_any_job(tmp_path):
    """Snakemake started on a folder another run holds stops in its onstart with the one ``circuitsweep: error:``
    line and exit status 3, not a Snakemake traceback, and runs no job."""
    from circuitsweep.io.run_folder import lock_run_folder, release_run_folder

    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    root = tmp_path / "held"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**config, "outdir": str(root)}))
    lock_run_folder(root)
    try:
        command = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "-d", str(tmp_path / "w"), "--cores", "1"]
        refused = subprocess.run([*command, "--configfile", str(tmp_path / "c.yaml")], capture_output=True,
                                 text=True, env=job_env(), timeout=300, check=False)  # fmt: skip
    finally:
        release_run_folder(root)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 3, output[-3000:]
    assert f"circuitsweep: error: {root} is in use by another run (pid {os.getpid()} on" in output
    assert "Traceback" not in output and 'File "' not in output
    assert not (root / "toyhub").exists()


def test_a_nothing_to_do_line_removes_the_note_unless_another_run_holds_the_folder(tmp_path):
    """The filter on Snakemake's logger removes the note of a failed run when Snakemake logs that it has nothing
    to do, leaves it for any other line, and leaves it while another process holds the folder's lock."""
    import logging

    from circuitsweep.io.run_folder import finish_when_nothing_to_do, mark_run_failed, unfinished_note

    message = "Nothing to be done (all requested files are present and up to date)."
    root = tmp_path / "run"
    logger = logging.getLogger(f"circuitsweep-test-{tmp_path.name}")
    finish_when_nothing_to_do(root, logger, message)
    mark_run_failed(root)
    logger.warning("Building DAG of jobs...")
    assert unfinished_note(root) is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from circuitsweep.io.run_folder import lock_run_folder; "
         f"lock_run_folder({str(root)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=job_env(),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        logger.warning(message)
        assert unfinished_note(root) is not None
    finally:
        holder.kill()
        holder.wait(timeout=60)
    logger.warning(message)
    assert unfinished_note(root) is None


@pytest.mark.parametrize("broken", ["outdir is a file", "run.json is a folder"])
def test_a_run_folder_of_the_wrong_kind_is_one_line(tmp_path, broken):
    """An outdir that is a file, or a run record that is a folder, is a ConfigError naming it (issue 32, case 14)."""
    root = tmp_path / "run"
    if broken == "outdir is a file":
        root.write_text("x")
    else:
        (root / IDENTITY_FILE).mkdir(parents=True)
    with pytest.raises(ConfigError, match="is a file, not a folder" if "outdir" in broken else "is not a file"):
        claim_run_folder(root, [tmp_path / "c.yaml"])


def test_check_config_refuses_a_blank_outdir_as_the_run_does(tmp_path):
    """`outdir: "   "` is refused by check-config, as by the workflow (issue 32, case 9)."""
    import contextlib
    import io

    from circuitsweep import cli

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**config, "outdir": "   "}))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["check-config", str(tmp_path / "c.yaml"), "--root", str(REPO)])
    assert code == 3 and "outdir: '   ' is not a folder path" in err.getvalue()


def test_a_settings_file_holds_what_its_name_says(tmp_path):
    """A settings file edited by hand (``induction_onset_heads 1 -> 99``) or replaced by a list is rewritten when
    the run is planned, and refused in one line by a job that reads it meanwhile; a folder in its place is named
    (issue 32, cases 3 and 14)."""
    from circuitsweep.cli.json_arguments import Json
    from circuitsweep.io.settings_files import settings_name, write_settings_file

    text = '{"m":{"induction_onset_heads":1}}'
    path = tmp_path / "settings" / f"{settings_name('head_tables', text)}.json"
    assert write_settings_file(path, text) and not write_settings_file(path, text)
    assert Json()(f"@{path}") == {"m": {"induction_onset_heads": 1}}
    for edit in ('{"m":{"induction_onset_heads":99}}', "[1]"):
        path.write_text(edit)
        with pytest.raises(argparse.ArgumentTypeError, match="was changed after the workflow wrote it"):
            Json()(f"@{path}")
        assert write_settings_file(path, text) and path.read_text() == text
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        write_settings_file(path, text)


def test_a_failed_run_on_a_full_disk_says_so(tmp_path, monkeypatch):
    """When the disk under the run folder is (nearly) full, the failed run says "disk full" and the folder: the
    failing job's own log, on that disk, is often empty (issue 32, case 7)."""
    import shutil
    from collections import namedtuple

    from circuitsweep.io.run_folder import disk_full_note

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 4096, 4096))
    note = disk_full_note(tmp_path / "results" / "run")
    assert note is not None and "disk full" in note and str(tmp_path / "results" / "run") in note
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**11, 9 * 10**11))
    assert disk_full_note(tmp_path / "results" / "run") is None
    assert "disk_full_note(PATHS.root)" in (REPO / "workflow" / "rules" / "common.smk").read_text()


def test_a_settings_file_replaced_by_a_folder_stops_planning_in_one_line(tmp_path, monkeypatch):
    """Planning (the Snakefile's and check-config's) names a settings file that became a folder, before any
    job's params try to rewrite it (issue 32, case 14)."""
    from circuitsweep.plan.sweep import plan_run

    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "results" / "toy" / "settings" / "head_tables-0123456789abcdef.json").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"head_tables-0123456789abcdef\.json is not a file"):
        plan_run(config, ["c.yaml"], REPO, keep_hashes=False)


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


def test_a_run_that_did_not_finish_leaves_a_note_until_one_finishes(tmp_path):
    """The report bundles whatever tables are in the run folder; after a run started (onstart) or failed (onerror)
    they may be an earlier run's, so the folder holds a note the report shows, until a run finishes (onsuccess)."""
    from circuitsweep.io.run_folder import mark_run_failed, mark_run_finished, mark_run_started, unfinished_note

    root = tmp_path / "results" / "toy"
    assert unfinished_note(root) is None
    mark_run_started(root)
    assert unfinished_note(root).startswith("A run of this folder started at ")
    mark_run_failed(root)
    note = unfinished_note(root)
    assert note.startswith("The last run of this folder failed at ") and "earlier run" in note and "\n" not in note
    mark_run_finished(root)
    assert unfinished_note(root) is None
    mark_run_finished(root)  # a run that never started one: nothing to remove


@pytest.mark.parametrize(
    ("argv", "building"),
    [
        (["--cores", "1", "--report", "results/toy/report.html"], True),
        (["--report", "--configfile", "c.yaml"], True),
        (["--report=r.html"], True),
        (["--cores", "1", "--report", "r.html", "--report-after-run"], False),
        (["--cores", "1", "--report-stylesheet", "s.css"], False),
        (["--cores", "1", "--configfile", "c.yaml"], False),
    ],
)
def test_the_workflow_knows_when_snakemake_builds_a_report(argv, building):
    """Only ``--report`` without ``--report-after-run`` builds a report from the outputs as they are."""
    from circuitsweep.io.report_mode import building_report

    assert building_report(argv) is building


def test_an_output_with_a_model_wildcard_exists_when_every_models_does(tmp_path):
    """A rule's report flag covers all its jobs: a per-model figure counts as made once every model's is."""
    from circuitsweep.io.report_mode import outputs_exist

    (tmp_path / "a.png").write_bytes(b"png")
    assert outputs_exist(tmp_path / "a.png", ["a"]) and not outputs_exist(tmp_path / "b.png", ["a"])
    per_model = str(tmp_path / "{model}.png")
    assert outputs_exist(per_model, ["a"]) and not outputs_exist(per_model, ["a", "b"])


def test_a_report_of_a_run_that_failed_bundles_what_exists_below_its_note(tmp_path):
    """`snakemake --report` after a run that failed before any table (its outputs flagged for the report do not
    exist) writes the report, opening with the run's unfinished note and bundling the tables that are there."""
    from circuitsweep.io.contracts import Paths
    from circuitsweep.io.run_folder import mark_run_failed

    config = tmp_path / "toy.yaml"
    config.write_text((REPO / "config" / "config.yaml").read_text())
    work = tmp_path / "w"
    paths = Paths(work / "results" / "toy")
    mark_run_failed(paths.root)
    paths.overhead_table("csv").parent.mkdir(parents=True)
    paths.overhead_table("csv").write_text("rule,seconds\nmeasure_heads,1.5\n")
    report = work / "results" / "toy" / "report.html"
    command = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "-d", str(work), "--cores", "1"]
    result = subprocess.run([*command, "--configfile", str(config), "--report", str(report)], capture_output=True,
                            text=True, env=job_env(), timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "marked for report but does not exist" not in result.stderr
    assert "Missing metadata for file results/toy/tables/milestones.csv" not in result.stderr  # not made: no noise
    html = report.read_text(errors="replace")
    assert "<strong>Warning: this run is unfinished.</strong> The last run of this folder failed at" in html
    assert "overhead.csv" in html and "milestones.csv" not in html
