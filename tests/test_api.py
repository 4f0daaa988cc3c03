"""The notebook API (``import circuitsweep as cs``) and the README's example of it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from planted import FIRST_TOKEN, PLANTED, STUDY_THRESHOLDS, VOCAB, planted_model
from test_plots import CLASSIFY, MILESTONES, sweep  # noqa: F401  (the fixture)

import circuitsweep as cs
from circuitsweep.config.load import resolve_config
from circuitsweep.errors import CacheError, ConfigError
from circuitsweep.heads.spectral import model_spectral
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import read_table, write_table
from circuitsweep.milestones.tables import HeadTableOutputs, head_tables

REPO = Path(__file__).resolve().parents[1]


def readme_python_blocks() -> list[str]:
    """The python code blocks of the README's notebook section, in order."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## In a notebook") :]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_importing_the_package_and_planning_load_no_torch():
    """``import circuitsweep``, its API names, planning the default sweep and reading tables import no torch."""
    code = (
        "import sys, circuitsweep as cs\n"
        "from pathlib import Path\n"
        "from circuitsweep.config.load import load_config\n"
        "from circuitsweep.plan.sweep import plan_sweep\n"
        f"plan_sweep(load_config({str(REPO / 'config' / 'config.yaml')!r}), Path({str(REPO)!r}))\n"
        "cs.read_results, cs.study_probes, cs.measure_heads, cs.study_thresholds\n"
        "import circuitsweep.outputs.plots, circuitsweep.heads.stage\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_measure_heads_finds_the_planted_heads():
    """On an in-memory model with planted heads, the API returns one row per head with the planted classes."""
    model = planted_model("sdpa")
    probes = cs.study_probes(
        token_range=[2, VOCAB],
        induction={"n_sequences": 48},
        repeated={"n_sequences": 16, "seq_len": 64},
        random={"n_sequences": 16, "seq_len": 64},
    )
    heads = cs.measure_heads(model, probes=probes, first_token=FIRST_TOKEN)
    assert heads.columns == ["layer", "head", *C.HEAD_SCORE_COLUMNS, *C.CLASS_COLUMNS]
    classes = {(row["layer"], row["head"]): row["class"] for row in heads.iter_rows(named=True)}
    assert len(classes) == 8
    assert {key: value for key, value in classes.items() if value != C.NO_CLASS} == PLANTED
    assert model.config._attn_implementation == "sdpa", "the model's own attention is restored"


def test_bad_probe_settings_are_a_user_error():
    """An out-of-range or inconsistent probe setting names the key instead of failing inside the engine."""
    with pytest.raises(ConfigError, match="batch_size"):
        cs.study_probes(batch_size=0)
    with pytest.raises(ConfigError, match="min_first_position"):
        cs.study_probes(induction={"seq_len": 32, "min_first_position": 20})


def test_measure_heads_refuses_probes_beyond_the_vocabulary():
    """Probe tokens the model has no embedding for are refused up front."""
    with pytest.raises(ConfigError, match="vocabulary"):
        cs.measure_heads(planted_model("sdpa"), probes=cs.study_probes(token_range=[2, VOCAB + 1]))


def small_planted_probes():
    """Probes that fit the planted model's vocabulary and context, for tests refused before any measurement."""
    return cs.study_probes(token_range=[2, VOCAB], repeated={"seq_len": 64}, random={"seq_len": 64})


def test_measure_heads_refuses_a_probe_longer_than_the_models_context():
    """A probe past ``max_position_embeddings`` is refused with the job's own message, not measured."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        hidden_size=64, num_attention_heads=4, num_hidden_layers=2, intermediate_size=128, vocab_size=64,
        max_position_embeddings=64,
    )  # fmt: skip
    probes = cs.study_probes(
        token_range=[2, 64],
        induction={"n_sequences": 8, "seq_len": 128},
        repeated={"n_sequences": 4, "seq_len": 16},
        random={"n_sequences": 4, "seq_len": 16},
    )
    message = (
        "probes.induction.seq_len: 128 exceeds the model's context of 64 positions (max_position_embeddings); "
        "shorten the probe"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        cs.measure_heads(GPTNeoXForCausalLM(config).eval(), probes=probes)


#: Values a config refuses under ``probes:`` or ``thresholds:``, and the key its message names.
REFUSED = [
    ("thresholds", {"class_selectivity": float("nan")}, "class_selectivity"),
    ("thresholds", {"sink_alpha": float("inf")}, "sink_alpha"),
    ("thresholds", {"induction_circuit": 0.5}, "induction_circuit"),
    ("thresholds", {"induction_onset_heads": 3.0}, "induction_onset_heads"),
    ("thresholds", {"class_selectivty": 8}, "class_selectivty"),
    ("probes", {"batch_size": 16.0}, "batch_size"),
    ("probes", {"induction": {"n_sequences": -1}}, "induction.n_sequences"),
    ("probes", {"random": {"seq_len": float("nan")}}, "random.seq_len"),
    ("probes", {"repeated": {"seq_len": 15}}, "repeated.seq_len"),
    ("probes", {"induction": {"seq_len": 32}}, "induction"),
]


@pytest.mark.parametrize(("section", "overrides", "key"), REFUSED)
def test_study_settings_refuse_what_a_config_refuses(section, overrides, key):
    """study_probes and study_thresholds refuse each value the workflow's config refuses, naming the key."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config[section] = {**config.get(section, {}), **overrides}
    with pytest.raises(ConfigError):
        resolve_config(config)
    study = cs.study_probes if section == "probes" else cs.study_thresholds
    with pytest.raises(ConfigError, match=re.escape(key)) as refused:
        study(**overrides)
    assert "\n" not in str(refused.value)


def test_hand_built_settings_are_checked_like_the_studys():
    """Thresholds or probes built by hand (not by study_*) are refused by measure_heads and classify_heads alike:
    a NaN threshold would class every head ``none``."""
    nan = dataclasses.replace(STUDY_THRESHOLDS, class_selectivity=float("nan"))
    scores = pl.DataFrame({"layer": [0], "head": [0], **{column: [40.0] for column in C.SELECTIVITY_COLUMNS}})
    message = "thresholds: class_selectivity: expected number, got float nan"
    with pytest.raises(ConfigError, match=f"^{message}$"):
        cs.classify_heads(scores, nan)
    with pytest.raises(ConfigError, match=f"^{message}$"):
        cs.measure_heads(planted_model("sdpa"), probes=small_planted_probes(), thresholds=nan)
    negative = dataclasses.replace(small_planted_probes(), batch_size=-3)
    with pytest.raises(ConfigError, match="^probes: batch_size: -3 is out of range"):
        cs.measure_heads(planted_model("sdpa"), probes=negative)


@pytest.mark.parametrize(
    ("first_token", "message"),
    [
        (5, "first_token.token_id: 5 lies inside the probe token range [2, 32)"),
        (-1, "first_token: token_id: -1 is out of range"),
        ("eos", "first_token: policy: 'eos' is not allowed"),
        ("fixed", "first_token: policy fixed needs token_id"),
    ],
)
def test_measure_heads_refuses_a_first_token_a_config_refuses(first_token, message):
    """A first token inside the probe range (position 0 indistinguishable), negative, or of no known policy."""
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        cs.measure_heads(planted_model("sdpa"), probes=small_planted_probes(), first_token=first_token)


def test_measure_heads_measures_in_eval_mode_and_restores_training_mode(monkeypatch):
    """A model in training mode with dropout is measured as in eval mode (no dropout): two calls agree with each
    other and with the eval-mode call, and the caller's model is left in training mode (its submodules' flags as
    they were), also when the measurement fails."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        attention_dropout=0.5, hidden_dropout=0.5, attn_implementation="sdpa",
    )  # fmt: skip
    model = GPTNeoXForCausalLM(config).train()
    model.gpt_neox.layers[0].eval()
    probes = cs.study_probes(
        token_range=[2, 64],
        induction={"n_sequences": 8, "seq_len": 48, "n_baseline": 4},
        repeated={"n_sequences": 4, "seq_len": 32},
        random={"n_sequences": 4, "seq_len": 32},
    )
    flags = {name: module.training for name, module in model.named_modules()}
    first = cs.measure_heads(model, probes=probes)
    second = cs.measure_heads(model, probes=probes)
    assert {name: module.training for name, module in model.named_modules()} == flags
    assert model.training and not model.gpt_neox.layers[0].training
    in_eval = cs.measure_heads(model.eval(), probes=probes)
    assert first.equals(second) and first.equals(in_eval)
    model.train()

    def interrupted(*args, **kwargs):
        assert not model.training, "measured in eval mode"
        raise KeyboardInterrupt

    monkeypatch.setattr("circuitsweep.heads.measure.head_statistics", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cs.measure_heads(model, probes=probes)
    assert all(module.training for module in model.modules())


def test_measure_heads_of_a_name_and_read_results_of_a_file_say_what_they_want(tmp_path):
    """A model name instead of a model, or a table file or a folder that does not exist instead of a run folder,
    is named in one line saying what the function takes, not an AttributeError or a list of missing tables."""
    with pytest.raises(TypeError, match=r"needs a loaded transformers model .*from_pretrained.*not str 'gpt2'"):
        cs.measure_heads("gpt2")
    table = tmp_path / "heads.parquet"
    table.write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(table))} is a file; read_results wants a run folder"):
        cs.read_results(table)
    with pytest.raises(ConfigError, match=r"results/nowhere does not exist \(relative to .*\); read_results wants"):
        cs.read_results(tmp_path / "results" / "nowhere")


def write_results(root: Path, heads: pl.DataFrame) -> None:
    """A results folder as the workflow writes it, from one model's classified heads."""
    paths = C.Paths(root)
    model = heads["model"][0]
    run = {"model": model, "probe": "random_tokens", "probes": {"kind": "random_tokens"}, "thresholds": {"x": 1}}
    write_table(paths.model_heads(model), heads, run)
    revisions = (
        heads.select("model", "revision", "step", "tokens")
        .unique()
        .with_columns(pl.lit(3).alias("n_layers"), pl.lit(None, dtype=pl.Float64).alias("in_context_loss_drop"))
    )
    write_table(paths.model_revisions(model), revisions, run)
    out = HeadTableOutputs(
        heads=paths.heads_table(),
        emergence_parquet=paths.emergence_table("parquet"),
        emergence_csv=paths.emergence_table("csv"),
        milestones_parquet=paths.milestones_table("parquet"),
        milestones_csv=paths.milestones_table("csv"),
        milestones_md=paths.milestones_table("md"),
    )
    head_tables([paths.model_heads(model)], [paths.model_revisions(model)], {model: MILESTONES}, out)
    spectral = model_spectral(heads, model, CLASSIFY.induction_circuit)
    write_table(paths.spectral_table("parquet"), spectral, {"models": {model: {"thresholds": run["thresholds"]}}})


def test_read_results_returns_the_final_tables_and_their_settings(sweep, tmp_path):  # noqa: F811
    """``cs.read_results`` gives the final tables and, per model, the settings recorded with them."""
    write_results(tmp_path / "results", sweep[0])
    results = cs.read_results(tmp_path / "results")
    assert results.milestones["induction_onset_tokens"].to_list() == [300_000]
    assert results.emergence.height == 5 and results.heads.height == sweep[0].height
    assert results.settings["m"]["milestones"]["induction_onset_heads"] == MILESTONES.induction_onset_heads
    assert results.settings["m"]["protocol"] == "random_tokens"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="run the workflow first"):
        cs.read_results(tmp_path / "empty")
    tables = tmp_path / "results" / "tables"
    with pytest.raises(ConfigError, match=r"is a run's tables folder; read_results wants the run folder, .*results$"):
        cs.read_results(tables)


