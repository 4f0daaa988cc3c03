"""The command line's one error boundary, and a property test that looks for the next hole (issue 32).

Every subcommand is enumerated from the argparse parser, so a new one is covered
without touching this file; every argument declares what it is (``cli.cli_arguments.Argument``),
and the test generates values for it by that kind: missing paths, folders, pipes,
devices, empty and wrong-shaped JSON, junk files, huge and negative numbers,
non-UTF-8 bytes. One argument of each call is certainly wrong; the call must exit
non-zero with exactly one line on stderr, no traceback, and write nothing outside
its temporary folder. Calls run in-process (``cli.main``), so the module stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_tables import tiny_heads_and_revisions

from circuitsweep import cli
from circuitsweep.cli import arguments as cli_arguments
from circuitsweep.cli import commands, entry, json_arguments
from circuitsweep.cli import parser as cli_parser
from circuitsweep.plan.retry import EXIT_DETERMINISTIC, EXIT_USER_ERROR

REPO = Path(__file__).resolve().parents[1]
#: Examples per subcommand: ~27 subcommands x this many in-process calls stay well under a minute.
EXAMPLES = 12


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli_parser.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments that take values (flags and help left out)."""
    return [a for a in parser._actions if a.nargs != 0 and not isinstance(a, argparse._HelpAction)]


def run(argv: list[str], cwd: Path) -> tuple[int, str]:
    """``circuitsweep <argv>`` in-process, in ``cwd``: its exit code and stderr."""
    err, out = io.StringIO(), io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = cli.main(argv)
            except SystemExit as stop:  # --help, or a command that exits by itself
                code = stop.code if isinstance(stop.code, int) else 1
    finally:
        os.chdir(before)
    return code, err.getvalue()


# --- the sandbox each call runs in: files of every wrong kind ---------------------------------


def make_sandbox(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "folder").mkdir(exist_ok=True)
    (folder / "empty").write_bytes(b"")
    (folder / "text.txt").write_text("not a table\n")
    (folder / "binary.bin").write_bytes(b"\xff\xfe\x00\x81garbage\x00" * 8)
    (folder / "list.json").write_text("[1]")
    (folder / "object.json").write_text("{}")
    (folder / "table.csv").write_text("a,b\n1,2\n")
    pl.DataFrame({"a": [1], "b": ["x"]}).write_parquet(folder / "wrong.parquet")
    (folder / "settings").mkdir(exist_ok=True)
    (folder / "settings" / "job-0123456789abcdef.json").write_text('{"edited": true}')
    if not (folder / "fifo").exists():
        os.mkfifo(folder / "fifo")
    return folder


#: Paths that are nothing a command can read (relative to the sandbox; ``/dev/zero`` is only ever read: the
#: tests may run as root, so a value an output could take never leaves the sandbox).
NO_PATH = ["missing", "missing/deeper/x", "text.txt/x", "fifo", "/dev/zero", "\udcff\udcfe-missing"]
#: Existing files whose content no command accepts as its input.
JUNK_FILES = ["empty", "text.txt", "binary.bin", "list.json", "object.json", "table.csv", "wrong.parquet"]
BAD_JSON = [
    "",
    "{",
    "nan",
    "[" * 100_000,
    "1" * 5000,
    "@missing.json",
    "@folder",
    "@fifo",
    "@/dev/zero",
    "@binary.bin",
    "@empty",
    "@settings/job-0123456789abcdef.json",
    "\udcff",
]
ANY_JSON = ["{}", "[]", "[1]", '"x"', "1", "null", '{"a": 1}', "@object.json", "@list.json"]
BAD_NUMBERS = ["-1", "-99999999999999999999", str(2**64), "99999999999999999999999", "nan", "inf", "", "x", "\udcff"]


