"""Values inside arguments that the boundary used to pass (a reviewer's round): thresholds a config would refuse,
the wrong file given as a revision's scores, an emergence table no plot can draw, a malformed spectral top-K.

Each is one line naming the argument (and the key or file), exit 3, and no output: never exit 0 with wrong
tables, never ``unexpected <error>``, never advice to delete a good file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
from pathlib import Path

import polars as pl
import pytest
from tiny_tables import tiny_heads_and_revisions, write_score_cache

from circuitsweep import cli
from circuitsweep.cli import arguments
from circuitsweep.cli import parser as cli_parser
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import write_table
from circuitsweep.plan.retry import EXIT_DETERMINISTIC

STUDY = {"class_selectivity": 30, "induction_circuit": 50, "previous_circuit": 100, "sink_alpha": 0.3}
MILESTONES = {
    "induction_onset_heads": 3,
    "bos_fraction_milestone": 0.5,
    "early_screen_recall": 0.6,
    "phase_transition_factor": 3,
}


def run(argv: list[str], cwd: Path) -> tuple[int, str]:
    """``circuitsweep <argv>`` in-process, in ``cwd``: its exit code and stderr."""
    err = io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(argv)
    finally:
        os.chdir(before)
    return code, err.getvalue()


def one_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == EXIT_DETERMINISTIC, err
    assert len(lines) == 1 and "Traceback" not in err and "unexpected" not in err, err
    return lines[0]


def score_cache(path: Path, revision: str = "step0", step: int = 0) -> Path:
    """One revision's head scores, as measure-revision writes them (``cache/<model>/<revision>/heads.parquet``)."""
    rows = [
        {"layer": layer, "head": head, **dict.fromkeys(C.HEAD_SCORE_COLUMNS, 1.0), "sel_induction": 40.0 * head + 1}
        for layer in range(2)
        for head in range(2)
    ]
    write_score_cache(path, rows, "m", revision, step, step * 1000, (2, 2))
    return path


def classify(thresholds: str, scores: str) -> list[str]:
    return ["classify-heads", "--model", "m", "--thresholds", thresholds, "--scores", scores]


OUTPUTS = ["--heads", "heads.parquet", "--revisions", "revisions.parquet"]


# --- 1. thresholds: checked as the config (and cs.study_thresholds) checks them --------------------------------


def test_study_thresholds_classify(tmp_path):
    """The control: the study's thresholds and a revision's score cache classify (exit 0)."""
    score_cache(tmp_path / "cache" / "m" / "step0" / "heads.parquet")
    code, err = run(classify(json.dumps(STUDY), "cache/m/step0/heads.parquet") + OUTPUTS, tmp_path)
    assert code == 0, err
    assert (tmp_path / "heads.parquet").is_file()


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"class_selectivity": float("nan")}, "class_selectivity: expected number, got float nan"),
        ({"class_selectivity": float("inf")}, "class_selectivity: expected number, got float inf"),
        ({"induction_circuit": -5}, "induction_circuit: -5 is out of range"),
        ({"sink_alpha": 3}, "sink_alpha: 3 is out of range"),
        ({"class_selectivity": "8"}, "class_selectivity: expected number, got str '8'"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"induction_onset_heads": 3}, "unknown key 'induction_onset_heads'"),  # a milestone threshold
    ],
)
def test_classify_heads_refuses_thresholds_a_config_would(tmp_path, given, named):
    """NaN, infinite, negative, a share above 1, a string or an unknown key: one line naming --thresholds and the key,
    and no table (it used to exit 0 with wrong classes, or say ``unexpected ComputeError``)."""
    score_cache(tmp_path / "cache" / "m" / "step0" / "heads.parquet")
    thresholds = json.dumps({**STUDY, **given})  # json.dumps writes NaN and Infinity, as Python's json reads them
    line = one_line(*run(classify(thresholds, "cache/m/step0/heads.parquet") + OUTPUTS, tmp_path))
    assert line.startswith("circuitsweep classify-heads: error: --thresholds: "), line
    assert named in line, line
    assert not (tmp_path / "heads.parquet").exists()


