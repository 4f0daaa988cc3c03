"""The milestones in words a person reads in a minute (docs/methods.md): one sentence per model, a narrow table.

The full milestones table stays in CSV and Parquet; this module writes
``milestones.md`` and the summary a finished run prints. Tokens are in human
units (``1.23M``, ``300B``); a milestone never reached says so, with how far
its curve got, never a bare dash.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep.heads.ablation_stats import format_p
from circuitsweep.io import contracts as C
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.io.tables import human_count
from circuitsweep.milestones.ablation_tables import is_causal
from circuitsweep.milestones.uncertainty import FRAGILE_SHARE
from circuitsweep.primitives import contract as K


def human_tokens(tokens: float | None) -> str:
    """``1228800`` -> ``1.23M``, ``3e11`` -> ``300B``, ``614400`` -> ``614K``; three significant digits."""
    return "-" if tokens is None else human_count(tokens)


def _at(revision: str | None, tokens: int | None) -> str | None:
    return None if revision is None else f"{revision} ({human_tokens(tokens)} tokens)"


def _lasting(at: str | None, sustained: bool | None) -> str | None:
    """``at``, marked ``not sustained`` where a later revision lost what that revision reached."""
    return None if at is None else f"{at}, not sustained" if sustained is False else at


def bos_peak_text(row: Mapping[str, Any]) -> str:
    """``peak 0.38 at step200``, or ``no BOS head at any revision`` where the BOS fraction never rose above 0 (a
    peak of 0 at the first revision would name a revision that means nothing)."""
    if not row.get("bos_peak_fraction"):
        return "no BOS head at any revision"
    at = row.get("bos_peak_revision")
    return f"peak {row['bos_peak_fraction']:.2f}" + (f" at {at}" if at else "")


def bos_level_text(row: Mapping[str, Any]) -> str:
    """The BOS fraction BOS t50 asks for, in words: ``half of all heads`` (the default 0.5), ``0.4 of all heads``."""
    level = row.get("bos_t50_level")
    return "half of all heads" if level is None or level == 0.5 else f"{level:g} of all heads"


def bos_t50_text(row: Mapping[str, Any]) -> str:
    """``step400 (1.64M tokens)`` (``, not sustained`` where a later revision fell below the level), or
    ``not reached (peak 0.38 at step200)``; a level other than half is named (``at 0.4 of all heads: ...``)."""
    level = "" if row.get("bos_t50_level") in (None, 0.5) else f"at {bos_level_text(row)}: "
    reached = _lasting(_at(row["bos_t50_revision"], row["bos_t50_tokens"]), row.get("bos_t50_sustained"))
    if reached:
        return level + reached
    return f"{level}not reached ({bos_peak_text(row)})"


def format_ratio(ratio: float) -> str:
    """Three significant digits, trailing zeros kept: ``3.20``, ``3.33``, ``11.7``, ``0.833``, ``120``."""
    return f"{ratio:#.3g}".rstrip(".")


def _ratio(row: Mapping[str, Any]) -> str:
    """``, 3.33x the onset's tokens`` where BOS t50 and the onset are both reached (the study: 10-20x), else ``""``."""
    ratio = row.get("bos_to_induction_ratio")
    if ratio is None or row["bos_t50_revision"] is None:
        return ""
    return f", {format_ratio(ratio)}x the onset's tokens"


def _p(value: float) -> str:
    """``= 0.0031``, ``= 0.18``; below 0.0001 ``< 0.0001`` (never scientific notation)."""
    text = format_p(value)
    return text if text.startswith("<") else f"= {text}"


def _interval(row: Mapping[str, Any]) -> str:
    return f"95% CI [{row['causal_excess_ci_low']:.3f}, {row['causal_excess_ci_high']:.3f}]"


def _tested(row: Mapping[str, Any]) -> str:
    n = row["causal_tested_revisions"]
    return f"{n} tested revision{'s' if n != 1 else ''}"


def _heads(n: int) -> str:
    return f"{n} head{'s' if n != 1 else ''}"


