"""Probes longer than a sliding window are refused, not measured as zeros.

A Gemma 3 run with ``sliding_window: 16`` in both layers, measured with an
induction ``seq_len`` of 48, gave every head sel_first = sel_induction = 0 and
class "none" without a word: past position 15 no query can see position 0.
``attention_windows`` reads which layers slide from the config, and planning,
the job and the API refuse a probe longer than a window, naming the key.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import transformers

import circuitsweep as cs
from circuitsweep.checkpoints.hub import Snapshot
from circuitsweep.config.load import study_defaults
from circuitsweep.config.model_config import SWITCHED_WINDOW_TYPES, attention_windows, standard_config
from circuitsweep.config.probes import ProbeSettings
from circuitsweep.errors import ConfigError
from circuitsweep.heads.stage import RevisionJob, measure_heads
from circuitsweep.plan import sizing
from circuitsweep.plan.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
SLIDING, FULL = "sliding_attention", "full_attention"
LLAMA = {"model_type": "llama", "num_hidden_layers": 2, "max_position_embeddings": 128}


@pytest.mark.parametrize(
    ("config", "windows"),
    [
        ({"model_type": "gemma3_text", "sliding_window": 16, "layer_types": [SLIDING, SLIDING]}, [16, 16]),
        ({"model_type": "gemma3_text", "sliding_window": 8, "layer_types": [SLIDING, FULL, SLIDING]}, [8, None, 8]),
        ({"model_type": "mistral", "num_hidden_layers": 3, "sliding_window": 4096}, [4096] * 3),
        ({"model_type": "mistral", "num_hidden_layers": 2, "sliding_window": None}, [None, None]),
        ({"model_type": "mixtral", "num_hidden_layers": 2, "sliding_window": 64}, [64, 64]),
        (
            {"model_type": "qwen2", "num_hidden_layers": 3, "sliding_window": 32, "use_sliding_window": False},
            [None] * 3,
        ),
        ({"model_type": "qwen2", "num_hidden_layers": 3, "sliding_window": 32}, [None] * 3),
        (
            {"model_type": "qwen2", "num_hidden_layers": 4, "sliding_window": 32, "use_sliding_window": True,
             "max_window_layers": 2},
            [None, None, 32, 32],
        ),
        (
            {"model_type": "qwen2", "num_hidden_layers": 2, "sliding_window": 32, "use_sliding_window": True,
             "max_window_layers": 28},
            [None, None],
        ),
        (
            {"model_type": "qwen2_moe", "num_hidden_layers": 4, "sliding_window": 32, "use_sliding_window": True,
             "max_window_layers": 3},
            [32, None, 32, None],
        ),
        (LLAMA, [None, None]),
        ({"model_type": "gemma3", "text_config": {"sliding_window": 8, "layer_types": [SLIDING, FULL]}}, [8, None]),
    ],
)  # fmt: skip
def test_windows_of_hand_built_configs(config, windows):
    """Which layers a config.json restricts to a window, as transformers' config classes decide (None: full)."""
    assert attention_windows(config) == windows


CLASSES = [
    ("gemma2", {"num_hidden_layers": 4, "sliding_window": 16}),
    ("gemma3_text", {"num_hidden_layers": 7, "sliding_window": 16}),
    ("cohere2", {"num_hidden_layers": 5, "sliding_window": 16}),
    ("mistral", {"num_hidden_layers": 2, "sliding_window": 16}),
    ("mistral", {"num_hidden_layers": 2, "sliding_window": None}),
    ("mixtral", {"num_hidden_layers": 2, "sliding_window": 16}),
    ("qwen2", {"num_hidden_layers": 3, "sliding_window": 16}),
    ("qwen2", {"num_hidden_layers": 3, "sliding_window": 16, "use_sliding_window": True, "max_window_layers": 1}),
    ("qwen2_moe", {"num_hidden_layers": 4, "sliding_window": 16, "use_sliding_window": True, "max_window_layers": 3}),
    ("qwen3_moe", {"num_hidden_layers": 2, "sliding_window": 16}),
    ("qwen3_moe", {"num_hidden_layers": 2, "sliding_window": 16, "use_sliding_window": True}),
    ("phi3", {"num_hidden_layers": 2, "sliding_window": 16}),
    ("llama", {"num_hidden_layers": 2}),
]


