"""Final tables with natural-text counts and ablation rows (head_tables, no model): the paired tests of every
row and the causal milestone's three states, from hand-built per-sequence outcomes."""

from __future__ import annotations

import polars as pl
import pytest
from test_emergence import THRESHOLDS, classified, revision_row

from circuitsweep.errors import CacheError
from circuitsweep.heads.ablation import ablation_frame
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import write_table
from circuitsweep.milestones.ablation_tables import NO_CONTROL, ablation_table
from circuitsweep.milestones.tables import HeadTableOutputs, head_tables

N = 100
#: model m: (revision, step, classes, sequences, B's top-1 hits without ablation, with the circuit ablated (None:
#: empty circuit), with each matched-random draw ablated (None: no control, the circuit fills its layers)[, heads
#: per matched draw when the layers ran short of the circuit])
SCHEDULE = {
    "m": [
        ("step0", 0, {}, N, range(1), None, []),
        # circuit drop 0.05, random 0.04: the factor rule fails
        ("step20", 20, {(1, 0): "induction"}, N, range(5), range(0), [range(2), range(0)]),
        # 0.35 vs 0.015, and 34 sequences lost to the circuit but kept by random heads: causal
        ("step30", 30, {(1, 0): "induction", (1, 1): "induction"}, N, range(40), range(5), [range(39), range(38)]),
    ],
    # beats random by a hair on few sequences: drop 3/16 > 2 x (1/16 + 1/16 + 0) / 3, which the factor rule
    # alone called causal; paired, 3 sequences favour the circuit's drop and 1 (seq 3) the draws': p = 5/16
    "hair": [
        (
            "step10",
            10,
            {(1, 0): "induction"},
            16,
            range(16),
            range(3, 16),
            [range(1, 16), set(range(16)) - {3}, range(16)],
        ),
    ],
    # the circuit is every head of its layer at every revision that has one: no control anywhere
    "fills": [
        ("step0", 0, {}, 32, range(30), None, []),
        ("step10", 10, {(1, h): "induction" for h in range(4)}, 32, range(30), range(0), [None, None]),
        ("step20", 20, {(1, h): "induction" for h in range(4)}, 32, range(31), range(1), [None, None]),
    ],
    # untested at step20 (the circuit fills its layer), causal at step30: the bracket starts at step10, the last
    # revision known not causal
    "gap": [
        ("step0", 0, {}, N, range(1), None, []),
        ("step10", 10, {(1, 0): "induction"}, N, range(5), range(0), [range(2), range(0)]),
        ("step20", 20, {(1, h): "induction" for h in range(4)}, N, range(40), range(5), [None, None]),
        ("step30", 30, {(1, 0): "induction", (1, 1): "induction"}, N, range(40), range(5), [range(39), range(38)]),
    ],
    # causal at step10 against a 1-head draw for a circuit of 3 (the study's draw takes what the layer has left);
    # step20 passes too, now with a control as large as its 2-head circuit
    "short": [
        ("step10", 10, {(1, h): "induction" for h in range(3)}, N, range(40), range(5), [range(39), range(38)], 1),
        ("step20", 20, {(1, h): "induction" for h in range(2)}, N, range(40), range(5), [range(39), range(38)]),
    ],
}


def outcomes(hits, n: int) -> dict:
    """A scored condition: B is top-1 (and top-5) on the sequences in ``hits``; loss 0.1 there, else 3."""
    top1 = [i in hits for i in range(n)]
    loss = [0.1 if hit else 3.0 for hit in top1]
    return {"top1": sum(top1) / n, "top5": sum(top1) / n, "loss": sum(loss) / n, "mean_logit": 1.0,
            "seq_top1": top1, "seq_top5": top1, "seq_loss": loss}  # fmt: skip


