"""The all-head induction screen against the study's published per-head selectivities (DESIGN.md 1, 3).

The fixture ``fixtures/xu2026_final_selectivities.json`` holds, for the five
final checkpoints the study classified (Pythia 160M, 410M, 1B at step143000;
OLMoE and OLMo at ``main``), every head's six selectivities as published in
github.com/skydancerosel/mini_gpt at b87034c, reproduce/paper3_probe_circuits/results
(``*_mechinterp*.json``, ``all_head_selectivity``), with the study's own labels
beside them: its classes of the top-K heads, its per-layer BOS counts
(``tier_a_layer_bos_summary.json``) and the screen its ablation scripts ablated
(``*_ablation*.json``). No model runs: ``cs.classify_heads`` sees numbers only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import polars as pl
import pytest

import circuitsweep as cs
from circuitsweep.errors import ConfigError
from circuitsweep.io import contracts as C

FIXTURE = Path(__file__).parent / "fixtures" / "xu2026_final_selectivities.json"
MODELS = ("pythia-160m", "pythia-410m", "pythia-1b", "olmoe-1b-7b", "olmo-1b")
#: DESIGN.md 1: whole-model BOS fractions at the final checkpoint, synthetic probe (percent, rounded).
BOS_PERCENT = {"pythia-160m": 43, "pythia-410m": 58, "pythia-1b": 54, "olmoe-1b-7b": 68, "olmo-1b": 78}
#: DESIGN.md 1 (and the brief of issue 20): the circuits the study ablated.
STUDY_CIRCUITS = {
    "olmo-1b": ["L2H11", "L4H12", "L12H8"],
    "olmoe-1b-7b": ["L5H10", "L7H0", "L9H8", "L12H14"],
    "pythia-1b": ["L4H4", "L7H0", "L7H1"],
}


@cache
def published() -> dict:
    return json.loads(FIXTURE.read_text())


@cache
def classified(model: str) -> pl.DataFrame:
    """The study's published selectivities of ``model``, classified with the study's thresholds."""
    data = published()
    frame = pl.DataFrame(data["models"][model]["heads"], schema=data["columns"], orient="row")
    return cs.classify_heads(frame)


def labels(frame: pl.DataFrame) -> list[str]:
    return [f"L{layer}H{head}" for layer, head in frame.sort("layer", "head").select("layer", "head").rows()]


@pytest.mark.parametrize("model", MODELS)
def test_published_selectivities_give_the_studys_classes(model):
    """Every head the study classified (its top-K) gets the study's class, and every head is classified once."""
    heads = classified(model)
    ours = dict(zip(labels(heads), heads.sort("layer", "head")["class"].to_list(), strict=True))
    study = published()["models"][model]["study_class"]
    assert len(ours) == heads.height
    assert {head: ours[head] for head in study} == study


@pytest.mark.parametrize("model", MODELS)
def test_per_layer_bos_counts_are_the_studys(model):
    """Per-layer counts of class first equal the study's layer summary; layers 0 and 1 hold none (its finding)."""
    heads = classified(model)
    counts = heads.filter(pl.col("class") == C.BOS_CLASS).group_by("layer").len()
    ours = {str(layer): n for layer, n in counts.rows()}
    assert ours == published()["models"][model]["bos_per_layer"]["counts"]
    assert "0" not in ours and "1" not in ours


@pytest.mark.parametrize("model", MODELS)
def test_whole_model_bos_fraction_is_the_studys(model):
    """The share of class-first heads, rounded to a percent, is the study's synthetic-probe figure (DESIGN.md 1)."""
    heads = classified(model)
    assert round(100 * (heads["class"] == C.BOS_CLASS).mean()) == BOS_PERCENT[model]


@pytest.mark.parametrize("model", sorted(STUDY_CIRCUITS))
def test_the_screen_is_the_circuit_the_study_ablated(model):
    """``induction_member`` (selectivity >= 50, any class) is exactly the head set of the study's ablation file."""
    heads = classified(model)
    screen = labels(heads.filter(pl.col("induction_member")))
    assert screen == published()["models"][model]["screen"]["heads"] == STUDY_CIRCUITS[model]
    assert heads.filter(pl.col("induction_member"))["in_circuit"].all()


