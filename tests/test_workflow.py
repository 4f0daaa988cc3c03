"""End-to-end runs of the Snakemake workflow on the toy suite (DESIGN.md 6).

The full default run (three toy models, trained here) is shared by the tests
of this module; incremental behaviour is checked on a smaller config whose
runs take seconds. Every run uses the repository's Snakefile in a temporary
working directory, as a user's run would.
"""

from __future__ import annotations

import contextlib
import html
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from report_dom import chromium, render
from runenv import job_env, job_logs, run_results

from circuitsweep.config.load import load_config
from circuitsweep.heads.final_ablation import TESTS
from circuitsweep.heads.spectral import share_k
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import read_table
from circuitsweep.milestones.text import format_ratio
from circuitsweep.plan.sweep import plan_sweep
from circuitsweep.primitives import contract as K
from circuitsweep.primitives import jobs as primitive_jobs
from circuitsweep.toy.spec import ToySpec

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow/Snakefile"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"

pytestmark = pytest.mark.slow

#: The default run's toy models: architecture and number of revisions.
TOY_ARCHITECTURES = {
    "toy-gptneox": "GPTNeoXForCausalLM",
    "toy-olmo": "OlmoForCausalLM",
    "toy-olmoe": "OlmoeForCausalLM",
}
TOY_REVISIONS = {
    name: len(model["toy"]["schedule"]) for name, model in yaml.safe_load(DEFAULT_CONFIG.read_text())["models"].items()
}
#: The default toys whose run shows the study's BOS story (BOS t50 after the onset; docs/methods.md).
BOS_STORY_TOYS = ("toy-gptneox", "toy-olmo")

