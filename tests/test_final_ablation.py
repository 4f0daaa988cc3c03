"""The study's ablation at the final revision: its conditions, its draws and its table."""

from __future__ import annotations

import polars as pl
import pytest
import torch
from planted import FIRST_TOKEN
from test_ablation import PROBES, copying_model
from test_spectral_ranking import study, trajectory_rows
from test_study_screen import classified as study_classified

import circuitsweep as cs
from circuitsweep import revision_stage
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.heads.ablation import score_targets, synthetic_probe
from circuitsweep.heads.final_ablation import final_ablation_rows, final_conditions, rows_frame, summary
from circuitsweep.heads.matched import by_layer, heads_label
from circuitsweep.io import contracts as C


def spec(heads) -> dict[str, list[int]]:
    """Heads as the study's result files write them: layer -> heads, layers in order of first appearance."""
    return {str(layer): picks for layer, picks in by_layer(heads)}


def study_final(data: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The study's ranking (from its features file) and a final revision whose screen is its natural-text circuit
    (every screen head of best class first, as in OLMo, except where the study classified it induction)."""
    ranking = pl.DataFrame(
        [
            {"layer": int(k.split("_")[0][1:]), "head": int(k.split("_")[1][1:]), "integral": v["integral"]}
            for k, v in data["features"].items()
        ]
    ).with_columns(pl.col("integral").rank("ordinal", descending=True).cast(pl.Int64).alias("rank"))
    screen = {(int(layer), head) for layer, heads in data["natural"]["screen"].items() for head in heads}
    final = pl.DataFrame(
        [
            {
                "layer": layer,
                "head": head,
                "class": "first",
                "sel_induction": 100.0 if (layer, head) in screen else 1.0,
            }
            for layer in range(16)
            for head in range(16)
        ]
    )
    return ranking, final


@pytest.mark.parametrize("model", ["olmo", "olmoe"])
def test_conditions_reproduce_the_studys_picks_and_draw_zero(model: str) -> None:
    """From the study's ranking, K = 45 and 6 give its spectral picks in its order; draw 0 of each matched-random
    family (one RandomState(123) each) is the study's (layers in rank order for the picks, ascending for the
    screen), including OLMo's shortfall (layer 0: 14 picks, 2 other heads; layer 1: 9 picks, 7 others)."""
    data = study(model)
    ranking, final = study_final(data)
    conditions = final_conditions(ranking, final, 50.0, 16, [45, 6], draws=5, seed=123)
    named = {(c.name, c.k, c.draw): c for c in conditions}
    for k in (45, 6):
        expected = data[f"ablation_k{k}"]
        assert spec(named[("spectral_top", k, None)].heads) == expected["picks"]
        drawn = named[("spectral_random", k, 0)]
        assert spec(drawn.heads) == expected["matched_random"]
        assert drawn.n_requested == k and drawn.shortfall == k - sum(map(len, expected["matched_random"].values()))
        layers = named[("spectral_layers", k, None)]
        assert len(layers.heads) == 16 * len(expected["picks"]) and layers.shortfall == 0
    assert spec(named[("screen", None, None)].heads) == data["natural"]["screen"]
    assert spec(named[("screen_random", None, 0)].heads) == data["natural"]["matched_random"]
    assert len({named[("screen_random", None, d)].heads for d in range(5)}) > 1
    if model == "olmo":
        short = named[("spectral_random", 45, 0)]
        assert short.shortfall == 14 and short.note.startswith("layers [0, 1] have fewer other heads")
    singles = [c.heads[0] for c in conditions if c.name == "screen_head"]
    assert singles == sorted(named[("screen", None, None)].heads)
    assert not [c for c in conditions if c.name == "induction_head"]  # every screen head here is of class first