def _control(row: Mapping[str, Any]) -> str:
    """``; control 1 head for a circuit of 7, first causal with a full control at step800`` where the evidence
    revision's matched draw ran short of the circuit (the study's draw takes what the layers have), else ``""``."""
    circuit, control = row.get("causal_circuit_size"), row.get("causal_control_size")
    if circuit is None or control is None or control >= circuit:
        return ""
    text = f"; control {_heads(control)} for a circuit of {circuit}"
    if row["causal_state"] != "causal":
        return text
    full = row.get("causal_full_control_revision")
    return f"{text}, first causal with a full control {'at ' + full if full else 'at no revision'}"


def _failed(row: Mapping[str, Any]) -> str:
    """Which part of the causal test the evidence revision failed: ``; the factor rule failed: the circuit's top-1
    drop 0.140 is 4.9x the matched-random drop, not above 5x`` and/or ``; not significant at 0.01``."""
    reasons = []
    circuit, random, factor = row.get("causal_circuit_drop"), row.get("causal_random_drop"), row.get("causal_factor")
    if None not in (circuit, random, factor) and not is_causal(circuit, random, factor):
        if circuit <= 0:
            reasons.append(f"the factor rule failed: the circuit's top-1 drop {circuit:.3f} is not positive")
        else:
            reasons.append(
                f"the factor rule failed: the circuit's top-1 drop {circuit:.3f} is {circuit / random:.2g}x the "
                f"matched-random drop, not above {factor:g}x"
            )
    alpha = row.get("causal_alpha")
    if alpha is not None and row["causal_p_holm"] is not None and row["causal_p_holm"] >= alpha:
        reasons.append(f"not significant at {alpha:g}")
    return "".join(f"; {reason}" for reason in reasons)


def _evidence(row: Mapping[str, Any]) -> str:
    """``largest excess top-1 drop 0.023 at step290, 95% CI [...]; p = 0.18 (0.72 after Holm over 4 tested
    revisions); not significant at 0.01``: what a model whose circuit never passed the causal test got closest
    with, and which part of the test it failed."""
    return (
        f"largest excess top-1 drop {row['causal_excess_drop']:.3f} at {row['causal_evidence_revision']}, "
        f"{_interval(row)}; p {_p(row['causal_p'])} ({_p(row['causal_p_holm'])[2:]} after Holm over {_tested(row)})"
        f"{_failed(row)}{_control(row)}"
    )


def causal_text(row: Mapping[str, Any]) -> str | None:
    """The causal milestone in one of its three states (docs/methods.md), None when the run did not ablate:

    ``at step320 (1.31M tokens; excess top-1 drop 0.110, 95% CI [0.060, 0.170]; p = 0.0031 after Holm over 5
    tested revisions)``, ``not reached (largest excess top-1 drop 0.023 at step290, 95% CI [...]; p = 0.18 (0.72
    after Holm over 4 tested revisions))`` or ``untestable: no matched control at any revision (...)``.
    """
    state = row.get("causal_state")
    if state is None:
        return None
    if state == "untestable":
        return f"untestable: {row['causal_note']}"
    if state == "causal":
        at = _at(row["causal_revision"], row["causal_tokens"])[: -len(")")]
        return (
            f"at {at}; excess top-1 drop {row['causal_excess_drop']:.3f}, {_interval(row)}; "
            f"p {_p(row['causal_p_holm'])} after Holm over {_tested(row)}{_control(row)})"
        )
    return f"not reached ({_evidence(row)})"


def causal_sentence(row: Mapping[str, Any]) -> str:
    """The causal clause of a model's sentence: what the test found, or that there was nothing to test against."""
    state = row["causal_state"]
    if state == "untestable":
        return f"whether the circuit is causal is untestable: {row['causal_note']}"
    if state == "causal":
        at = _at(row["causal_revision"], row["causal_tokens"])
        return (
            f"the circuit was causal from {at}: ablating it cost {row['causal_excess_drop']:.3f} more top-1 than "
            f"matched random heads ({_interval(row)}; p {_p(row['causal_p_holm'])} after Holm over {_tested(row)}"
            f"{_control(row)})"
        )
    return f"the circuit never passed the causal test ({_evidence(row)})"


