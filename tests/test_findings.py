"""The study's findings (docs/methods.md, "Findings") against its published numbers, and how a run writes them.

Fed the study's published per-head selectivities (``fixtures/xu2026_final_selectivities.json``), its Phase-1
integrals (``xu2026_olmoe_spectral.json``, ``xu2026_olmo_spectral.json``, ``xu2026_pythia_1b_integrals.json``) and
its ablation results (``xu2026_ablation_results.json``), all from github.com/skydancerosel/mini_gpt at b87034c,
reproduce/paper3_probe_circuits/results (each fixture's ``source`` names its files), the findings give the numbers
its README prints. Where README and files disagree the tests follow the files (docs/methods.md says where).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import polars as pl
import pytest

import circuitsweep as cs
from circuitsweep.errors import ConfigError, DataError
from circuitsweep.heads.spectral import elbow_k, heuristic_k, resolve_top_k
from circuitsweep.io import contracts as C
from circuitsweep.milestones.findings import (
    Findings,
    across_models,
    findings,
    findings_html,
    findings_markdown,
    read_findings,
    write_findings,
)

FIXTURES = Path(__file__).parent / "fixtures"
#: fixture model -> (its key in the selectivity fixture, its integrals)
STUDY_MODELS = ("pythia-160m", "pythia-410m", "pythia-1b", "olmoe-1b-7b", "olmo-1b")


@cache
def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@cache
def final_heads(model: str) -> pl.DataFrame:
    """The study's final-checkpoint selectivities of ``model``, classified with its thresholds, as heads.parquet
    rows of one revision ``final``."""
    data = fixture("xu2026_final_selectivities.json")
    frame = pl.DataFrame(data["models"][model]["heads"], schema=data["columns"], orient="row")
    return cs.classify_heads(frame).with_columns(pl.lit(model).alias("model"), pl.lit("final").alias("revision"))


def integrals(model: str) -> dict[tuple[int, int], float]:
    """The study's published integral of each head of ``model`` (its Phase-1 feature files)."""
    if model == "pythia-1b":
        published = fixture("xu2026_pythia_1b_integrals.json")["integral"]
    else:
        spectral = {"olmoe-1b-7b": "xu2026_olmoe_spectral.json", "olmo-1b": "xu2026_olmo_spectral.json"}[model]
        published = {key: value["integral"] for key, value in fixture(spectral)["features"].items()}
    return {tuple(int(part[1:]) for part in key.split("_")): value for key, value in published.items()}


def spectral_table(model: str) -> pl.DataFrame:
    """``tables/spectral.csv`` rows of ``model`` from the study's integrals and final classes."""
    integral = integrals(model)
    heads = final_heads(model)
    return heads.select(
        "model",
        "layer",
        "head",
        pl.struct("layer", "head").map_elements(lambda r: integral[(r["layer"], r["head"])], pl.Float64)
        .alias("integral"),
        pl.col("revision").alias("final_revision"),
        pl.col("class").alias("final_class"),
        pl.col("induction_member").alias("screen"),
    ).with_columns(pl.col("integral").rank("ordinal", descending=True).cast(pl.Int64).alias("rank"))  # fmt: skip


def milestones(models: list[str]) -> pl.DataFrame:
    """A milestones table of the final checkpoints alone (the study swept no revisions for these numbers)."""
    rows = []
    for model in models:
        heads = final_heads(model)
        bos = set(heads.filter(pl.col("class") == C.BOS_CLASS)["layer"])
        rows.append(
            {
                "model": model,
                "final_revision": "final",
                "layers_without_bos": [layer for layer in range(heads["layer"].max() + 1) if layer not in bos],
                "final_circuit_size": int(heads["induction_member"].sum()),
                "induction_onset_revision": None,
                "induction_onset_tokens": None,
                "bos_t50_revision": "final",
                "bos_t50_tokens": 10**12,
                "bos_to_induction_ratio": None,
                "bos_peak_fraction": float((heads["class"] == C.BOS_CLASS).mean()),
                "bos_peak_revision": "final",
            }
        )
    return pl.DataFrame(rows, schema_overrides={"induction_onset_revision": pl.String, "bos_peak_fraction": pl.Float64,
                                                 "bos_peak_revision": pl.String, "induction_onset_tokens": pl.Int64,
                                                 "bos_to_induction_ratio": pl.Float64})  # fmt: skip


#: the study's result files: run -> (probe, K of its spectral conditions)
ABLATION_RUNS = {
    "olmoe": {"olmoe_k45": ("synthetic", 45), "olmoe_k6": ("synthetic", 6), "olmoe_natural": ("natural", None)},
    "olmo": {"olmo_k45": ("synthetic", 45), "olmo_natural": ("natural", None)},
}


def _condition(name: str, probe: str) -> str:
    """The study's condition name as this workflow's (heads.final_ablation)."""
    if name == "baseline":
        return "none"
    if name.startswith("ablate_top"):
        return "spectral_top"
    if "matched_random" in name:
        return "spectral_random" if probe == "synthetic" else "screen_random"
    if "full_spec_layers" in name:
        return "spectral_layers"
    if "all_heads_in" in name:
        return "screen_layers"
    if "_only" in name:
        return "induction_head" if probe == "synthetic" else "screen_head"
    return "screen"  # ablate_induction_screen_>=50x, ablate_4_induction_heads, ablate_induction_circuit