class Undeclared:
    """An argument that declares no kind (a bare argparse ``type``): generated as its type suggests."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"undeclared {self.name}"


def kind_of(action: argparse.Action) -> cli_arguments.Argument | Undeclared:
    if isinstance(action.type, cli_arguments.Argument):
        return action.type
    return Undeclared(getattr(action.type, "__name__", "str"))


def tiers(kind: cli_arguments.Argument | Undeclared) -> tuple[list[str], list[str], list[str]]:
    """Values for an argument of ``kind`` in three tiers: ``wrong`` (refused before the command runs),
    ``junk`` (accepted by the boundary, but certainly not what the command needs: the command itself must
    refuse it) and ``fine`` (may well be right)."""
    if isinstance(kind, Undeclared):  # what a bare str, int, float or JSON argument is certainly not
        if kind.name in ("int", "float"):
            return BAD_NUMBERS, [], ["1"]
        if kind.name == "_json":
            return BAD_JSON, [], ANY_JSON
        return ["text.txt/x", "folder"], [], ["out.txt"]
    if isinstance(kind, cli_arguments.InputFile):
        wrong = [*NO_PATH, "folder"]
        if kind.columns:  # a table's columns are read by the boundary
            return wrong + JUNK_FILES, [], []
        return (wrong, JUNK_FILES, []) if kind.content else (wrong, [], JUNK_FILES)
    if isinstance(kind, cli_arguments.InputFolder):
        return [*NO_PATH, "text.txt", "binary.bin"], ["folder"], []
    if isinstance(kind, cli_arguments.OutputFile):
        suffix = kind.suffixes[0] if kind.suffixes else ".txt"
        wrong = ["folder", "text.txt/x", "fifo", "settings"] + (["out.xyz"] if kind.suffixes else [])
        return wrong, [], [f"out{suffix}", f"new/deeper/out{suffix}"]
    if isinstance(kind, cli_arguments.OutputFolder):
        return ["text.txt", "text.txt/x", "fifo", "binary.bin"], [], ["folder", "new-folder", ".."]
    if isinstance(kind, json_arguments.Json):
        wrong = list(BAD_JSON)
        junk = []
        if kind.shape is dict:
            wrong += ["[]", "[1]", '"x"', "1", "null", "@list.json"]
            if kind.keys:
                wrong += ["{}", '{"a": 1}', "@object.json"]
                junk += ["{" + ", ".join(f'"{k}": {v}' for k in kind.keys) + "}" for v in ("1", "[]", '"x"', "null")]
        elif kind.shape is list:
            wrong += ["{}", '"x"', "1", "null", "@object.json"]
        fine = (
            []
            if kind.keys
            else (ANY_JSON if kind.shape is None else ["{}", '{"a": 1}'] if kind.shape is dict else ["[]", "[1]"])
        )
        return wrong, junk, fine
    if isinstance(kind, cli_arguments.Count):
        return [*BAD_NUMBERS, str(kind.low - 1), str(kind.high + 1)], [], [str(kind.low)]
    if isinstance(kind, cli_arguments.Real):
        return [*BAD_NUMBERS, str(kind.low), "1e309"], [], ["2.5"]
    if isinstance(kind, cli_arguments.Name):
        return ["..", ".", "a/b", "-x", "", "a\x01b", "\udcff", "x\\y"], [], ["m", "toy-gptneox"]
    if isinstance(kind, cli_arguments.Text):
        if kind.check is None:  # free text (Snakemake targets and options): never the broken argument
            return [], [], ["all"]
        return (
            ["{stp}", "step{step:s}", "../x", "not a url", "a{step}{step}", "\udcff", "{tokens:>4}"],
            [],
            [kind.example],
        )
    raise AssertionError(f"argument kind {kind!r} has no generated values: add them to tests/test_cli_boundary.py")


def command_line(draw, name: str, parser: argparse.ArgumentParser) -> list[str]:
    """A command line of subcommand ``name``: its required arguments and some optional ones, one of them broken.

    Half the calls break an argument the boundary refuses; the others give every argument a value the boundary
    accepts and one a content the command must refuse itself, so the commands' own checks are reached too."""
    actions = arguments(parser)
    optional = [a for a in actions if not a.required and a.option_strings]
    chosen = [a for a in actions if a.required or not a.option_strings]
    chosen += draw(st.lists(st.sampled_from(optional), unique=True)) if optional else []
    in_command = draw(st.booleans()) and any(tiers(kind_of(a))[1] for a in actions)
    level = 1 if in_command else 0
    breakable = [a for a in chosen if tiers(kind_of(a))[level]]
    if not breakable:
        breakable = [a for a in actions if tiers(kind_of(a))[level]][:1]
        chosen += [a for a in breakable if a not in chosen]
    broken = draw(st.sampled_from(breakable))
    positional, options = [], []
    for action in chosen:
        if action.nargs == argparse.REMAINDER:
            continue
        count = (
            draw(st.integers(1 if action.nargs == "+" or action is broken else 0, 2))
            if action.nargs in ("+", "*")
            else 1
        )
        wrong, junk, fine = tiers(kind_of(action))
        pool = junk + fine if in_command else wrong + junk + fine
        items = []
        for i in range(count):
            bad = action is broken and i == 0
            items.append(draw(st.sampled_from((junk if in_command else wrong) if bad else pool or junk or wrong)))
        if action.option_strings:
            options += [action.option_strings[-1], *items]
        else:
            positional += items
    return [name, *positional, *options]