def test_olmos_circuit_is_all_bos_so_a_class_rule_would_find_none():
    """The study's central finding: OLMo's screen heads are best-class first, and none is class induction."""
    heads = classified("olmo-1b")
    assert set(heads.filter(pl.col("induction_member"))["class"]) == {C.BOS_CLASS}
    assert heads.filter(pl.col("class") == C.INDUCTION_CLASS).height == 0
    # induction-selective (>= 30, any class) includes the screen
    assert heads["induction_selective"].sum() >= 3


def test_pythia_1b_screen_keeps_a_head_whose_class_is_not_induction():
    """Pythia 1B's L7H1 is in the study's circuit although its best class is not induction."""
    heads = classified("pythia-1b")
    members = heads.filter(pl.col("induction_member"))
    assert members.filter(pl.col("class") != C.INDUCTION_CLASS).height >= 1
    assert "L7H1" in labels(members)


def test_classify_heads_without_sink_scores_and_with_custom_thresholds():
    """Without ``sink_alpha`` the sink column is null; thresholds move the screen, not the class rule's order."""
    frame = pl.DataFrame(
        {"layer": [0, 0], "head": [0, 1]}
        | {c: [1.0, 1.0] for c in C.SELECTIVITY_COLUMNS}
        | {"sel_induction": [40.0, 60.0], "sel_first": [10.0, 90.0]}
    )
    heads = cs.classify_heads(frame)
    assert heads.columns == [*frame.columns, *C.CLASS_COLUMNS]
    assert heads["class"].to_list() == ["induction", "first"]
    assert heads["induction_selective"].to_list() == [True, True]
    assert heads["induction_member"].to_list() == [False, True]
    assert heads["sink"].null_count() == 2
    lower = cs.classify_heads(frame, cs.study_thresholds(induction_circuit=35))
    assert lower["induction_member"].to_list() == [True, True]


def test_classify_heads_classifies_among_the_columns_present():
    """A published table with only some ``sel_*`` columns is classified among those present: a warning names the
    missing ones, ``class_among`` lists the targets compared, a screen whose column is missing is null (the circuit
    then null unless the other screen holds); a frame with none of them is a one-line error naming them."""
    frame = pl.DataFrame({"layer": [0, 0, 1], "head": [0, 1, 0], "sel_first": [90.0, 10.0, 1.0],
                          "sel_induction": [40.0, 60.0, 1.0]})  # fmt: skip
    with pytest.warns(UserWarning, match="no sel_duplicate, sel_previous, sel_self, sel_local"):
        heads = cs.classify_heads(frame)
    assert heads.columns == [*frame.columns, *C.CLASS_COLUMNS, "class_among"]
    assert heads["class"].to_list() == ["first", "induction", "none"]
    assert heads["class_among"].unique().to_list() == ["first, induction"]
    assert heads["induction_member"].to_list() == [False, True, False]
    assert heads["previous_member"].null_count() == 3
    assert heads["in_circuit"].to_list() == [None, True, None]
    without_induction = frame.drop("sel_induction")
    with pytest.warns(UserWarning, match="sel_induction"):
        only_first = cs.classify_heads(without_induction)
    assert only_first["class"].to_list() == ["first", "none", "none"]
    assert only_first["induction_member"].null_count() == 3 and only_first["induction_selective"].null_count() == 3
    with pytest.raises(ConfigError, match="sel_first"):
        cs.classify_heads(frame.select("layer", "head"))
    with pytest.raises(ConfigError, match="head"):
        cs.classify_heads(frame.drop("head"))


def test_classify_heads_imports_no_torch():
    """Classifying published numbers loads no torch (the notebook use without a model)."""
    code = (
        "import sys, polars as pl, circuitsweep as cs\n"
        "from circuitsweep.io import contracts as C\n"
        "frame = pl.DataFrame({'layer': [0], 'head': [0]} | {c: [60.0] for c in C.SELECTIVITY_COLUMNS})\n"
        "assert cs.classify_heads(frame)['induction_member'].item()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
