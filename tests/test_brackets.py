"""Milestone brackets and refinement rounds on hand-built revisions and tables (no model, no Snakemake)."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from circuitsweep.checkpoints.revisions import Revision, select_revisions
from circuitsweep.errors import CacheError, ConfigError
from circuitsweep.io import contracts as C
from circuitsweep.io.contracts import Paths
from circuitsweep.milestones.brackets import find_bracket, middle_revision, next_revisions
from circuitsweep.milestones.refine import BRACKETS_RULE, RefineRun, milestone_brackets, refine
from circuitsweep.plan.rounds import Added, RefineSettings, read_rounds, resolve_refine, write_rounds
from circuitsweep.plan.sweep import plan_sweep

PER_STEP = 1000
DENSE = [Revision(f"step{s}", s, s * PER_STEP) for s in range(0, 601, 25)]


def rev(step: int) -> Revision:
    return Revision(f"step{step}", step, step * PER_STEP)


def test_next_revision_is_the_middle_in_log_tokens():
    """Between step100 and step400 the middle in log tokens is step200 (not the linear middle step250); a lower
    end at 0 tokens sits at the smallest positive count, so between step0 and step400 it is step100."""
    bracket = find_bracket("induction_onset", "step400", [rev(0), rev(100), rev(400)], DENSE)
    assert (bracket.lower.name, bracket.upper.name, bracket.next.name) == ("step100", "step400", "step200")
    assert [r.name for r in bracket.between] == [f"step{s}" for s in range(125, 400, 25)]
    assert bracket.status == "open"
    assert find_bracket("bos_t50", "step400", [rev(0), rev(400)], DENSE).next.name == "step100"


def test_statuses_adjacent_first_and_not_reached():
    """Neighbours in the available list are adjacent; a milestone at the first published revision has no lower
    end and nothing to add; one never reached has no upper end and proposes nothing."""
    adjacent = find_bracket("causal", "step300", [rev(0), rev(275), rev(300), rev(600)], DENSE)
    assert (adjacent.status, adjacent.next) == ("adjacent", None)
    first = find_bracket("early_screen", "step0", [rev(0), rev(600)], DENSE)
    assert (first.status, first.lower, first.next) == ("first", None, None)
    never = find_bracket("bos_t50", None, [rev(0), rev(600)], DENSE)
    assert (never.status, never.lower.name, never.upper, never.next) == ("not reached", "step600", None, None)
    with pytest.raises(ValueError, match="step50"):
        find_bracket("bos_t50", "step50", [rev(0), rev(600)], DENSE)


def test_an_untestable_causal_milestone_is_no_not_reached():
    """A causal milestone with no matched control at any revision is untestable in the milestones table; its
    bracket says so too, with no lower end and nothing to propose, never "not reached"."""
    from circuitsweep.milestones.brackets import model_brackets

    row = {"causal_revision": None, "causal_state": "untestable", "bos_t50_revision": None}
    causal, t50 = model_brackets(row, [rev(0), rev(600)], DENSE, ["causal", "bos_t50"])
    assert (causal.status, causal.lower, causal.upper, causal.next) == ("untestable", None, None, None)
    assert t50.status == "not reached"
    tested = model_brackets({**row, "causal_state": "not reached"}, [rev(0), rev(600)], DENSE, ["causal"])[0]
    assert tested.status == "not reached"


def test_markdown_tables_write_large_counts_in_human_units():
    """Token counts in a Markdown table (milestone_brackets.md's lower_tokens) read 2.46M, never 2.458e+06, and
    819K beside 1.23M, never 819200 (as milestones.md writes them); an integer column reaching a million is
    written alike in every cell, and small counts of other columns stay as they are."""
    from circuitsweep.io.tables import markdown_table

    frame = pl.DataFrame(
        {
            "lower_tokens": [2_457_600, 819_200, None],
            "upper_tokens": [3_276_800, 1_228_800, None],
            "parameters": [2_000_000, 512_000, 7],
            "rounds_used": [3, 250_000, 0],
            "flag": [True, False, None],
        }
    )
    text = markdown_table(frame)
    assert "| 2.46M | 3.28M | 2M | 3 | True |" in text and "| 819K | 1.23M | 512K | 250000 | False |" in text
    assert "| – | – | 7 | 0 | – |" in text and "e+0" not in text


def test_middle_uses_steps_when_tokens_are_unknown():
    """A source without token counts (all 0) is bisected in log steps."""
    steps = [Revision(f"c{s}", s, 0) for s in (1, 2, 4, 8, 16, 32, 64)]
    assert middle_revision(steps[0], steps[-1], steps[1:-1]).name == "c8"


@pytest.mark.parametrize("onset_step", [25, 75, 275, 300, 575])
def test_bisection_reaches_the_dense_milestone_with_few_revisions(onset_step):
    """Repeating "add the middle revision, recompute the first revision reaching the milestone" from a sparse
    log-spaced sweep ends at the dense sweep's milestone, bracketed by adjacent revisions, measuring far fewer."""
    swept = select_revisions(DENSE, {"log_count": 5})
    for _ in range(10):
        reached = next(r.name for r in swept if r.step >= onset_step)
        bracket = find_bracket("induction_onset", reached, swept, DENSE)
        if bracket.next is None:
            break
        swept = sorted([*swept, bracket.next], key=lambda r: r.tokens)
    assert bracket.upper.name == f"step{onset_step}"
    assert bracket.status == "adjacent"
    assert len(swept) <= 10 < len(DENSE)


def _tables(reached: dict[str, str | None], swept: list[Revision]) -> tuple[pl.DataFrame, pl.DataFrame]:
    milestones = pl.DataFrame([{"model": "m", **{C.REFINE_MILESTONES[k]: v for k, v in reached.items()}}])
    curves = pl.DataFrame([{"model": "m", "revision": r.name, "step": r.step, "tokens": r.tokens} for r in swept])
    return milestones, curves


def test_bracket_table_counts_rounds_and_stops_proposing_when_the_budget_is_spent():
    """Each row says where its milestone lies, how many revisions are left between, what the next round adds, and
    the rounds and revisions it took; with max_rounds spent nothing more is proposed."""
    swept = [rev(0), rev(100), rev(200), rev(400), rev(600)]
    added = [Added(1, "m", "induction_onset", "step200")]
    milestones, curves = _tables({"induction_onset": "step400", "bos_t50": None}, swept)
    settings = RefineSettings(("induction_onset", "bos_t50"), max_rounds=2)
    table = milestone_brackets(milestones, curves, {"m": DENSE}, {"m": swept}, settings, added)
    assert table.columns == list(C.BRACKET_COLUMNS)
    onset, bos = table.rows(named=True)
    assert (onset["lower_revision"], onset["upper_revision"], onset["upper_tokens"]) == ("step200", "step400", 400_000)
    assert (onset["available_between"], onset["next_revision"]) == (7, "step275")
    assert (onset["rounds_used"], onset["revisions_added"], onset["added_revisions"]) == (1, 1, "step200")
    assert (bos["status"], bos["next_revision"]) == ("not reached", None)
    assert next_revisions(table) == {"m": ["step275"]}
    spent = RefineSettings(settings.milestones, max_rounds=1)
    assert milestone_brackets(milestones, curves, {"m": DENSE}, {"m": swept}, spent, added)["next_revision"][0] is None


def test_skipped_duplicates_are_no_candidates_and_bad_tables_are_named():
    """A swept revision left off the curve (duplicates: skip) is never proposed again; a milestone at a revision the
    curve lacks, or a model that is not planned, is a CacheError naming it."""
    swept = [rev(0), rev(300), rev(400)]
    milestones, curves = _tables({"induction_onset": "step400"}, [rev(0), rev(400)])
    settings = RefineSettings(("induction_onset",), 3)
    table = milestone_brackets(milestones, curves, {"m": DENSE[:17]}, {"m": swept}, settings, [])
    assert table["next_revision"][0] != "step300"
    with pytest.raises(CacheError, match="model m: .*'step300'"):
        bad, _ = _tables({"induction_onset": "step300"}, swept)
        milestone_brackets(bad, curves, {"m": DENSE}, {"m": swept}, settings, [])
    with pytest.raises(CacheError, match="'m', which is not planned"):
        milestone_brackets(milestones, curves, {"other": DENSE}, {"other": swept}, settings, [])


def test_refine_settings_default_and_refuse_causal_without_ablation():
    """Without a milestone list every milestone is refined (causal only with the ablation); asking for causal
    without the ablation is a one-line ConfigError naming the key."""
    assert resolve_refine({}) is None
    assert resolve_refine({"refine": {}}).milestones == ("induction_onset", "bos_t50", "early_screen")
    assert "causal" in resolve_refine({"refine": {}, "ablation": {"enabled": True}}).milestones
    with pytest.raises(ConfigError, match=r"refine\.milestones: causal needs the ablation"):
        resolve_refine({"refine": {"milestones": ["causal"]}})


def _toy_config(**refine) -> dict:
    return {
        "primitives": {"enabled": False},
        "refine": refine,
        "models": {
            "toy": {
                "architecture": "GPTNeoXForCausalLM",
                "source": {"type": "toy", "repo_id": "toy/gptneox"},
                "revisions": {"log_count": 4},
                "tokens": {"per_step": 4096},
                "probes": {"token_range": [2, 64], "induction": {"seq_len": 64}, "repeated": {"seq_len": 64}},
                "toy": {"schedule": list(range(0, 601, 25)), "branch_format": "step{step}"},
            }
        },
    }


def test_the_plan_sweeps_the_revisions_the_rounds_added(tmp_path):
    """With a refine block, revisions recorded in the rounds file join the sweep; without one they do not; a
    recorded revision the source does not publish, or a broken rounds file, is named; a bad key fails the schema."""
    paths = Paths(tmp_path / "results")
    base = [r.name for r in plan_sweep(_toy_config(), tmp_path, paths).revisions["toy"]]
    write_rounds(paths.refine_rounds(), [Added(1, "toy", "induction_onset", "step275")])
    assert read_rounds(paths.refine_rounds()) == [Added(1, "toy", "induction_onset", "step275")]
    refined = [r.name for r in plan_sweep(_toy_config(), tmp_path, paths).revisions["toy"]]
    assert sorted(set(refined) - set(base)) == ["step275"]
    without = _toy_config()
    del without["refine"]
    assert [r.name for r in plan_sweep(without, tmp_path, paths).revisions["toy"]] == base
    write_rounds(paths.refine_rounds(), [Added(2, "toy", "bos_t50", "step999")])
    with pytest.raises(ConfigError, match=r"rounds\.json: round 2 added revision 'step999' of toy"):
        plan_sweep(_toy_config(), tmp_path, paths)
    paths.refine_rounds().write_text(json.dumps({"format": "other"}))
    with pytest.raises(CacheError, match=r"rounds\.json is not a refinement rounds file"):
        plan_sweep(_toy_config(), tmp_path, paths)
    with pytest.raises(ConfigError, match="refine.milestones"):
        plan_sweep(_toy_config(milestones=["onset"]), tmp_path, paths)


def test_the_driver_adds_proposals_until_none_is_left_then_builds_the_final_targets(tmp_path):
    """Each round runs the bracket rule and records every proposed revision as the next round; it stops when the
    table proposes nothing (or max_rounds is spent) and then runs Snakemake once with the user's targets."""
    csv, rounds = tmp_path / "brackets.csv", tmp_path / "rounds.json"
    proposals = iter([["step200", "step300"], ["step250"], []])
    commands = []

    def fake_snakemake(command: list[str]) -> int:
        commands.append(command)
        if BRACKETS_RULE in command:
            nexts = next(proposals)
            rows = [{"model": "m", "milestone": f"k{i}", "next_revision": n} for i, n in enumerate(nexts)]
            schema = {"model": pl.String, "milestone": pl.String, "next_revision": pl.String}
            pl.DataFrame(rows or None, schema=schema).write_csv(csv)
        return 0

    run = RefineRun(tmp_path / "Snakefile", (tmp_path / "c.yaml",), ("--cores", "1"))
    added = refine(run, RefineSettings(("k0", "k1"), 6), csv, rounds, runner=fake_snakemake)
    assert [(a.round, a.revision) for a in added] == [(1, "step200"), (1, "step300"), (2, "step250")]
    assert [BRACKETS_RULE in c for c in commands] == [True, True, True, False]
    assert commands[0][-6:] == ["--cores", "1", "--configfile", str(tmp_path / "c.yaml"), "--", BRACKETS_RULE]
    assert commands[-1][-4:] == commands[0][-6:-2]
    rounds.unlink()
    proposals = iter([["step200"], ["step250"], ["step260"]])
    commands.clear()
    added = refine(run, RefineSettings(("k0",), 2), csv, rounds, runner=fake_snakemake)
    assert [a.round for a in added] == [1, 2]


def test_the_refine_summary_counts_added_revisions_from_the_rounds_file():
    """The summary counts the revisions the rounds added from the rounds file, so a second `circuitsweep refine`
    of a refined folder (whose plan already sweeps them) says 5 planned and 3 added, as the first did."""
    from circuitsweep.milestones.refine import refine_summary

    planned = [rev(s) for s in (0, 100, 200, 400, 600)]
    added = [Added(1, "m", "induction_onset", "step300"), Added(1, "m", "early_screen", "step300")]
    added += [Added(2, "m", "induction_onset", "step250"), Added(3, "m", "induction_onset", "step275")]
    swept = sorted([*planned, rev(250), rev(275), rev(300)], key=lambda r: r.step)
    (line,) = refine_summary({"m": swept}, {"m": DENSE}, added)
    assert line == (
        "m: 8 revisions measured (5 planned, 3 added by refinement) of 25 available, after 3 refinement rounds"
    )
    (line,) = refine_summary({"m": planned}, {"m": DENSE}, [])
    assert line.endswith("(5 planned, 0 added by refinement) of 25 available, after 0 refinement rounds")


def test_brackets_are_drawn_as_bars_on_their_panel(tmp_path):
    """The emergence figure gains one bar per bracketed milestone, from its lower to its upper revision's tokens,
    on the panel of its curve (BOS t50 on the BOS panel, the others on the induction panel); unreached ones none."""
    from circuitsweep.outputs.plots import draw_milestone_brackets, emergence_figure, emergence_plot

    curves = pl.DataFrame(
        {
            "model": "m",
            "tokens": [0, 100_000, 400_000],
            "bos_fraction": [0.0, 0.2, 0.6],
            "induction_selective_heads": [0, 1, 4],
        }
    )
    swept = [rev(0), rev(100), rev(400)]
    milestones, _ = _tables({"induction_onset": "step400", "bos_t50": "step400", "early_screen": None}, swept)
    settings = RefineSettings(("induction_onset", "bos_t50", "early_screen"), 3)
    brackets = milestone_brackets(
        milestones,
        curves.with_columns(revision=pl.Series([r.name for r in swept]), step=pl.Series([0, 100, 400])),
        {"m": DENSE},
        {"m": swept},
        settings,
        [],
    )
    figure = emergence_figure(curves)
    bos, induction = figure.axes[:2]
    before = {id(line) for axis in (bos, induction) for line in axis.get_lines()}
    draw_milestone_brackets({"bos_fraction": bos, "induction_selective_heads": induction}, curves, brackets)
    bars = {
        name: [
            list(line.get_xdata()) for line in axis.get_lines() if id(line) not in before and len(line.get_xdata()) == 2
        ]
        for name, axis in (("bos", bos), ("induction", induction))
    }
    assert bars == {"bos": [[100_000, 400_000]], "induction": [[100_000, 400_000]]}
    emergence_plot(curves, tmp_path / "e.png", brackets=brackets)
    assert (tmp_path / "e.png").stat().st_size > 0


def test_the_refine_example_plans_its_first_round(tmp_path):
    """`circuitsweep refine --dry-run` on config/examples/toy-refine.yaml (a toy published every 25 steps, swept at
    5) shows the first round: the 5 measurements, the aggregates and the bracket table, and no later round."""
    import subprocess
    import sys
    from pathlib import Path

    from runenv import job_env

    repo = Path(__file__).resolve().parents[1]
    example = repo / "config" / "examples" / "toy-refine.yaml"
    command = [sys.executable, "-m", "circuitsweep", "refine", "--dry-run", "--root", str(repo)]
    result = subprocess.run(
        [*command, "--configfile", str(example), "--", "--cores", "1"],
        capture_output=True,
        text=True,
        env=job_env(),
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.MULTILINE))
    assert (stats["measure_heads"], stats["milestone_brackets"], stats["head_tables"]) == ("5", "1", "1")
    assert "plot_emergence" not in stats and not (tmp_path / "results" / "refine").exists()


def test_an_interrupted_round_lets_its_snakemake_stop_by_itself(tmp_path):
    """Ctrl-C reaches `circuitsweep refine` and its Snakemake run alike: the driver waits for Snakemake to stop
    (and release its lock) instead of killing it a quarter second later, then stops too (issue 32, case 11)."""
    import signal
    import sys

    from circuitsweep.milestones import refine as driver

    marker = tmp_path / "stopped"
    child = [sys.executable, "-c", f"import time, pathlib; time.sleep(1.5); pathlib.Path({str(marker)!r}).touch()"]

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            driver._run(child)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert marker.exists()
