"""milestones.md and the end-of-run summary (circuitsweep.milestones.text): a person reads them in a minute."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from circuitsweep.io import contracts as C
from circuitsweep.milestones.text import finished_run_summary, human_tokens, milestones_markdown

#: toy-gptneox of a small toy run (8 revisions): BOS heads appear before induction, peak at 0.38 and fall.
NEVER_HALF = {
    "model": "toy-gptneox",
    "n_revisions": 8,
    "final_tokens": 1_638_400,
    "induction_onset_revision": "step300",
    "induction_onset_tokens": 1_228_800,
    "bos_t50_revision": None,
    "bos_t50_tokens": None,
    "first_bos_head_revision": "step200",
    "first_bos_head_tokens": 819_200,
    "first_late_bos_head_revision": None,
    "first_late_bos_head_tokens": None,
    "final_late_bos_heads": 0,
    "bos_peak_fraction": 0.375,
    "bos_peak_revision": "step250",
    "bos_peak_tokens": 1_024_000,
    "early_screen_revision": "step300",
    "early_screen_tokens": 1_228_800,
    "final_bos_fraction": 0.125,
    "final_induction_heads": 8,
    "final_revision": "step400",
    "causal_state": "causal",
    "causal_revision": "step300",
    "causal_tokens": 1_228_800,
    "causal_tested_revisions": 5,
    "causal_evidence_revision": "step300",
    "causal_excess_drop": 0.11,
    "causal_excess_ci_low": 0.06,
    "causal_excess_ci_high": 0.17,
    "causal_p": 0.0006,
    "causal_p_holm": 0.0031,
    "causal_factor": 2.0,
    "causal_alpha": 0.01,
}
#: A model whose BOS heads reach half of all heads (OLMo-like token counts).
REACHED = {
    **NEVER_HALF,
    "model": "big",
    "induction_onset_revision": "step1000",
    "induction_onset_tokens": 4_190_000_000,
    "first_bos_head_revision": "step0",
    "first_bos_head_tokens": 0,
    "bos_t50_revision": "step70000",
    "bos_t50_tokens": 300_000_000_000,
    "first_late_bos_head_revision": "step3000",
    "first_late_bos_head_tokens": 12_580_000_000,
    "final_late_bos_heads": 5,
    "bos_peak_fraction": 0.61,
    "causal_state": "not reached",
    "causal_revision": None,
    "causal_tokens": None,
    "causal_tested_revisions": 4,
    "causal_evidence_revision": "step290",
    "causal_excess_drop": 0.023,
    "causal_excess_ci_low": -0.016,
    "causal_excess_ci_high": 0.063,
    "causal_p": 0.18,
    "causal_p_holm": 0.72,
}
#: A model whose circuit filled its layers wherever it existed: nothing to test against.
UNTESTABLE = {
    **REACHED,
    "model": "full",
    "causal_state": "untestable",
    "causal_tested_revisions": 0,
    "causal_evidence_revision": None,
    "causal_excess_drop": None,
    "causal_excess_ci_low": None,
    "causal_excess_ci_high": None,
    "causal_p": None,
    "causal_p_holm": None,
    "causal_note": "no matched control at any revision (the circuit fills its layers)",
}


def table(*rows: dict) -> pl.DataFrame:
    full = [{column: row.get(column) for column in (*C.MILESTONE_COLUMNS, *C.CAUSAL_MILESTONE_COLUMNS)} for row in rows]
    return pl.DataFrame(full, infer_schema_length=None)


@pytest.mark.parametrize(
    ("tokens", "text"),
    [(1_228_800, "1.23M"), (300_000_000_000, "300B"), (614_400, "614K"), (2_000_000_000_000, "2T"), (512, "512"),
     (0, "0")],
)  # fmt: skip
def test_tokens_read_in_human_units(tokens, text):
    """Token counts print with three significant digits and a K/M/B/T unit, never as 1.229e+06."""
    assert human_tokens(tokens) == text


def test_bos_t50_names_its_level_and_whether_it_lasted():
    """A run that sets thresholds.bos_fraction_milestone to 0.4 reads "0.4 of all heads", never "half" (the figure
    already drew 0.4); a BOS fraction that falls below the level after BOS t50 is said to, in the sentence and
    the cell, as the onset's and the first BOS head's are; ratios keep three digits (3.20x, not 3.2x)."""
    lower = {**REACHED, "bos_t50_level": 0.4, "bos_to_induction_ratio": 3.2, "bos_t50_sustained": True}
    text = milestones_markdown(table(lower))
    assert "BOS heads were 0.4 of all heads or more from step70000 (300B tokens), 3.20x the onset's tokens;" in text
    assert "| at 0.4 of all heads: step70000 (300B tokens), 3.20x the onset's tokens |" in text
    assert "half" not in text.split("## ")[0].split("First BOS head:")[0]
    never = milestones_markdown(table({**NEVER_HALF, "bos_t50_level": 0.4}))
    assert "BOS heads never reached 0.4 of all heads (peak 0.38 at step250" in never
    fell = milestones_markdown(table({**REACHED, "bos_t50_sustained": False, "bos_to_induction_ratio": 70.0}))
    assert (
        "BOS heads first reached half of all heads at step70000 (300B tokens), 70.0x the onset's tokens, but " in fell
    )
    assert "fell below it again later" in fell
    assert "| step70000 (300B tokens), not sustained, 70.0x the onset's tokens |" in fell


def test_a_run_without_any_bos_head_names_no_peak_revision():
    """Where no head was of class first at any revision, the text says so rather than naming a peak of 0.00 at the
    first revision, which would point at a revision that means nothing."""
    never = {**NEVER_HALF, "bos_peak_fraction": 0.0, "bos_peak_revision": "step0", "bos_peak_tokens": 0,
             "first_bos_head_revision": None, "first_bos_head_tokens": None, "final_bos_fraction": 0.0}  # fmt: skip
    text = milestones_markdown(table(never, REACHED))
    assert "toy-gptneox: induction heads formed at step300 (1.23M tokens); no head ever became a BOS head;" in text
    assert "| not reached (no BOS head at any revision) |" in text
    mine = [line for line in text.splitlines() if line.startswith(("toy-gptneox", "| toy-gptneox"))]
    assert len(mine) == 2 and not any("peak" in line or "step0" in line for line in mine), mine


def test_milestones_md_opens_with_a_sentence_per_model_then_a_narrow_table():
    """milestones.md: one plain sentence per model, then a table of at most seven columns; a BOS t50 never reached
    says so with its peak, and no cell is a bare dash or a float in scientific notation."""
    text = milestones_markdown(table(NEVER_HALF, REACHED))
    lines = text.splitlines()
    assert lines[2].startswith("toy-gptneox: induction heads formed at step300 (1.23M tokens); the first BOS head")
    late = "no new BOS head appeared after the onset"
    assert f"step200 (819K tokens), before induction; {late}; BOS heads never reached" in lines[2]
    assert "peak 0.38 at step250" in lines[2]
    assert lines[3].startswith("big: induction heads formed at step1000 (4.19B tokens)")
    assert "BOS heads were half of all heads or more from step70000 (300B tokens)" in lines[3]
    with_ratio = milestones_markdown(table({**REACHED, "bos_to_induction_ratio": 71.6}))
    assert "half of all heads or more from step70000 (300B tokens), 71.6x the onset's tokens;" in with_ratio
    assert "| step70000 (300B tokens), 71.6x the onset's tokens |" in with_ratio
    header = next(line for line in lines if line.startswith("| model"))
    assert header.count("|") - 1 <= 7
    rows = [line for line in lines if line.startswith("| toy-gptneox") or line.startswith("| big")]
    assert "not reached (peak 0.38 at step250)" in rows[0] and "step200 (819K tokens)" in rows[0]
    assert "step70000 (300B tokens)" in rows[1]
    assert "| step400: 8 heads of class induction, BOS fraction 0.12 |" in rows[0]  # the class, not selectivity
    assert " – " not in text and " - |" not in text and "e+0" not in text


def test_a_milestone_that_does_not_last_says_so():
    """An onset or a first BOS head that a later revision loses again (a transient spike, a plateau sink) reads
    "not sustained" in the table and says so in the sentence; a lasting one, or an older table without the
    flags, reads as before."""
    transient = {**NEVER_HALF, "induction_onset_sustained": False, "first_bos_head_sustained": False}
    lasting = {**REACHED, "induction_onset_sustained": True, "first_bos_head_sustained": True}
    lines = milestones_markdown(table(transient, lasting, UNTESTABLE)).splitlines()
    assert "formed at step300 (1.23M tokens) but fell below the onset's count later;" in lines[2]
    assert "step200 (819K tokens), before induction, and did not last (a later revision has none);" in lines[2]
    assert "fell below" not in lines[3] and "did not last" not in lines[3] and "did not last" not in lines[4]
    row = next(line for line in lines if line.startswith("| toy-gptneox"))
    first_bos = "step200 (819K tokens), not sustained; after the onset: no new one"
    assert f"| step300 (1.23M tokens), not sustained | {first_bos} |" in row
    assert "not sustained" not in "".join(line for line in lines if line.startswith(("| big", "| full")))


def test_new_bos_heads_after_the_onset_read_beside_the_first_bos_head():
    """Where the first BOS head came before the onset (a plateau sink), the sentence and the first-BOS-head cell
    give the first new BOS head after the onset and how many the final revision holds, a one-line definition
    follows the table, and a new BOS head that does not last says so; where the first BOS head is itself after
    the onset, neither repeats it."""
    late = {**NEVER_HALF, "first_late_bos_head_revision": "step400", "first_late_bos_head_tokens": 1_638_400,
            "final_late_bos_heads": 3, "first_late_bos_head_sustained": True}  # fmt: skip
    after = {**late, "model": "after", "first_bos_head_revision": "step400", "first_bos_head_tokens": 1_638_400}
    brief = {**late, "model": "brief", "first_late_bos_head_sustained": False}
    text = milestones_markdown(table(late, after, brief))
    lines = text.splitlines()
    assert "before induction; the first new BOS head after the onset (of class first at no revision before the " \
           "onset) appeared at step400 (1.64M tokens), and the final revision has 3 such heads; BOS heads never" \
           in lines[2]  # fmt: skip
    assert "the first BOS head appeared at step400 (1.64M tokens); BOS heads never" in lines[3]
    assert "appeared at step400 (1.64M tokens) but did not last (a later revision has none), and the" in lines[4]
    rows = [line for line in lines if line.startswith(("| toy-gptneox", "| after", "| brief"))]
    assert "| step200 (819K tokens); after the onset: step400 (1.64M tokens), 3 new at the end |" in rows[0]
    assert "| step400 (1.64M tokens) |" in rows[1] and "after the onset" not in rows[1]
    assert "after the onset: step400 (1.64M tokens), not sustained, 3 new at the end |" in rows[2]
    assert "a *new* BOS head, one of class first at no revision before the induction onset" in text
    assert "a *new* BOS head" not in milestones_markdown(table(after))


def test_the_three_causal_states_read_differently_everywhere(tmp_path):
    """Causal (with p and the interval), not reached (tested revisions, the largest excess drop and its p) and
    untestable (no control) are three distinct wordings in milestones.md's sentences, its table and the
    end-of-run summary; no wording claims a negative without a test ("never hurt")."""
    text = milestones_markdown(table(NEVER_HALF, REACHED, UNTESTABLE))
    lines = text.splitlines()
    assert lines[2].endswith(
        "the circuit was causal from step300 (1.23M tokens): ablating it cost 0.110 more top-1 than matched random "
        "heads (95% CI [0.060, 0.170]; p = 0.0031 after Holm over 5 tested revisions)."
    )
    assert lines[3].endswith(
        "the circuit never passed the causal test (largest excess top-1 drop 0.023 at step290, 95% CI "
        "[-0.016, 0.063]; p = 0.18 (0.72 after Holm over 4 tested revisions); not significant at 0.01)."
    )
    assert lines[4].endswith(
        "whether the circuit is causal is untestable: no matched control at any revision (the circuit fills its "
        "layers)."
    )
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ")}
    causal = "| at step300 (1.23M tokens; excess top-1 drop 0.110, 95% CI [0.060, 0.170]; p = 0.0031"
    assert causal in rows["toy-gptneox"]
    assert "| not reached (largest excess top-1 drop 0.023 at step290" in rows["big"]
    assert "| untestable: no matched control at any revision" in rows["full"]
    assert "never hurt" not in text
    paths = C.Paths(tmp_path / "results")
    paths.milestones_table("parquet").parent.mkdir(parents=True)
    table(NEVER_HALF, REACHED, UNTESTABLE).write_parquet(paths.milestones_table("parquet"))
    summary = finished_run_summary(paths)
    assert "; causal at step300 (1.23M tokens; excess top-1 drop 0.110" in summary
    assert "; causal not reached (largest excess top-1 drop 0.023 at step290" in summary
    assert "; causal untestable: no matched control at any revision" in summary


def test_not_reached_says_which_part_of_the_causal_test_failed():
    """A significant excess that fails the factor rule (drop 0.140, 4.9x random, the factor 5) names the rule that
    failed, so "p = 0.00094 ... never passed" does not read as a contradiction; a factor rule that held with a p
    above alpha says only that it is not significant."""
    factor = {**REACHED, "causal_factor": 5.0, "causal_p": 0.00094, "causal_p_holm": 0.00094,
              "causal_circuit_drop": 0.14, "causal_random_drop": 0.0286}  # fmt: skip
    line = milestones_markdown(table(factor)).splitlines()[2]
    assert (
        "p = 0.00094 (0.00094 after Holm over 4 tested revisions); the factor rule failed: the circuit's top-1 drop "
        "0.140 is 4.9x the matched-random drop, not above 5x)." in line
    )
    assert "not significant" not in line
    both = {**factor, "causal_p_holm": 0.2}
    assert "not above 5x; not significant at 0.01)" in milestones_markdown(table(both)).splitlines()[2]
    harmless = {**factor, "causal_circuit_drop": -0.01, "causal_random_drop": -0.02}
    assert "the circuit's top-1 drop -0.010 is not positive)" in milestones_markdown(table(harmless)).splitlines()[2]
    passed_rule = {**REACHED, "causal_circuit_drop": 0.05, "causal_random_drop": 0.01}
    line = milestones_markdown(table(passed_rule)).splitlines()[2]
    assert "factor rule" not in line and line.endswith("; not significant at 0.01).")


def test_a_finished_run_prints_each_model_the_tables_and_the_report_command(tmp_path):
    """The end-of-run summary: per model its onset, first BOS head, BOS t50 (or not reached, with the peak) and
    causal revision; then the tables that exist and the report command with the run's config file."""
    paths = C.Paths(tmp_path / "results")
    paths.milestones_table("parquet").parent.mkdir(parents=True)
    table(NEVER_HALF).write_parquet(paths.milestones_table("parquet"))
    paths.milestones_table("md").write_text("# Milestones\n")
    summary = finished_run_summary(paths, ["config/paper.yaml"])
    assert (
        "toy-gptneox: induction onset step300 (1.23M tokens); first BOS head step200 (819K tokens); "
        "BOS t50 not reached (peak 0.38 at step250); causal at step300 (1.23M tokens; excess top-1 drop 0.110, "
        "95% CI [0.060, 0.170]; p = 0.0031 after Holm over 5 tested revisions)"
    ) in summary
    assert f"  {paths.milestones_table('md')}" in summary and str(paths.heads_table()) not in summary
    assert f"snakemake --configfile config/paper.yaml --report {paths.root / 'report.html'}" in summary
    assert "Figures:" not in summary  # none made yet
    for path in (paths.findings("md"), paths.primitive_table("primitive_gaps.md")):
        path.write_text("# read first\n")
    listed = finished_run_summary(paths).split("Tables:\n")[1].split("Report:")[0].splitlines()
    assert listed[:2] == [f"  {paths.milestones_table('md')}", f"  {paths.findings('md')}"], listed
    assert f"  {paths.primitive_table('primitive_gaps.md')}" in listed  # the tables README.md says to read first