def ablation_rows(classes: dict, n: int, none, circuit, draws: list, control: int | None = None) -> list[dict]:
    size = 0 if circuit is None else len(classes)
    base = {"probe": "synthetic", "circuit_size": size, "n_sequences": n}
    rows = [{**base, "condition": "none", "draw": None, "heads": "", "n_ablated": 0, **outcomes(none, n)}]
    if circuit is None:
        rows.append({**base, "condition": "circuit", "draw": None, "heads": "", "n_ablated": 0, "note": "empty"})
        return rows
    rows.append({**base, "condition": "circuit", "draw": None, "heads": "L1H0", "n_ablated": size,
                 **outcomes(circuit, n)})  # fmt: skip
    for i, hits in enumerate(draws):
        drawn = {"heads": "", "n_ablated": 0, "note": "no control"} if hits is None else outcomes(hits, n)
        drawn_size = size if control is None else control
        rows.append({**base, "condition": "matched_random", "draw": i, "heads": "L1H3", "n_ablated": drawn_size,
                     **drawn})  # fmt: skip
    return rows


def write_rows(path, model: str, name: str, step: int, rows: list[dict], schema: int | None = None) -> None:
    identity = {"model": model, "revision": name, "step": step, "tokens": step * 1000}
    version = C.ABLATION_SCHEMA_VERSION if schema is None else schema
    write_table(path, ablation_frame(rows, identity), {"ablation_schema": version})


@pytest.fixture
def tables(tmp_path):
    heads_paths, revisions_paths, paths = [], [], []
    for model, schedule in SCHEDULE.items():
        heads = pl.DataFrame([r for name, step, cls, *_ in schedule for r in classified(model, name, step, cls)])
        revisions = pl.DataFrame(
            [
                {**revision_row(model, name, step, 0.0, f"w{step}"), "natural_bos_fraction": step / 100,
                 "natural_induction_heads": len(cls)}
                for name, step, cls, *_ in schedule
            ]
        )  # fmt: skip
        # what classify_heads records: head_tables checks it against the planned thresholds
        run = {"model": model, "thresholds": dict(THRESHOLDS.__dict__)}
        write_table(tmp_path / f"heads_{model}.parquet", heads, run)
        write_table(tmp_path / f"revisions_{model}.parquet", revisions, run)
        heads_paths.append(tmp_path / f"heads_{model}.parquet")
        revisions_paths.append(tmp_path / f"revisions_{model}.parquet")
        for name, step, classes, n, none, circuit, draws, *control in schedule:
            path = tmp_path / f"ablation_{model}_{name}.parquet"
            write_rows(path, model, name, step, ablation_rows(classes, n, none, circuit, draws, *control))
            paths.append(path)
    out = HeadTableOutputs(
        heads=tmp_path / "t" / "heads.parquet",
        emergence_parquet=tmp_path / "t" / "emergence.parquet",
        emergence_csv=tmp_path / "t" / "emergence.csv",
        milestones_parquet=tmp_path / "t" / "milestones.parquet",
        milestones_csv=tmp_path / "t" / "milestones.csv",
        milestones_md=tmp_path / "t" / "milestones.md",
        ablation_parquet=tmp_path / "t" / "ablation.parquet",
        ablation_csv=tmp_path / "t" / "ablation.csv",
    )
    head_tables(
        heads_paths,
        revisions_paths,
        dict.fromkeys(SCHEDULE, THRESHOLDS),
        out,
        ablation_paths=paths,
        causal_factor=2.0,
        causal_alpha=0.01,
    )
    return out


def causal(tables, model: str) -> dict:
    return pl.read_parquet(tables.milestones_parquet).filter(pl.col("model") == model).row(0, named=True)


