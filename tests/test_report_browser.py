"""The HTML report as a reader sees it in Chromium: every figure drawn, no figure source shown as text, nothing
under the sidebar at common laptop and desktop widths.

One small toy run (two models, three revisions each, primitives on for one) makes the report;
each width loads it in a fresh headless Chromium window (tests/report_dom.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from report_dom import chromium, inspect_layout
from runenv import SNAKEFILE, job_env, job_logs

from circuitsweep.io import contracts as C

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason="needs Chromium (CI installs it: apt-get install chromium)"),
]

MODEL = "toy-gptneox"
#: a second model, so that the Findings page holds its cross-model table
OTHER = "toy-olmo"

RUN_CONFIG = {
    "probes": {
        "token_range": [2, 64],
        "batch_size": 32,
        "induction": {"n_sequences": 64, "seq_len": 64},
        "repeated": {"n_sequences": 32, "seq_len": 64},
        "random": {"n_sequences": 32, "seq_len": 64},
    },
    "thresholds": {"class_selectivity": 8, "induction_circuit": 12},
    "primitives": {"scoring": {"n_perm": 200}},
    "outdir": "results",
    "models": {
        MODEL: {
            "architecture": "GPTNeoXForCausalLM",
            "source": {"type": "toy", "repo_id": "toy/gptneox"},
            "revisions": "all",
            "tokens": {"per_step": 4096},
            "first_token": {"policy": "fixed", "token_id": 1},
            "toy": {"schedule": [0, 10, 20], "branch_format": "step{step}"},
        },
        OTHER: {
            "architecture": "OlmoForCausalLM",
            "source": {"type": "toy", "repo_id": "toy/olmo"},
            "revisions": "all",
            "tokens": {"per_step": 4096},
            "first_token": {"policy": "fixed", "token_id": 1},
            "toy": {"schedule": [0, 10, 20], "branch_format": "step{step}"},
            "primitives": {"enabled": False},
        },
    },
}


def _snakemake(workdir: Path, *args: str) -> str:
    """Run the workflow in ``workdir``; returns what it printed (stdout, then stderr)."""
    command = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "-d", str(workdir), "--configfile"]
    command += [str(workdir / "config.yaml"), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=job_env(), timeout=1200, check=False)
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stderr[-4000:]}\n{job_logs(workdir)}")
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    """A finished small toy run: its working directory and what it printed."""
    workdir = tmp_path_factory.mktemp("report-run")
    (workdir / "config.yaml").write_text(yaml.safe_dump(RUN_CONFIG, sort_keys=False))
    return workdir, _snakemake(workdir)


@pytest.fixture(scope="module")
def report(run) -> Path:
    """The HTML report of the small toy run."""
    workdir, _ = run
    _snakemake(workdir, "--report", str(workdir / "report.html"))
    return workdir / "report.html"


def test_a_run_shows_each_revision_and_ends_with_its_milestones(run):
    """The console shows a line per measured revision and, at the end, each model's milestones, the tables and the
    report command."""
    workdir, printed = run
    for revision in ("step0", "step10", "step20"):
        assert f"measured {MODEL} {revision}: 16 heads, strongest BOS " in printed, printed[-3000:]
    summary = printed[printed.index("circuitsweep: the sweep is done.") :]
    assert f"{MODEL}: induction onset " in summary and "; BOS t50 " in summary
    assert "results/tables/milestones.md" in summary
    assert f"--configfile {workdir / 'config.yaml'} --report results/report.html" in summary


def _drawn(box: dict[str, float]) -> bool:
    return box["width"] >= 200 and box["height"] >= 100


@pytest.mark.parametrize("width", [1280, 1440, 1600])
def test_every_figure_draws_and_nothing_sits_under_the_sidebar(report, tmp_path, width):
    """At 1280, 1440 and 1600 px the landing page shows the emergence figure as an image (not its SVG source as
    text), every figure under Plots shows as an image of real size, and no content box starts under the sidebar."""
    layout = inspect_layout(report, tmp_path, width)
    assert layout.landing_figures and all(_drawn(box) for box in layout.landing_figures), layout.landing_figures
    for source_text in ("image/svg+xml", "Matplotlib v", "<svg", "xmlns"):
        assert source_text not in layout.landing_text, layout.landing_text[:2000]
    paths = C.Paths(Path("results"))
    expected = {
        paths.emergence_plot("png"),
        paths.heatmap_plot(MODEL),
        paths.trajectory_plot(MODEL),
        paths.primitive_gap_plot(),
        paths.primitive_scaling_plot(),
    }
    assert {str(path) for path in expected} <= set(layout.plots), layout.plots
    assert all(_drawn(box) for box in layout.plots.values()), layout.plots
    assert layout.under_sidebar == [], layout.under_sidebar


@pytest.mark.parametrize("width", [1280, 1600])
def test_findings_page_opens_with_the_cross_model_table_and_nothing_overlaps(report, tmp_path, width):
    """At 1280 and 1600 px the Findings page fills its frame beside the sidebar, opens with the cross-model table,
    then one paragraph per model, then every finding; no table, cell or block is wider than its box or the frame,
    and no block is drawn over another."""
    layout = inspect_layout(report, tmp_path, width)
    page = layout.pages.get(str(C.Paths(Path("results")).findings("html")))
    assert page, layout.pages
    assert "error" not in page, page
    assert not page["under_sidebar"] and page["frame"]["width"] >= 600, page["frame"]
    assert page["tables"][0] == "across" and set(page["tables"][1:]) == {"findings"}, page["tables"]
    text = page["text"]
    assert text.index("Across models") < text.index(f"{MODEL}, final revision ") < text.index(f"{OTHER}: every")
    assert "untestable: the run measured no natural text" not in text  # no ablation: not tested at all
    assert "not tested: the run has no final-revision ablation" in text
    assert page["page_overflow"] <= 1 and page["overflowing"] == [] and page["overlaps"] == [], page
