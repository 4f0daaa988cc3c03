"""Adaptive refinement: pin each milestone down to two adjacent published revisions.

A round is one ordinary sweep. After it, :func:`milestone_brackets` finds, per
model and milestone, the two swept revisions that bracket the milestone and
the available revision nearest their middle in log tokens
(:mod:`circuitsweep.milestones.brackets`); :func:`refine` records those revisions in the
rounds file (``Paths.refine_rounds``), which the plan adds to every model's
swept revisions, and runs Snakemake again: only the new revisions are fetched
and measured, under the disk bound, and the aggregates are rebuilt. It stops
when every bracket is adjacent among the available revisions or ``max_rounds``
rounds have added revisions.

Why a driver and not a Snakemake ``checkpoint``: the plan (revisions, the
disk-bounded fetch order, the job blocks a cluster receives as one submission)
is computed once when Snakemake parses the workflow, and the per-revision
caches are checked against it then. Each round is therefore its own Snakemake
run, planned in full, and a plain ``snakemake`` afterwards sees the added
revisions (from the rounds file) and reruns nothing.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from circuitsweep.checkpoints.revisions import Revision
from circuitsweep.errors import CacheError
from circuitsweep.milestones.ablation_tables import causal_known
from circuitsweep.milestones.brackets import bracket_table, model_brackets, next_revisions
from circuitsweep.plan.rounds import Added, RefineSettings, read_rounds, write_rounds

#: The Snakemake rule that writes the bracket table: each round's target.
BRACKETS_RULE = "milestone_brackets"
#: Seconds an interrupted refine waits for its Snakemake run to stop by itself (it got the same Ctrl-C).
SHUTDOWN_SECONDS = 60


def _curve_revisions(curves: pl.DataFrame, model: str) -> list[Revision]:
    curve = curves.filter(pl.col("model") == model)
    return [Revision(r["revision"], r["step"], r["tokens"]) for r in curve.iter_rows(named=True)]


def milestone_brackets(
    milestones: pl.DataFrame,
    curves: pl.DataFrame,
    available: Mapping[str, Sequence[Revision]],
    swept: Mapping[str, Sequence[Revision]],
    settings: RefineSettings,
    added: Sequence[Added],
) -> pl.DataFrame:
    """The bracket table (``BRACKET_COLUMNS``) of every model in ``milestones``.

    A milestone is bracketed among the revisions of its emergence curve (under
    ``duplicates: skip`` the duplicates are not on it); every revision in
    ``swept`` is excluded from the candidates.
    """
    rounds_done = max((a.round for a in added), default=0)
    brackets = {}
    for row in milestones.iter_rows(named=True):
        model = row["model"]
        if model not in available:
            raise CacheError(f"the milestones table holds model {model!r}, which is not planned; rerun its tables")
        on_curve = _curve_revisions(curves, model)
        # swept revisions left off the curve (skipped duplicates) are no candidates either
        off_curve = {r.name for r in swept[model]} - {r.name for r in on_curve}
        pool = [r for r in available[model] if r.name not in off_curve]
        curve = curves.filter(pl.col("model") == model)
        known = {"causal": causal_known(curve)} if "ablation_tested" in curve.columns else None
        try:
            brackets[model] = model_brackets(row, on_curve, pool, settings.milestones, known)
        except ValueError as error:
            raise CacheError(f"model {model}: {error}; rerun its tables") from None
    return bracket_table(brackets, added, settings.max_rounds - rounds_done)


def write_brackets(table: pl.DataFrame, csv: Path, markdown: Path) -> None:
    from circuitsweep.io.tables import write_csv, write_markdown

    write_csv(table, csv)
    write_markdown(table, markdown, title="Milestone brackets: the two swept revisions each milestone lies between")


def refine_summary(
    revisions: Mapping[str, Sequence[Revision]], available: Mapping[str, Sequence[Revision]], added: Sequence[Added]
) -> list[str]:
    """One line per model: the revisions it sweeps, how many the config planned and the rounds added, of how
    many its source publishes, after how many rounds.

    ``revisions``: the plan's, rounds included; ``added``: the rounds file. The added ones are counted from the
    rounds file, so a later ``circuitsweep refine`` of the same folder says what the first one did.
    """
    rounds = max((a.round for a in added), default=0)
    lines = []
    for model, swept in revisions.items():
        refined = len({a.revision for a in added if a.model == model} & {r.name for r in swept})
        lines.append(
            f"{model}: {len(swept)} revisions measured ({len(swept) - refined} planned, {refined} added by "
            f"refinement) of {len(available[model])} available, after {rounds} refinement round{'s' * (rounds != 1)}"
        )
    return lines


# --- the driver -------------------------------------------------------------


@dataclass(frozen=True)
class RefineRun:
    """What ``circuitsweep refine`` runs: the workflow, its config files, Snakemake's options and the final targets."""

    snakefile: Path
    configfiles: tuple[Path, ...]
    snakemake_args: tuple[str, ...]
    targets: tuple[str, ...] = ()

    def command(self, targets: Sequence[str], *options: str) -> list[str]:
        """The Snakemake command line building ``targets`` (none: the default target)."""
        configs = ["--configfile", *map(str, self.configfiles)] if self.configfiles else []
        # targets after "--": --configfile (and other list options) would take them as their values
        ends = ["--", *targets] if targets else []
        return [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(self.snakefile),
            *self.snakemake_args,
            *options,
            *configs,
            *ends,
        ]