def test_read_results_warns_when_the_last_run_did_not_finish(sweep, tmp_path):  # noqa: F811
    """Tables of a folder whose last run failed may be an earlier run's: the notebook reader says so, as the
    report does, and still reads them; a finished run's folder reads without a warning."""
    import warnings

    from circuitsweep.io.run_folder import mark_run_failed, mark_run_finished

    write_results(tmp_path / "results", sweep[0])
    mark_run_failed(tmp_path / "results")
    with pytest.warns(UserWarning, match="The last run of this folder failed at .* may come from an earlier run"):
        assert cs.read_results(tmp_path / "results").emergence.height == 5
    mark_run_finished(tmp_path / "results")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cs.read_results(tmp_path / "results")


def test_notebook_plots_draw_a_sweeps_figures(sweep, tmp_path):  # noqa: F811
    """``cs.plot_emergence`` and ``cs.plot_trajectories`` take a results folder (or read_results' tables) and return
    the run's figures; a model not in the run is named in the error."""
    write_results(tmp_path / "results", sweep[0])
    emergence = cs.plot_emergence(tmp_path / "results")
    assert [" ".join(axis.get_ylabel().split()) for axis in emergence.axes[:2]] == [
        "BOS-head fraction (class first)",
        "induction-selective heads (any class)",
    ]
    trajectories = cs.plot_trajectories(cs.read_results(tmp_path / "results"))
    labels = [text.get_text() for text in trajectories.legends[0].get_texts()]
    assert any(label.startswith("induction (") for label in labels), labels
    with pytest.raises(ConfigError, match="no model 'other'"):
        cs.plot_trajectories(tmp_path / "results", "other")
    assert {"plot_emergence", "plot_trajectories"} <= set(cs.__all__)


