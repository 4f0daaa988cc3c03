"""Causal ablation of the induction circuit on a model whose induction head really copies."""

from __future__ import annotations

import polars as pl
import pytest
import torch
from planted import FIRST_TOKEN, STUDY_THRESHOLDS, VOCAB, planted_model

from circuitsweep.config.probes import AblationSettings
from circuitsweep.errors import DataError
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.heads.ablation import (
    ablated,
    ablation_frame,
    ablation_rows,
    circuit_cut,
    circuit_heads,
    output_projections,
    synthetic_probe,
)
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.classify import Thresholds
from circuitsweep.heads.measure import ProbeSettings, head_statistics
from circuitsweep.heads.scores import head_scores
from circuitsweep.io import contracts as C
from circuitsweep.milestones.ablation_tables import ablation_summary, causal_milestones, is_causal, with_tests

THRESHOLDS = STUDY_THRESHOLDS
# protocol clean: in a 30-token vocabulary the study's probe keeps many stray A and B tokens, which a
# planted head copies from as readily as from the planted pair; clean probes have none
PROBES = ProbeSettings.from_dict(
    {
        "kind": "random_tokens",
        "protocol": "clean",
        "token_range": [2, VOCAB],
        "batch_size": 16,
        "induction": {
            "n_sequences": 16,
            "seq_len": 128,
            "seed": 42,
            "min_first_position": 20,
            "n_baseline": 50,
            "baseline_seed": 0,
        },
        "repeated": {"n_sequences": 8, "seq_len": 64, "seed": 1},
        "random": {"n_sequences": 8, "seq_len": 64, "seed": 2},
    }
)
COPY = 96  # residual dims 96..127 carry the token the induction head copies


def copying_model() -> torch.nn.Module:
    """The planted model with the induction head (layer 1 head 1) copying the attended token into the logits."""
    model = planted_model(register())
    head_dim = 64
    with torch.no_grad():
        attention = model.gpt_neox.layers[1].attention
        value_rows = slice(1 * 3 * head_dim + 2 * head_dim, 1 * 3 * head_dim + 3 * head_dim)
        attention.query_key_value.weight[value_rows][torch.arange(VOCAB), torch.arange(VOCAB)] = 1.0
        attention.dense.weight[COPY + torch.arange(VOCAB), head_dim + torch.arange(VOCAB)] = 10.0
        model.get_output_embeddings().weight[torch.arange(VOCAB), COPY + torch.arange(VOCAB)] = 20.0
    return model


@pytest.fixture(scope="module")
def measured():
    model = copying_model()
    scores = head_scores(head_statistics(model, PROBES, FIRST_TOKEN, torch.device("cpu"), progress=False))
    settings = AblationSettings(random_draws=3, random_seed=123, max_single_heads=4, batch_size=16)
    probe = synthetic_probe(PROBES, FIRST_TOKEN)
    rows = ablation_rows(model, scores, circuit_cut(THRESHOLDS), settings, [probe], torch.device("cpu"))
    identity = {"model": "planted", "revision": "main", "step": 0, "tokens": 0}
    return model, scores, ablation_frame(rows, identity)


def test_output_projections_are_found_for_every_layer():
    """GPT-NeoX's attention output projection (``dense``) is found for each layer."""
    model = planted_model(register())
    found = output_projections(model)
    assert sorted(found) == [0, 1]
    assert found[1] is model.gpt_neox.layers[1].attention.dense