Runner = Callable[[list[str]], int]


def _run(command: list[str]) -> int:
    print("circuitsweep refine: " + " ".join(command[2:]), file=sys.stderr, flush=True)
    process = subprocess.Popen(command)
    try:
        return process.wait()
    except KeyboardInterrupt:
        # Snakemake got the same Ctrl-C: let it stop its jobs and release its lock (a second Ctrl-C ends the wait)
        with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
            process.wait(timeout=SHUTDOWN_SECONDS)
        if process.poll() is None:
            process.kill()
            process.wait()
        raise


def snakemake_options_problem(options: Sequence[str]) -> str | None:
    """What Snakemake's own parser finds wrong in ``options`` (refine's options after ``--``), or None.

    Checked before any round, so a typo gets one line instead of Snakemake's whole usage text; a target among
    them is refused too (``--targets`` names what the last run builds).
    """
    from snakemake.cli import get_argument_parser

    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            parsed = get_argument_parser().parse_args(list(options))
    except SystemExit:
        lines = messages.getvalue().strip().splitlines() or ["cannot be parsed"]
        return lines[-1].split("error: ", 1)[-1]
    if parsed.targets:
        return f"targets {' '.join(parsed.targets)} among them (name what the last run builds with --targets)"
    return None


def dry_run(run: RefineRun, *, runner: Runner = _run) -> int:
    """Show the jobs of the next round (Snakemake's dry run of the bracket table); later rounds follow from it."""
    code = runner(run.command([BRACKETS_RULE], "--dry-run"))
    if code == 0:
        print(
            "circuitsweep refine: that is the next round; the rounds after it follow from its brackets", file=sys.stderr
        )
    return code


def refine(
    run: RefineRun, settings: RefineSettings, brackets_csv: Path, rounds: Path, *, runner: Runner = _run
) -> list[Added]:
    """Run sweep rounds until every bracket is adjacent or ``max_rounds`` rounds added revisions.

    Each round is one Snakemake run of the bracket table (so of everything it
    needs: the new revisions' measurements and the aggregates); the last run
    builds the targets ``run`` names (default: every final output). Resumes from
    the rounds file. Returns every revision the rounds added.
    """
    while True:
        if (code := runner(run.command([BRACKETS_RULE]))) != 0:
            raise RefineFailed(code)
        added = read_rounds(rounds)
        table = pl.read_csv(brackets_csv, infer_schema_length=0)
        proposals = [r for r in table.iter_rows(named=True) if r["next_revision"] not in (None, "")]
        done = max((a.round for a in added), default=0)
        if not proposals or done >= settings.max_rounds:
            break
        new = [Added(done + 1, r["model"], r["milestone"], r["next_revision"]) for r in proposals]
        write_rounds(rounds, [*added, *new])
        summary = ", ".join(f"{m}: {', '.join(v)}" for m, v in next_revisions(table).items())
        print(f"circuitsweep refine: round {done + 1} adds {summary}", file=sys.stderr, flush=True)
    if (code := runner(run.command(run.targets))) != 0:
        raise RefineFailed(code)
    return read_rounds(rounds)


class RefineFailed(Exception):
    """A Snakemake run of a refinement round failed (its exit code is the driver's)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"snakemake exited with {code}")
        self.code = code