def test_k_above_the_head_count_is_clipped_and_recorded() -> None:
    """K larger than the model's heads ablates every head; the row records the shortfall and says why, and the
    matched-random draw, left with no other head, is an empty draw with its shortfall."""
    ranking = pl.DataFrame({"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1], "rank": [4, 2, 1, 3]})
    final = pl.DataFrame(
        {
            "layer": [0, 0, 1, 1],
            "head": [0, 1, 0, 1],
            "class": ["none", "induction", "first", "none"],
            "sel_induction": [1.0, 40.0, 60.0, 1.0],
        }  # fmt: skip
    )
    conditions = final_conditions(ranking, final, 50.0, 2, [45], draws=2, seed=123)
    top = conditions[1]
    assert (top.name, top.heads, top.shortfall) == ("spectral_top", ((1, 0), (0, 1), (1, 1), (0, 0)), 41)
    assert "exceeds the model's 4 heads" in top.note
    random = [c for c in conditions if c.name == "spectral_random"]
    assert [c.heads for c in random] == [(), ()] and {c.shortfall for c in random} == {4}
    assert [c.heads for c in conditions if c.name == "screen"] == [((1, 0),)]
    assert [c.heads for c in conditions if c.name == "induction_head"] == [((0, 1),)]  # class induction, below 50
    assert [c.heads for c in conditions if c.name == "screen_head"] == [((1, 0),)]


def test_a_draw_without_choice_says_every_draw_is_the_same() -> None:
    """A screen holding half of its layer leaves exactly its size of other heads: each draw is the same heads,
    and the rows say so (a standard deviation of 0 over the draws is not agreement); with room to choose, no
    note."""
    ranking = pl.DataFrame({"layer": [1, 1, 1, 1, 0, 0, 0, 0], "head": [0, 1, 2, 3, 0, 1, 2, 3]}).with_row_index(
        "rank", offset=1
    ).with_columns(pl.col("rank").cast(pl.Int64))  # fmt: skip
    for screen, forced in (((0, 1), True), ((0,), False)):
        final = ranking.select("layer", "head").with_columns(
            pl.lit("none").alias("class"),
            pl.when((pl.col("layer") == 1) & pl.col("head").is_in(screen)).then(60.0).otherwise(1.0)
            .alias("sel_induction"),
        )  # fmt: skip
        conditions = final_conditions(ranking, final, 50.0, 4, [1], draws=3, seed=123)
        random = [c for c in conditions if c.name == "screen_random"]
        assert len(random) == 3 and all(c.shortfall == 0 for c in random)
        if forced:
            assert {c.heads for c in random} == {((1, 2), (1, 3))}
            assert all("every draw is the same heads" in c.note for c in random), random
        else:
            assert all(c.note is None for c in random) and len({c.heads for c in random}) > 1, random


@pytest.fixture(scope="module")
def planted_rows() -> pl.DataFrame:
    """The final-revision conditions scored on the planted copying model (induction head L1H1)."""
    model = copying_model()
    ranking = pl.DataFrame({"layer": [1, 0, 1, 0, 0, 1, 0, 1], "head": [1, 0, 0, 1, 2, 2, 3, 3]}).with_row_index(
        "rank", offset=1
    )
    final = ranking.select("layer", "head").with_columns(
        pl.when((pl.col("layer") == 1) & (pl.col("head") == 1)).then(pl.lit("first")).otherwise(pl.lit("none"))
        .alias("class"),
        pl.when((pl.col("layer") == 1) & (pl.col("head") == 1)).then(500.0).otherwise(1.0).alias("sel_induction"),
    )  # fmt: skip
    conditions = final_conditions(ranking.with_columns(pl.col("rank").cast(pl.Int64)), final, 50.0, 4, [1, 3], 3, 123)
    probe = synthetic_probe(PROBES, FIRST_TOKEN)
    rows = final_ablation_rows(model, conditions, [probe], 16, torch.device("cpu"))
    plain = score_targets(model, probe, 16, torch.device("cpu"))
    identity = {"model": "planted", "revision": "main", "step": 0, "tokens": 0}
    return rows_frame(rows, identity), plain


def test_planted_model_conditions_are_scored(planted_rows) -> None:
    """On the planted model: none equals an unhooked pass; ablating the top-1 pick (the induction head), the
    screen or its layer drops top-1 of B to chance; matched random heads of its layer leave it intact."""
    rows, plain = planted_rows
    assert rows.columns == list(C.FINAL_ABLATION_COLUMNS)
    get = {(r["condition"], r["k"], r["draw"]): r for r in rows.iter_rows(named=True)}
    none = get[("none", None, None)]
    assert {m: none[m] for m in plain} == pytest.approx(plain)
    assert none["top1"] > 0.9
    for key in (("spectral_top", 1, None), ("screen", None, None), ("screen_layers", None, None)):
        assert get[key]["top1"] < 0.1, key
    assert get[("spectral_top", 1, None)]["heads"] == "L1H1" and get[("screen_layers", None, None)]["n_ablated"] == 4
    for draw in range(3):
        random = get[("screen_random", None, draw)]
        assert random["top1"] > 0.9 and random["heads"].startswith("L1H") and random["heads"] != "L1H1"
    assert get[("spectral_top", 3, None)]["heads"] == "L1H1,L0H0,L1H0"
    assert get[("spectral_layers", 3, None)]["n_ablated"] == 8
    assert get[("screen_head", None, None)]["top1"] < 0.1


def test_summary_reads_like_the_studys_table(planted_rows) -> None:
    """The table keeps the conditions in run order, one value row each, and for each matched-random family its
    draw 0 (heads named), mean and SD over the draws."""
    rows, _ = planted_rows
    table = summary(rows)
    assert table.columns == list(C.FINAL_ABLATION_TABLE_COLUMNS)
    assert table["condition"].unique(maintain_order=True).to_list() == [
        "none", "spectral_top", "spectral_random", "spectral_layers", "screen", "screen_random", "screen_layers",
        "screen_head",
    ]  # fmt: skip
    random = table.filter(pl.col("condition") == "screen_random")
    assert random["statistic"].to_list() == ["draw 0", "mean of 3", "sd of 3"]
    draws = rows.filter(pl.col("condition") == "screen_random")
    assert random["top1"][1] == pytest.approx(draws["top1"].mean())
    assert random["heads"][0] == draws["heads"][0] and random["heads"][1] == ""
    assert table.filter(pl.col("condition") == "spectral_random")["k"].unique().sort().to_list() == [1, 3]


def test_every_final_row_has_its_paired_tests(planted_rows) -> None:
    """Every row but none and the SDs has its top-1 drop and loss increase against none with a 95% interval and
    p; spectral_top and screen also their excess over their draws' per-sequence mean. The planted head is lost on
    every one of the 16 sequences while its layer's random heads keep it: exact p 2^-16 both ways."""
    rows, _ = planted_rows
    table = summary(rows)
    tested = table.filter((pl.col("condition") != "none") & ~pl.col("statistic").str.starts_with("sd of"))
    for prefix in ("top1_drop", "loss_increase"):
        for suffix in ("", "_ci_low", "_ci_high", "_p"):
            assert tested[prefix + suffix].null_count() == 0, prefix + suffix
    assert table.filter(pl.col("statistic").str.starts_with("sd of"))["top1_drop_p"].null_count() == 3
    screen = table.filter(pl.col("condition") == "screen").row(0, named=True)
    assert screen["n_controls"] == 3 and screen["top1_excess_drop_p"] == pytest.approx(2.0**-16)
    assert screen["top1_drop_p"] == pytest.approx(2.0**-16) and screen["top1_excess_drop_ci_low"] > 0.9
    top = table.filter(pl.col("condition") == "spectral_top", pl.col("k") == 1).row(0, named=True)
    assert top["top1_excess_drop_p"] == pytest.approx(2.0**-16)
    alone = table.filter(pl.col("condition").is_in(["screen_layers", "screen_head", "screen_random"]))
    assert alone["n_controls"].null_count() == alone.height  # no matched control: no excess
    mean = table.filter(pl.col("condition") == "screen_random", pl.col("statistic") == "mean of 3").row(0, named=True)
    none = table.filter(pl.col("condition") == "none").row(0, named=True)
    assert mean["top1_drop"] == pytest.approx(none["top1"] - mean["top1"]) and mean["top1_drop_p"] > 0.05


def test_singles_of_one_condition_keep_their_own_tests() -> None:
    """Several heads alone share a condition (and K): each row's drop is its own (B lost on 8 of 8 sequences by
    one head, on none by the other), and every value row's top-1 drop is none's top-1 minus its own."""

    def row(condition: str, heads: str, top1: list[bool], k: int | None = None) -> dict:
        return {"probe": "synthetic", "condition": condition, "k": k, "draw": None, "heads": heads,
                "n_ablated": 1, "n_requested": 1, "shortfall": 0, "n_sequences": 8, "top1": sum(top1) / 8,
                "seq_top1": top1, "seq_top5": top1, "seq_loss": [0.0 if t else 1.0 for t in top1]}  # fmt: skip

    rows = [
        row("none", "", [True] * 8),
        row("screen_head", "L1H0", [False] * 8),
        row("screen_head", "L1H1", [True] * 8),
    ]
    rows += [row("induction_head", "L1H0", [False] * 8, 45), row("induction_head", "L1H1", [True] * 8, 45)]
    table = summary(rows_frame(rows, {"model": "m", "revision": "r", "step": 0, "tokens": 0}))
    for condition in ("screen_head", "induction_head"):
        singles = table.filter(pl.col("condition") == condition)
        assert singles["heads"].to_list() == ["L1H0", "L1H1"]
        assert singles["top1_drop"].to_list() == [1.0, 0.0] and singles["top1_drop_p"].to_list() == [2.0**-8, 1.0]
    scored = table.filter(pl.col("condition") != "none")
    assert (scored["top1_drop"] == 1.0 - scored["top1"]).all()


def test_the_studys_singles_are_the_induction_class_heads_among_the_top_k() -> None:
    """From the study's published OLMoE final selectivities (classes at 30) and its PR trajectories (the spectral
    ranking), the induction_head singles at K = 45 are L7H0 and L9H8, the study's, and not the other two
    induction-class heads, outside the top 45 (L5H10, L12H14), which stay screen_head singles under their own name."""
    ranking = cs.spectral_ranking(trajectory_rows(study("olmoe")))
    final = study_classified("olmoe-1b-7b")
    conditions = final_conditions(ranking, final, 50.0, 16, [45, 6], draws=1, seed=123)
    singles = {
        k: [heads_label(c.heads) for c in conditions if c.name == "induction_head" and c.k == k] for k in (45, 6)
    }
    assert sorted(singles[45]) == ["L7H0", "L9H8"]
    assert singles[6] == []  # the top 6 hold no induction-class head
    screen = [heads_label(c.heads) for c in conditions if c.name == "screen_head"]
    assert screen == ["L5H10", "L7H0", "L9H8", "L12H14"]


def test_final_revision_takes_a_fetch_place_until_its_ablation_is_current(tmp_path, monkeypatch) -> None:
    """With every revision measured, only the final one still needs a snapshot, until rows made with the
    planned settings exist; rows of other thresholds (or missing rows) put it back in the fetch order."""
    from test_workflow import REPO

    from circuitsweep.config.load import load_config
    from circuitsweep.io.cache_check import SETTINGS_KEY, settings_digest
    from circuitsweep.io.tables import write_table
    from circuitsweep.plan.sweep import plan_sweep

    plan = plan_sweep(load_config(REPO / "config" / "config.yaml"), REPO, C.Paths(tmp_path))
    model = next(iter(plan.models))
    final = plan.final_revision(model)
    assert final == max(plan.revisions[model], key=lambda r: (r.tokens, r.step)).name
    monkeypatch.setattr(revision_stage, "is_measured", lambda plan, m, r: True)
    others = [r.name for r in plan.revisions[model] if r.name != final]
    assert revision_stage.needs_snapshot(plan, model, final) and not any(
        revision_stage.needs_snapshot(plan, model, r) for r in others
    )
    rows = plan.paths.final_ablation_rows(model)
    rows.parent.mkdir(parents=True)
    settings = heads_jobs.final_ablation_settings(plan, model)
    write_table(rows, pl.DataFrame({"x": [1]}), {SETTINGS_KEY: settings_digest(settings)})
    assert not revision_stage.needs_snapshot(plan, model, final)
    other = {**settings, "thresholds": {**settings["thresholds"], "induction_circuit": 1e6}}
    write_table(rows, pl.DataFrame({"x": [1]}), {SETTINGS_KEY: settings_digest(other)})
    assert revision_stage.needs_snapshot(plan, model, final)
    # removing a measured revision changes the spectral ranking the ablation draws from: it runs again
    write_table(rows, pl.DataFrame({"x": [1]}), {SETTINGS_KEY: settings_digest(settings)})
    config = load_config(REPO / "config" / "config.yaml")
    config["models"][model]["revisions"] = [others[0], *others[2:], final]
    fewer = plan_sweep(config, REPO, C.Paths(tmp_path))
    assert revision_stage.needs_snapshot(fewer, model, final) and revision_stage.final_ablation_runs(fewer, model)


def test_spectral_screen_final_ablation_and_circuit_share_the_classifiers_membership() -> None:
    """The spectral table's ``screen``, the final ablation's ``screen`` condition and the per-revision ablated
    circuit are the classifier's ``induction_member`` (one rule): induction selectivity >= the cut, the cut itself
    included, whatever the class (a head of best class first is in, an induction-class head below the cut out)."""
    from circuitsweep.heads.ablation import circuit_heads
    from circuitsweep.heads.classify import Thresholds, head_classes
    from circuitsweep.heads.spectral import model_spectral

    best = [("first", 50.0), ("induction", 40.0), ("first", 49.9), ("induction", 70.0)]
    rows = []
    for index, (cls, induction) in enumerate(best):
        rows.append({"revision": "step1", "step": 1, "tokens": 10, "layer": index // 2, "head": index % 2, "pr": 1.0})
        rows[-1].update({column: 1.0 for column in C.SELECTIVITY_COLUMNS})
        rows[-1].update(sel_induction=induction, sel_first=100.0 if cls == "first" else 1.0)
    scores = pl.DataFrame(rows)
    thresholds = Thresholds(class_selectivity=30, induction_circuit=50, previous_circuit=50, sink_alpha=0.5)
    heads = head_classes(scores, thresholds)
    members = sorted(heads.filter(pl.col("induction_member")).select("layer", "head").rows())
    assert members == [(0, 0), (1, 1)] and heads["class"].to_list() == ["first", "induction", "first", "induction"]
    spectral = model_spectral(heads, "m", 50.0)
    assert sorted(spectral.filter(pl.col("screen")).select("layer", "head").rows()) == members
    conditions = final_conditions(spectral, heads, 50.0, 4, [1], 1, 0)
    assert [c.heads for c in conditions if c.name == "screen"] == [tuple(members)]
    assert circuit_heads(scores, 50.0) == members


@pytest.mark.slow
def test_small_toy_run_writes_spectral_and_final_ablation_and_adding_a_revision_measures_only_it(tmp_path) -> None:
    """A small toy run writes tables/spectral.*, tables/final_ablation.* and plots/spectral_<model>.png and
    leaves no snapshot behind; adding a revision then plans one measurement (not the final revision's again),
    the model's ranking and its final-revision ablation with its own snapshot."""
    import copy

    from test_workflow import SMALL_CONFIG, planned_jobs, snakemake, write_config

    config = copy.deepcopy(SMALL_CONFIG)
    config["ablation"] = {"enabled": True, "random_draws": 2, "n_sequences": 32}
    config["models"]["toy-gptneox"]["primitives"] = {"enabled": False}
    config["outdir"] = "results"
    path = write_config(tmp_path / "config.yaml", config)
    snakemake(tmp_path, path, "--cores", "2")
    results = tmp_path / "results"
    for name in ("tables/spectral.csv", "tables/spectral.parquet", "plots/spectral_toy-gptneox.png"):
        assert (results / name).is_file(), name
    for suffix in ("csv", "md", "parquet"):
        assert (results / f"tables/final_ablation.{suffix}").is_file()
    table = pl.read_csv(results / "tables/final_ablation.csv")
    assert {"none", "spectral_top", "screen"} <= set(table["condition"])
    top = table.filter(pl.col("condition") == "spectral_top")
    assert set(top["k"]) == {45, 6}
    # step0 and step20: one revision with tokens, no PR integral: no spectral pick, and the rows say so
    assert top["top1"].null_count() == top.height and all(n.startswith("not ranked") for n in top["note"])
    assert "spectral_layers" not in set(table["condition"])
    assert pl.read_csv(results / "tables/spectral.csv")["rank"].null_count() > 0
    assert not list((results / "snapshots").glob("*/*")) and not (results / "final_ablation/snapshot").exists()
    config["models"]["toy-gptneox"]["revisions"] = ["step0", "step10", "step20"]
    jobs = planned_jobs(tmp_path, write_config(path, config))
    assert jobs["measure_heads"] == 1 and jobs["fetch_snapshot"] == 1, jobs
    assert jobs["spectral_model"] == jobs["fetch_final_snapshot"] == jobs["final_ablation"] == 1, jobs


@pytest.mark.slow
def test_rerun_of_the_final_ablation_measures_no_revision_again(tmp_path) -> None:
    """Per-revision caches are permanent (DESIGN.md 2): after a run, adding a revision and changing a class
    threshold reruns the final-revision ablation (its own snapshot copy, in the final revision's fetch place)
    but plans the measurement of the added revision only, never the final revision's again, even when one
    snapshot on disk makes the final revision's fetch place wait for the added revision's caches."""
    import re
    import subprocess
    import sys

    import yaml
    from planted import save_planted_run
    from runenv import SNAKEFILE, job_env, job_logs
    from test_refine_workflow import PROFILE, _config

    run = tmp_path / "run"
    save_planted_run(run, [0, 100, 200], onset=100, causal=200)

    def snakemake(revisions: list[str], class_selectivity: float, *args: str) -> str:
        config = {**_config(run, revisions, None), "snapshots_on_disk": 1}
        config["thresholds"] = {**config["thresholds"], "class_selectivity": class_selectivity}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "-d", str(tmp_path / "work"), *PROFILE]
        command += ["--configfile", str(tmp_path / "config.yaml"), "--cores", "2", *args]
        result = subprocess.run(command, capture_output=True, text=True, env=job_env(), timeout=600, check=False)
        logs = job_logs(tmp_path / "work")
        assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{logs}"
        return result.stdout

    target = str(C.Paths().final_ablation_table("parquet"))
    snakemake(["checkpoint-0", "checkpoint-200"], 8, target)
    planned = snakemake(["checkpoint-0", "checkpoint-100", "checkpoint-200"], 6, target, "-n")
    measured = re.findall(r"rule measure_heads:\n(?:.*\n)*?\s+wildcards: model=planted, revision=(\S+)", planned)
    assert measured == ["checkpoint-100"], planned
    assert re.search(r"^fetch_final_snapshot\s+1$", planned, re.M) and re.search(r"^final_ablation\s+1$", planned, re.M)


def test_final_ablation_job_is_sized_for_all_its_passes() -> None:
    """The job's runtime counts one pass over the probe per condition (K families and the screen, each with its
    draws and full layers, plus single heads), not the measurement's probe tokens."""
    from test_workflow import REPO

    from circuitsweep.config.load import load_config
    from circuitsweep.plan import costs
    from circuitsweep.plan import resources as R
    from circuitsweep.plan.sweep import SINGLE_HEAD_ALLOWANCE, plan_sweep

    config = load_config(REPO / "config" / "config.yaml")
    config["ablation"] = {**config.get("ablation", {}), "enabled": True, "n_sequences": 100, "random_draws": 5}
    config["device"] = "cpu"
    plan = plan_sweep(config, REPO)
    model = next(iter(plan.models))
    probes = plan.models[model].probes
    per_pass = min(100, probes.induction.n_sequences) * probes.induction.seq_len
    assert plan.final_ablation_tokens(model) == per_pass * (1 + 3 * (5 + 2) + SINGLE_HEAD_ALLOWANCE)
    shape = {"hidden_size": 2048, "num_attention_heads": 16, "num_hidden_layers": 16, "vocab_size": 50304,
             "intermediate_size": 8192}  # fmt: skip
    plain = R.measure_size(
        shape, "float32", probes.to_dict(), "cpu", costs.revision_work(probes.to_dict(), None, shape)
    )
    ablation = R.measure_size(shape, "float32", probes.to_dict(), "cpu", costs.final_ablation_work(plan, model))
    assert costs.final_ablation_work(plan, model).final_ablation == plan.final_ablation_tokens(model)
    assert ablation.runtime > plain.runtime and ablation.mem_mb == plain.mem_mb
