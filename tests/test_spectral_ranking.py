"""The spectral phase's ranking (DESIGN.md 3 item 6) against the study's published Phase-1 files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import circuitsweep as cs
from circuitsweep.errors import DataError
from circuitsweep.heads.spectral import model_spectral
from circuitsweep.io import contracts as C

FIXTURES = Path(__file__).parent / "fixtures"


def study(model: str) -> dict:
    """The study's trajectory, features, top-45 picks and ablation specs (github.com/skydancerosel/mini_gpt at
    b87034c, reproduce/paper3_probe_circuits/results; the fixture's ``source`` names each file)."""
    return json.loads((FIXTURES / f"xu2026_{model}_spectral.json").read_text())


def trajectory_rows(data: dict) -> pl.DataFrame:
    rows = []
    for key, values in data["pr"].items():
        layer, head = (int(part[1:]) for part in key.split("_"))
        pairs = zip(data["tokens_B"], values, strict=True)
        rows += [{"layer": layer, "head": head, "tokens": t, "pr": v} for t, v in pairs]
    return pl.DataFrame(rows)


@pytest.mark.parametrize("model", ["olmo", "olmoe"])
def test_study_features_and_top45_recomputed_from_its_trajectories(model: str) -> None:
    """cs.spectral_ranking of the study's OLMo / OLMoE PR trajectories gives its feature files to 1e-6
    (integral, final, max, min PR, spread) and its top-45 spectral picks in rank order."""
    data = study(model)
    ranking = cs.spectral_ranking(trajectory_rows(data).sample(fraction=1.0, shuffle=True, seed=1))
    assert ranking.columns == ["layer", "head", "integral", "final_pr", "max_pr", "min_pr", "spread", "rank",
                               "n_revisions", "n_left_out"]  # fmt: skip
    assert ranking.height == 256 and set(ranking["n_revisions"]) == {10} and set(ranking["n_left_out"]) == {0}
    for row in ranking.iter_rows(named=True):
        expected = data["features"][f"L{row['layer']}_H{row['head']}"]
        for name in ("integral", "final_pr", "max_pr", "min_pr", "spread"):
            assert row[name] == pytest.approx(expected[name], abs=1e-6), (row["layer"], row["head"], name)
    top = ranking.sort("rank").head(45)
    assert [f"L{r['layer']}H{r['head']}" for r in top.iter_rows(named=True)] == data["top45"]


def test_zero_token_revisions_are_left_out_of_the_integral_and_counted() -> None:
    """A revision with 0 tokens (step 0) has no logarithm: left out of the integral, counted in n_left_out,
    but its PR is still the trajectory's max when it is the largest."""
    frame = pl.DataFrame(
        {
            "layer": [0] * 6,
            "head": [0, 0, 0, 1, 1, 1],
            "step": [0, 10, 100] * 2,
            "tokens": [0, 10, 100] * 2,
            "pr": [50.0, 3.0, 5.0, 1.0, 1.5, 0.5],
        }
    )
    ranking = cs.spectral_ranking(frame)
    first = ranking.row(0, named=True)
    assert first["integral"] == pytest.approx(0.5 * (2.0 + 4.0) * np.log(10.0))
    assert (first["max_pr"], first["final_pr"], first["spread"]) == (50.0, 5.0, 47.0)
    assert ranking["n_left_out"].to_list() == [1, 1] and ranking["rank"].to_list() == [1, 2]
    assert ranking.row(1, named=True)["integral"] == pytest.approx(0.5 * 0.5 * np.log(10.0))


def test_a_multi_model_table_is_ranked_per_model_in_rank_order() -> None:
    """A sweep's heads table (several models, each with its own revisions) is ranked model by model; rows come
    in rank order, with the model; a model's ragged trajectory is named with the model."""

    def rows(model: str, tokens: list[int], prs: dict[int, list[float]]) -> list[dict]:
        return [{"model": model, "layer": 0, "head": head, "step": t, "tokens": t, "pr": pr}
                for head, values in prs.items() for t, pr in zip(tokens, values, strict=True)]  # fmt: skip

    frame = pl.DataFrame(
        rows("a", [10, 100], {0: [1.0, 1.5], 1: [3.0, 9.0]})
        + rows("b", [5, 50, 500], {0: [4.0, 4.0, 4.0], 1: [1.0] * 3})
    )
    ranking = cs.spectral_ranking(frame)
    assert ranking.columns[0] == "model" and ranking["model"].to_list() == ["a", "a", "b", "b"]
    assert ranking["head"].to_list() == [1, 0, 0, 1] and ranking["rank"].to_list() == [1, 2, 1, 2]
    assert ranking["n_revisions"].to_list() == [2, 2, 3, 3]
    single = cs.spectral_ranking(frame.filter(pl.col("model") == "a").drop("model"))
    assert single["rank"].to_list() == [1, 2] and single["head"].to_list() == [1, 0]
    with pytest.raises(DataError, match="^b: .*exactly one PR"):
        cs.spectral_ranking(frame.filter(~((pl.col("model") == "b") & (pl.col("tokens") == 5) & (pl.col("head") == 1))))