def outside_snapshot(sandbox: Path) -> dict[Path, set[str]]:
    """What lies beside the sandbox and in the repository's top folders: nothing may appear there."""
    places = [sandbox.parent, REPO, REPO / "workflow", REPO / "config", Path.home()]
    return {place: set(os.listdir(place)) for place in places if place.is_dir()}


@pytest.fixture(scope="module")
def sandbox_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-boundary")


def test_every_argument_declares_what_it_is():
    """A new subcommand's argument without a kind (a bare ``str`` or ``int``) would bypass the boundary."""
    for name, parser in subcommands().items():
        for action in arguments(parser):
            declared = isinstance(action.type, cli_arguments.Argument)
            assert declared, f"{name} {action.dest}: give it a cli.arguments.Argument type"
            tiers(kind_of(action))  # the test knows how to break it


def test_every_option_says_what_it_takes_in_its_help():
    """``circuitsweep <command> --help`` explains every option, the rules' internal commands' too: an option
    declared without help text says what its value must be (a reviewer found bare ``--heads HEADS`` lines)."""
    for name, parser in subcommands().items():
        parser.format_help()  # renders (a '%' in a help text would raise here)
        for action in arguments(parser):
            assert action.help and action.help.strip(), f"{name} {action.dest}: no help"


def test_an_undescribed_option_gets_its_kind_as_help():
    """The generated help reads like the value it asks for: a table with its columns, a number with its range."""
    help_of = {action.dest: action.help for action in arguments(subcommands()["plot-heatmap"])}
    assert help_of["emergence"] == "emergence table (with columns model, revision, bos_fraction) to read"
    assert help_of["model"] == "a model or revision name (one safe path component)"
    assert help_of["output"] == "file to write (.png, .svg)"
    assert cli_arguments.Count(1, 10).describe() == "a whole number from 1 to 10"


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_a_misused_subcommand_fails_in_one_line(name, sandbox_root):
    """Any subcommand, given values of which one is certainly wrong: non-zero exit with a documented code,
    exactly one line on stderr naming the problem, no traceback, nothing written outside the sandbox."""
    parser = subcommands()[name]
    sandbox = make_sandbox(sandbox_root / name)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def check(data):
        argv = command_line(data.draw, name, parser)
        before = outside_snapshot(sandbox)
        code, err = run(argv, sandbox)
        lines = err.strip().splitlines()
        assert code in (EXIT_DETERMINISTIC, EXIT_USER_ERROR), (argv, code, err)
        assert "Traceback" not in err, (argv, err)
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith("circuitsweep"), (argv, err)
        assert outside_snapshot(sandbox) == before, argv

    check()


# --- the misuses round four found (issue 32, items 5, 11, 13 and 15), each by name --------------


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    """A folder with real tables of one model ``m``: classified heads, emergence curves, milestones."""
    from circuitsweep.io.tables import write_table
    from circuitsweep.milestones.emergence import MilestoneThresholds, emergence_curves, milestones

    folder = make_sandbox(tmp_path_factory.mktemp("tables"))
    heads, revisions = tiny_heads_and_revisions()
    curves = emergence_curves(heads, revisions)
    write_table(folder / "heads.parquet", heads, {"model": "m", "thresholds": {"induction_circuit": 20}})
    write_table(folder / "emergence.parquet", curves, {})
    marks = milestones(curves, heads, {"m": MilestoneThresholds(1, 0.15, 0.3, 0.5)})
    write_table(folder / "milestones.parquet", marks, {})
    (folder / "milestones.csv").write_text("model,final_revision\nm,step100\n")  # the run writes both
    return folder