def study_ablation(model: str, study: str) -> pl.DataFrame:
    """The study's published ablation results of ``study`` (olmoe, olmo) as ``tables/final_ablation`` rows."""
    rows = {}
    for run, (probe, k) in ABLATION_RUNS[study].items():
        for result in fixture("xu2026_ablation_results.json")["runs"][run]["results"]:
            condition = _condition(result["name"], probe)
            # the spectral conditions and the study's singles (induction-class heads among the top K) carry K
            spectral = condition.startswith("spectral") or condition == "induction_head"
            heads = ",".join(f"L{layer}H{head}" for layer, picks in result["spec"].items() for head in picks)
            random = condition.endswith("_random")
            requested = k if condition in ("spectral_top", "spectral_random") else result["n_ablated"]
            key = (probe, condition, k if spectral else None, heads)
            rows[key] = {
                "model": model, "revision": "final", "probe": probe, "condition": condition,
                "k": k if spectral else None, "statistic": "draw 0" if random else "value", "heads": heads,
                "n_ablated": float(result["n_ablated"]), "shortfall": requested - result["n_ablated"],
                "loss": result["loss"], "top1": result["acc_top1"], "top5": result["acc_top5"],
                "mean_logit": result["mean_logit"], "note": None,
            }  # fmt: skip
    schema = {"k": pl.Int64, "shortfall": pl.Int64, "note": pl.String}
    # the study published means only: no per-sequence outcomes, so no paired tests
    untested = [pl.lit(None, pl.Int64 if c == "n_controls" else pl.Float64).alias(c) for c in C.ABLATION_TEST_COLUMNS]
    frame = pl.DataFrame(list(rows.values()), schema_overrides=schema).with_columns(untested)
    return frame.select(C.FINAL_ABLATION_TABLE_COLUMNS)


@cache
def olmoe_findings() -> Findings:
    model = "olmoe-1b-7b"
    return findings(spectral_table(model), final_heads(model), milestones([model]), study_ablation(model, "olmoe"),
                    [45, 6], {model: {"induction_circuit": 50}})  # fmt: skip


def values(frame: pl.DataFrame) -> dict[str, float]:
    return dict(zip(frame["item"], frame["value"], strict=True))


def text(result: Findings, model: str, section: str, item: str) -> str:
    rows = result.section(model, section).filter(pl.col("item") == item)
    assert rows.height == 1, (section, item, result.section(model, section)["item"].to_list())
    return rows["text"][0]


# --- the study's published numbers -------------------------------------------------


def test_olmoe_precision_at_k_is_the_studys():
    """Precision at K = 5, 10, 15, 45 and all 256 heads is OLMoE's 1.00, 1.00, 0.93, 0.96, 0.80 (to the printed
    precision; counts exact), and every K of its table (20, 30, 60, ... 200) too."""
    result = olmoe_findings()
    precision = result.section("olmoe-1b-7b", "precision at K")
    counts = dict(zip(precision["k"], precision["count"], strict=True))
    printed = {5: 1.00, 10: 1.00, 15: 0.93, 20: 0.95, 30: 0.97, 45: 0.96, 60: 0.95, 80: 0.96, 100: 0.93,
               130: 0.91, 160: 0.88, 200: 0.87, 256: 0.80}  # fmt: skip
    assert {k: round(v, 2) for k, v in zip(precision["k"], precision["value"], strict=True)} == printed
    assert counts == {5: 5, 10: 10, 15: 14, 20: 19, 30: 29, 45: 43, 60: 57, 80: 77, 100: 93, 130: 118, 160: 141,
                      200: 174, 256: 205}  # fmt: skip
    assert text(result, "olmoe-1b-7b", "precision at K", "all 256 heads") == "0.80 (205/256)"


def test_olmoe_non_bos_precision_is_the_tier1_scripts():
    """Without the class-first heads OLMoE's precision at 45 is 0.64 (29 of 45); 31 of its 82 non-BOS heads are
    classified (0.378, 12.1% of all heads), and at K = 5, 15, 30, 80 it is 1.00, 0.93, 0.90, 0.39."""
    result = olmoe_findings()
    rows = result.section("olmoe-1b-7b", "non-BOS precision at K")
    by_k = {k: (round(v, 2), c) for k, v, c in zip(rows["k"], rows["value"], rows["count"], strict=True) if k}
    assert by_k[45] == (0.64, 29)
    assert {k: by_k[k][0] for k in (5, 15, 30, 80)} == {5: 1.00, 15: 0.93, 30: 0.90, 80: 0.39}
    assert by_k[82] == (0.38, 31)
    overall = rows.filter(pl.col("item") == "non-BOS heads classified").row(0, named=True)
    assert (overall["count"], overall["total"], round(overall["value"], 3)) == (31, 82, 0.378)
    assert "12.1% of all 256 heads" in overall["text"]


def test_elbow_k_is_the_studys_for_olmoe_olmo_and_pythia_1b():
    """argmax(-diff(sorted integrals, 2)) + 1 of the study's feature files: OLMoE 9, OLMo 3, Pythia 1B 7; the
    17-19% heuristic of 256 heads is 43-48."""
    assert {m: elbow_k(list(integrals(m).values())) for m in ("olmoe-1b-7b", "olmo-1b", "pythia-1b")} == {
        "olmoe-1b-7b": 9,
        "olmo-1b": 3,
        "pythia-1b": 7,
    }
    assert heuristic_k(256) == (43, 48)
    assert values(olmoe_findings().section("olmoe-1b-7b", "K selection"))["elbow"] == 9
    assert "K = 43-48 of 256 heads" in text(olmoe_findings(), "olmoe-1b-7b", "K selection", "17-19% heuristic")


def test_olmoe_class_breakdowns_are_the_studys():
    """Top 45: first 23, previous 10, self 6, none 2, induction 2, duplicate 2; all 256: first 174, none 51,
    previous 12, self 11, induction 4, duplicate 4 (the README's tables, which its files agree with)."""
    rows = olmoe_findings().section("olmoe-1b-7b", "class breakdown")
    counts = dict(zip(rows["item"], rows["count"], strict=True))
    top = {cls: counts[f"top 45: {cls}"] for cls in ("first", "previous", "self", "none", "induction", "duplicate")}
    assert top == {"first": 23, "previous": 10, "self": 6, "none": 2, "induction": 2, "duplicate": 2}
    every = {cls: counts[f"all 256: {cls}"] for cls in ("first", "none", "previous", "self", "induction", "duplicate")}
    assert every == {"first": 174, "none": 51, "previous": 12, "self": 11, "induction": 4, "duplicate": 4}


