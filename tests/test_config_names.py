"""Job sizing reads every class's ``config.json`` as transformers does, without torch, and names a bad one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from circuitsweep.config.model_config import attribute_map, attribute_map_in_source, standard_config
from circuitsweep.errors import SnapshotError
from circuitsweep.plan import costs, sizing
from circuitsweep.plan import resources as R

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"
#: Decoder model types whose config classes rename standard attributes, and some that rename none.
MODEL_TYPES = ("gpt2", "gpt-sw3", "gpt_neo", "gptj", "codegen", "bloom", "mpt", "xglm", "olmoe", "llama", "qwen2")
MODEL_TYPES += ("gemma3_text", "gpt_neox", "olmo", "bert")
PROBES = {
    "batch_size": 8,
    "induction": {"n_sequences": 8, "seq_len": 48},
    "repeated": {"n_sequences": 4, "seq_len": 32},
    "random": {"n_sequences": 4, "seq_len": 16},
}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_attribute_maps_read_from_source_equal_the_imported_classes(model_type):
    """The torch-free reading of each config class's ``attribute_map`` is the one transformers applies."""
    from transformers import CONFIG_MAPPING

    assert attribute_map(model_type) == dict(CONFIG_MAPPING[model_type].attribute_map)


def test_a_map_inherited_along_bases_in_the_module_is_found():
    """A subclass without its own ``attribute_map`` takes its base's; one of ``PreTrainedConfig`` has none."""
    source = (
        "class A(PreTrainedConfig):\n    attribute_map = {'hidden_size': 'd'}\n"
        "class B(A):\n    x = 1\n"
        "class C(PreTrainedConfig):\n    x = 1\n"
    )
    assert attribute_map_in_source(source, "B") == {"hidden_size": "d"}
    assert attribute_map_in_source(source, "C") == {}
    assert attribute_map_in_source(source, "D") is None


def test_reading_the_names_imports_neither_torch_nor_transformers():
    """Planning jobs never import torch: the maps come from transformers' source files."""
    code = (
        "import sys; from circuitsweep.config.model_config import attribute_map;"
        "assert attribute_map('gpt2');"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(WORKFLOW)}
    )
    assert out.stdout.strip() == "[]"


def test_a_gpt2_config_sizes_its_job(tmp_path):
    """GPT-2's ``n_embd``/``n_layer``/``n_head`` size a measurement job instead of raising KeyError."""
    from transformers import GPT2Config

    GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=64, n_positions=64).save_pretrained(tmp_path)
    config = sizing.load_model_config(tmp_path)
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (32, 2, 4)
    assert config["max_position_embeddings"] == 64
    shape = sizing.read_model_config(tmp_path)
    size = R.measure_size(shape, "float32", PROBES, "cpu", costs.revision_work(PROBES, None, shape))
    assert size.mem_mb == sizing.estimate_heads_memory(PROBES, config).mem_mb
    assert sizing.context_problem({**PROBES, "induction": {"n_sequences": 8, "seq_len": 65}}, config, "m")


def test_the_class_own_name_wins_over_a_stale_standard_one():
    """Where both names are present, the class's own (``n_embd``) is what transformers reads."""
    assert standard_config({"model_type": "gpt2", "n_embd": 32, "hidden_size": 99})["hidden_size"] == 32


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"hidden_size": "\xff"}', r"config\.json is not UTF-8 text"),
        (b"[1, 2]", r"config\.json holds a JSON list, not an object"),
        (b"{not json", r"config\.json is not valid JSON"),
        (b'{"model_type": "gpt2", "n_layer": 2, "n_head": 4}', r"config\.json: hidden_size is None"),
        (b'{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 0}', "num_attention_heads is 0"),
    ],
)
def test_a_damaged_config_json_is_one_line_naming_the_file(tmp_path, content, message):
    """The job refuses a config.json it cannot size with a SnapshotError naming it; planning falls back."""
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(SnapshotError, match=message) as caught:
        sizing.load_model_config(tmp_path)
    assert "\n" not in str(caught.value)
    assert sizing.read_model_config(tmp_path) is None
