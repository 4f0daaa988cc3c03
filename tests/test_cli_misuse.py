"""Every subcommand misused by hand answers with one line and an exit code a retry would not change.

A traceback exits 1, which a cluster profile retries with more memory; a
misuse (a missing or non-Parquet input, a folder for a file, a bad pattern or
step) must instead name what is wrong in one line and exit 3 (deterministic).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from circuitsweep.plan.retry import EXIT_DETERMINISTIC

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"
#: A closed port: a command that reached the network would fail slowly, never succeed.
NOWHERE = "http://127.0.0.1:9"
TABLE_OUT = "--heads-out o --emergence o --emergence-csv o --milestones o --milestones-parquet o --milestones-md o"
CLASSIFY = "classify-heads --model m --thresholds {} --heads h --revisions r --scores"
#: The study's classification thresholds, so that the error line is about the other argument.
THRESHOLDS = """'{"class_selectivity": 30, "induction_circuit": 50, "previous_circuit": 100, "sink_alpha": 0.3}'"""

#: case -> (command line, a word the error line must name)
MISUSES: dict[str, tuple[str, str]] = {
    "refresh-manifest-bad-repo": (f"refresh-manifest ../x m.json --endpoint {NOWHERE}", "repository id '../x'"),
    "refresh-manifest-into-folder": (f"refresh-manifest org/tiny folder --endpoint {NOWHERE}", "is a folder"),
    "demo-run-negative-step": ("demo-run run --steps -1", "--steps"),
    "demo-run-huge-step": ("demo-run run --steps 99999999999999999999999", "--steps"),
    "demo-run-unknown-field": ("demo-run run --pattern {stp}", "pattern"),
    "demo-run-string-spec": ("demo-run run --pattern ck-{step:s}", "pattern"),
    "demo-run-file-as-folder": ("demo-run file.txt --steps 0", "is a file"),
    "plot-emergence-missing": ("plot-emergence --emergence missing.parquet --output o.png", "missing"),
    "plot-emergence-not-parquet": ("plot-emergence --emergence file.txt --output o.png", "Parquet"),
    "plot-heatmap-not-parquet": ("plot-heatmap --emergence file.txt --model m --output o", "file"),
    "plot-trajectories-missing": ("plot-trajectories --heads missing.parquet --model m --output o", "missing"),
    "plot-trajectories-not-parquet": ("plot-trajectories --heads file.txt --model m --output o", "file"),
    "plot-gap-missing": ("plot-primitive-gap --gaps missing.csv --output o.png", "missing.csv"),
    "plot-gap-not-a-gap-table": ("plot-primitive-gap --gaps table.csv --output o.png", "no column"),
    "sweep-overhead-missing": (
        "sweep-overhead --measure missing.tsv --scores file.txt --csv o --markdown o",
        "missing",
    ),
    "primitive-tables-missing": ("primitive-tables --revisions missing --output out", "missing"),
    "head-tables-missing": (
        f"head-tables --heads missing.parquet --revisions file.txt --thresholds {{}} {TABLE_OUT}",
        "missing",
    ),
    "classify-heads-no-thresholds": (f"{CLASSIFY} file.txt", "thresholds"),
    "classify-heads-missing": (f"{CLASSIFY.replace('{}', THRESHOLDS)} missing", "missing"),
    "check-config-missing": ("check-config missing.yaml", "missing.yaml"),
    "prefetch-missing": ("prefetch missing.yaml", "missing.yaml"),
    "fetch-snapshot-empty-settings": ("fetch-snapshot --settings {} --output snap", "--settings"),
    "block-record-missing": ("block-record --block b --files missing --output folder", "missing"),
}


@pytest.mark.parametrize("case", list(MISUSES))
def test_a_misused_subcommand_is_one_line_and_deterministic(tmp_path, case):
    """No traceback, exactly one line on stderr naming what is wrong, and exit 3 (not 1, which is retried)."""
    command, named = MISUSES[case]
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("not a table\n")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    result = subprocess.run(
        [sys.executable, "-m", "circuitsweep", *shlex.split(command)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(WORKFLOW), "HF_HUB_OFFLINE": "1"},
    )
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert result.returncode == EXIT_DETERMINISTIC, result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("module", ["circuitsweep", "circuitsweep.cli"])
def test_both_module_entry_points_run_the_command_line(tmp_path, module):
    """``python -m circuitsweep`` (what the rules call) and ``python -m circuitsweep.cli`` (where the command line
    lives) are one program: the same misuse gets the same one line and exit 3 from either."""
    (tmp_path / "folder").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", module, "refresh-manifest", "org/tiny", "folder", "--endpoint", NOWHERE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(WORKFLOW), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == EXIT_DETERMINISTIC, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "folder is a folder" in lines[0], result.stderr