def test_olmoe_selectivity_distribution_and_missed_screen_heads():
    """10 / 4 / 4 / 3 / 0 heads at induction selectivity >= 10, 30, 50, 100, 200; the top 45 hold L7H0 and L9H8
    and miss L5H10 and L12H14. The files rank L7H0 24th and L9H8 30th (the README says ~38 and ~41)."""
    result = olmoe_findings()
    distribution = values(result.section("olmoe-1b-7b", "induction selectivity"))
    assert [distribution[f">= {level}"] for level in (10, 30, 50, 100, 200)] == [10, 4, 4, 3, 0]
    top45 = result.section("olmoe-1b-7b", "screen heads and the top K").filter(pl.col("k") == 45).row(0, named=True)
    assert (top45["count"], top45["total"], top45["value"]) == (2, 4, 2)
    assert "(L7H0, L9H8)" in top45["text"] and "misses L12H14 (rank 52), L5H10 (rank 53)" in top45["text"]
    ranks = spectral_table("olmoe-1b-7b").filter(pl.col("final_class") == C.INDUCTION_CLASS).sort("rank")
    assert ranks.filter(pl.col("rank") <= 45).select("layer", "head", "rank").rows() == [(7, 0, 24), (9, 8, 30)]
    sel = final_heads("olmoe-1b-7b").filter(pl.col("class") == C.INDUCTION_CLASS).sort("layer")
    assert [round(v, 1) for v in sel.filter(pl.col("layer").is_in([7, 9]))["sel_induction"]] == [171.7, 157.9]


def test_five_models_bos_fractions_and_first_bos_layers():
    """Whole-model BOS fractions 43 / 58 / 54 / 68 / 78% (synthetic), first BOS layers L4 / L6 / L4 / L2 / L2,
    layers 0 and 1 without one in all five; the BOS share of layers 7 and up spans 58-67% (Pythia 160M), 19-100%
    (410M), 50-88% (1B), 56-100% (OLMoE) and 38-100% (OLMo) in the files, against the README's 50-67, 69-100,
    50-88, 80-100 and 80-100%."""
    models = list(STUDY_MODELS)
    heads = pl.concat([final_heads(m) for m in models], how="diagonal_relaxed")
    table = across_models(heads, milestones(models))
    assert table.columns == list(C.ACROSS_MODELS_COLUMNS)
    rows = {row["model"]: row for row in table.iter_rows(named=True)}
    assert {m: round(100 * rows[m]["bos_fraction"]) for m in models} == {
        "pythia-160m": 43, "pythia-410m": 58, "pythia-1b": 54, "olmoe-1b-7b": 68, "olmo-1b": 78,
    }  # fmt: skip
    assert {m: rows[m]["first_bos_layer"] for m in models} == {
        "pythia-160m": 4, "pythia-410m": 6, "pythia-1b": 4, "olmoe-1b-7b": 2, "olmo-1b": 2,
    }  # fmt: skip
    assert all(rows[m]["bos_per_layer"][:2] == [0, 0] for m in models)
    last = (rows["olmoe-1b-7b"]["bos_per_layer"][15], rows["olmo-1b"]["bos_per_layer"][15])
    assert last + (rows["pythia-410m"]["bos_per_layer"][22],) == (9, 6, 3)
    per_head = {m: final_heads(m)["head"].max() + 1 for m in models}
    spans = {m: (round(100 * min(rows[m]["bos_per_layer"][7:]) / per_head[m]),
                 round(100 * max(rows[m]["bos_per_layer"][7:]) / per_head[m])) for m in models}  # fmt: skip
    assert spans == {"pythia-160m": (58, 67), "pythia-410m": (19, 100), "pythia-1b": (50, 88),
                     "olmoe-1b-7b": (56, 100), "olmo-1b": (38, 100)}  # fmt: skip


def test_olmoe_ablation_claims_are_the_studys():
    """Fed OLMoE's published ablation results: (1) top 45 raise the loss by +3.09 against +2.27 for matched random
    (1.36x; the README prints +3.08); (2) the top 6 hold no screen head, 4.80% -> 3.20% against 6.80% for random;
    (3) the 4-head screen takes top-1 to 0.00% and wins against both K; (4) L7H0 alone 61%, L9H8 91%; (5) natural
    text 7.5x against matched random. Its synthetic scripts drew no random heads for the screen: said so."""
    model = "olmoe-1b-7b"
    claims = olmoe_findings().section(model, "ablation claims")
    by_item = {row["item"]: row for row in claims.iter_rows(named=True)}
    first = by_item["1. spectral picks vs matched random, K = 45"]
    assert "loss +3.09 for the top 45 vs +2.27 for matched random" in first["text"] and "1.36x" in first["text"]
    assert first["value"] == pytest.approx(3.0859375 - 2.2734375)
    second = by_item["2. screen heads among the picks, K = 6"]
    assert second["value"] == 0 and "4.80% -> 3.20% (matched random, 1 draw: 6.80%)" in second["text"]
    screen = by_item["3. screen vs matched random"]
    assert "4.80% -> 0.00%" in screen["text"] and "no matched-random rows" in screen["text"]
    assert screen["value"] is None
    for k in (45, 6):
        assert "distribution wins" in by_item[f"3. screen vs spectral picks, K = {k}"]["text"]
    assert "(61% of the baseline)" in by_item["4. L7H0 alone"]["text"]
    assert "(91% of the baseline)" in by_item["4. L9H8 alone"]["text"]
    natural = by_item["5. natural text: screen vs matched random"]
    assert natural["value"] == pytest.approx(7.5, rel=1e-5) and "7.5x" in natural["text"]
    assert "26.65% -> 25.15%" in natural["text"]