def test_classify_heads_names_missing_thresholds(tmp_path):
    score_cache(tmp_path / "cache" / "m" / "step0" / "heads.parquet")
    line = one_line(*run(classify('{"sink_alpha": 0.3}', "cache/m/step0/heads.parquet") + OUTPUTS, tmp_path))
    assert line.endswith("--thresholds: no class_selectivity, induction_circuit, previous_circuit"), line


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (
            ["head-tables", "--thresholds", json.dumps({"m": {**MILESTONES, "bos_fraction_milestone": float("nan")}})],
            "--thresholds: m.bos_fraction_milestone: expected number, got float nan",
        ),
        (
            ["head-tables", "--thresholds", json.dumps({"m": {**MILESTONES, "early_screen_recall": 2}})],
            "--thresholds: m.early_screen_recall: 2 is out of range",
        ),
        (
            [
                "bootstrap-heads",
                "--settings",
                json.dumps({"bootstrap": {}, "thresholds": {**STUDY, "sink_alpha": -1}, "induction_onset_heads": 3}),
            ],
            "--settings: thresholds.sink_alpha: -1 is out of range",
        ),
        (
            [
                "final-ablation",
                "--settings",
                json.dumps({"job": {}, "spectral_top_k": [6], "thresholds": {**STUDY, "bogus": 1}}),
            ],
            "--settings: thresholds: unknown key 'bogus'",
        ),
    ],
)
def test_other_commands_check_their_thresholds(tmp_path, argv, named):
    """head-tables' milestone thresholds, and the classification thresholds in bootstrap-heads' and final-ablation's
    settings, are checked by the same schema (the argument comes first, so it is the one refused)."""
    line = one_line(*run(argv, tmp_path))
    assert named in line, line


# --- 2. --scores: a file of another kind is named, never "delete it and rerun" --------------------------------