def test_ranking_refuses_missing_or_ragged_trajectories() -> None:
    """A head without a PR at some revision (null PR, or a missing row) is an error naming it, never a rank."""
    frame = pl.DataFrame({"layer": [0, 0], "head": [0, 0], "tokens": [1, 2], "pr": [2.0, None]})
    with pytest.raises(DataError, match="no participation ratio"):
        cs.spectral_ranking(frame)
    ragged = pl.DataFrame({"layer": [0, 0, 0], "head": [0, 0, 1], "tokens": [1, 2, 1], "pr": [2.0, 3.0, 2.0]})
    with pytest.raises(DataError, match="exactly one PR"):
        cs.spectral_ranking(ragged)


@pytest.mark.parametrize("model", ["olmo", "olmoe"])
def test_a_left_out_final_revision_keeps_the_studys_ranking_and_gives_the_final_classes(model: str) -> None:
    """The study measured OLMo and OLMoE at ``main`` too but ranked their heads over the ten branches alone. With
    ``main`` swept after them (PRs of its own) and left out (``spectral_leave_out``), the per-model table has the
    study's features and top-45 order; its final class and screen are main's. Ranked with main, the integrals
    would differ. A name the heads do not hold is refused, naming it."""
    data = study(model)
    ten = trajectory_rows(data).with_columns(
        revision=pl.format("b{}", pl.col("tokens")), step=pl.col("tokens"), sel_induction=pl.lit(1.0),
        **{"class": pl.lit("none")},
    )  # fmt: skip
    main = ten.filter(pl.col("tokens") == pl.col("tokens").max()).with_columns(
        revision=pl.lit("main"), step=pl.col("step") + 1, tokens=pl.col("tokens") + 16,
        pr=pl.col("pr") + 3.0 * pl.col("head"), **{"class": pl.lit("first")},
        sel_induction=pl.when(pl.col("head") == 0).then(60.0).otherwise(1.0),
    )  # fmt: skip
    heads = pl.concat([ten, main.select(ten.columns)])
    table = model_spectral(heads, model, 50.0, leave_out=("main",))
    assert set(table["n_revisions"]) == {10} and set(table["left_out_revisions"]) == {"main"}
    for row in table.iter_rows(named=True):
        expected = data["features"][f"L{row['layer']}_H{row['head']}"]
        for name in ("integral", "final_pr", "max_pr", "min_pr", "spread"):
            assert row[name] == pytest.approx(expected[name], abs=1e-6), (row["layer"], row["head"], name)
    assert [f"L{r['layer']}H{r['head']}" for r in table.head(45).iter_rows(named=True)] == data["top45"]
    assert set(table["final_revision"]) == {"main"} and set(table["final_class"]) == {"first"}
    assert table.filter(pl.col("screen"))["head"].unique().to_list() == [0]
    with_main = model_spectral(heads, model, 50.0)
    assert set(with_main["n_revisions"]) == {11} and with_main["left_out_revisions"].is_null().all()
    assert (with_main.sort("layer", "head")["integral"] - table.sort("layer", "head")["integral"]).abs().max() > 1e-3
    with pytest.raises(DataError, match="spectral_leave_out names 'mian'"):
        model_spectral(heads, model, 50.0, leave_out=("mian",))
    ten = (*(f"b{tokens}" for tokens in data["tokens_B"][1:]), "main")  # one revision left: no integral
    few = model_spectral(heads, model, 50.0, leave_out=ten)
    assert few["rank"].null_count() == few.height
    assert few["note"][0].endswith(f"this sweep has 1, after spectral_leave_out left out {', '.join(ten)}")