def test_olmo_natural_text_gives_no_ratio_against_a_random_draw_that_raised_top_1():
    """OLMo's screen lowers natural-text top-1 by 1.40 pp while its matched random raises it by 0.30 pp: no ratio
    (the README's "~5x"); its K = 45 random draw is 14 heads short (layers 0 and 1), and said so."""
    model = "olmo-1b"
    result = findings(spectral_table(model), final_heads(model), milestones([model]), study_ablation(model, "olmo"),
                      [45], {})  # fmt: skip
    by_item = {row["item"]: row for row in result.section(model, "ablation claims").iter_rows(named=True)}
    natural = by_item["5. natural text: screen vs matched random"]
    assert natural["value"] is None and "did not lower top-1" in natural["text"]
    assert "drop 1.40 pp" in natural["text"] and "drop -0.30 pp" in natural["text"]
    assert "the matched draw is 14 heads short" in by_item["1. spectral picks vs matched random, K = 45"]["text"]


# --- what a run cannot test, intervals, K ------------------------------------------------


def test_claims_a_run_cannot_test_say_why():
    """Without a final ablation every claim says it was not tested; without natural text claim 5 says so; a
    screen whose draw is empty has no control; an empty screen is no claim."""
    model = "olmoe-1b-7b"
    base = (spectral_table(model), final_heads(model), milestones([model]))
    untested = findings(*base, None, [45], {}).section(model, "ablation claims")
    assert untested.height == 6 and all(t.startswith("not tested: the run has no final-revision ablation")
                                        for t in untested["text"])  # fmt: skip
    synthetic = study_ablation(model, "olmoe").filter(pl.col("probe") == "synthetic")
    empty_draw = pl.DataFrame([{**synthetic.filter(pl.col("condition") == "screen").row(0, named=True),
                                "condition": "screen_random", "statistic": "draw 0", "heads": "", "n_ablated": 0.0,
                                "top1": None, "loss": None}], schema=synthetic.schema)  # fmt: skip
    claims = findings(*base, pl.concat([synthetic, empty_draw]), [45], {}).section(model, "ablation claims")
    texts = dict(zip(claims["item"], claims["text"], strict=True))
    assert texts["5. natural text: screen vs matched random"].startswith("untestable: the run measured no natural")
    assert (
        "no matched control (the screen heads leave no other head in their layers)"
        in texts["3. screen vs matched random"]
    )
    no_screen = synthetic.filter(~pl.col("condition").is_in(["screen", "induction_head"]))
    claims = findings(*base, no_screen, [45], {}).section(model, "ablation claims")
    assert (
        "untestable: empty screen"
        in dict(zip(claims["item"], claims["text"], strict=True))["3. screen vs matched random"]
    )


def test_paired_intervals_are_shown_where_the_ablation_table_has_them():
    """Columns ``<name>_ci_low``/``_ci_high``/``_p`` (the evidence issue's) reach the claim of their metric: the
    screen's natural-text excess top-1 drop; without them the interval columns stay empty."""
    model = "olmoe-1b-7b"
    table = study_ablation(model, "olmoe")
    mark = (pl.col("condition") == "screen") & (pl.col("probe") == "natural")
    extra = table.with_columns(
        pl.when(mark).then(0.004).otherwise(None).alias("top1_excess_drop_ci_low"),
        pl.when(mark).then(0.022).otherwise(None).alias("top1_excess_drop_ci_high"),
        pl.when(mark).then(0.003).otherwise(None).alias("top1_excess_drop_p"),
        pl.when(mark).then(0.01).otherwise(None).alias("loss_drop_ci_low"),
        pl.when(mark).then(0.02).otherwise(None).alias("loss_drop_ci_high"),
    )
    args = (spectral_table(model), final_heads(model), milestones([model]))
    row = findings(*args, extra, [45], {}).section(model, "ablation claims").filter(
        pl.col("item") == "5. natural text: screen vs matched random"
    ).row(0, named=True)  # fmt: skip
    assert (row["ci_low"], row["ci_high"], row["p"]) == (0.004, 0.022, 0.003)
    assert "(excess over the matched draws' mean: 95% interval [0.004, 0.022], p = 0.003)" in row["text"]
    plain = olmoe_findings().section(model, "ablation claims")
    assert plain["ci_low"].null_count() == plain.height


def test_spectral_top_k_takes_counts_shares_and_the_elbow():
    """0.176 of 256 heads is 45, ``elbow`` the elbow K, a count stays as asked (above the head count too); entries
    giving one K merge; anything else is refused naming the key."""
    olmoe = list(integrals("olmoe-1b-7b").values())
    tops = resolve_top_k([0.176, 6, "elbow", 300], olmoe)
    assert [(t.k, t.asked) for t in tops] == [(45, ("0.176",)), (6, ("6",)), (9, ("elbow",)), (300, ("300",))]
    assert tops[0].describe(256) == "K = 45: 17.6% of 256 heads, rounded down" and tops[1].describe(256) is None
    merged = resolve_top_k([9, "elbow"], olmoe)
    assert [(t.k, t.asked) for t in merged] == [(9, ("9", "elbow"))]
    assert [t.k for t in resolve_top_k([0.5, 0.01], [1.0, 2.0, 3.0])] == [1]  # floor, at least 1
    (shares,) = resolve_top_k([0.176, 0.0234], [float(i) for i in range(8)])  # both give K = 1 of 8 heads
    assert shares.how_chosen(8) == "17.6% of 8 heads, rounded down; 2.34% of 8 heads, at least 1"
    # the final ablation's note joins its notes with "; ", so one K's entries are joined with "and" there
    assert shares.describe(8) == "K = 1: 17.6% of 8 heads, rounded down and 2.34% of 8 heads, at least 1"
    assert elbow_k([3.0, 1.0]) == 2
    for bad in (0, 1.5, "knee", True):
        with pytest.raises(DataError, match="spectral_top_k"):
            resolve_top_k([bad], olmoe)


