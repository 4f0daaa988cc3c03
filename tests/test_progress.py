"""What a run prints while it works and when it ends (circuitsweep.io.progress, the bundled profiles)."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
import yaml

from circuitsweep.io.progress import LineProgress, revision_line

REPO = Path(__file__).resolve().parents[1]


def test_progress_to_a_log_is_one_plain_line_per_update():
    """Off a terminal, progress is whole lines (no carriage returns) with the count, share and notes."""
    stream = io.StringIO()
    with LineProgress(400, "train toy/gptneox", unit="steps", interval=0.0, stream=stream) as bar:
        bar.update(100)
        bar.note(loss="4.010")
        bar.update(300)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("train toy/gptneox: 100/400 steps (25%), ")
    assert lines[1].startswith("train toy/gptneox: 400/400 steps (100%), ") and lines[1].endswith("loss=4.010")


def test_progress_lines_wait_for_their_interval():
    """Updates within the interval print nothing until the end, which prints the final count once."""
    stream = io.StringIO()
    with LineProgress(10, "train", interval=3600.0, stream=stream) as bar:
        for _ in range(10):
            bar.update()
    assert len(stream.getvalue().splitlines()) == 1
    assert stream.getvalue().startswith("train: 10/10 it (100%)")


def test_progress_by_tenths_prints_ten_lines_however_slow():
    """With ``steps``, a task prints one line per tenth of its count (training on a loaded machine no longer
    fills the console with a line every few seconds), the last one once."""
    stream = io.StringIO()
    with LineProgress(600, "train", unit="steps", interval=0.0, stream=stream, steps=10) as bar:
        for _ in range(600):
            bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("train: 60/600 steps (10%)") and "600/600" in lines[-1]


def test_disabled_progress_prints_nothing():
    """``enabled=False`` (a quiet caller) writes nothing, not even the final line."""
    stream = io.StringIO()
    with LineProgress(5, "train", interval=0.0, stream=stream, enabled=False) as bar:
        bar.update(5)
    assert stream.getvalue() == ""


def test_revision_line_names_the_revision_its_heads_and_seconds():
    """A measured revision's console line: model, revision, heads measured, strongest BOS and induction head,
    seconds."""
    scores = pl.DataFrame(
        {
            "layer": [0, 0, 1, 1],
            "head": [0, 1, 0, 1],
            "sel_first": [2.0, 11.0, float("nan"), 1.0],
            "sel_induction": [1.0, 0.5, 64.2, None],
        }
    )
    line = revision_line("toy-gptneox", "step300", scores, {"load": 0.5, "heads": 2.25})
    assert line == (
        "measured toy-gptneox step300: 4 heads, strongest BOS 11 (L0H1), induction 64.2 (L1H0) (selectivity); "
        "2.8 s (load 0.5 s, heads 2.2 s)"
    )


@pytest.mark.parametrize("profile", sorted(p.parent.name for p in (REPO / "profiles").glob("*/config.yaml")))
def test_every_profile_shows_failed_logs(profile):
    """Every bundled profile prints a failed job's log (its one-line error) on the console, without printshellcmds'
    extra RuleException block."""
    settings = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    assert settings["show-failed-logs"] is True
    assert not settings.get("printshellcmds", False)


def test_closing_progress_prints_the_final_count_once():
    """``start``/``close`` (as the probe loop uses it) prints the final count once, even when closed twice."""
    stream = io.StringIO()
    bar = LineProgress(3, "probe batches", unit="batches", interval=3600.0, stream=stream).start()
    for _ in range(3):
        bar.update()
    bar.close()
    bar.close()
    assert stream.getvalue().count("probe batches: 3/3 batches (100%)") == 1


def test_the_console_keeps_errors_the_job_counts_and_a_progress_line_per_tenth(tmp_path):
    """Snakemake's routine job blocks and per-job progress leave the console (not the log file): what stays is
    every record that is not a routine job event (errors, job counts, warnings) and one progress line per tenth."""
    import logging

    from circuitsweep.io.console import ConsoleFilter, quiet_console

    def record(msg: str | None, **extra) -> logging.LogRecord:
        item = logging.LogRecord("snakemake.logging", logging.INFO, __file__, 1, msg, None, None)
        item.__dict__.update(extra)
        return item

    console = ConsoleFilter()
    assert not console.filter(record(None, event="job_info", rule_name="measure_heads"))
    assert not console.filter(record("Execute 2 jobs...", event="job_started"))
    assert not console.filter(record(None, event="job_finished"))
    assert not console.filter(record("Select jobs to execute..."))
    assert not console.filter(record("Removing temporary output results/toy/snapshots/m/step0."))
    assert console.filter(record(None, event="job_error", rule_name="measure_heads"))
    assert console.filter(record("Job stats:\njob count", event="run_info"))
    assert console.filter(record("MissingInputException ..."))
    shown = [done for done in range(1, 201) if console.filter(record(None, event="progress", done=done, total=200))]
    assert shown == [1, *(20 * k for k in range(1, 11))]  # the first, then each tenth

    logger = logging.getLogger("circuitsweep-test-console")
    stream, log_file = logging.StreamHandler(), logging.FileHandler(tmp_path / "run.log")
    logger.handlers = [stream, log_file]
    try:
        assert quiet_console(logger) and not quiet_console(logger)  # once
        assert any(isinstance(f, ConsoleFilter) for f in stream.filters) and not log_file.filters
        assert not quiet_console(logging.getLogger("circuitsweep-test-none"), verbose=True)
    finally:
        log_file.close()
        logger.handlers = []


def test_a_report_of_an_unfinished_run_does_not_warn_of_every_output_it_lacks(tmp_path):
    """While Snakemake builds the report of a run that failed, it warns "Missing metadata" for every output not
    made (dozens): the console drops those for files that do not exist and keeps the warning for one that does."""
    import logging

    from circuitsweep.io.console import ConsoleFilter

    def warning(path: Path) -> logging.LogRecord:
        message = f"Missing metadata for file {path}. Maybe metadata was deleted or it was created using an older"
        return logging.LogRecord("snakemake.logging", logging.WARNING, __file__, 1, message, None, None)

    made = tmp_path / "tables" / "milestones.csv"
    made.parent.mkdir()
    made.write_text("model\n")
    console = ConsoleFilter()
    assert not console.filter(warning(tmp_path / "tables" / "emergence.csv"))
    assert console.filter(warning(made))