@pytest.mark.parametrize(("model_type", "values"), CLASSES)
def test_config_json_and_the_config_class_agree(model_type, values):
    """The config object the job builds, the config.json save_pretrained writes from it, and a hand-written
    config.json of the same values give the same windows (every class here but the alternating ones, whose
    hand-written config.json lacks the layer_types their class builds)."""
    config = transformers.AutoConfig.for_model(model_type, **values)
    windows = attention_windows(config)
    if getattr(config, "layer_types", None) is not None:
        assert windows == [config.sliding_window if kind == SLIDING else None for kind in config.layer_types]
    assert attention_windows(standard_config(config.to_dict())) == windows
    if model_type not in ("gemma2", "gemma3_text", "cohere2"):
        assert attention_windows({"model_type": model_type, **values}) == windows


def test_switched_window_types_are_the_installed_classes():
    """Every config class of the installed transformers with a ``use_sliding_window`` switch defaults it to off
    and is listed, so a config.json that leaves the switch out is read as its class reads it."""
    switched = {}
    for source in Path(transformers.__file__).parent.glob("models/*/configuration_*.py"):
        text = source.read_text(encoding="utf-8")
        if "use_sliding_window:" not in text:
            continue
        for node in ast.parse(text).body:
            if not isinstance(node, ast.ClassDef):
                continue
            fields = {s.target.id: s.value for s in node.body if isinstance(s, ast.AnnAssign)}
            kinds = [s.value.value for s in node.body if isinstance(s, ast.Assign) and ast.unparse(s.targets[0]) ==
                     "model_type"]  # fmt: skip
            if "use_sliding_window" in fields and kinds:
                switched[kinds[0]] = ast.unparse(fields["use_sliding_window"])
    assert switched and set(switched.values()) == {"False"}
    assert set(switched) <= set(SWITCHED_WINDOW_TYPES)


def test_a_window_lets_a_query_see_itself_and_the_window_minus_one_before_it():
    """transformers' sliding mask: with W = 4 the query at position 3 sees position 0, the one at 4 does not, so a
    probe of W tokens fits and one of W + 1 is refused."""
    import torch
    from transformers.masking_utils import sliding_window_causal_mask_function

    mask = sliding_window_causal_mask_function(4)

    def visible(query: int, key: int) -> bool:
        return bool(mask(0, 0, torch.tensor(query), torch.tensor(key)))

    assert visible(3, 0) and visible(3, 3) and not visible(4, 0) and visible(4, 1) and not visible(4, 5)
    probes = {"induction": {"seq_len": 4}, "repeated": {"seq_len": 4}, "random": {"seq_len": 4}}
    assert sizing.window_problem(probes, [4, None], "models.m") is None
    assert sizing.window_problem({**probes, "random": {"seq_len": 5}}, [4, None], "models.m") == (
        "models.m.probes.random.seq_len: 5 exceeds the 4-token sliding window of layer 0 (sliding_window): "
        "a query past position 3 there cannot see position 0 or any token more than 3 back; use seq_len <= 4"
    )
    natural = {**probes, "natural_text": {"seq_len": 64}}
    problem = sizing.window_problem(natural, [None, 8, 8, None, 8], "models.m")
    assert problem.startswith(
        "models.m.probes.natural_text.seq_len: 64 exceeds the 8-token sliding window of layers 1-2, 4 "
    )


def tiny(architecture: str, window: int):
    """A randomly initialised two-layer model whose layers both slide with ``window``."""
    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 64, "sliding_window": window}  # fmt: skip
    if architecture == "Gemma3ForCausalLM":
        config = transformers.Gemma3TextConfig(**shape, head_dim=8, layer_types=[SLIDING, SLIDING])
    else:
        config = transformers.MistralConfig(**shape)
    return getattr(transformers, architecture)(config).eval()