def test_zeroing_a_head_zeroes_only_its_slice():
    """The pre-hook zeroes exactly the ablated head's input dims of the output projection, and only inside the block."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=16
    )
    model = GPTNeoXForCausalLM(config).eval()
    seen = []
    handle = model.gpt_neox.layers[1].attention.dense.register_forward_hook(  # sees the input after pre-hooks
        lambda _m, args, _out: seen.append(args[0].clone())
    )
    tokens = torch.randint(2, VOCAB, (2, 16))
    with torch.no_grad():
        model(tokens)
        with ablated(model, [(1, 2)]):
            model(tokens)
        model(tokens)
    handle.remove()
    plain, zeroed, after = (x.view(2, 16, 4, 8) for x in seen)
    assert plain[:, :, 2].abs().sum() > 0
    assert torch.all(zeroed[:, :, 2] == 0)
    torch.testing.assert_close(zeroed[:, :, [0, 1, 3]], plain[:, :, [0, 1, 3]])
    torch.testing.assert_close(after, plain)


def test_ablating_the_induction_head_destroys_copying(measured):
    """Unablated the model predicts B; ablating the circuit (L1H1) drops top-1 to chance, matched random do not."""
    _, scores, rows = measured
    assert circuit_heads(scores, circuit_cut(THRESHOLDS)) == [(1, 1)]
    none = rows.filter(pl.col("condition") == "none").row(0, named=True)
    circuit = rows.filter(pl.col("condition") == "circuit").row(0, named=True)
    random = rows.filter(pl.col("condition") == "matched_random")
    assert none["top1"] > 0.9
    assert circuit["top1"] < 0.1 and circuit["heads"] == "L1H1"  # chance: logits of B no longer stand out
    assert circuit["loss"] > none["loss"] + 1.0 and circuit["mean_logit"] < none["mean_logit"]
    assert random.height == 3 and (random["top1"] > 0.9).all()
    assert all(h.startswith("L1H") and h != "L1H1" for h in random["heads"].to_list())
    single = rows.filter(pl.col("condition") == "single_head")
    assert single["heads"].to_list() == ["L1H1"] and single["top1"].item() < 0.1


def test_rows_keep_each_sequences_outcome(measured):
    """Every scored row keeps per-sequence loss, top-1 and top-5 hits of B (one per probe sequence), whose means
    are the row's metrics; the rows file has the cache's columns."""
    _, _, rows = measured
    assert rows.columns == list(C.ABLATION_ROW_COLUMNS)
    for row in rows.iter_rows(named=True):
        assert len(row["seq_loss"]) == len(row["seq_top1"]) == len(row["seq_top5"]) == row["n_sequences"] == 16
        assert sum(row["seq_top1"]) / 16 == pytest.approx(row["top1"])
        assert sum(row["seq_top5"]) / 16 == pytest.approx(row["top5"])
        assert sum(row["seq_loss"]) / 16 == pytest.approx(row["loss"])
        assert all(top5 for top1, top5 in zip(row["seq_top1"], row["seq_top5"], strict=True) if top1)


def test_summary_and_causal_milestone(measured):
    """The planted copying head (the circuit) is a clear case: ablating it loses B on every one of the 16
    sequences, matched random heads on none, so the excess drop's exact paired p is 2^-16 and the revision is
    causal, with its p and interval reported."""
    _, _, rows = measured
    table = with_tests(rows)
    circuit = table.filter(pl.col("condition") == "circuit").row(0, named=True)
    assert circuit["n_controls"] == 3 and circuit["top1_excess_drop"] == pytest.approx(1.0)
    assert circuit["top1_excess_drop_p"] == pytest.approx(2.0**-16)
    assert circuit["top1_drop_p"] == pytest.approx(2.0**-16) and circuit["loss_increase_p"] < 0.01
    assert circuit["top1_excess_drop_ci_low"] == circuit["top1_excess_drop_ci_high"] == pytest.approx(1.0)
    summary = ablation_summary(table)
    assert summary["ablation_circuit_drop"].item() > 0.9 and summary["ablation_tested"].item()
    assert summary["ablation_random_drop"].item() == pytest.approx(0.0, abs=1e-9)
    curves = summary.with_columns(pl.lit(0).alias("tokens"), pl.lit(0).alias("step"))
    causal = causal_milestones(curves, 2.0, 0.01).row(0, named=True)
    assert causal["causal_state"] == "causal" and causal["causal_revision"] == "main"
    assert causal["causal_p_holm"] == pytest.approx(2.0**-16) and causal["causal_tested_revisions"] == 1


def test_empty_circuit_is_recorded_not_raised(measured):
    """With thresholds nothing passes, the rows say the circuit is empty and hold no metrics for it."""
    model, scores, _ = measured
    settings = AblationSettings(random_draws=2)
    probe = synthetic_probe(PROBES, FIRST_TOKEN)
    identity = {"model": "m", "revision": "r", "step": 0, "tokens": 0}
    rows = ablation_frame(ablation_rows(model, scores, 1e12, settings, [probe], torch.device("cpu")), identity)
    assert rows["condition"].to_list() == ["none", "circuit"]
    circuit = rows.row(1, named=True)
    assert circuit["top1"] is None and circuit["circuit_size"] == 0 and "empty circuit" in circuit["note"]
    assert circuit["seq_top1"] is None
    summary = ablation_summary(with_tests(rows))
    assert summary["ablation_circuit_drop"].item() is None and not summary["ablation_tested"].item()


def test_circuit_filling_its_layer_leaves_no_control(measured):
    """When the circuit is every head of its layers, the matched-random rows say so and carry no metrics,
    and the revision gets no random drop (so it cannot be called causal)."""
    model, scores, _ = measured
    everything = scores.with_columns(
        pl.when(pl.col("layer") == 1).then(1000.0).otherwise(pl.col("sel_induction")).alias("sel_induction")
    )
    settings = AblationSettings(random_draws=2, max_single_heads=0)
    probe = synthetic_probe(PROBES, FIRST_TOKEN)
    identity = {"model": "m", "revision": "r", "step": 0, "tokens": 0}
    rows = ablation_frame(ablation_rows(model, everything, 50, settings, [probe], torch.device("cpu")), identity)
    random = rows.filter(pl.col("condition") == "matched_random")
    assert random.height == 2 and random["top1"].null_count() == 2 and "no control" in random["note"][0]
    table = with_tests(rows)
    circuit = table.filter(pl.col("condition") == "circuit").row(0, named=True)
    assert circuit["top1_drop"] > 0.5 and circuit["top1_drop_p"] < 0.01  # against none: tested
    assert circuit["n_controls"] is None and circuit["top1_excess_drop"] is None  # against random: no control
    summary = ablation_summary(table)
    assert summary["ablation_random_drop"].item() is None and summary["ablation_circuit_drop"].item() > 0.5
    assert not summary["ablation_tested"].item()


def test_a_circuit_of_half_its_layer_is_drawn_against_the_other_half_and_says_so(measured):
    """Two of layer 1's four heads leave exactly two others: every draw is those heads (the study's draw has no
    choice), each row's note says so, and the rows are still scored (a real control, not a random one)."""
    model, scores, _ = measured
    half = scores.with_columns(
        pl.when((pl.col("layer") == 1) & (pl.col("head") < 2)).then(1000.0).otherwise(0.0).alias("sel_induction")
    )
    settings = AblationSettings(random_draws=3, max_single_heads=0)
    probe = synthetic_probe(PROBES, FIRST_TOKEN)
    identity = {"model": "m", "revision": "r", "step": 0, "tokens": 0}
    rows = ablation_frame(ablation_rows(model, half, 50, settings, [probe], torch.device("cpu")), identity)
    random = rows.filter(pl.col("condition") == "matched_random")
    assert random["heads"].to_list() == ["L1H2,L1H3"] * 3 and random["top1"].null_count() == 0
    assert random["note"].to_list() == ["layers [1] leave no choice: every draw is the same heads"] * 3