def test_notebook_helpers_read_the_default_run_without_an_argument(sweep, tmp_path, monkeypatch):  # noqa: F811
    """Called bare in the repository, every reader opens the default toy run (one default for all of them)."""
    write_results(tmp_path / "results" / "toy", sweep[0])
    monkeypatch.chdir(tmp_path)
    assert cs.read_results().milestones.height == 1
    assert cs.plot_emergence().axes and cs.plot_trajectories().axes


def test_readme_notebook_example_runs(sweep, tmp_path, monkeypatch, capsys):  # noqa: F811
    """Both README examples run as written: measuring a model in memory, then reading a sweep's results."""
    measure, read = readme_python_blocks()
    namespace: dict = {}
    exec(compile(measure, "README.md", "exec"), namespace)
    assert "sel_induction" in capsys.readouterr().out
    write_results(tmp_path / "results" / "toy", sweep[0].with_columns(pl.lit("toy-gptneox").alias("model")))
    monkeypatch.chdir(tmp_path)
    exec(compile(read, "README.md", "exec"), namespace)
    assert namespace["results"].milestones["model"].to_list() == ["toy-gptneox"]
    findings = namespace["findings"]
    assert findings.section("toy-gptneox", "precision at K")["k"].to_list() == [5, 10, 12]  # 3 layers x 4 heads
    assert findings.paragraphs["toy-gptneox"].startswith("toy-gptneox, final revision ")