def probes(length: int) -> ProbeSettings:
    return cs.study_probes(
        token_range=[3, 64],
        induction={"n_sequences": 8, "seq_len": length, "min_first_position": 2, "n_baseline": 4},
        repeated={"n_sequences": 4, "seq_len": 16},
        random={"n_sequences": 4, "seq_len": 16},
        spectral={"n_sequences": 4},
    )


@pytest.mark.parametrize("architecture", ["Gemma3ForCausalLM", "MistralForCausalLM"])
def test_measure_heads_refuses_a_probe_longer_than_the_window(architecture):
    """The repro's Gemma 3 (window 16, induction seq_len 48) is refused in one line, not scored as zeros."""
    message = (
        "probes.induction.seq_len: 48 exceeds the 16-token sliding window of layers 0-1 (sliding_window): "
        "a query past position 15 there cannot see position 0 or any token more than 15 back; use seq_len <= 16"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        cs.measure_heads(tiny(architecture, 16), probes=probes(48))


def test_a_probe_that_fits_the_window_is_measured():
    """A probe as long as the window (every query sees position 0) runs as on any model."""
    heads = cs.measure_heads(tiny("Gemma3ForCausalLM", 16), probes=probes(16))
    assert heads.height == 8


def job(length: int) -> RevisionJob:
    settings = study_defaults("probes")
    settings["induction"].update(seq_len=length)
    return RevisionJob(
        "gm", "checkpoint-0", 0, 0, "Gemma2ForCausalLM", "float32", {"policy": "none"},
        ProbeSettings.from_dict(settings), "cpu",
    )  # fmt: skip


def test_the_job_refuses_before_loading_and_names_the_layers_the_class_builds(tmp_path, monkeypatch):
    """A Gemma 2 config.json written before layer_types were saved: the job reads the windows through its config
    class (even layers slide), refusing before any weight is read."""
    from circuitsweep.checkpoints import loading

    files = tmp_path / "files"
    transformers.Gemma2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, vocab_size=20000, sliding_window=128,
    ).save_pretrained(files)  # fmt: skip
    saved = json.loads((files / "config.json").read_text())
    del saved["layer_types"]
    (files / "config.json").write_text(json.dumps(saved))
    record = Snapshot("google/gemma", "main", "0" * 40, files, {"config.json": "0" * 64}, "local")
    (tmp_path / "snapshot.json").write_text(json.dumps(record.to_json()))

    def never(*args, **kwargs):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(loading, "load_model", never)
    with pytest.raises(ConfigError, match=r"^models\.gm\.probes\.induction\.seq_len: 256 exceeds the 128-token "
                       r"sliding window of layers 0, 2 \(sliding_window\)"):  # fmt: skip
        measure_heads(tmp_path, job(256), tmp_path / "s.safetensors", tmp_path / "s.parquet", progress=False)


def _run_dir(run: Path, window: int) -> dict:
    """A run_dir of one fake Gemma 3 checkpoint (planning reads its config.json and safetensors header only)."""
    folder = run / "checkpoint-0"
    folder.mkdir(parents=True)
    config = {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 16,
              "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 20000, "head_dim": 8,
              "max_position_embeddings": 1024, "sliding_window": window, "layer_types": [SLIDING, FULL]}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    header = json.dumps({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}).encode()
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0")
    source = {"type": "run_dir", "path": str(run), "pattern": "checkpoint-{step}"}
    model = {"architecture": "Gemma3ForCausalLM", "source": source, "revisions": "all", "tokens": {"per_step": 1}}
    return {"primitives": {"enabled": False}, "models": {"gm": model}}


def test_planning_refuses_a_run_dir_probe_longer_than_its_window(tmp_path):
    """Planning reads each checkpoint's config.json and refuses the probe before any job is made."""
    with pytest.raises(ConfigError, match=r"^models\.gm\.probes\.induction\.seq_len: 256 exceeds the 16-token "
                       r"sliding window of layer 0 \(sliding_window\)"):  # fmt: skip
        plan_sweep(_run_dir(tmp_path / "short", 16), REPO)
    assert "gm" in plan_sweep(_run_dir(tmp_path / "long", 512), REPO).models