def test_causal_rule_is_strict():
    """Causal needs a positive drop strictly above factor x the random drop."""
    assert is_causal(0.05, 0.0, 2.0)
    assert not is_causal(0.04, 0.02, 2.0)
    assert not is_causal(0.0, 0.0, 2.0)
    assert not is_causal(None, 0.0, 2.0)
    assert not is_causal(0.5, None, 2.0)  # no control, no claim


def test_config_refuses_ablation_of_an_encoder_and_plans_it_for_decoders():
    """ablation.enabled with a model without an LM head is a config error naming the key; decoders get
    the ablation settings and the circuit's cut, induction_circuit."""
    from test_workflow import REPO

    from circuitsweep.config.load import load_config
    from circuitsweep.errors import ConfigError
    from circuitsweep.plan.sweep import plan_sweep

    encoder = load_config(REPO / "config" / "minilm.yaml")
    encoder["ablation"] = {"enabled": True}
    with pytest.raises(ConfigError, match=r"ablation\.enabled: models\.minilm-l6 \(BertModel\) has no LM head"):
        plan_sweep(encoder, REPO)
    plan = plan_sweep(load_config(REPO / "config" / "config.yaml"), REPO)
    settings = heads_jobs.measure_settings(plan, "toy-gptneox", plan.revisions["toy-gptneox"][0].name)
    assert settings["ablation"]["random_seed"] == 123 and settings["circuit_selectivity"] == 12
    without = load_config(REPO / "config" / "config.yaml")
    without.pop("ablation")
    plain = heads_jobs.measure_settings(plan_sweep(without, REPO), "toy-gptneox", plan.revisions["toy-gptneox"][0].name)
    assert "ablation" not in plain and "circuit_selectivity" not in plain  # runs without ablation: no reruns


def test_causal_alpha_is_a_table_setting_and_the_rows_layout_a_measurement_setting():
    """ablation.causal_alpha defaults to 0.01, reaches the plan (a table setting: not in the measurement's
    settings), and a value outside (0, 1) is refused naming the key; the rows' layout version is in the
    measurement's settings, so rows of an older layout are measured again."""
    from test_workflow import REPO

    from circuitsweep.config.load import load_config, resolve_config
    from circuitsweep.errors import ConfigError
    from circuitsweep.plan.sweep import plan_sweep

    config = load_config(REPO / "config" / "config.yaml")
    plan = plan_sweep(config, REPO)
    assert plan.causal_alpha == 0.01
    settings = heads_jobs.measure_settings(plan, "toy-gptneox", plan.revisions["toy-gptneox"][0].name)
    assert settings["ablation_schema"] == C.ABLATION_SCHEMA_VERSION and "causal_alpha" not in str(settings)
    config["ablation"]["causal_alpha"] = 0.05
    assert plan_sweep(config, REPO).causal_alpha == 0.05
    config["ablation"]["causal_alpha"] = 1.5
    with pytest.raises(ConfigError, match=r"ablation\.causal_alpha"):
        resolve_config(config)