def test_with_directory_the_summary_shows_paths_and_report_command_from_the_invoking_shell(tmp_path, monkeypatch):
    """After ``snakemake --directory .test`` (Snakemake runs in .test/, the user's shell stays in the folder above)
    the tables and figures are shown as that shell reaches them and the report command repeats --directory, with
    the report path relative to the working directory (as Snakemake resolves --report); with a PWD that does not
    lead to the working directory (unset, or stale) the paths are absolute; without --directory nothing changes."""
    workdir = tmp_path / ".test"
    paths = C.Paths(Path("results") / "test")
    monkeypatch.chdir(tmp_path)
    (workdir / paths.milestones_table("parquet")).parent.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    table(NEVER_HALF).write_parquet(paths.milestones_table("parquet"))
    paths.milestones_table("md").write_text("# Milestones\n")
    paths.emergence_plot("png").parent.mkdir(parents=True)
    paths.emergence_plot("png").write_bytes(b"png")
    summary = finished_run_summary(paths, ["/repo/config/paper.yaml"], directory=".test", invoking=str(tmp_path))
    assert "  .test/results/test/tables/milestones.md\n" in summary
    assert f"  {Path('.test') / paths.emergence_plot('png')}\n" in summary
    assert (
        "Report: snakemake --directory .test --configfile /repo/config/paper.yaml --report results/test/report.html"
        in summary
    )
    for invoking in ("", str(tmp_path / "elsewhere"), "relative/dir"):
        fallback = finished_run_summary(paths, directory=".test", invoking=invoking)
        assert f"  {workdir.resolve() / paths.milestones_table('md')}\n" in fallback, invoking
        assert f"Report: snakemake --directory {workdir.resolve()} --report results/test/report.html" in fallback
    for directory, invoking in ((None, str(tmp_path)), (".", str(workdir)), (str(workdir), str(workdir))):
        same = finished_run_summary(paths, directory=directory, invoking=invoking)
        assert "  results/test/tables/milestones.md\n" in same and "--directory" not in same
        assert "Report: snakemake --report results/test/report.html" in same