def late_bos_apart(row: Mapping[str, Any]) -> bool:
    """Whether a milestones row's first new BOS head after the onset is a milestone apart from its first BOS head:
    both the onset and a first BOS head are reached, and the first BOS head is not itself the first new one (it
    came before the onset)."""
    reached = row.get("induction_onset_revision") is not None and row.get("first_bos_head_revision") is not None
    return reached and row.get("first_late_bos_head_revision") != row["first_bos_head_revision"]


def late_bos_text(row: Mapping[str, Any]) -> str | None:
    """The first new BOS head after the onset (a head of class first at no revision before it) and how many the
    final revision holds, "step300 (1.23M tokens), 4 new at the end", or "no new one"; None where it is not a
    milestone apart from the first BOS head (:func:`late_bos_apart`)."""
    if not late_bos_apart(row):
        return None
    at = _lasting(
        _at(row.get("first_late_bos_head_revision"), row.get("first_late_bos_head_tokens")),
        row.get("first_late_bos_head_sustained"),
    )
    return f"{at}, {row['final_late_bos_heads']} new at the end" if at else "no new one"


def milestone_cells(row: Mapping[str, Any], new_bos: bool = True) -> dict[str, str]:
    """The main milestones of one model's row of the milestones table, as the narrow table shows them; with
    ``new_bos`` the first BOS head's cell adds the first new BOS head after the onset (:func:`late_bos_text`)."""
    cells = {
        "model": row["model"],
        "induction onset": _lasting(
            _at(row["induction_onset_revision"], row["induction_onset_tokens"]), row.get("induction_onset_sustained")
        )
        or "not reached",
        "first BOS head": _lasting(
            _at(row["first_bos_head_revision"], row["first_bos_head_tokens"]), row.get("first_bos_head_sustained")
        )
        or "not reached",
        "BOS t50": bos_t50_text(row) + _ratio(row),
        "early screen": _at(row["early_screen_revision"], row["early_screen_tokens"]) or "not reached",
    }
    late = late_bos_text(row) if new_bos else None
    if late is not None:
        cells["first BOS head"] += f"; after the onset: {late}"
    causal = causal_text(row)
    if causal is not None:
        cells["causal"] = causal
    cells["final"] = (
        f"{row['final_revision']}: {row['final_induction_heads']} heads of class induction, "
        f"BOS fraction {row['final_bos_fraction']:.2f}"
    )
    return cells


def model_sentence(row: Mapping[str, Any]) -> str:
    """One plain sentence on one model: when induction and BOS heads appeared, how far BOS got, when it was causal."""
    model = row["model"]
    onset = _at(row["induction_onset_revision"], row["induction_onset_tokens"])
    induction = f"induction heads formed at {onset}" if onset else "induction heads never reached the onset"
    if onset and row.get("induction_onset_sustained") is False:
        induction += " but fell below the onset's count later"
    first = _at(row["first_bos_head_revision"], row["first_bos_head_tokens"])
    if first is None:
        bos = "no head ever became a BOS head"
    else:
        t50 = _at(row["bos_t50_revision"], row["bos_t50_tokens"])
        order = ""
        if row["induction_onset_tokens"] is not None and row["first_bos_head_tokens"] is not None:
            order = ", before induction" if row["first_bos_head_tokens"] < row["induction_onset_tokens"] else ""
        if row.get("first_bos_head_sustained") is False:
            order += ", and did not last (a later revision has none)"
        level = bos_level_text(row)
        if not t50:
            reach = (
                f"BOS heads never reached {level} ({bos_peak_text(row)}, {row['final_bos_fraction']:.2f} at the end)"
            )
        elif row.get("bos_t50_sustained") is False:
            reach = f"BOS heads first reached {level} at {t50}{_ratio(row)}, but fell below it again later"
        else:
            reach = f"BOS heads were {level} or more from {t50}{_ratio(row)}"
        late = ""
        if late_bos_apart(row):
            after = _at(row.get("first_late_bos_head_revision"), row.get("first_late_bos_head_tokens"))
            n = row["final_late_bos_heads"]
            gone = (
                " but did not last (a later revision has none)"
                if row.get("first_late_bos_head_sustained") is False
                else ""
            )
            late = (
                f"; the first new BOS head after the onset (of class first at no revision before the onset) appeared "
                f"at {after}{gone}, and the final revision has {n} such head{'' if n == 1 else 's'}"
                if after
                else "; no new BOS head appeared after the onset"
            )
        bos = f"the first BOS head appeared at {first}{order}{late}; {reach}"
    sentence = f"{model}: {induction}; {bos}"
    if row.get("causal_state") is not None:
        sentence += "; " + causal_sentence(row)
    return sentence + "."


