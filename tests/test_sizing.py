"""Size bounds: memory estimated before allocating, probes within the model's context (issue 12, case 4).

``n_sequences: 10**12`` or ``seq_len: 1048576`` used to try to allocate tens of
GB or more; a probe longer than ``max_position_embeddings`` ran on.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from circuitsweep.checkpoints.hub import Snapshot
from circuitsweep.config.load import study_defaults
from circuitsweep.config.probes import ProbeSettings
from circuitsweep.errors import ConfigError
from circuitsweep.heads.stage import RevisionJob, check_job_size, measure_heads
from circuitsweep.plan import sizing
from circuitsweep.plan.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
TOY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
PYTHIA_1B = {  # config.json of EleutherAI/pythia-1b (the keys sizing reads)
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 8,
    "intermediate_size": 8192,
    "vocab_size": 50304,
    "hidden_act": "gelu",
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}
OLMOE_1B_7B = {
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "intermediate_size": 1024,
    "vocab_size": 50304,
    "hidden_act": "silu",
    "num_experts": 64,
}


def test_parameter_counts_match_the_published_sizes():
    """Pythia-1B has 1.01 B parameters (1,011,781,632), OLMoE-1B-7B 6.92 B: the estimate is within 1%."""
    assert sizing.model_params(PYTHIA_1B) == pytest.approx(1_011_781_632, rel=0.01)
    assert sizing.model_params(OLMOE_1B_7B) == pytest.approx(6.92e9, rel=0.01)


def test_study_probes_on_pythia_fit_a_small_machine():
    """The study's probes on Pythia-1B in float32 need a few GiB, dominated by the weights."""
    estimate = sizing.estimate_heads_memory(study_defaults("probes"), PYTHIA_1B, "float32")
    assert 4 << 30 < estimate.total < 8 << 30
    assert estimate.parts["weights"] == max(estimate.parts.values())
    assert estimate.mem_mb * 10**6 >= estimate.total


def toy_with(path: str, value) -> dict:
    config = copy.deepcopy(TOY)
    node = config
    for key in path.split(".")[:-1]:
        node = node.setdefault(key, {})
    node[path.split(".")[-1]] = value
    return config


def pythia_with(probes: dict) -> dict:
    return {
        "models": {
            "pythia-1b": {
                "architecture": "GPTNeoXForCausalLM",
                "source": {"type": "hub", "repo_id": "EleutherAI/pythia-1b"},
                "revisions": ["step1"],
                "tokens": {"per_step": 2097152},
            }
        },
        "probes": probes,
        "primitives": {"enabled": False},
    }


@pytest.mark.parametrize(
    "probes",
    [{"induction": {"n_sequences": 2 * 10**9}}, {"random": {"seq_len": 1048576}}, {"repeated": {"seq_len": 1048576}}],
)
def test_absurd_probe_sizes_are_refused_at_planning_even_for_hub_models(probes):
    """Without the model's config, the model-free part of the estimate already refuses these, with the estimate."""
    with pytest.raises(ConfigError, match=r"models\.pythia-1b: the head measurement needs about [0-9.e+]+ GiB"):
        plan_sweep(pythia_with(probes), REPO)


def test_probe_longer_than_a_toy_models_context_is_refused_at_planning():
    """A toy model's context is its training seq_len; a longer probe is an error naming the probe key, where it
    was written: the top-level probes every toy inherits, named once."""
    config = toy_with("probes.random.seq_len", 128)
    with pytest.raises(ConfigError, match=r"\(1 problem\):\n  - probes\.random\.seq_len: 128 exceeds .* 64 positions"):
        plan_sweep(config, REPO)
    model = next(iter(TOY["models"]))
    config["models"][model]["probes"] = {"random": {"seq_len": 128, "n_sequences": 8}}
    with pytest.raises(ConfigError, match=rf"models\.{model}\.probes\.random\.seq_len: 128 exceeds .* 64 positions"):
        plan_sweep(config, REPO)  # the model's own override: named under the model


def job(**probe_changes) -> RevisionJob:
    probes = study_defaults("probes")
    for kind, values in probe_changes.items():
        probes[kind].update(values)
    return RevisionJob(
        "pythia-1b", "step1", 1, 2097152, "GPTNeoXForCausalLM", "float32", {"policy": "none"},
        ProbeSettings.from_dict(probes), "cpu",
    )  # fmt: skip