def test_the_summary_names_the_figures_as_well_as_the_tables(tmp_path):
    """The end-of-run summary names the figures the run made, a per-model figure as one line of its models, and
    no line is longer than SUMMARY_LINE_CHARS however many models."""
    from circuitsweep.milestones.text import SUMMARY_LINE_CHARS

    paths = C.Paths(tmp_path / "results")
    models = [f"pythia-160m-seed{i}-with-a-rather-long-name" for i in range(12)]
    paths.milestones_table("parquet").parent.mkdir(parents=True)
    table(*({**NEVER_HALF, "model": model} for model in models)).write_parquet(paths.milestones_table("parquet"))
    paths.emergence_plot("png").parent.mkdir(parents=True)
    for path in [paths.emergence_plot("png"), *(paths.heatmap_plot(m) for m in models), paths.spectral_plot(models[0])]:
        path.write_bytes(b"png")
    summary = finished_run_summary(paths)
    figures = summary.split("Figures:\n")[1].split("Report:")[0].splitlines()
    assert figures == [f"  {paths.emergence_plot('png')}", f"  {paths.heatmap_plot('<model>')}: 12 models",
                       f"  {paths.spectral_plot('<model>')}: {models[0]}"]  # fmt: skip
    assert max(map(len, summary.splitlines())) <= SUMMARY_LINE_CHARS