@pytest.mark.parametrize(
    ("value", "ok"), [([0.176, 6, "elbow"], True), ([1.5], False), ([0], False), (["knee"], False), ([0.2, 0.2], False)]
)
def test_config_schema_takes_shares_and_elbow(value, ok):
    """The schema accepts counts, shares in (0, 1) and ``elbow``; it refuses the rest in one line naming the key."""
    from circuitsweep.config.load import load_config, resolve_config, resolve_spectral_top_k

    config = load_config(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    config["ablation"]["spectral_top_k"] = value
    if ok:
        resolve_config(config)
        assert resolve_spectral_top_k(config) == tuple(value)
    else:
        with pytest.raises(ConfigError, match=r"ablation\.spectral_top_k"):
            resolve_config(config)


def test_final_conditions_take_shares_and_the_elbow():
    """The final ablation resolves a share and the elbow from the ranking's integrals; its ``k`` is the count and the
    pick's note says how K was chosen."""
    from circuitsweep.heads.final_ablation import final_conditions

    ranking = spectral_table("olmoe-1b-7b")
    final = final_heads("olmoe-1b-7b")
    conditions = final_conditions(ranking, final, 50.0, 16, [0.176, "elbow"], draws=1, seed=123)
    tops = [c for c in conditions if c.name == "spectral_top"]
    assert [(c.k, len(c.heads), c.note) for c in tops] == [
        (45, 45, "K = 45: 17.6% of 256 heads, rounded down"),
        (9, 9, "K = 9: the elbow of the sorted integrals"),
    ]
    assert {c.k for c in conditions if c.name == "spectral_random"} == {45, 9}


# --- files, the command, the notebook ---------------------------------------------------


def two_model_findings() -> tuple[Findings, list]:
    models = ["olmoe-1b-7b", "olmo-1b"]
    spectral = pl.concat([spectral_table(m) for m in models])
    heads = pl.concat([final_heads(m) for m in models], how="diagonal_relaxed")
    ablation = pl.concat([study_ablation("olmoe-1b-7b", "olmoe"), study_ablation("olmo-1b", "olmo")])
    thresholds = {model: {"induction_circuit": 50} for model in models}
    return findings(spectral, heads, milestones(models), ablation, [45, 6], thresholds), [45, 6]


def test_markdown_and_page_open_with_the_cross_model_table_and_hold_every_section():
    """With two models findings.md and the Findings page hold the cross-model table first, then per model a
    paragraph with each claim and every section, each row naming its tables; with one model no cross-model
    section."""
    result, spec = two_model_findings()
    markdown = findings_markdown(result, spec)
    across = markdown.index("## Across models")
    assert across < markdown.index("## olmoe-1b-7b") < markdown.index("## olmo-1b")
    for section in C.FINDINGS_SECTIONS[:-1]:
        assert markdown.count(f"### {section}\n") == 2, section
    assert "| olmoe-1b-7b | final | 256 | 68.0% | not measured | 0 0 6 11 " in markdown
    paragraph = result.paragraphs["olmoe-1b-7b"]
    assert "0.96 at K = 45" in paragraph and "(5) natural text:" in paragraph and "7.5x" in paragraph
    assert set(result.rows["source"]) <= {
        "spectral.csv", "heads.parquet (final revision)", "final_ablation.csv", "milestones.csv",
        "spectral.csv; final_ablation.csv",
    }  # fmt: skip
    page = findings_html(result, spec)
    assert page.index('class="across"') < page.index('class="paragraph"') < page.index('class="findings"')
    assert result.rows.filter(pl.col("section") == "across models")["model"].n_unique() == 2
    single = olmoe_findings()
    assert "## Across models" not in findings_markdown(single, [45, 6])
    assert single.rows.filter(pl.col("section") == "across models").height == 0


def test_findings_command_writes_the_files_from_tables_alone(tmp_path):
    """``circuitsweep findings`` reads the run's tables (no model: torch is never imported) and writes findings.csv
    with FINDINGS_COLUMNS, findings.md and findings.html; ``cs.findings`` gives the same rows."""
    from circuitsweep.io.tables import write_table

    result, spec = two_model_findings()
    paths = C.Paths(tmp_path)
    models = ["olmoe-1b-7b", "olmo-1b"]
    settings = {"models": {m: {"thresholds": {"induction_circuit": 50}} for m in models}}
    write_table(paths.spectral_table("parquet"), pl.concat([spectral_table(m) for m in models]), settings)
    heads = pl.concat([final_heads(m) for m in models], how="diagonal_relaxed")
    write_table(paths.heads_table(), heads, settings)
    write_table(paths.milestones_table("parquet"), milestones(models), settings)
    ablation = pl.concat([study_ablation("olmoe-1b-7b", "olmoe"), study_ablation("olmo-1b", "olmo")])
    write_table(paths.final_ablation_table("parquet"), ablation, {"models": {m: {"spectral_top_k": spec}
                                                                             for m in models}})  # fmt: skip
    code = (
        "import sys\nfrom circuitsweep.cli import main\n"
        f"code = main(['findings', '--spectral', {str(paths.spectral_table('parquet'))!r}, '--heads', "
        f"{str(paths.heads_table())!r}, '--milestones', {str(paths.milestones_table('parquet'))!r}, "
        f"'--final-ablation', {str(paths.final_ablation_table('parquet'))!r}, '--spectral-top-k', '[45, 6]', "
        f"'--csv', {str(paths.findings('csv'))!r}, '--markdown', {str(paths.findings('md'))!r}, "
        f"'--html', {str(paths.findings('html'))!r}])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    written = pl.read_csv(paths.findings("csv"), schema_overrides={"text": pl.String})
    assert written.columns == list(C.FINDINGS_COLUMNS)
    assert written.height == result.rows.height and written["text"].to_list() == result.rows["text"].to_list()
    assert paths.findings("md").read_text().startswith("# Findings")
    assert "<h2>Across models</h2>" in paths.findings("html").read_text()
    again = read_findings(paths.spectral_table("parquet"), paths.heads_table(), paths.milestones_table("parquet"),
                          paths.final_ablation_table("parquet"), spec)  # fmt: skip
    assert again.rows.equals(result.rows)
    notebook = cs.findings(_results(tmp_path))
    assert notebook.rows.equals(result.rows) and notebook.across_models.equals(result.across_models)
    write_findings(result, spec, tmp_path / "a.csv", tmp_path / "a.md", tmp_path / "a.html")
    assert (tmp_path / "a.md").read_text() == paths.findings("md").read_text()


def _results(root: Path):
    """read_results' tables of a folder holding only the tables the findings read (plus an empty emergence)."""
    from circuitsweep.api import Results
    from circuitsweep.io.tables import read_table

    paths = C.Paths(root)
    heads, metadata = read_table(paths.heads_table())
    final_ablation, ablation_metadata = read_table(paths.final_ablation_table("parquet"))
    return Results(heads=heads, emergence=pl.DataFrame(), milestones=read_table(paths.milestones_table("parquet"))[0],
                   settings=metadata["models"], spectral=read_table(paths.spectral_table("parquet"))[0],
                   final_ablation=final_ablation,
                   final_ablation_settings=ablation_metadata["models"])  # fmt: skip


def test_notebook_findings_needs_a_spectral_table():
    """``cs.findings`` of results without a spectral table says what is missing in one line."""
    from circuitsweep.api import Results

    empty = Results(heads=pl.DataFrame(), emergence=pl.DataFrame(), milestones=pl.DataFrame(), settings={})
    with pytest.raises(ConfigError, match="no spectral table"):
        cs.findings(empty)
    assert "findings" in cs.__all__


def test_natural_text_bos_fraction_comes_from_the_natural_classes():
    """With natural-text classes in the heads table, the cross-model table gives their BOS fraction beside the
    synthetic one; without them it says "not measured"."""
    model = "pythia-160m"
    heads = final_heads(model)
    natural = heads.with_columns(
        pl.when(pl.col("layer") >= 6).then(pl.lit(C.BOS_CLASS)).otherwise(pl.lit(C.NO_CLASS)).alias("natural_class")
    )
    row = across_models(natural, milestones([model])).row(0, named=True)
    assert row["natural_bos_fraction"] == pytest.approx(6 / 12) and row["bos_fraction"] == pytest.approx(62 / 144)
    assert across_models(heads, milestones([model]))["natural_bos_fraction"].to_list() == [None]


def test_selectivity_levels_name_the_runs_thresholds_and_single_heads_say_rise_or_drop():
    """The run's class and circuit thresholds join the study's levels, named (a toy run's 8 and 12 are no study
    level); a single head whose ablation raised top-1 says "rise", never a negative drop."""
    model = "olmoe-1b-7b"
    args = (spectral_table(model), final_heads(model), milestones([model]))
    thresholds = {model: {"class_selectivity": 30, "induction_circuit": 40}}
    rows = findings(*args, None, [45], thresholds).section(model, "induction selectivity")
    texts = dict(zip(rows["item"], rows["text"], strict=True))
    assert list(texts) == [">= 10", ">= 30", ">= 40", ">= 50", ">= 100", ">= 200"]
    assert texts[">= 30"].startswith("4 heads (the class threshold): ") and "(the circuit threshold)" in texts[">= 40"]
    table = study_ablation(model, "olmoe")
    raised = table.with_columns(
        pl.when(pl.col("heads") == "L7H0").then(0.06).otherwise(pl.col("top1")).alias("top1")
    )  # fmt: skip
    result = findings(*args, raised, [45], {})
    single = result.section(model, "ablation claims").filter(pl.col("item") == "4. L7H0 alone").row(0, named=True)
    assert single["value"] == pytest.approx(-0.012) and "a top-1 rise of 0.012 (25% of the baseline)" in single["text"]
    assert "L7H0 alone: top-1 rise 0.012" in result.paragraphs[model]


# --- wording: the quantity tested, units, counts ------------------------------------------------


def hand_run() -> tuple[tuple, list[int]]:
    """One model ``m`` of 8 heads (2 layers of 4), by hand: the screen L1H0, L1H2 (ranks 1 and 3); matched draws
    whose draw 0 disagrees with their mean of 3; L1H0 alone lowers top-1, L1H2 alone raises it."""
    names = [(1, 0), (1, 1), (1, 2), (0, 0), (0, 1), (0, 2), (0, 3), (1, 3)]  # rank order
    sel = {(1, 0): 40.0, (1, 2): 20.0}
    classes = {(1, 0): "induction", (1, 1): "previous", (1, 2): "induction"}
    heads = pl.DataFrame([{"model": "m", "revision": "final", "layer": layer, "head": head,
                           "class": classes.get((layer, head), C.BOS_CLASS),
                           "sel_induction": sel.get((layer, head), 1.0)} for layer, head in names])  # fmt: skip
    spectral = pl.DataFrame([{"model": "m", "layer": layer, "head": head, "integral": 10.0 - rank,
                              "final_revision": "final", "final_class": classes.get((layer, head), C.BOS_CLASS),
                              "screen": (layer, head) in sel, "rank": rank}
                             for rank, (layer, head) in enumerate(names, 1)])  # fmt: skip
    mile = pl.DataFrame([{"model": "m", "final_revision": "final", "layers_without_bos": [1], "final_circuit_size": 2,
                          "induction_onset_revision": None, "induction_onset_tokens": None,
                          "bos_t50_revision": None, "bos_t50_tokens": None, "bos_to_induction_ratio": None}],
                        schema_overrides={"induction_onset_revision": pl.String, "induction_onset_tokens": pl.Int64,
                                          "bos_t50_revision": pl.String, "bos_t50_tokens": pl.Int64,
                                          "bos_to_induction_ratio": pl.Float64})  # fmt: skip

    def row(probe, condition, k=None, statistic="value", heads="", n=1.0, **values):
        return {"model": "m", "revision": "final", "probe": probe, "condition": condition, "k": k,
                "statistic": statistic, "heads": heads, "n_ablated": n, "shortfall": 0, **values}  # fmt: skip

    def draws(probe, family, k, n, draw0, mean):
        return [row(probe, family, k, "draw 0", "L0H1", n, **draw0), row(probe, family, k, "mean of 3", "", n, **mean),
                row(probe, family, k, "sd of 3", "", n, loss=0.1, top1=0.1)]  # fmt: skip

    excess_loss = {"loss_excess_increase_ci_low": 0.2, "loss_excess_increase_ci_high": 0.5,
                   "loss_excess_increase_p": 0.001, "n_controls": 3}  # fmt: skip
    excess_top1 = {"top1_excess_drop_ci_low": 0.40625, "top1_excess_drop_ci_high": 0.6, "top1_excess_drop_p": 1e-5,
                   "n_controls": 3}  # fmt: skip
    rows = [
        row("synthetic", "none", n=0.0, loss=2.0, top1=0.8),
        row("synthetic", "spectral_top", 1, heads="L1H0", loss=2.4, top1=0.6, **excess_loss),
        *draws("synthetic", "spectral_random", 1, 1.0, {"loss": 2.9, "top1": 0.5}, {"loss": 2.1, "top1": 0.78}),
        row("synthetic", "spectral_top", 2, heads="L1H0,L1H1", n=2.0, loss=2.5, top1=0.55, **excess_loss),
        *draws("synthetic", "spectral_random", 2, 2.0, {"loss": 3.0, "top1": 0.5}, {"loss": 2.2, "top1": 0.7}),
        row("synthetic", "screen", heads="L1H0,L1H2", n=2.0, loss=3.0, top1=0.2, **excess_top1),
        *draws("synthetic", "screen_random", None, 2.0, {"loss": 2.0, "top1": 0.85}, {"loss": 2.1, "top1": 0.7}),
        row(
            "synthetic",
            "screen_head",
            heads="L1H0",
            loss=2.3,
            top1=0.64,
            top1_drop=0.16,
            top1_drop_ci_low=0.09375,
            top1_drop_ci_high=0.2266,
            top1_drop_p=5.5e-6,
        ),
        row(
            "synthetic",
            "screen_head",
            heads="L1H2",
            loss=2.0,
            top1=0.81,
            top1_drop=-0.01,
            top1_drop_ci_low=-0.0234375,
            top1_drop_ci_high=0.0,
            top1_drop_p=1.0,
        ),
        row("natural", "none", n=0.0, loss=3.0, top1=0.5),
        row("natural", "screen", heads="L1H0,L1H2", n=2.0, loss=3.2, top1=0.3, **excess_top1),
        *draws("natural", "screen_random", None, 2.0, {"loss": 3.0, "top1": 0.55}, {"loss": 3.1, "top1": 0.45}),
    ]
    schema = {c: pl.Float64 for c in C.FINAL_ABLATION_TABLE_COLUMNS} | {
        "model": pl.String, "revision": pl.String, "probe": pl.String, "condition": pl.String, "k": pl.Int64,
        "statistic": pl.String, "heads": pl.String, "shortfall": pl.Int64, "n_controls": pl.Int64, "note": pl.String,
    }  # fmt: skip
    ablation = pl.DataFrame(rows, schema=schema)
    return (spectral, heads, mile, ablation), [2, 1]


def hand_claims() -> tuple[dict[str, dict], str]:
    args, spec = hand_run()
    result = findings(*args, spec, {"m": {"induction_circuit": 12}})
    claims = {row["item"]: row for row in result.section("m", "ablation claims").iter_rows(named=True)}
    return claims, result.paragraphs["m"]


def test_matched_random_claims_compare_with_the_mean_of_the_draws_they_test_against():
    """Claims 1, 2, 3 and 5 compare with the mean of the scored draws, the quantity their excess interval is against;
    draw 0 and its ratio, the study's figures (OLMoE's 7.5x is draw 0's), stand beside it under their own name, never
    as the claim's ratio or in the paragraph, and a draw 0 that did not lower top-1 gives no ratio."""
    claims, paragraph = hand_claims()
    first = claims["1. spectral picks vs matched random, K = 1"]
    assert "loss +0.40 for the top 1 vs +0.10 for matched random (mean of 3 draws" in first["text"], first["text"]
    assert (
        "(mean of 3 draws; draw 0, the study's, +0.90, a ratio of 0.44x against it): 4.00x the damage" in first["text"]
    )
    assert "0.44x" not in paragraph
    assert first["value"] == pytest.approx(0.3)
    assert "top 1: loss +0.40 vs +0.10 for matched random (mean of 3 draws; 4.00x the damage)" in paragraph
    held = claims["2. screen heads among the picks, K = 2"]["text"]
    assert "(matched random, mean of 3 draws: 70.00%)" in held, held
    screen = claims["3. screen vs matched random"]
    assert screen["value"] == pytest.approx(6.0) and "6.0x" in screen["text"], screen["text"]
    assert "matched random (mean of 3 draws) -> 70.00% (drop 10.00 pp; draw 0, the study's, 85.00%):" in screen["text"]
    assert "did not lower top-1" not in screen["text"] + paragraph
    natural = claims["5. natural text: screen vs matched random"]
    assert natural["value"] == pytest.approx(4.0) and "mean of 3 draws" in natural["text"], natural["text"]


def test_a_ratio_over_a_control_that_did_nothing_measurable_says_so():
    """The study's ratio (picks' or screen's damage over matched random's) stays, but where the matched draws'
    own change has a paired interval reaching 0 the text says the ratio rests on noise (a default toy's
    K = 1 read "886.81x the damage" over a random rise of +0.0003); a control clear of 0 gets no caveat."""
    (spectral, heads, mile, ablation), spec = hand_run()
    mean = pl.col("statistic") == "mean of 3"
    k1 = mean & (pl.col("condition") == "spectral_random") & (pl.col("k") == 1)
    screen = mean & (pl.col("condition") == "screen_random") & (pl.col("probe") == "synthetic")
    noisy = ablation.with_columns(
        pl.when(k1).then(-0.01).otherwise(pl.col("loss_increase_ci_low")).alias("loss_increase_ci_low"),
        pl.when(k1).then(0.012).otherwise(pl.col("loss_increase_ci_high")).alias("loss_increase_ci_high"),
        pl.when(screen).then(-0.03).otherwise(pl.col("top1_drop_ci_low")).alias("top1_drop_ci_low"),
        pl.when(screen).then(0.2).otherwise(pl.col("top1_drop_ci_high")).alias("top1_drop_ci_high"),
    )
    result = findings(spectral, heads, mile, noisy, spec, {"m": {"induction_circuit": 12}})
    claims = {row["item"]: row for row in result.section("m", "ablation claims").iter_rows(named=True)}
    first = claims["1. spectral picks vs matched random, K = 1"]["text"]
    assert (
        "4.00x the damage, over a matched-random change not distinguishable from 0 (95% interval [-0.010, 0.012])"
        in first
    )
    assert "4.00x the damage, random's change within noise" in result.paragraphs["m"]
    assert "not distinguishable" not in claims["1. spectral picks vs matched random, K = 2"]["text"]
    third = claims["3. screen vs matched random"]
    assert (
        "6.0x, over a matched-random change not distinguishable from 0 (95% interval [-0.030, 0.200])" in third["text"]
    )
    assert third["value"] == pytest.approx(6.0)
    clear = ablation.with_columns(
        pl.when(screen).then(0.02).otherwise(pl.col("top1_drop_ci_low")).alias("top1_drop_ci_low"),
        pl.when(screen).then(0.2).otherwise(pl.col("top1_drop_ci_high")).alias("top1_drop_ci_high"),
    )
    result = findings(spectral, heads, mile, clear, spec, {"m": {"induction_circuit": 12}})
    texts = result.section("m", "ablation claims")["text"].to_list()
    assert not any("not distinguishable" in text for text in texts)


def test_single_heads_give_the_absolute_drop_in_the_unit_of_its_interval():
    """A head alone states its absolute top-1 drop with the interval of that drop (3 decimals), the share of the
    baseline labelled as such; ``value`` is the drop too, so value and interval share a unit; a rise says so."""
    claims, paragraph = hand_claims()
    drop = claims["4. L1H0 alone"]
    assert "a top-1 drop of 0.160 (20% of the baseline; 95% interval [0.094, 0.227], p = 5.5e-06)" in drop["text"]
    assert drop["value"] == pytest.approx(0.16) and drop["ci_low"] <= drop["value"] <= drop["ci_high"]
    assert "L1H0 alone: top-1 drop 0.160 (95% interval [0.094, 0.227], p = 5.5e-06)" in paragraph
    rise = claims["4. L1H2 alone"]
    assert "a top-1 rise of 0.010 (1% of the baseline; as a drop -0.010: 95% interval [-0.023, 0.000]" in rise["text"]
    assert rise["value"] == pytest.approx(-0.01)
    every = " ".join(row["text"] for row in claims.values()) + paragraph
    bounds = re.findall(r"95% interval \[([^\]]*)\]", every)
    assert bounds and all(re.fullmatch(r"-?\d+\.\d{3}, -?\d+\.\d{3}", b) for b in bounds), bounds
    assert "[0.406, 0.600]" in claims["3. screen vs matched random"]["text"]


def test_counts_agree_in_number_and_equal_k_ranges_collapse():
    """One head is "1 head" and "a screen head"; a 17-19% heuristic whose ends agree is one K (8 heads: K = 1)."""
    args, spec = hand_run()
    result = findings(*args, spec, {"m": {"induction_circuit": 12}})
    claims = dict(zip(*result.section("m", "ablation claims").select("item", "text"), strict=True))
    assert "the top 1 (1 head, 1 of them a screen head)" in claims["3. screen vs spectral picks, K = 1"]
    assert "the top 2 (2 heads, 1 of them a screen head)" in claims["3. screen vs spectral picks, K = 2"]
    assert claims["2. screen heads among the picks, K = 1"].startswith("the top 1 holds 1 of the 2 screen heads")
    assert text(result, "m", "K selection", "17-19% heuristic") == "K = 1 of 8 heads"
    assert "(17-19% heuristic: 1)" in result.paragraphs["m"]
    assert text(result, "m", "induction selectivity", ">= 30") == "1 head: L1H0"
    markdown = findings_markdown(result, spec)
    assert not re.search(r"\b1 heads\b|\b1-1\b|\b1 of them screen heads", markdown), markdown