#: The milestones of the uncertainty table, with their names in words.
_UNCERTAIN = {
    "induction_onset": "induction onset",
    "first_bos_head": "first BOS head",
    "first_late_bos_head": "first new BOS head after onset",
    "bos_t50": "BOS t50",
    "early_screen": "early screen",
    "causal": "causal",
}


def _percent(share: float) -> str:
    """``0.9`` -> ``90%``, ``0.995`` -> ``99.5%`` (never rounded up to 100% nor down to 0%)."""
    percent = 100 * share
    return f"{percent:.0f}%" if percent == round(percent) else f"{percent:.1f}%"


def uncertainty_row(row: Mapping[str, Any], milestone: str) -> dict[str, str] | None:
    """One milestone of one model in words: where it was reached, its bracket and its bootstrap range.

    None when the table has no bracket for it (the causal milestone of a run without ablation).
    """
    previous = f"{milestone}_previous_revision"
    if previous not in row:
        return None
    reached = row[f"{milestone}_revision"]
    if milestone == "causal" and row.get("causal_state") == "untestable":
        untestable = {"reached at": "untestable", "bracket": "no revision could be tested"}
        return {"milestone": _UNCERTAIN[milestone], **untestable, "bootstrap": "rests on the ablation"}
    if reached is None:
        bracket = "after the last swept revision"
    elif row[previous] is None:
        bracket = f"at or before {reached} (the first swept revision)"
    else:
        bracket = (
            f"after {row[previous]}: {human_tokens(row[f'{milestone}_previous_tokens'])} - "
            f"{human_tokens(row[f'{milestone}_tokens'])} tokens"
        )
    cells = {"milestone": _UNCERTAIN[milestone], "reached at": reached or "not reached", "bracket": bracket}
    agreement = row.get(f"{milestone}_boot_agreement")
    if agreement is None:
        cells["bootstrap"] = "not bootstrapped" if milestone != "causal" else "rests on the ablation"
        return cells
    earliest, latest = row[f"{milestone}_boot_earliest"], row[f"{milestone}_boot_latest"]
    missing = row[f"{milestone}_boot_not_reached"]
    spread = None if earliest is None else earliest if earliest == latest else f"{earliest} - {latest}"
    if reached is not None:
        text = f"{spread}; on {reached} in {_percent(agreement)}"
        text += f", not reached in {_percent(missing)}" if missing > 0 else ""
    else:
        text = f"not reached in {_percent(agreement)}"
        text += f"; reached at {spread} in {_percent(1 - missing)}" if spread is not None else ""
    cells["bootstrap"] = f"{text}: {'fragile' if row[f'{milestone}_boot_fragile'] else 'stable'}"
    return cells