def test_model_spectral_adds_final_class_and_screen_whatever_the_class() -> None:
    """The per-model table carries each head's final class and its screen membership by induction selectivity
    alone: a head of best class first with induction selectivity >= the cut is in the screen."""
    rows = []
    for step, tokens in ((1, 10), (2, 100)):
        for head, (cls, sel) in enumerate((("first", 60.0), ("induction", 40.0), ("none", 1.0))):
            rows.append(
                {
                    "revision": f"step{step}",
                    "step": step,
                    "tokens": tokens,
                    "layer": 0,
                    "head": head,
                    "pr": 1.0 + head * step,
                    "class": cls,
                    "sel_induction": sel,
                }  # fmt: skip
            )
    table = model_spectral(pl.DataFrame(rows), "m", 50.0)
    assert table.columns == list(C.SPECTRAL_COLUMNS)
    by_head = {row["head"]: row for row in table.iter_rows(named=True)}
    assert by_head[0]["screen"] and not by_head[1]["screen"] and not by_head[2]["screen"]
    assert by_head[0]["final_class"] == "first" and by_head[2]["rank"] == 1
    assert set(table["final_revision"]) == {"step2"}


def test_spectral_files_from_classified_heads(tmp_path: Path) -> None:
    """The per-model job ranks a classified-heads file and the table job stacks models; a file of another model,
    or one made before the pr column existed, is refused with "delete it and rerun"."""
    from circuitsweep.errors import CacheError
    from circuitsweep.heads.spectral import spectral_table, write_model_spectral
    from circuitsweep.io.tables import read_table, write_table

    data = study("olmo")
    rows = trajectory_rows(data).with_columns(
        pl.col("tokens").alias("step"),
        pl.format("step{}", pl.col("tokens")).alias("revision"),
        pl.lit("first").alias("class"),
        pl.when((pl.col("layer") == 2) & (pl.col("head") == 11)).then(134.0).otherwise(1.0).alias("sel_induction"),
    )
    paths = C.Paths(tmp_path)
    write_table(paths.model_heads("olmo"), rows, {"model": "olmo", "thresholds": {"induction_circuit": 50.0}})
    write_model_spectral(paths.model_heads("olmo"), "olmo", paths.model_spectral("olmo"))
    spectral_table([paths.model_spectral("olmo")], paths.spectral_table("parquet"), paths.spectral_table("csv"))
    table = pl.read_csv(paths.spectral_table("csv"))
    assert table.height == 256 and table["screen"].sum() == 1
    assert table.filter(pl.col("screen")).select("layer", "head").row(0) == (2, 11)
    assert read_table(paths.spectral_table("parquet"))[1]["models"]["olmo"]["thresholds"]["induction_circuit"] == 50
    with pytest.raises(CacheError, match="not 'other'; delete it and rerun"):
        write_model_spectral(paths.model_heads("olmo"), "other", tmp_path / "x.parquet")
    write_table(paths.model_heads("old"), rows.drop("pr"), {"model": "old", "thresholds": {"induction_circuit": 50}})
    with pytest.raises(CacheError, match="no pr column"):
        write_model_spectral(paths.model_heads("old"), "old", tmp_path / "y.parquet")


@pytest.mark.parametrize("steps", [(5,), (0, 5)], ids=["one revision", "step 0 and one more"])
def test_too_few_revisions_with_tokens_rank_no_head_and_say_so(steps) -> None:
    """A sweep of one revision (or of step 0 and one more) has no integral: every rank and integral is null, the
    table's note says why, and the final-revision ablation's spectral_top rows ablate nothing and carry that
    note, where the heads used to be ranked in head order with integral 0 (issue 32, case 4)."""
    from circuitsweep.heads.final_ablation import final_conditions

    rows = [
        {"revision": f"step{s}", "step": s, "tokens": s * 10, "layer": layer, "head": head, "pr": 1.0 + head,
         "class": "none", "sel_induction": 1.0}
        for s in steps for layer in range(2) for head in range(2)
    ]  # fmt: skip
    table = model_spectral(pl.DataFrame(rows), "m", 50.0)
    assert table["rank"].null_count() == table["integral"].null_count() == table.height == 4
    assert set(table["note"]) == {
        "not ranked: the participation-ratio integral needs at least 2 revisions with tokens > 0, this sweep has 1"
    }
    final = pl.DataFrame(rows).filter(pl.col("step") == steps[-1])
    conditions = final_conditions(table, final, 50.0, 2, [6, 2], draws=2, seed=0)
    spectral = [c for c in conditions if c.name.startswith("spectral")]
    assert [(c.name, c.k, c.heads) for c in spectral] == [("spectral_top", 6, ()), ("spectral_top", 2, ())]
    assert all(c.note == table["note"][0] for c in spectral)
