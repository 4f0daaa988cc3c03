"""Classification of heads whose behaviour the test plants in the weights."""

from __future__ import annotations

import polars as pl
import pytest
import torch
from planted import FIRST_TOKEN, PLANTED, STUDY_THRESHOLDS, VOCAB, planted_model

from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.classify import head_classes
from circuitsweep.heads.measure import ProbeSettings, head_statistics
from circuitsweep.heads.scores import head_scores

STUDY = STUDY_THRESHOLDS
PROBES = ProbeSettings.from_dict(
    {
        "kind": "random_tokens",
        "token_range": [2, VOCAB],
        "batch_size": 16,
        "induction": {
            "n_sequences": 48,
            "seq_len": 256,
            "seed": 42,
            "min_first_position": 20,
            "n_baseline": 50,
            "baseline_seed": 0,
        },
        "repeated": {"n_sequences": 16, "seq_len": 64, "seed": 1},
        "random": {"n_sequences": 16, "seq_len": 64, "seed": 2},
    }
)


@pytest.fixture(scope="module")
def classes() -> pl.DataFrame:
    stats = head_statistics(planted_model(register()), PROBES, FIRST_TOKEN, torch.device("cpu"), progress=False)
    return head_classes(head_scores(stats), STUDY)


def _class_of(classes: pl.DataFrame, layer: int, head: int) -> str:
    return classes.filter((pl.col("layer") == layer) & (pl.col("head") == head))["class"].item()


def test_head_attending_only_to_position_zero_is_first(classes):
    """A head whose key singles out the first token is a BOS head (class first) and a sink."""
    assert _class_of(classes, 0, 2) == "first"
    assert classes.filter((pl.col("layer") == 0) & (pl.col("head") == 2))["sink"].item()


def test_previous_token_and_induction_construction(classes):
    """The two-layer previous-token + induction circuit is found in the planted layer and head."""
    assert _class_of(classes, 0, 0) == "previous"
    assert _class_of(classes, 1, 1) == "induction"
    induction = classes.filter(pl.col("class") == "induction")
    assert induction.select("layer", "head").rows() == [(1, 1)]
    assert classes.filter(pl.col("in_circuit")).select("layer", "head").sort("layer").rows() == [(0, 0), (1, 1)]


def test_uniform_heads_are_none(classes):
    """Heads with zero query/key weights attend uniformly and get no class."""
    uniform = classes.filter(
        ~pl.struct("layer", "head").map_elements(lambda r: (r["layer"], r["head"]) in PLANTED, return_dtype=pl.Boolean)
    )
    assert uniform.height == 8 - len(PLANTED)
    assert set(uniform["class"]) == {"none"}
    assert uniform["sel_induction"].to_list() == pytest.approx([1.0] * uniform.height, rel=1e-5)


def test_nan_scores_are_refused():
    """A NaN selectivity stops classification with a message naming the head."""
    frame = pl.DataFrame({"model": ["m"], "revision": ["r"], "layer": [3], "head": [5]}).with_columns(
        *[pl.lit(1.0).alias(c) for c in ("sel_first", "sel_induction", "sel_duplicate", "sel_previous", "sel_self")],
        pl.lit(float("nan")).alias("sel_local"),
        pl.lit(0.1).alias("sink_alpha"),
    )
    with pytest.raises(ValueError, match="layer=3, head=5"):
        head_classes(frame, STUDY)