def uncertainty_markdown(table: pl.DataFrame) -> list[str]:
    """The "How sure" section of ``milestones.md``: per model and milestone, its bracket and bootstrap range."""
    rows = [
        {"model": row["model"], **cells}
        for row in table.iter_rows(named=True)
        for milestone in _UNCERTAIN
        if (cells := uncertainty_row(row, milestone)) is not None
    ]
    if not rows:
        return []
    lines = [
        "## How sure",
        "",
        "A milestone lies between the swept revision before it and its own (its bracket). Where the bootstrap "
        "over probe sequences ran, it resamples the probe sequences with replacement and recomputes every "
        "selectivity, class and milestone from the cached statistics: the range of revisions a milestone lands "
        f"on, and how often on its own. Fragile: more than {_percent(FRAGILE_SHARE)} of the resamples land "
        "elsewhere (another revision, or not reached).",
        "",
    ]
    fragile = [
        f"{row['model']} {_UNCERTAIN[m]}"
        for row in table.iter_rows(named=True)
        for m in _UNCERTAIN
        if row.get(f"{m}_boot_fragile")
    ]
    if fragile:
        lines += [f"Fragile milestones: {', '.join(fragile)}.", ""]
    header = list(rows[0])
    lines += [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row[c] for c in header) + " |" for row in rows),
        "",
    ]
    return lines


def milestones_markdown(table: pl.DataFrame) -> str:
    """``milestones.md``: a sentence per model, the narrow table of the main milestones, then how sure each is."""
    rows = list(table.iter_rows(named=True))
    cells = [milestone_cells(row) for row in rows]
    header = list(cells[0]) if cells else ["model"]
    lines = ["# Milestones", ""]
    lines += [model_sentence(row) for row in rows]
    lines += [
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell[column] for column in header) + " |" for cell in cells),
        "",
    ]
    if any(late_bos_text(row) is not None for row in rows):
        lines += [
            "First BOS head: the first revision with a head of class first (a BOS head: its attention goes to "
            "position 0). After the onset: the first revision with a *new* BOS head, one of class first at no "
            "revision before the induction onset, and how many of them the final revision holds.",
            "",
        ]
    lines += [
        "Every milestone column, with shapes, ratios and per-layer floors: milestones.csv (and .parquet).",
        "",
    ]
    lines += uncertainty_markdown(table)
    return "\n".join(lines)


def write_milestones_markdown(table: pl.DataFrame, path: Path) -> None:
    """Write :func:`milestones_markdown` of the milestones ``table`` to ``path`` atomically."""
    atomic_write_text(path, milestones_markdown(table))


def summary_line(row: Mapping[str, Any]) -> str:
    """``toy-gptneox: induction onset step300 (1.23M tokens); first BOS head ...; BOS t50 ...; causal ...``.

    Longer than :data:`SUMMARY_LINE_CHARS` (long revision names), the causal milestone goes on a line of its own.
    The first new BOS head after the onset is left to milestones.md, which the summary names.
    """
    cells = milestone_cells(row, new_bos=False)
    shown = [f"{name} {cells[name]}" for name in ("induction onset", "first BOS head", "BOS t50") if name in cells]
    causal = [f"causal {cells['causal']}"] if "causal" in cells else []
    line = f"{row['model']}: " + "; ".join(shown + causal)
    if len(line) <= SUMMARY_LINE_CHARS or not causal:
        return line
    return f"{row['model']}: " + "; ".join(shown) + ";\n  " + causal[0]


#: The longest line a finished run prints (a list of figures wider than this is shortened to a count).
SUMMARY_LINE_CHARS = 300


def run_summary(table: pl.DataFrame, tables: Iterable[Path], report_command: str, figures: Iterable[str] = ()) -> str:
    """What a finished run prints: a line per model (:func:`summary_line`), the tables' and figures' paths (a
    figure per model as one pattern line), the report command."""
    lines = ["", "circuitsweep: the sweep is done.", *(summary_line(row) for row in table.iter_rows(named=True))]
    lines += ["Tables:", *(f"  {path}" for path in tables)]
    figures = list(figures)
    if figures:
        lines += ["Figures:", *(f"  {figure}" for figure in figures)]
    lines += [f"Report: {report_command}", ""]
    return "\n".join(lines)