CLASS_THRESHOLDS = '{"class_selectivity": 30, "induction_circuit": 50, "previous_circuit": 100, "sink_alpha": 0.3}'
FINAL = f'{{"job": {{}}, "spectral_top_k": [6], "thresholds": {CLASS_THRESHOLDS}}}'
#: case -> (command line, run in a folder of real tables, and a word its one error line must hold)
MISUSES: dict[str, tuple[str, str]] = {
    "group-milestones-missing": (
        "group-milestones --milestones nope.parquet --groups {} --csv o.csv --markdown o.md",
        "nope",
    ),
    "group-milestones-list-groups": (
        "group-milestones --milestones milestones.parquet --groups [] --csv o.csv --markdown o.md",
        "--groups",
    ),
    "spectral-model-missing": ("spectral-model --heads nope.parquet --model m --output o.parquet", "nope"),
    "spectral-table-missing": ("spectral-table --models nope.parquet --parquet o.parquet --csv o.csv", "nope"),
    "plot-spectral-missing": (
        "plot-spectral --heads heads.parquet --spectral nope.parquet --model m --output o.png",
        "nope",
    ),
    "final-ablation-missing": (
        f"final-ablation --settings '{FINAL}' --snapshot folder --heads nope.parquet --spectral s --output o.parquet",
        "nope.parquet",
    ),
    "final-ablation-table-missing": (
        "final-ablation-table --rows nope.parquet --parquet o.parquet --csv o.csv --markdown o.md",
        "nope",
    ),
    "plot-primitive-scaling-missing": ("plot-primitive-scaling --scaling nope.csv --output o.png", "nope.csv"),
    "plot-emergence-missing-brackets": (
        "plot-emergence --emergence emergence.parquet --brackets nope.csv --output o.png",
        "--brackets",
    ),
    "plot-emergence-heads-as-emergence": ("plot-emergence --emergence heads.parquet --output o.png", "emergence table"),
    # the run's CSV beside the Parquet table: named, never "delete it and rerun" (a good file)
    "plot-emergence-milestones-as-csv": (
        "plot-emergence --emergence emergence.parquet --milestones milestones.csv --output o.png",
        "milestones.csv: the milestones table is read as Parquet; give its .parquet file",
    ),
    "plot-emergence-unknown-suffix": ("plot-emergence --emergence emergence.parquet --output o.xyz", ".xyz"),
    "train-toy-list": ("train-toy --settings [] --hub hub --published p.json", "--settings"),
    "train-toy-empty": ("train-toy --settings {} --hub hub --published p.json", "--settings"),
    "train-toy-no-threads": ("train-toy --settings {} --hub hub --published p.json --threads 0", "--"),
    "fetch-snapshot-list": ("fetch-snapshot --settings [1] --output snap", "--settings"),
    "measure-revision-empty": (
        "measure-revision --settings {} --snapshot folder --stats s --scores s.parquet",
        "--settings",
    ),
    "measure-revision-no-threads": (
        "measure-revision --settings {} --snapshot folder --stats s --scores s.parquet --threads 0",
        "--",
    ),
    "final-ablation-no-threads": (
        "final-ablation --settings {} --snapshot folder --heads heads.parquet --spectral s --output o --threads 0",
        "--",
    ),
    "plot-heatmap-unknown-model": ("plot-heatmap --emergence emergence.parquet --model other --output o.png", "other"),
    "plot-trajectories-unknown-model": (
        "plot-trajectories --heads heads.parquet --model other --output o.png",
        "other",
    ),
    "spectral-model-other-model": ("spectral-model --heads heads.parquet --model other --output o.parquet", "other"),
    "refresh-manifest-pattern-without-step": (
        "refresh-manifest org/x m.json --branch-pattern stage1",
        "--branch-pattern",
    ),
    "refresh-manifest-pattern-spec": ("refresh-manifest org/x m.json --branch-pattern {step:>4}", "--branch-pattern"),
    "refresh-manifest-two-tokens": (
        "refresh-manifest org/x m.json --branch-pattern s{step}-{tokens}-{tokens}",
        "--branch-pattern",
    ),
    "settings-from-a-fifo": ("fetch-snapshot --settings @fifo --output snap", "fifo"),
    "settings-from-dev-zero": ("fetch-snapshot --settings @/dev/zero --output snap", "/dev/zero"),
    "settings-from-a-folder": ("fetch-snapshot --settings @folder --output snap", "folder"),
    "settings-edited-by-hand": (
        "fetch-snapshot --settings @settings/job-0123456789abcdef.json --output snap",
        "changed",
    ),
}


@pytest.mark.parametrize("case", sorted(MISUSES))
def test_each_misuse_is_one_line_naming_it(case, tables):
    """Each named misuse: exit 3, one line naming the argument or the file, no traceback, and it never blocks."""
    import shlex

    command, named = MISUSES[case]
    code, err = run(shlex.split(command), tables)
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert named in lines[0], err
    assert code == EXIT_DETERMINISTIC, err