def test_no_summary_without_a_milestones_table(tmp_path):
    """A run that made no milestones table (a run of other targets) prints no summary."""
    assert finished_run_summary(C.Paths(Path(tmp_path))) == ""


def test_how_sure_section_names_brackets_ranges_and_fragile_milestones():
    """milestones.md says between which swept revisions each milestone lies and, with the bootstrap, the range
    of revisions it lands on and whether it is fragile (more than 5% of resamples land elsewhere)."""
    row = {
        **NEVER_HALF,
        "induction_onset_previous_revision": "step295",
        "induction_onset_previous_tokens": 1_208_320,
        "induction_onset_boot_earliest": "step295",
        "induction_onset_boot_latest": "step350",
        "induction_onset_boot_agreement": 0.88,
        "induction_onset_boot_not_reached": 0.0,
        "induction_onset_boot_fragile": True,
        "bos_t50_previous_revision": None,
        "bos_t50_previous_tokens": None,
        "bos_t50_boot_earliest": None,
        "bos_t50_boot_latest": None,
        "bos_t50_boot_agreement": 1.0,
        "bos_t50_boot_not_reached": 1.0,
        "bos_t50_boot_fragile": False,
    }
    columns = (
        *C.MILESTONE_COLUMNS,
        *C.CAUSAL_MILESTONE_COLUMNS,
        *(c for c in row if c.startswith(("induction_onset_", "bos_t50_")) and c not in C.MILESTONE_COLUMNS),
    )
    text = milestones_markdown(pl.DataFrame([{c: row.get(c) for c in columns}], infer_schema_length=None))
    assert "Fragile milestones: toy-gptneox induction onset." in text
    assert (
        "| toy-gptneox | induction onset | step300 | after step295: 1.21M - 1.23M tokens "
        "| step295 - step350; on step300 in 88%: fragile |"
    ) in text
    assert (
        "| toy-gptneox | BOS t50 | not reached | after the last swept revision | not reached in 100%: stable |" in text
    )