def test_job_refuses_a_probe_beyond_max_position_embeddings():
    """At job time the snapshot's config gives the context; a longer probe is refused naming the key."""
    with pytest.raises(ConfigError, match=r"probes\.induction\.seq_len: 4096 exceeds the model's context of 2048"):
        check_job_size(job(induction={"seq_len": 4096}), PYTHIA_1B, "cpu", None)


def test_probe_ids_past_the_vocabulary_are_named_by_their_key():
    """The one vocabulary rule of the job and of planning: ids are drawn from [low, high) and the first token sits
    at position 0, so high may equal the vocabulary, the first token may not; each problem names its key."""
    assert sizing.vocabulary_problem((3, 128), 127, 128, "models.m", "m step1") is None
    assert sizing.vocabulary_problem((3, 5000), None, 128, "models.m", "m step1") == (
        "models.m.probes.token_range: [3, 5000) exceeds the vocabulary of 128 tokens (m step1); "
        "use a range that ends at 128 at most"
    )
    assert sizing.vocabulary_problem((3, 100), 128, 128, "models.m", "m step1") == (
        "models.m.first_token: token 128 exceeds the vocabulary of 128 tokens (m step1)"
    )
    assert sizing.vocabulary_problem((3, 5000), 1, None, "models.m", "m step1") is None  # no vocab_size: unknown


def test_job_refuses_what_its_mem_mb_cannot_hold():
    """A job whose estimate exceeds its mem_mb is refused with the estimate and the limit in the message."""
    with pytest.raises(ConfigError, match=r"pythia-1b step1: .*needs about 6\.\d+ GiB .*mem_mb of 2000"):
        check_job_size(job(), PYTHIA_1B, "cpu", 2000)
    check_job_size(job(), PYTHIA_1B, "cpu", 64000)


def test_measure_heads_refuses_before_loading_the_model(tmp_path, monkeypatch):
    """The size check runs on the snapshot's config.json before any weight is loaded."""
    from circuitsweep.checkpoints import loading

    files = tmp_path / "files"
    files.mkdir()
    (files / "config.json").write_text(json.dumps({**PYTHIA_1B, "max_position_embeddings": 128}))
    record = Snapshot("EleutherAI/pythia-1b", "step1", "0" * 40, files, {"config.json": "0" * 64}, "local")
    (tmp_path / "snapshot.json").write_text(json.dumps(record.to_json()))

    def never(*args, **kwargs):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(loading, "load_model", never)
    with pytest.raises(ConfigError, match=r"seq_len: 256 exceeds the model's context of 128"):
        measure_heads(tmp_path, job(), tmp_path / "s.safetensors", tmp_path / "s.parquet", progress=False)


def test_natural_text_probe_longer_than_the_context_is_refused_like_the_synthetic_ones(tmp_path):
    """Issue 22: the natural-text probe was measured at seq_len 256 on a model whose context is 128 while the
    synthetic probe is refused; it is refused at planning (a declared shape) and by the job, naming its key."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n")
    natural = {"corpus": str(corpus), "tokenizer": "pythia", "seq_len": 128, "n_examples": 4}
    short = {kind: {"seq_len": 64} for kind in ("induction", "repeated", "random")}
    config = pythia_with({**short, "natural_text": natural})
    config["models"]["pythia-1b"]["shape"] = {**PYTHIA_1B, "max_position_embeddings": 64}
    with pytest.raises(ConfigError, match=r"- probes\.natural_text\.seq_len: 128 exceeds .* 64 positions"):
        plan_sweep(config, REPO)
    probes = study_defaults("probes")
    probes["natural_text"] = {**natural, "seq_len": 4096}
    long = RevisionJob(
        "pythia-1b", "step1", 1, 2097152, "GPTNeoXForCausalLM", "float32", {"policy": "none"},
        ProbeSettings.from_dict(probes), "cpu",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"probes\.natural_text\.seq_len: 4096 exceeds the model's context of 2048"):
        check_job_size(long, PYTHIA_1B, "cpu", None)


def test_a_missing_config_json_is_named_and_not_retried(tmp_path):
    """A model folder without config.json is refused naming the file, as an error a rerun would repeat (exit 3, not
    retried with more memory); planning a run_dir refuses it the same way before any job."""
    from circuitsweep.errors import SnapshotError
    from circuitsweep.plan.retry import is_deterministic

    with pytest.raises(SnapshotError, match=r"config\.json does not exist: a model folder needs") as caught:
        sizing.load_model_config(tmp_path)
    assert is_deterministic(caught.value)
    assert sizing.read_model_config(tmp_path) is None