#: The catalog's test config (.test/config/config.yaml): one toy model, two revisions, every stage.
SMALL_CONFIG = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` with ``config``; jobs find this interpreter first on PATH."""
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), "--configfile", str(config)]
    result = subprocess.run([*command, *args], capture_output=True, text=True, env=job_env(), timeout=1800, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}\n{job_logs(workdir)}"
        )
    return result


def planned_jobs(workdir: Path, config: Path) -> dict[str, int]:
    """Job counts per rule that a dry run plans (``Job stats``), without ``all``."""
    out = snakemake(workdir, config, "-n", "--cores", "2").stdout
    if "Nothing to be done" in out:
        return {}
    stats = out.split("Job stats:")[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", stats, re.M))
    return {rule: int(n) for rule, n in counts.items() if rule not in ("all", "total")}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.contextmanager
def edited(path: Path, config: dict):
    """``path`` holding ``config`` for the duration (a user's edit of their config), then its old text again."""
    before = path.read_text()
    try:
        yield write_config(path, config)
    finally:
        path.write_text(before)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    """The default toy-suite run, as the README's first line runs it, of a copy of config/config.yaml beside its
    working directory (so that a test may edit that copy); returns the run's folder, ``results/toy``."""
    workdir = tmp_path_factory.mktemp("toy-run")
    config = shutil.copy(DEFAULT_CONFIG, workdir.parent / f"{workdir.name}-config.yaml")
    result = snakemake(workdir, Path(config), "--cores", "2")
    (workdir.parent / f"{workdir.name}-console.txt").write_text(result.stdout + result.stderr)
    return run_results(workdir, config)


def toy_config(toy_run: Path) -> Path:
    """The config file the toy run was made from."""
    workdir = toy_run.parents[1]
    return workdir.parent / f"{workdir.name}-config.yaml"


def check_config(config: Path, workdir: Path) -> list[str]:
    """The cost lines of ``circuitsweep check-config`` of ``config`` in Snakemake's working directory ``workdir``."""
    command = [
        sys.executable,
        "-m",
        "circuitsweep",
        "check-config",
        str(config),
        "--root",
        str(REPO),
        "-d",
        str(workdir),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=job_env(), timeout=300, check=True)
    return [line for line in result.stdout.splitlines() if line.startswith("circuitsweep: ")]


def test_the_default_runs_console_is_short_and_names_its_figures(toy_run):
    """The default run's console holds a few hundred lines at most, none longer than 300 characters, and ends
    naming the figures as well as the tables; Snakemake's log file keeps every job's full block."""
    workdir = toy_run.parents[1]
    console = (workdir.parent / f"{workdir.name}-console.txt").read_text()
    lines = console.splitlines()
    assert len(lines) <= 300, f"{len(lines)} lines:\n" + "\n".join(lines[:60])
    assert max(map(len, lines)) <= 300, max(lines, key=len)
    paths = C.Paths(toy_run.relative_to(workdir))
    shown = workdir.resolve()  # the run was started with an absolute -d: the summary's paths work from any shell
    summary = console[console.index("circuitsweep: the sweep is done.") :]
    assert "Tables:" in summary and "Figures:" in summary and f"  {shown / paths.emergence_plot('png')}" in summary
    assert f"  {shown / paths.heatmap_plot('<model>')}: {', '.join(TOY_ARCHITECTURES)}" in summary
    assert f"snakemake --directory {shown} " in summary or f"snakemake --directory {workdir} " in summary
    assert sum(line.startswith("measured ") for line in lines) == sum(TOY_REVISIONS.values())
    (log,) = (workdir / ".snakemake" / "log").glob("*.snakemake.log")
    assert log.read_text().count("rule measure_heads:") >= 1 and "rule measure_heads:" not in console


def test_check_config_agrees_with_the_dry_run_after_the_run_and_after_a_cache_is_deleted(toy_run, tmp_path):
    """After the run, check-config and the dry run both find nothing to measure; with one revision's head cache
    deleted by hand, both count that revision (and its model's final-revision ablation), the dry run plans its
    measurement, and the cache comes back as it was."""
    workdir, config = toy_run.parents[1], toy_config(toy_run)
    assert (
        check_config(config, workdir)[0]
        == "circuitsweep: every planned revision is measured already: nothing to download"
    )
    assert planned_jobs(workdir, config) == {}
    plan = plan_sweep(load_config(config), REPO)
    model = list(plan.models)[1]
    cache = C.Paths(toy_run).head_scores(model, plan.revisions[model][len(plan.revisions[model]) // 2].name)
    kept = shutil.move(cache, tmp_path / "heads.parquet")
    try:
        checked = check_config(config, workdir)
        dry = snakemake(workdir, config, "-n", "--cores", "2")
        jobs = planned_jobs(workdir, config)
    finally:
        shutil.move(kept, cache)
    total = sum(TOY_REVISIONS.values())
    assert checked[0].startswith(f"circuitsweep: 1 of {total} revisions to measure: nothing to download"), checked
    assert [line for line in (dry.stdout + dry.stderr).splitlines() if line.startswith("circuitsweep: ")] == checked
    assert jobs.get("measure_heads", 0) + jobs.get("measure_revision", 0) == 1 and jobs["final_ablation"] == 1
    assert planned_jobs(workdir, config) == {}


def test_every_toy_model_has_an_induction_onset(toy_run):
    """Induction heads form during toy training: each model reaches the onset milestone."""
    milestones = pl.read_csv(toy_run / "tables" / "milestones.csv")
    assert sorted(milestones["model"]) == ["toy-gptneox", "toy-olmo", "toy-olmoe"]
    assert milestones["induction_onset_tokens"].null_count() == 0, milestones


def test_gptneox_onset_matches_the_in_context_loss_drop(toy_run):
    """The classifier's onset lies within one checkpoint of where the in-context loss drop reaches half its final value.

    The loss drop is behaviour, measured outside the classifier (DESIGN.md 3, item 4).
    """
    curve = pl.read_parquet(toy_run / "tables" / "emergence.parquet").filter(pl.col("model") == "toy-gptneox")
    curve = curve.sort("tokens")
    drops = curve["in_context_loss_drop"].to_list()
    final = drops[-1]
    assert final < -1.0, "the trained toy model must use its context"
    half = next(i for i, drop in enumerate(drops) if drop <= final / 2)
    onset = next(i for i, n in enumerate(curve["induction_selective_heads"]) if n >= 3)
    assert abs(onset - half) <= 1, curve.select("revision", "induction_selective_heads", "in_context_loss_drop")


def toy_specs() -> dict[str, ToySpec]:
    """Each default toy's spec: its architecture's defaults with the config's ``toy:`` keys."""
    models = yaml.safe_load(DEFAULT_CONFIG.read_text())["models"]
    return {name: ToySpec.of_model(entry["architecture"], entry["toy"]) for name, entry in models.items()}


def test_tables_follow_the_contract(toy_run):
    """The final tables carry the contract's columns and one row per model, revision (and head)."""
    heads = pl.read_parquet(toy_run / "tables" / "heads.parquet")
    assert {*C.KEY_COLUMNS, *C.HEAD_SCORE_COLUMNS, "class"} <= set(heads.columns)
    assert set(heads["class"]) <= set(C.CLASSES)
    emergence = pl.read_parquet(toy_run / "tables" / "emergence.parquet")
    assert emergence.columns == [*C.EMERGENCE_COLUMNS, *C.ABLATION_EMERGENCE_COLUMNS]  # the toy config ablates
    assert emergence.height == sum(TOY_REVISIONS.values())
    specs = toy_specs()
    assert heads.height == sum(n * specs[m].num_layers * specs[m].num_heads for m, n in TOY_REVISIONS.items())
    csv = pl.read_csv(toy_run / "tables" / "emergence.csv")
    assert csv.height == emergence.height
    milestones_md = (toy_run / "tables" / "milestones.md").read_text()
    assert "| model | induction onset | first BOS head | BOS t50 |" in milestones_md
    for plot in ["emergence.png", "heatmap_toy-gptneox.png", "trajectories_toy-gptneox.png", "primitive_gap.png"]:
        assert (toy_run / "plots" / plot).read_bytes().startswith(b"\x89PNG"), plot


def test_toy_ablation_rows_and_causal_milestone(toy_run):
    """Every toy revision has ablation rows, every scored row its paired tests; where a model's circuit becomes
    causal, it is at or after the first revision with a screen head, passes the factor rule and the Holm-adjusted
    test, and wherever a control exists the circuit costs more top-1 than it. A model is untestable exactly when no
    revision had a control, never "not reached" without a test. Every default toy's circuit is causal, with a
    control as large as the circuit at some revision.

    Measured: toy-gptneox's circuit is causal from step300 (excess top-1 drop 0.453 over matched random heads,
    p < 0.0001 after Holm over 6 tested revisions), toy-olmo's from step250 (0.500), toy-olmoe's from step240
    (0.445, 4 heads against 4). The GPT-NeoX and OLMo circuits of 7 heads face a 1-head control (their layer's one
    other head); the milestone says so and names the first causal revision with a full control (step800, step400)."""
    ablation = pl.read_parquet(toy_run / "tables" / "ablation.parquet")
    assert ablation.columns == list(C.ABLATION_COLUMNS)
    assert ablation.select("model", "revision").unique().height == sum(TOY_REVISIONS.values())
    scored = ablation.filter((pl.col("condition") != "none") & pl.col("top1").is_not_null())
    for name in ("top1_drop", "top1_drop_ci_low", "top1_drop_ci_high", "top1_drop_p", "loss_increase_p"):
        assert scored[name].null_count() == 0, name
    milestones = pl.read_csv(toy_run / "tables" / "milestones.csv")
    emergence = pl.read_parquet(toy_run / "tables" / "emergence.parquet")
    text = (toy_run / "tables" / "milestones.md").read_text()
    assert milestones["causal_revision"].null_count() < milestones.height, milestones
    assert set(milestones["causal_state"]) <= set(C.CAUSAL_STATES)
    for row in milestones.iter_rows(named=True):
        curve = emergence.filter(pl.col("model") == row["model"]).sort("tokens")
        tested = curve.filter(pl.col("ablation_tested"))
        assert row["causal_tested_revisions"] == tested.height
        assert (row["causal_state"] == "untestable") == (tested.height == 0), row
        if row["causal_tokens"] is not None:
            first_head = curve.filter(pl.col("screen_heads") >= 1)["tokens"].min()
            assert row["causal_tokens"] >= first_head, (row, curve)
            assert row["causal_state"] == "causal" and row["causal_p_holm"] < row["causal_alpha"], row
        controlled = curve.drop_nulls(["ablation_circuit_drop", "ablation_random_drop"])
        assert (controlled["ablation_circuit_drop"] > controlled["ablation_random_drop"]).all(), controlled
        if row["causal_full_control_revision"] is not None:
            full = curve.filter(pl.col("revision") == row["causal_full_control_revision"]).row(0, named=True)
            assert full["ablation_tested"] and full["ablation_control_size"] >= full["ablation_circuit_size"], full
            assert full["tokens"] >= row["causal_tokens"], (row, full)
        if row["causal_state"] == "causal" and row["causal_control_size"] < row["causal_circuit_size"]:
            n, size = row["causal_control_size"], row["causal_circuit_size"]
            line = next(line for line in text.splitlines() if line.startswith(f"| {row['model']} |"))
            assert f"control {n} head{'s' if n != 1 else ''} for a circuit of {size}" in line, line
    assert set(milestones["causal_state"]) == {"causal"}, milestones
    assert milestones["causal_full_control_revision"].null_count() == 0, milestones
    assert "never hurt" not in text and "untestable" not in text


@pytest.mark.parametrize("model", BOS_STORY_TOYS)
def test_toy_tells_the_studys_bos_story(toy_run, model):
    """The default run shows the study's headline in its GPT-NeoX and OLMo toys: the induction circuit forms and is
    causal, and BOS heads then grow until they are half of all heads, more than 3x the onset's tokens later (the
    study's 10-20x; measured 3.33x and 3.20x), with BOS heads outside layer 0 and a final screen that leaves part of
    its layer free, so that its matched-random control is drawn in full and the screen's top-1 drop exceeds the
    control's. docs/methods.md quotes each toy's seed, t50 revision and ratio from this run."""
    milestones = pl.read_csv(toy_run / "tables" / "milestones.csv").filter(pl.col("model") == model)
    row = milestones.row(0, named=True)
    assert row["bos_t50_tokens"] is not None and row["bos_t50_tokens"] > row["induction_onset_tokens"], row
    assert row["bos_to_induction_ratio"] > 3, row
    assert row["bos_t50_sustained"] and row["bos_t50_level"] == 0.5, row  # the share holds to the run's end
    assert row["causal_state"] == "causal" and row["causal_full_control_revision"] is not None, row
    heads = pl.read_parquet(toy_run / "tables" / "heads.parquet").filter(pl.col("model") == model)
    final = heads.filter(pl.col("revision") == heads.sort("tokens")["revision"][-1])
    assert final.filter((pl.col("class") == "first") & (pl.col("layer") >= 1)).height >= 1, final
    screen = final.filter(pl.col("induction_member"))
    assert 0 < screen.height < final.filter(pl.col("layer") == screen["layer"].max()).height, screen
    md = (toy_run / "tables" / "milestones.md").read_text()
    assert f"{model}: induction heads formed at" in md and "BOS heads were half of all heads or more from step" in md
    assert f"{format_ratio(row['bos_to_induction_ratio'])}x the onset's tokens" in md  # the ratio beside BOS t50
    assert TESTS in C.Paths(toy_run).final_ablation_table("md").read_text()  # what each test cell holds
    ablation = pl.read_csv(C.Paths(toy_run).final_ablation_table("csv")).filter(pl.col("model") == model)
    control = ablation.filter(pl.col("condition") == "screen_random")
    assert control.height and (control["shortfall"] == 0).all() and (control["n_ablated"] == screen.height).all()
    screen_drop = ablation.filter(pl.col("condition") == "screen")["top1_drop"].item()
    assert (screen_drop > control["top1_drop"]).all(), ablation
    seed = yaml.safe_load(toy_config(toy_run).read_text())["models"][model]["toy"]["seed"]
    methods = " ".join((REPO / "docs" / "methods.md").read_text().split())
    stated = f"seed {seed} reaches BOS t50 at {row['bos_t50_revision']} ({row['bos_to_induction_ratio']:.2f}x the onset"
    assert stated in methods, stated


@pytest.mark.parametrize("model", TOY_REVISIONS)
def test_toy_bos_heads_form_after_its_induction_heads(toy_run, model):
    """Every default toy shows the study's order: after its induction onset, heads that were no BOS head before it
    become BOS heads (the first new BOS head after the onset), and some are still BOS heads at the final revision;
    the study's first BOS head, a plateau sink, comes before the onset. At the final revision the new ones sit
    outside layer 0 (the study's floor) and its layer-0 BOS heads are all plateau sinks. docs/methods.md quotes
    each toy's revision and final count from this run (measured: step300 with 4, step300-tokens1229K with 5,
    step240-tokens983K with 1)."""
    row = pl.read_csv(toy_run / "tables" / "milestones.csv").filter(pl.col("model") == model).row(0, named=True)
    assert row["first_late_bos_head_tokens"] is not None and row["final_late_bos_heads"] >= 1, row
    assert row["first_late_bos_head_tokens"] >= row["induction_onset_tokens"] > row["first_bos_head_tokens"], row
    heads = pl.read_parquet(toy_run / "tables" / "heads.parquet").filter(pl.col("model") == model)
    bos = heads.filter(pl.col("class") == "first")
    plateau = set(bos.filter(pl.col("tokens") < row["induction_onset_tokens"]).select("layer", "head").rows())
    final = bos.filter(pl.col("revision") == row["final_revision"]).select("layer", "head").rows()
    late = [head for head in final if head not in plateau]
    assert len(late) == row["final_late_bos_heads"] and min(layer for layer, _ in late) >= 1, (late, plateau)
    assert all(head in plateau for head in final if head[0] == 0), (final, plateau)
    md = (toy_run / "tables" / "milestones.md").read_text()
    assert f"after the onset: {row['first_late_bos_head_revision']} (" in md
    methods = " ".join((REPO / "docs" / "methods.md").read_text().split())
    stated = f"{model} {row['first_late_bos_head_revision']} ({row['final_late_bos_heads']} at the end)"
    assert stated in methods, stated


def _documented(page: str, pattern: str) -> tuple[float, ...]:
    """The numbers ``pattern`` (a regex with number groups) finds in docs/``page``, its line breaks read as spaces."""
    text = " ".join((REPO / "docs" / page).read_text().split())
    found = re.search(pattern, text)
    assert found, f"docs/{page} no longer says {pattern!r}"
    return tuple(float(number) for number in found.groups())


def test_toy_milestones_are_as_sure_as_documented(toy_run):
    """docs/methods.md gives how often the bootstrap over probe sequences lands the borderline milestones on their
    own revision in default runs on two CPUs (the GPT-NeoX toy's onset: the same share on both). This run's shares
    lie in those ranges, widened by 10 points (by 5 where both CPUs agreed) for a CPU not yet measured."""
    milestones = pl.read_csv(toy_run / "tables" / "milestones.csv")
    agreement = {row["model"]: row for row in milestones.iter_rows(named=True)}
    onset = _documented("methods.md", r"onset lands on step240 in (\d+)% of the resamples on both")
    t50 = _documented("methods.md", r"BOS t50 on step800 in ([\d.]+)-([\d.]+)%")
    late = _documented("methods.md", r"new BOS head after the onset on step240 in ([\d.]+)-([\d.]+)%")
    checks = {
        ("toy-gptneox", "induction_onset"): (onset[0] - 5, onset[0] + 5),
        ("toy-olmo", "bos_t50"): (t50[0] - 10, t50[1] + 10),
        ("toy-olmoe", "first_late_bos_head"): (late[0] - 10, late[1] + 10),
    }
    for (model, milestone), (low, high) in checks.items():
        share = 100 * agreement[model][f"{milestone}_boot_agreement"]
        assert low <= share <= high, (model, milestone, share)
    assert agreement["toy-gptneox"]["induction_onset_boot_fragile"], agreement["toy-gptneox"]


def _spans_the_run(documented: tuple[float, float], measured: tuple[float, float]) -> bool:
    """Whether a range the docs give (``low-high``, measured on more than one CPU) holds this run's least and most
    values: each inside it up to 10% (float rounding differs between CPUs, and with it the toys' training), and
    neither bound more than 50% away from this run's (so a range cannot go stale by being loose)."""
    (low, high), (least, most) = documented, measured
    inside = low / 1.1 <= least and most <= high * 1.1
    tight = least / 1.5 <= low and high <= most * 1.5
    return inside and tight


def test_toy_layer_one_heads_park_or_average_as_documented(toy_run):
    """docs/methods.md and docs/toy-recipes.md explain why only the GPT-NeoX and OLMo toys reach BOS t50 from this
    run's final heads: their layer-1 BOS heads are induction heads that park at the probe's one-token match (BOS
    selectivity at least the class threshold, induction selectivity still 3 or more), while the OLMoE toy's layer-1
    heads of class none spread their attention about evenly (no selectivity near the class threshold). The docs'
    counts are this run's and their ranges span it (:func:`_spans_the_run`)."""
    heads = pl.read_parquet(toy_run / "tables" / "heads.parquet").filter(pl.col("layer") == 1)
    final = heads.join(heads.group_by("model").agg(pl.col("tokens").max()), on=["model", "tokens"])
    parked = final.filter(pl.col("model").is_in(BOS_STORY_TOYS) & (pl.col("class") == "first"))
    assert parked.height >= 2 and (parked["sel_induction"] >= 3).all(), parked
    olmoe = final.filter(pl.col("model") == "toy-olmoe")
    idle = olmoe.filter(pl.col("class") == "none")
    sel = idle.select(C.SELECTIVITY_COLUMNS)
    assert idle.height >= 1 and sel.min_horizontal().min() >= 0.5 and sel.max_horizontal().max() <= 6.5, idle

    def span(values: pl.Series) -> tuple[float, float]:
        return values.min(), values.max()

    recipes = " ".join((REPO / "docs" / "toy-recipes.md").read_text().split())
    idle_words = (
        r"two class-none heads have every selectivity between ([\d.]+) and ([\d.]+) \(first ([\d.]+)-([\d.]+), "
        r"induction ([\d.]+)-([\d.]+)\), so they spread .* its one BOS head reaches ([\d.]+)-([\d.]+),"
    )
    numbers = _documented("toy-recipes.md", idle_words)
    assert "two class-none heads" in recipes and idle.height == 2, idle
    bos = olmoe.filter(pl.col("class") == "first")["sel_first"]
    assert bos.len() == 1, olmoe
    ranges = {
        "idle heads' selectivity": (numbers[0:2], (sel.min_horizontal().min(), sel.max_horizontal().max())),
        "idle heads' BOS selectivity": (numbers[2:4], span(idle["sel_first"])),
        "idle heads' induction selectivity": (numbers[4:6], span(idle["sel_induction"])),
        "OLMoE toy's BOS head": (numbers[6:8], (bos[0], bos[0])),
    }
    parked_words = (
        r"toys' (\d+) layer-1 BOS heads have BOS selectivity ([\d.]+)-([\d.]+) \((\d+) or (\d+) of them 13 or more\) "
        r"with induction selectivity ([\d.]+)-([\d.]+)"
    )
    count, bos_low, bos_high, fewest, most, ind_low, ind_high = _documented("toy-recipes.md", parked_words)
    assert count == parked.height and fewest <= (parked["sel_first"] >= 13).sum() <= most, parked
    ranges["parked heads' BOS selectivity"] = ((bos_low, bos_high), span(parked["sel_first"]))
    ranges["parked heads' induction selectivity"] = ((ind_low, ind_high), span(parked["sel_induction"]))
    ranges["methods.md: idle heads"] = (
        _documented("methods.md", r"every selectivity ([\d.]+)-([\d.]+)\), where the other toys' layer-1 BOS"),
        ranges["idle heads' selectivity"][1],
    )
    ranges["methods.md: parked heads"] = (
        _documented("methods.md", r"one-token match \(BOS selectivity ([\d.]+)-([\d.]+)\)"),
        ranges["parked heads' BOS selectivity"][1],
    )
    for name, (documented, measured) in ranges.items():
        assert _spans_the_run(documented, measured), (name, documented, measured)


def test_primitive_tables_have_intervals(toy_run):
    """The default run writes the primitive tables, with a gap, interval and null p-value per layer and revision."""
    gaps = pl.read_csv(toy_run / "tables" / K.GAPS_CSV)
    assert gaps.columns == list(K.GAP_COLUMNS)
    summary = gaps.filter((pl.col("layer") == K.SUMMARY) & (pl.col("score_kind") == K.REPRESENTATIONAL))
    plan = plan_sweep(load_config(DEFAULT_CONFIG), REPO)
    planned = sum(len(primitive_jobs.primitive_revisions(plan, model)) for model in plan.models)
    assert 3 <= planned < sum(TOY_REVISIONS.values()), "the toy config measures primitives at a subset of revisions"
    assert summary.height == planned
    assert (summary["ci_low"] <= summary["gap"]).all() and (summary["gap"] <= summary["ci_high"]).all()
    assert summary["p_value"].is_between(0, 1).all()
    scores = pl.read_parquet(toy_run / "tables" / K.PRIMITIVES_FILE)
    assert scores.columns == list(K.PRIMITIVE_COLUMNS)
    assert (toy_run / "tables" / K.COMPOSITIONS_MD).is_file()
    scaling = pl.read_csv(toy_run / "tables" / K.SCALING_CSV)
    assert scaling.columns == list(K.SCALING_COLUMNS) and (scaling["parameters"] > 0).all()
    assert C.Paths(toy_run).primitive_scaling_plot().read_bytes().startswith(b"\x89PNG")


def test_snapshots_are_deleted_after_measuring(toy_run):
    """Snapshots are temporary: none is left once every revision is measured."""
    assert list((toy_run / "snapshots").glob("*/*")) == []


def test_report_bundles_plots_and_tables(toy_run):
    """``snakemake --report`` writes one self-contained HTML report of the run; a report built after a run that
    failed (or has not finished) says so at its top, since it bundles whatever tables an earlier run left."""
    from circuitsweep.io.run_folder import UNFINISHED_FILE, mark_run_failed

    report = toy_run / "report.html"
    snakemake(toy_run.parents[1], toy_config(toy_run), "--report", str(report))
    html = report.read_text(errors="replace")
    assert "emergence.png" in html and "milestones.csv" in html and "primitive_gap.png" in html
    assert "ablation.html" in html and "final_ablation.html" in html and "spectral.html" in html
    assert not (toy_run / UNFINISHED_FILE).exists() and "failed at" not in html
    mark_run_failed(toy_run)
    try:
        snakemake(toy_run.parents[1], toy_config(toy_run), "--report", str(report))
    finally:
        (toy_run / UNFINISHED_FILE).unlink()
    html = report.read_text(errors="replace")
    assert "The last run of this folder failed at" in html and "may come from an earlier run" in html
    assert "<strong>Warning: this run is unfinished.</strong>" in html  # bold: the report does not style admonitions


def test_a_run_with_nothing_to_do_removes_the_note_of_a_failed_one(toy_run):
    """Snakemake calls no hook when every output is up to date, so a run that finds the failed run's cause gone
    (an input removed, a cache restored) and nothing to do removes the failure note itself; otherwise the report
    would warn of an unfinished run for good. A dry run leaves the note."""
    from circuitsweep.io.run_folder import UNFINISHED_FILE, mark_run_failed

    mark_run_failed(toy_run)
    try:
        snakemake(toy_run.parents[1], toy_config(toy_run), "-n")
        assert (toy_run / UNFINISHED_FILE).exists()
        result = snakemake(toy_run.parents[1], toy_config(toy_run), "--cores", "1")
        assert "Nothing to be done" in result.stdout + result.stderr
        assert not (toy_run / UNFINISHED_FILE).exists()
    finally:
        (toy_run / UNFINISHED_FILE).unlink(missing_ok=True)


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (CI installs it: apt-get install chromium)")
def test_report_opens_with_milestones_and_shows_every_result(toy_run, tmp_path):
    """In Chromium the report opens with the milestones table, then the emergence figure; every figure and table
    it bundles decodes to a non-empty image or a table with data rows."""
    report = tmp_path / "report.html"
    snakemake(toy_run.parents[1], toy_config(toy_run), "--report", str(report))
    page = render(report, tmp_path)
    paths = C.Paths(toy_run.relative_to(toy_run.parents[1]))
    models = ["toy-gptneox", "toy-olmo", "toy-olmoe"]
    expected = [
        paths.emergence_plot("png"),
        paths.primitive_gap_plot(),
        paths.primitive_scaling_plot(),
        *[paths.heatmap_plot(model) for model in models],
        *[paths.trajectory_plot(model) for model in models],
        paths.emergence_table("csv"),
        paths.milestones_table("csv"),
        paths.overhead_table("csv"),
        # every final table as a table the report shows, not only a download
        *[paths.table_page(name) for name in ("milestones", "emergence", "ablation", "final_ablation", "spectral")],
        *[paths.table_page(name) for name in ("primitive_gaps", "compositions", "primitive_scaling", "overhead")],
        paths.table_page("overhead_estimate"),
    ]
    assert {str(path) for path in expected} <= set(page.shown), page.shown
    assert all(size > 0 for size in page.shown.values()), page.shown
    milestones = page.landing.index('class="milestones')
    figure = page.landing.index('class="emergence-figure"')
    assert milestones < figure < page.landing.index('id="rulegraph"')
    table = page.landing[milestones : page.landing.index("</table>", milestones)]
    assert all(f"<td>{model}</td>" in table for model in models)
    # the landing table is milestones.md's first table, cell for cell ("p < 0.0001" once showed as "p u003c
    # 0.0001", and the bracket table's rows were appended to it)
    lines = (toy_run / "tables" / "milestones.md").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[first:]))
    cells = [
        html.escape(cell, quote=False) for row in rows if row.startswith("| ") for cell in row.strip("| ").split(" | ")
    ]
    assert table.count("<tr") == 1 + len(models), table
    assert all(f">{cell}</t" in table for cell in cells), [cell for cell in cells if f">{cell}</t" not in table]
    svg = page.landing[figure : page.landing.index("</svg>", figure)]
    assert svg.count("<path") > 20


def test_final_tables_record_the_settings_that_made_them(toy_run):
    """Heads, emergence and milestone tables carry each model's probes, protocol and both kinds of thresholds."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    paths = C.Paths(toy_run)
    for table in (paths.heads_table(), paths.emergence_table(), paths.milestones_table("parquet")):
        settings = read_table(table)[1]["models"]
        assert sorted(settings) == ["toy-gptneox", "toy-olmo", "toy-olmoe"]
        for model, recorded in settings.items():  # a model's own probes, else the run's
            own = config["models"][model].get("probes", {}).get("token_range", config["probes"]["token_range"])
            assert recorded["probes"]["token_range"] == own, model
        gptneox = settings["toy-gptneox"]
        assert gptneox["protocol"] == config["probes"].get("protocol", "xu2026")
        assert gptneox["thresholds"]["class_selectivity"] == config["thresholds"]["class_selectivity"]
        assert gptneox["milestones"]["induction_onset_heads"] == 3


def test_changing_a_threshold_reruns_no_measurement(toy_run, tmp_path):
    """A new class threshold reruns classification, tables and plots and measures no revision again; only the
    final-revision ablation, whose conditions are the classified heads, loads each final revision (its own copy)."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["thresholds"]["class_selectivity"] = 9
    with edited(toy_config(toy_run), config) as changed:
        jobs = planned_jobs(toy_run.parents[1], changed)
    plots = {"plot_emergence": 1, "plot_heatmap": 3, "plot_trajectories": 3, "plot_spectral": 3}
    spectral = {"spectral_model": 3, "spectral_table": 1}
    final = {"fetch_final_snapshot": 3, "final_ablation": 3, "final_ablation_table": 1}
    assert jobs == {
        "classify_heads": 3,
        "bootstrap_heads": 3,
        "head_tables": 1,
        **plots,
        **spectral,
        **final,
        "findings": 1,
        # the final tables' pages, and the overhead table (the final-revision ablations' seconds change)
        "table_pages": 1,
        "sweep_overhead": 1,
    }


def test_changing_the_bootstrap_reruns_only_table_jobs(toy_run):
    """Another resample count reruns the bootstrap (caches only) and the tables and figures made from it: no
    revision is measured or fetched again."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["bootstrap"] = {"resamples": 100}
    with edited(toy_config(toy_run), config) as changed:
        jobs = planned_jobs(toy_run.parents[1], changed)
    plots = {"plot_emergence": 1, "plot_heatmap": 3, "plot_trajectories": 3}
    assert jobs == {"bootstrap_heads": 3, "head_tables": 1, **plots, "findings": 1, "table_pages": 1}


def test_every_milestone_has_its_bracket_and_bootstrap_range(toy_run):
    """The default run's milestones carry the checkpoint bracket and the bootstrap's range of every milestone, and
    its heads an interval around each selectivity; milestones.md says how sure each one is."""
    paths = C.Paths(toy_run)
    milestones = pl.read_parquet(paths.milestones_table("parquet"))
    assert {*C.MILESTONE_BRACKET_COLUMNS, *C.MILESTONE_BOOTSTRAP_COLUMNS} <= set(milestones.columns)
    emergence = pl.read_parquet(paths.emergence_table())
    for row in milestones.iter_rows(named=True):
        tokens = dict(emergence.filter(pl.col("model") == row["model"]).select("revision", "tokens").iter_rows())
        assert tokens[row["induction_onset_previous_revision"]] < row["induction_onset_tokens"]  # none at step0
        earliest, latest = row["induction_onset_boot_earliest"], row["induction_onset_boot_latest"]
        assert tokens[earliest] <= row["induction_onset_tokens"] <= tokens[latest], row
        assert 0 < row["induction_onset_boot_agreement"] <= 1
    heads = pl.read_parquet(paths.heads_table())
    assert heads.select((pl.col("sel_induction_low") <= pl.col("sel_induction_high")).all()).item()
    inside = pl.col("sel_induction").is_between(pl.col("sel_induction_low"), pl.col("sel_induction_high"))
    assert heads.select(inside.mean()).item() > 0.99
    assert heads["class_stability"].is_between(0, 1).all()
    assert "## How sure" in paths.milestones_table("md").read_text()


def test_toy_induction_heads_form_in_a_phase_transition(toy_run):
    """Each toy model's induction-selective heads rise within a narrow token window (toy-gptneox: 0, 2, 8
    heads at step220, 230, 240), which the old rule (the largest rise between adjacent revisions) could call a
    gradual ramp when a dense schedule splits the rise.

    A toy whose induction heads later park on position 0 may end below half its peak, which is labelled
    "rise and fall" (toy-olmo on the CPU of 2026-12-07: 8 heads at step250, 3 at step900; the later
    revisions differ between CPUs, as float rounding does); its rise is still measured in a narrow window."""
    milestones = pl.read_parquet(C.Paths(toy_run).milestones_table("parquet"))
    assert set(milestones["induction_shape"]) <= {"phase transition", "rise and fall"}, milestones
    assert "phase transition" in set(milestones["induction_shape"])
    assert (milestones["induction_shape_ratio"] <= 3).all()


def test_default_run_writes_the_spectral_phase_and_the_final_ablation(toy_run):
    """The default run ranks every head by its PR integral, draws each model's PR figure and ablates each
    model's final revision under the study's conditions (spectral picks for the study's K = 45 and 6 of 256 heads
    as shares of each toy's heads, each with its matched-random control; the screen)."""
    paths = C.Paths(toy_run)
    spectral = pl.read_csv(paths.spectral_table("csv"))
    assert sorted(set(spectral["model"])) == ["toy-gptneox", "toy-olmo", "toy-olmoe"]
    assert spectral["integral"].null_count() == 0 and (spectral["n_left_out"] == 1).all()  # step0: 0 tokens
    for model in ("toy-gptneox", "toy-olmo", "toy-olmoe"):
        assert paths.spectral_plot(model).is_file()
    table = pl.read_csv(paths.final_ablation_table("csv"))
    assert sorted(set(table["model"])) == ["toy-gptneox", "toy-olmo", "toy-olmoe"]
    heads = {name: spec.num_layers * spec.num_heads for name, spec in toy_specs().items()}
    assert set(heads.values()) == {16}
    for model, n_heads in heads.items():
        picks = table.filter((pl.col("condition") == "spectral_top") & (pl.col("model") == model))
        assert set(picks["k"]) == {share_k(0.176, n_heads), share_k(0.0234, n_heads)}, model  # the config's shares
        assert (picks["shortfall"] == 0).all() and (picks["n_ablated"] == picks["k"]).all(), picks
        draws = table.filter((pl.col("condition") == "spectral_random") & (pl.col("model") == model))
        assert draws.height and (draws["shortfall"] == 0).all(), draws  # every pick has its matched control
    assert paths.final_ablation_table("md").is_file() and paths.final_ablation_table("parquet").is_file()


def test_every_default_toy_leaves_room_for_every_final_control(toy_run):
    """The study's final-revision conditions are all scored in every default toy, none short: the screen holds part
    of its layer (4, 3 and 4 of layer 1's 8 heads, measured), so its matched-random control is as large as it, the
    screen's full layers are more heads than the screen, and the screen lowers top-1 more than its control and more
    than the fewer spectral picks (findings.md's claim 3: the circuit is spread over more heads than the top K)."""
    table = pl.read_csv(C.Paths(toy_run).final_ablation_table("csv")).filter(pl.col("probe") == "synthetic")
    assert (table["shortfall"] == 0).all(), table.filter(pl.col("shortfall") > 0)
    for model in TOY_REVISIONS:
        rows = table.filter(pl.col("model") == model)
        screen = rows.filter(pl.col("condition") == "screen").row(0, named=True)
        control = rows.filter((pl.col("condition") == "screen_random") & (pl.col("statistic") == "mean of 3"))
        layers = rows.filter(pl.col("condition") == "screen_layers").row(0, named=True)
        assert control.height == 1 and control["n_ablated"].item() == screen["n_ablated"], (model, control)
        assert layers["n_ablated"] > screen["n_ablated"], (model, layers, screen)
        assert screen["top1_drop"] > control["top1_drop"].item(), (model, screen, control)
        picks = rows.filter(pl.col("condition") == "spectral_top")
        assert (picks["n_ablated"] < screen["n_ablated"]).all() and (picks["top1_drop"] < screen["top1_drop"]).all()
    # docs/methods.md's toy section quotes this run: the screens' sizes and the OLMoE toy's BOS maximum
    methods = " ".join((REPO / "docs" / "methods.md").read_text().split())
    screens = table.filter(pl.col("condition") == "screen")
    sizes = [int(screens.filter(pl.col("model") == model)["n_ablated"].item()) for model in TOY_REVISIONS]
    stated = f"the final screens hold {sizes[0]}, {sizes[1]} and {sizes[2]} of layer 1's 8 heads"
    assert stated in methods, stated
    emergence = pl.read_parquet(C.Paths(toy_run).emergence_table())
    milestones = pl.read_csv(C.Paths(toy_run).milestones_table())
    onset = milestones.filter(pl.col("model") == "toy-olmoe")["induction_onset_tokens"].item()
    curve = emergence.filter((pl.col("model") == "toy-olmoe") & (pl.col("tokens") >= onset))
    stated = f"after the onset its BOS fraction stays at most {curve['bos_fraction'].max():g} in the default run"
    assert stated in methods, stated


def test_default_run_writes_every_finding_from_its_tables(toy_run):
    """tables/findings.md of the default run has the cross-model table and every section for each model; each of
    findings.csv's numbers is one of its tables' (precision at K from spectral.csv, the BOS fraction from the heads
    table, claim 3's screen drop from final_ablation.csv)."""
    paths = C.Paths(toy_run)
    markdown = paths.findings("md").read_text()
    models = ["toy-gptneox", "toy-olmo", "toy-olmoe"]
    assert markdown.index("## Across models") < markdown.index("## toy-gptneox")
    for section in C.FINDINGS_SECTIONS[:-1]:
        assert markdown.count(f"### {section}\n") == 3, section
    rows = pl.read_csv(paths.findings("csv"), schema_overrides={"text": pl.String})
    assert rows.columns == list(C.FINDINGS_COLUMNS) and set(rows["model"]) == set(models)
    assert rows["source"].null_count() == 0 and rows["text"].null_count() == 0
    spectral = pl.read_csv(paths.spectral_table("csv"))
    heads = read_table(paths.heads_table())[0]
    milestones = read_table(paths.milestones_table("parquet"))[0]
    final_ablation = pl.read_csv(paths.final_ablation_table("csv"))
    for model in models:
        ranked = spectral.filter(pl.col("model") == model).sort("rank")
        n = ranked.height
        mine = rows.filter(pl.col("model") == model)
        at_all = mine.filter((pl.col("section") == "precision at K") & (pl.col("k") == n))["value"][0]
        assert at_all == pytest.approx((ranked["final_class"] != "none").mean())
        final = milestones.filter(pl.col("model") == model)["final_revision"][0]
        fraction = (heads.filter((pl.col("model") == model) & (pl.col("revision") == final))["class"] == "first").mean()
        across = mine.filter((pl.col("section") == "across models") & (pl.col("item") == "BOS fraction (synthetic)"))
        assert across["value"][0] == pytest.approx(fraction)
        table = final_ablation.filter((pl.col("model") == model) & (pl.col("probe") == "synthetic"))
        top1 = dict(zip(table["condition"], table["top1"], strict=False))
        claim = mine.filter(pl.col("item") == "3. screen vs matched random")["text"][0]
        if top1.get("screen") is not None:
            assert f"drop {100 * (top1['none'] - top1['screen']):.2f} pp" in claim, claim
        claims = mine.filter(pl.col("section") == "ablation claims")
        assert "untestable: the run measured no natural text" in claims["text"][-1]


def test_changing_a_milestone_threshold_reclassifies_nothing(toy_run, tmp_path):
    """A new milestone threshold reruns only the final tables and the figures drawn from them; the onset's head
    count also reruns the bootstrap (from the caches: each resample counts its new BOS heads from its own onset)."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["thresholds"]["bos_fraction_milestone"] = 0.4
    with edited(toy_config(toy_run), config) as changed:
        jobs = planned_jobs(toy_run.parents[1], changed)
    tables = {"head_tables": 1, "plot_emergence": 1, "plot_heatmap": 3, "plot_trajectories": 3, "findings": 1,
              "table_pages": 1}  # fmt: skip
    assert jobs == tables
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["thresholds"]["induction_onset_heads"] = 4
    with edited(toy_config(toy_run), config) as changed:
        jobs = planned_jobs(toy_run.parents[1], changed)
    assert jobs == {**tables, "bootstrap_heads": len(TOY_REVISIONS)}


def _sweeping(revisions: list[str]) -> dict:
    """SMALL_CONFIG over a four-step toy grid, sweeping ``revisions``, primitives on every second grid revision."""
    model = {**SMALL_CONFIG["models"]["toy-gptneox"], "revisions": revisions}
    model["toy"] = {**model["toy"], "schedule": [0, 10, 20, 30]}
    primitives = {**SMALL_CONFIG["primitives"], "revisions": {"every": 2}}
    return {**SMALL_CONFIG, "primitives": primitives, "models": {"toy-gptneox": model}}


def test_adding_or_removing_a_revision_runs_only_its_jobs_and_the_aggregates(tmp_path):
    """Revisions inserted or appended are measured by one job each (one weight load); nothing else is measured again.

    Primitives go to every second revision of the toy's grid (step0, step20 and the
    last, step30), whichever of them are swept, so adding or removing a revision
    changes no other revision's selection; the disk-bound order holds only revisions
    still to measure, so no measured revision is fetched again.
    """
    workdir = tmp_path / "work"
    first = write_config(tmp_path / "sweep.yaml", _sweeping(["step0", "step20"]))
    snakemake(workdir, first, "--cores", "2")
    assert planned_jobs(workdir, first) == {}
    second = write_config(tmp_path / "sweep.yaml", _sweeping(["step0", "step10", "step20", "step30"]))
    aggregates = {"classify_heads": 1, "bootstrap_heads": 1, "head_tables": 1, "plot_emergence": 1, "plot_heatmap": 1,
                  "plot_trajectories": 1, "sweep_overhead": 1, "spectral_model": 1, "spectral_table": 1,
                  "plot_spectral": 1, "findings": 1, "table_pages": 1}  # fmt: skip
    primitive_aggregates = {"primitive_tables": 1, "plot_primitive_gap": 1, "plot_primitive_scaling": 1}
    assert planned_jobs(workdir, second) == {
        "fetch_snapshot": 2,
        "measure_heads": 1,
        "measure_revision": 1,
        "score_primitives": 1,
        **aggregates,
        **primitive_aggregates,
    }
    snakemake(workdir, second, "--cores", "2")
    results = run_results(workdir, second)
    emergence = pl.read_parquet(results / "tables" / "emergence.parquet")
    assert emergence["revision"].to_list() == ["step0", "step10", "step20", "step30"]
    gaps = pl.read_csv(results / "tables" / "primitive_gaps.csv")
    assert sorted(set(gaps["revision"])) == ["step0", "step20", "step30"]
    # counted by position in the swept list, every: 2 would now choose step0 and step30 only
    third = write_config(tmp_path / "sweep.yaml", _sweeping(["step0", "step10", "step30"]))
    assert planned_jobs(workdir, third) == {**aggregates, **primitive_aggregates}
    snakemake(workdir, third, "--cores", "2")
    gaps = pl.read_csv(results / "tables" / "primitive_gaps.csv")
    assert sorted(set(gaps["revision"])) == ["step0", "step30"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["models"]["toy-gptneox"].update(architecture="LlamaForCausalLM"), "architecture"),
        (lambda c: c["models"]["toy-gptneox"].update(revisions=["step0", "step7"]), "step7"),
        (lambda c: c["thresholds"].update(sink_alpha=1.5), "thresholds.sink_alpha"),
        (lambda c: c["probes"]["induction"].update(n_sequences=0), "n_sequences"),
        (lambda c: c["models"]["toy-gptneox"].update(colour="red"), "colour"),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    """A bad config stops Snakemake while it parses the workflow, naming the key, and writes nothing."""
    config = yaml.safe_load(yaml.safe_dump(SMALL_CONFIG))
    change(config)
    result = snakemake(tmp_path / "work", write_config(tmp_path / "bad.yaml", config), "--cores", "1", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "work" / "results").exists()