def test_scores_of_another_kind_are_named_without_delete_advice(tmp_path):
    """The revision's statistics shard beside its scores, and the run's heads table (every revision), given as
    --scores: "is not a per-revision score table", not "...; delete it and rerun" (both files are good)."""
    score_cache(tmp_path / "cache" / "m" / "step0" / "heads.parquet")
    (tmp_path / "cache" / "m" / "step0" / "heads.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    final = pl.DataFrame({"model": ["m"], "revision": ["step0"], "layer": [0], "head": [0], "sel_induction": [1.0]})
    final = final.with_columns(pl.lit(0.1).alias("sink_alpha"))
    (tmp_path / "tables").mkdir()
    write_table(tmp_path / "tables" / "heads.parquet", final, {"models": {"m": {"thresholds": STUDY}}})
    for path in ("cache/m/step0/heads.safetensors", "tables/heads.parquet"):
        line = one_line(*run(classify(json.dumps(STUDY), path) + OUTPUTS, tmp_path))
        assert f"--scores: {path} is not a per-revision score table (" in line, line
        assert "delete" not in line, line


def test_sweep_overhead_names_scores_of_another_kind(tmp_path):
    """sweep-overhead reads the same per-revision score tables as classify-heads, and names a file of another
    kind the same way (it took any file, and failed later on its columns)."""
    score_cache(tmp_path / "cache" / "m" / "step0" / "heads.parquet")
    (tmp_path / "measure.tsv").write_text("s\th:m:s\tmax_rss\n1.0\t0:00:01\t10\n")
    (tmp_path / "notes.txt").write_text("not a table")
    argv = ["sweep-overhead", "--measure", "measure.tsv", "--scores", "notes.txt"]
    argv += ["--csv", "o.csv", "--markdown", "o.md"]
    line = one_line(*run(argv, tmp_path))
    assert "--scores: notes.txt is not a per-revision score table (" in line, line


def test_a_damaged_score_cache_keeps_its_advice(tmp_path):
    """A revision's score file cut short is a damaged cache: the command still says to delete it and rerun."""
    good = score_cache(tmp_path / "good" / "heads.parquet")
    damaged = tmp_path / "cache" / "m" / "step0" / "heads.parquet"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(good.read_bytes()[:200])
    code, err = run(classify(json.dumps(STUDY), "cache/m/step0/heads.parquet") + OUTPUTS, tmp_path)
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert "is not a readable Parquet table" in err and "delete it and rerun" in err, err


# --- 3. plot-emergence: an emergence table no axis can draw ------------------------------------------------


@pytest.fixture
def curves(tmp_path) -> pl.DataFrame:
    """A real emergence table of one model ``m`` (three revisions)."""
    from circuitsweep.milestones.emergence import emergence_curves

    heads, revisions = tiny_heads_and_revisions()
    return emergence_curves(heads, revisions)


def test_an_emergence_table_plots(tmp_path, curves):
    """The control: the same table, unchanged, plots."""
    write_table(tmp_path / "emergence.parquet", curves, {})
    code, err = run(["plot-emergence", "--emergence", "emergence.parquet", "--output", "e.png"], tmp_path)
    assert code == 0, err
    assert (tmp_path / "e.png").is_file()


def bos_fraction_at(revision: str, value: float):
    """A change of an emergence table: ``revision``'s BOS fraction set to ``value``."""
    fraction = pl.when(pl.col("revision") == revision).then(value).otherwise("bos_fraction")
    return lambda frame: frame.with_columns(fraction.alias("bos_fraction"))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda frame: frame.head(0), "no rows"),
        (bos_fraction_at("step10", float("nan")), "bos_fraction holds NaN at m step10"),
        (bos_fraction_at("step100", float("inf")), "bos_fraction holds inf at m step100"),
    ],
)
def test_plot_emergence_names_a_table_it_cannot_draw(tmp_path, curves, change, named):
    """No rows, or a NaN or infinite BOS fraction: one line naming --emergence and where (it used to be
    ``unexpected ValueError: Number of rows must be a positive integer`` / ``Axis limits cannot be NaN``)."""
    write_table(tmp_path / "emergence.parquet", change(curves), {})
    line = one_line(*run(["plot-emergence", "--emergence", "emergence.parquet", "--output", "e.png"], tmp_path))
    assert line.endswith(f"--emergence emergence.parquet: {named}"), line
    assert not (tmp_path / "e.png").exists()


# --- 4. --spectral-top-k: what the config's ablation.spectral_top_k takes -------------------------------------


def top_k_argument(command: str, option: str) -> arguments.Argument:
    parser = cli_parser.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    (action,) = [a for a in sub.choices[command]._actions if option in a.option_strings]
    return action.type


@pytest.mark.parametrize(("command", "option"), [("findings", "--spectral-top-k"), ("plot-spectral", "--top-k")])
@pytest.mark.parametrize("given", ["[45, 6]", '["elbow", 0.176, 6]', "[]", "[2147483647]"])
def test_spectral_top_k_takes_what_the_config_takes(command, option, given):
    assert top_k_argument(command, option)(given) == json.loads(given)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ('"elbow"', "expected a JSON list ([...]), got str"),
        ("{}", "expected a JSON list ([...]), got dict"),
        ("[1e30]", "entry 0: 1e+30 does not match any allowed form"),
        ("[0]", "entry 0: 0 does not match any allowed form"),
        ("[1.0]", "entry 0: 1.0 does not match any allowed form"),
        ('[6, "elbw"]', "entry 1: 'elbw' does not match any allowed form"),
        ("[6, 6]", "repeated entries [6]"),
    ],
)
def test_findings_refuses_a_spectral_top_k_the_config_would(tmp_path, given, named):
    """A JSON string (it was read character by character), an object (accepted), a count past any int (``unexpected
    ComputeError``): one line naming --spectral-top-k."""
    line = one_line(*run(["findings", "--spectral-top-k", given], tmp_path))
    assert line.startswith("circuitsweep findings: error: --spectral-top-k: "), line
    assert named in line, line