def test_emergence_gains_natural_and_ablation_columns(tables):
    """Natural counts, the circuit's and matched-random drops and the circuit's paired excess drop (interval, p,
    Holm-adjusted p) sit on each revision's emergence row."""
    curves = pl.read_parquet(tables.emergence_parquet).filter(pl.col("model") == "m")
    for name in (*C.NATURAL_EMERGENCE_COLUMNS, *C.ABLATION_EMERGENCE_COLUMNS):
        assert name in curves.columns
    row = curves.filter(pl.col("revision") == "step30").row(0, named=True)
    assert row["natural_bos_fraction"] == pytest.approx(0.3) and row["natural_induction_heads"] == 2
    assert row["ablation_circuit_drop"] == pytest.approx(0.35)
    assert row["ablation_random_drop"] == pytest.approx(0.015)
    assert row["ablation_drop_ratio"] == pytest.approx(0.35 / 0.015)
    assert row["ablation_tested"] and row["ablation_excess_drop"] == pytest.approx(0.385 - 0.05)
    assert row["ablation_excess_p"] == pytest.approx(2.0**-34)  # 34 sequences one way, none the other
    assert row["ablation_excess_p_holm"] == pytest.approx(2 * 2.0**-34)  # two tested revisions
    assert row["ablation_excess_ci_low"] < row["ablation_excess_drop"] < row["ablation_excess_ci_high"]
    empty = curves.filter(pl.col("revision") == "step0").row(0, named=True)
    assert empty["ablation_circuit_drop"] is None and empty["ablation_circuit_size"] == 0
    assert not empty["ablation_tested"] and empty["ablation_excess_p_holm"] is None


def test_every_ablation_row_has_its_interval_and_p(tables):
    """The ablation table: every scored row but none has its drop against none with an interval and p; the
    circuit with a control also its excess drop; the per-sequence outcomes stay in the caches."""
    ablation = pl.read_csv(tables.ablation_csv)
    assert ablation.columns == list(C.ABLATION_COLUMNS)
    scored = ablation.filter((pl.col("condition") != "none") & pl.col("top1").is_not_null())
    for prefix in ("top1_drop", "loss_increase"):
        for suffix in ("", "_ci_low", "_ci_high", "_p"):
            assert scored[prefix + suffix].null_count() == 0, prefix + suffix
    assert (scored[["top1_drop_ci_low"]].to_series() <= scored["top1_drop"]).all()
    controlled = scored.filter(pl.col("condition") == "circuit", pl.col("n_controls").is_not_null())
    assert controlled.height == 7 and controlled["top1_excess_drop_p"].null_count() == 0  # m 2, hair 1, gap 2, short 2
    m = ablation.filter(pl.col("model") == "m")
    assert m.filter(pl.col("revision") == "step0")["condition"].to_list() == ["none", "circuit"]
    step20 = m.filter(pl.col("revision") == "step20", pl.col("condition") == "circuit").row(0, named=True)
    assert step20["top1_drop_p"] == pytest.approx(1 / 32)  # 5 of 5 discordant sequences lost: McNemar 2^-5


def test_causal_milestone_is_the_first_revision_beyond_the_factor_and_the_test(tables):
    """step20's drop (0.05) is not above 2 x 0.04; step30's is, with p far below 0.01 after Holm: causal at step30,
    reported with its p and interval."""
    row = causal(tables, "m")
    assert row["causal_state"] == "causal" and row["causal_revision"] == "step30" and row["causal_tokens"] == 30000
    assert row["causal_tested_revisions"] == 2 and row["causal_p_holm"] == pytest.approx(2 * 2.0**-34)
    assert row["causal_alpha"] == 0.01 and row["causal_factor"] == 2.0
    text = tables.milestones_md.read_text()
    assert "m: " in text and "the circuit was causal from step30 (30K tokens)" in text