def test_circuit_cut_is_the_screen_threshold():
    """The ablated circuit depends on induction_circuit only: the class threshold does not move it (so
    changing it reruns no measurement)."""
    assert circuit_cut(THRESHOLDS) == 50
    assert circuit_cut(Thresholds(**{**THRESHOLDS.__dict__, "class_selectivity": 40})) == 50
    assert circuit_cut(Thresholds(**{**THRESHOLDS.__dict__, "class_selectivity": 60})) == 50


def test_ablated_circuit_is_the_screen_whatever_the_class():
    """The per-revision ablated circuit takes every head with induction selectivity >= the cut, also one whose
    best class is first (the study's OLMo circuit), and no head under the cut even if its class is induction."""
    rows = [
        {"layer": 0, "head": 0, "sel_induction": 60.0, "sel_first": 300.0},  # best class first, screened
        {"layer": 1, "head": 0, "sel_induction": 40.0, "sel_first": 1.0},  # class induction, under the cut
        {"layer": 1, "head": 1, "sel_induction": 55.0, "sel_first": 2.0},
    ]
    scores = pl.DataFrame([{**{c: 1.0 for c in C.SELECTIVITY_COLUMNS}, **row} for row in rows])
    assert circuit_heads(scores, 50) == [(0, 0), (1, 1)]
    with pytest.raises(DataError, match="NaN induction selectivity"):
        circuit_heads(scores.with_columns(pl.lit(float("nan")).alias("sel_induction")), 50)


def test_scores_are_read_at_each_sequences_own_query(measured):
    """Natural-text style probes score B at a per-sequence query k: tokens appended after k change nothing."""
    from circuitsweep.heads.ablation import AblationProbe, score_targets

    model, _, _ = measured
    probe = synthetic_probe(PROBES, FIRST_TOKEN)
    tail = torch.randint(2, VOCAB, (len(probe.tokens), 7))
    longer = AblationProbe("natural", torch.cat([probe.tokens, tail], dim=1), probe.query, probe.target)
    cpu = torch.device("cpu")
    plain, padded = score_targets(model, probe, 16, cpu), score_targets(model, longer, 16, cpu)
    assert plain == pytest.approx(padded, rel=1e-5, abs=1e-5)
    assert plain["top1"] > 0.9


def test_scores_use_the_models_own_logit_scale(measured):
    """A model whose config scales its logits (Cohere's logit_scale, Granite's logits_scaling) is scored on the
    logits it predicts with: the loss of B moves with the scale, as cross-entropy on the scaled logits has it."""
    import copy

    from circuitsweep.heads.ablation import score_sequences

    model, _, _ = measured
    probe = synthetic_probe(PROBES, FIRST_TOKEN)
    cpu = torch.device("cpu")
    plain = score_sequences(model, probe, 16, cpu)
    scaled_model = copy.deepcopy(model)
    scaled_model.config.logit_scale = 0.25
    scaled = score_sequences(scaled_model, probe, 16, cpu)
    assert (scaled["top1"] == plain["top1"]).all()  # a positive scale keeps the ranking
    torch.testing.assert_close(torch.from_numpy(scaled["logit"]), torch.from_numpy(plain["logit"]) * 0.25)
    assert (scaled["loss"] > plain["loss"] + 0.1).all()  # flatter logits: the copied B is less sure


def test_non_finite_logits_stop_the_ablation_in_one_line_naming_the_condition(measured):
    """A NaN in the logits would make every outcome and paired test meaningless (a NaN mean passed as the most
    significant p): scoring stops, naming the probe, what was ablated and the sequence; a rows file holding a
    NaN loss is refused before any test."""
    import copy

    from circuitsweep.heads.ablation import ablated, score_sequences
    from circuitsweep.heads.ablation_stats import row_outcomes

    model, _, _ = measured
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.get_output_embeddings().weight[5, 0] = float("nan")
    probe = synthetic_probe(PROBES, FIRST_TOKEN)
    with (
        ablated(broken, [(1, 1)]),
        pytest.raises(
            DataError, match=r"^synthetic probe, circuit L1H1 ablated: the logits of sequence 0 are not finite"
        ),
    ):
        score_sequences(broken, probe, 16, torch.device("cpu"), "circuit L1H1")
    row = {"model": "m", "revision": "r", "condition": "circuit", "heads": "L1H1", "seq_top1": [True, False]}
    with pytest.raises(DataError, match="condition circuit .L1H1. holds a non-finite per-sequence loss"):
        row_outcomes({**row, "seq_loss": [0.5, float("nan")]})
    assert row_outcomes({**row, "seq_loss": [0.5, 0.25]})["loss"].tolist() == [0.5, 0.25]