def _figure_lines(paths: C.Paths, models: Sequence[str], shown: Callable[[Path], Path] = Path) -> list[str]:
    """The figures of a run that exist: one line each, a figure per model as ``plots/heatmap_<model>.png: a, b``;
    ``shown`` turns a path into the one the user's shell reaches it by (:func:`shown_workdir`)."""
    lines = [
        str(shown(path))
        for path in (paths.emergence_plot("png"), paths.primitive_gap_plot(), paths.primitive_scaling_plot())
        if path.is_file()
    ]
    for pattern in (paths.heatmap_plot, paths.trajectory_plot, paths.spectral_plot):
        made = [model for model in models if pattern(model).is_file()]
        if not made:
            continue
        line = f"{shown(pattern('<model>'))}: {', '.join(made)}"
        if len(line) + 2 > SUMMARY_LINE_CHARS:
            line = f"{shown(pattern('<model>'))}: {len(made)} models"
        lines.append(line)
    return lines


def shown_workdir(directory: str | Path | None, invoking: str | None) -> Path | None:
    """How the shell that ran Snakemake reaches Snakemake's working directory (the current one): ``None`` when it
    is the shell's own (no ``--directory``), else ``directory`` (the ``--directory`` argument) as typed where it is
    relative and leads from ``invoking`` (the shell's ``PWD``) to the working directory, else its absolute path.

    Snakemake changes into ``--directory`` before it reads the Snakefile, and resolves ``--configfile`` from where
    it was started but every other relative path (``--report`` too) from the working directory; ``PWD`` still names
    the shell's directory, unless the process was started without it or by a program that changed directory
    without updating it (hence the check, and the absolute fallback).
    """
    if directory is None:
        return None
    workdir = Path.cwd().resolve()
    typed = Path(os.path.normpath(directory))
    start = Path(invoking) if invoking else None
    if start is not None and start.is_absolute() and start.is_dir():
        if start.resolve() == workdir:
            return None
        if not typed.is_absolute() and (start / typed).resolve() == workdir:
            return typed
    return workdir


def finished_run_summary(
    paths: C.Paths,
    configfiles: Sequence[str | Path] = (),
    directory: str | Path | None = None,
    invoking: str | None = None,
) -> str:
    """:func:`run_summary` of the run whose results are under ``paths`` (empty when it made no milestones table).

    ``configfiles``: the run's ``--configfile`` arguments, repeated in the report command. ``directory``: the run's
    ``--directory`` argument (Snakemake's current working directory), ``invoking``: the directory the user started
    Snakemake from (by default ``$PWD``): with a working directory other than the user's, the tables and figures are
    shown as the user's shell reaches them and the report command repeats ``--directory`` (:func:`shown_workdir`).
    """
    milestones = paths.milestones_table("parquet")
    if not milestones.is_file():
        return ""
    table = pl.read_parquet(milestones)
    if not set(C.MILESTONE_COLUMNS) <= set(table.columns):
        return ""
    tables = (
        paths.milestones_table("md"),
        paths.findings("md"),
        paths.milestones_table("csv"),
        paths.emergence_table("csv"),
        paths.heads_table(),
        paths.ablation_table("csv"),
        paths.final_ablation_table("md"),
        paths.spectral_table("csv"),
        paths.primitive_table(K.GAPS_MD),
        paths.primitive_table(K.GAPS_CSV),
        paths.overhead_table("md"),
    )
    workdir = shown_workdir(directory, os.environ.get("PWD") if invoking is None else invoking)
    shown: Callable[[Path], Path] = Path if workdir is None else workdir.joinpath
    command = " ".join(
        [
            "snakemake",
            *([] if workdir is None else [f"--directory {shlex.quote(str(workdir))}"]),
            *(f"--configfile {shlex.quote(str(f))}" for f in configfiles),
        ]
    )
    # --report is resolved from the working directory, so its path stays relative to it.
    report = shlex.quote(str(paths.root / "report.html"))
    figures = _figure_lines(paths, table["model"].to_list(), shown)
    listed = [shown(t) for t in tables if t.is_file()]
    return run_summary(table, listed, f"{command} --report {report}", figures)