def score_cache(path: Path, heads: pl.DataFrame, revision: str, probes: dict) -> Path:
    """One revision's score cache as ``measure_heads`` writes it (scores + the job's metadata)."""
    rows = heads.filter(pl.col("revision") == revision)
    metadata = {
        **{key: rows[key][0] for key in ("model", "revision", "step", "tokens")},
        "n_layers": 3,
        "n_heads": 4,
        "loss_first_half": None,
        "loss_second_half": None,
        "in_context_loss_drop": None,
        "first_token_policy": "none",
        "first_token_id": None,
        "probe": probes["kind"],
        "probe_protocol": probes["protocol"],
        "valid_sequences": probes["induction"]["n_sequences"],
        "probes": probes,
        "dtype": "float32",
    }
    write_table(path, rows.select("layer", "head", *C.HEAD_SCORE_COLUMNS), metadata)
    return path


def test_classification_carries_the_caches_probe_settings(sweep, tmp_path):  # noqa: F811
    """classify_heads carries the caches' probe settings; caches measured with other probes are refused."""
    from circuitsweep.heads.stage import classify_heads

    probes = cs.study_probes().to_dict()
    paths = C.Paths(tmp_path)
    caches = [
        score_cache(tmp_path / f"{revision}.parquet", sweep[0], revision, probes)
        for revision in sweep[0]["revision"].unique(maintain_order=True)
    ]
    classify_heads("m", caches, CLASSIFY, paths.model_heads("m"), paths.model_revisions("m"))
    run = read_table(paths.model_heads("m"))[1]
    assert run["probes"] == probes and run["thresholds"]["class_selectivity"] == CLASSIFY.class_selectivity
    score_cache(caches[-1], sweep[0], "step1000", {**probes, "batch_size": 8})
    with pytest.raises(CacheError, match="other settings"):
        classify_heads("m", caches, CLASSIFY, paths.model_heads("m"), paths.model_revisions("m"))