def test_a_hair_above_random_on_few_sequences_is_not_causal(tables):
    """The factor rule holds (3/16 lost against 2/3 of 1/16), but paired on the 16 sequences the circuit's excess
    drop has p = 5/16: not reached, tested at 1 revision, with the largest excess drop and its p in the words."""
    row = causal(tables, "hair")
    assert row["causal_state"] == "not reached" and row["causal_revision"] is None
    assert row["causal_tested_revisions"] == 1 and row["causal_evidence_revision"] == "step10"
    assert row["causal_p"] == pytest.approx(5 / 16) and row["causal_p_holm"] == pytest.approx(5 / 16)
    assert row["causal_excess_drop"] == pytest.approx(3 / 16 - 2 / 48)
    assert row["causal_excess_ci_low"] < 0 < row["causal_excess_ci_high"]
    line = next(line for line in tables.milestones_md.read_text().splitlines() if line.startswith("hair:"))
    assert "the circuit never passed the causal test (largest excess top-1 drop 0.146 at step10" in line
    assert "p = 0.31 (0.31 after Holm over 1 tested revision)" in line


def test_a_circuit_that_fills_its_layers_is_untestable_not_never(tables):
    """No revision had a matched control: untestable, saying why; never 'never hurt more than random'."""
    row = causal(tables, "fills")
    assert row["causal_state"] == "untestable" and row["causal_note"] == NO_CONTROL
    assert row["causal_tested_revisions"] == 0 and row["causal_p"] is None and row["causal_revision"] is None
    text = tables.milestones_md.read_text()
    assert "untestable: no matched control at any revision (the circuit fills its layers)" in text
    assert "never hurt" not in text and "not reached" not in text.split("fills:")[1].splitlines()[0]


def test_a_control_smaller_than_the_circuit_is_reported_beside_the_studys_milestone(tables):
    """The study's rule accepts step10's 1-head control for 3 circuit heads: causal at step10, unchanged. Beside it
    the milestone names the control's size and the first revision causal with a full control (step20), so a
    comparison of 3 heads with 1 is never read as a matched one."""
    row = causal(tables, "short")
    assert row["causal_state"] == "causal" and row["causal_revision"] == "step10"
    assert (row["causal_circuit_size"], row["causal_control_size"]) == (3, 1)
    assert row["causal_full_control_revision"] == "step20" and row["causal_full_control_tokens"] == 20000
    emergence = pl.read_parquet(tables.emergence_parquet).filter(pl.col("model") == "short")
    assert emergence["ablation_control_size"].to_list() == [1, 2]
    text = tables.milestones_md.read_text()
    assert "control 1 head for a circuit of 3, first causal with a full control at step20" in text
    m = causal(tables, "m")
    assert (m["causal_circuit_size"], m["causal_control_size"]) == (2, 2)
    assert m["causal_full_control_revision"] == "step30"
    assert "control" not in next(line for line in text.splitlines() if line.startswith("m:"))


def test_the_causal_bracket_starts_at_the_last_revision_known_not_causal(tables):
    """gap's step20 circuit had no control, so whether it was causal there is unknown: the causal milestone
    (step30) lies after step10, the last revision tested and failed, not after step20. The other milestones keep
    the swept revision before them."""
    row = causal(tables, "gap")
    assert row["causal_revision"] == "step30"
    assert (row["causal_previous_revision"], row["causal_previous_tokens"]) == ("step10", 10000)
    swept = ["step0", "step10", "step20", "step30"]
    onset = row["induction_onset_revision"]
    assert onset in swept[1:] and row["induction_onset_previous_revision"] == swept[swept.index(onset) - 1]
    m = causal(tables, "m")
    assert m["causal_revision"] == "step30" and m["causal_previous_revision"] == "step20"


def test_rows_without_per_sequence_outcomes_are_refused(tmp_path):
    """Rows of the older layout (no ablation_schema, or another one) are refused naming the file."""
    rows = ablation_rows({(1, 0): "induction"}, 4, range(4), range(0), [range(4)])
    path = tmp_path / "old.parquet"
    write_rows(path, "m", "step0", 0, rows, schema=0)
    with pytest.raises(CacheError, match=r"old\.parquet predates the per-sequence ablation outcomes"):
        ablation_table([path])