def test_a_summary_line_too_long_for_the_console_puts_the_causal_milestone_on_its_own_line():
    """Long revision names (``step320-tokens1311K``) made a model's summary line 306 characters: the causal
    milestone then goes on an indented line of its own, and no line is longer than SUMMARY_LINE_CHARS."""
    from circuitsweep.milestones.text import SUMMARY_LINE_CHARS, summary_line

    long_names = {key: (f"{value}-tokens1311K" if isinstance(value, str) and value.startswith("step") else value)
                  for key, value in REACHED.items()}  # fmt: skip
    row = table({**long_names, "model": "toy-olmo-with-a-long-name"}).row(0, named=True)
    lines = summary_line(row).splitlines()
    assert len(lines) == 2 and lines[1].startswith("  causal not reached (")
    assert max(map(len, lines)) <= SUMMARY_LINE_CHARS
    assert len(summary_line(table(REACHED).row(0, named=True)).splitlines()) == 1


def test_how_sure_says_an_untestable_causal_milestone_is_untestable():
    """The "How sure" row of a causal milestone no revision could test reads "untestable", as the milestones table
    does, not "not reached after the last swept revision" (which would claim it was tested and failed)."""
    from circuitsweep.milestones.text import uncertainty_row

    row = {"causal_revision": None, "causal_previous_revision": None, "causal_tokens": None,
           "causal_previous_tokens": None, "causal_state": "untestable"}  # fmt: skip
    cells = uncertainty_row(row, "causal")
    assert cells["reached at"] == "untestable" and "after the last swept revision" not in cells["bracket"]
    failed = uncertainty_row({**row, "causal_state": "not reached"}, "causal")
    assert failed["reached at"] == "not reached" and failed["bracket"] == "after the last swept revision"