def test_a_settings_file_over_the_limit_is_refused_unread(tmp_path, monkeypatch):
    """A ``@FILE`` larger than the limit is refused from its size, before it is read."""
    monkeypatch.setattr(json_arguments, "SETTINGS_FILE_LIMIT", 100)
    (tmp_path / "big.json").write_text("[" + "1," * 100 + "1]")
    code, err = run(["fetch-snapshot", "--settings", "@big.json", "--output", "snap"], tmp_path)
    assert code == EXIT_DETERMINISTIC and "more than the 100 allowed" in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch):
    """An interrupted command (Ctrl-C during `circuitsweep refine`) says so in one line and exits 130."""

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "cmd_refine", interrupted)
    (tmp_path / "c.yaml").write_text("{}")
    code, err = run(["refine", "--configfile", "c.yaml"], tmp_path)
    assert code == entry.EXIT_INTERRUPTED == 130
    assert err.strip() == "circuitsweep refine: interrupted (a rerun resumes where this one stopped)"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
        (["--cores", "2", "mytarget"], "targets mytarget among them (name what the last run builds with --targets)"),
    ],
)
def test_refine_names_a_bad_snakemake_option_in_one_line(tmp_path, options, message):
    """`circuitsweep refine ... -- OPTIONS` checks OPTIONS with Snakemake's own parser before any round: one line
    naming the option, and no "next round" line; it used to print Snakemake's whole usage text, then that line."""
    config = REPO / "config" / "examples" / "toy-refine.yaml"
    argv = ["refine", "--root", str(REPO), "--configfile", str(config), "--dry-run", "--", *options]
    code, err = run(argv, tmp_path)
    assert code == EXIT_DETERMINISTIC
    assert err.strip() == f"circuitsweep refine: error: refine: the Snakemake options after --: {message}", err


def test_a_full_disk_is_named_with_its_path(tmp_path, monkeypatch):
    """ENOSPC where a command writes says "disk full", the argument and its path in one line, exit 1 (a rerun
    after freeing space succeeds): not an OSError traceback."""
    import errno

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", args.output)

    monkeypatch.setattr(commands, "cmd_block_record", full)
    code, err = run(["block-record", "--block", "b", "--output", "record.json"], tmp_path)
    assert code == EXIT_USER_ERROR
    assert err.strip().startswith("circuitsweep block-record: error: disk full: cannot write --output record.json (")
    assert len(err.strip().splitlines()) == 1


def test_each_table_kind_names_columns_of_its_contract():
    """The columns the boundary asks of a table are columns its writer writes (io.contracts)."""
    from circuitsweep.io import contracts as C
    from circuitsweep.primitives import contract as K

    contracts = {
        "heads": (*C.KEY_COLUMNS, *C.CLASS_COLUMNS),
        "revisions": C.REVISION_COLUMNS,
        "emergence": C.EMERGENCE_COLUMNS,
        "milestones": C.MILESTONE_COLUMNS,
        "brackets": C.BRACKET_COLUMNS,
        "spectral": C.SPECTRAL_COLUMNS,
        "final_ablation": C.FINAL_ABLATION_COLUMNS,
        "final_ablation_table": C.FINAL_ABLATION_TABLE_COLUMNS,
        "gaps": K.GAP_COLUMNS,
        "scaling": K.SCALING_COLUMNS,
    }
    tables = cli_parser._tables()
    assert set(tables) == set(contracts)
    for kind, argument in tables.items():
        assert set(argument.columns) <= set(contracts[kind]), kind


def test_an_input_file_names_why_it_cannot_be_read(tmp_path):
    """An input file argument that is a link to nothing names the link and its missing target, and one through a
    file says so, rather than a bare "does not exist" (the config's manifest check gives the same reasons:
    ``io.readable``)."""
    link, through = tmp_path / "table.parquet", tmp_path / "file.txt"
    link.symlink_to(tmp_path / "gone.parquet")
    through.write_text("x")
    argument = cli_arguments.InputFile("table")
    with pytest.raises(argparse.ArgumentTypeError, match=rf"{link} is a broken symbolic link \(to {tmp_path}/gone"):
        argument(str(link))
    with pytest.raises(argparse.ArgumentTypeError, match="a part of this path is a file, not a folder"):
        argument(str(through / "x.parquet"))
